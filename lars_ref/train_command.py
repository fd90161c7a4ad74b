"""``lars-ref train``: flags generated from :class:`~lars_ref.config.TrainConfig`.

Each field of the settings dataclass becomes one flag (``data_dir`` ->
``--data-dir``) with the field's type, default, help text and choices, so a
setting is written once. Three flags are not settings: ``--config`` (a JSON
file of settings), ``--resume`` and ``--overwrite``.

Introduced in ``README.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import fractions
import sys

from lars_ref.config import ConfigError, TrainConfig, flag_name
from lars_ref.launch import fail_together, needs_launcher, relaunch

EXIT_DIVERGED = 3

DESCRIPTION = """\
Train one model. Settings come from the defaults, then from --config (a JSON
object with the same names, underscores for dashes), then from the flags.
Writes metrics (JSON lines and CSV), config.json and checkpoint.npz into --out,
and one line per epoch on the console; --resume continues from that checkpoint
and gives the same weights as a run that was never interrupted. Ctrl-C (or
SIGTERM) finishes the current step, writes a checkpoint and exits with 130.

Schedule: a linear warm-up from --warmup-start-lr to gamma_0, then the poly
decay gamma_0 (1 - t/T)^p of Algorithm 1 L3. On the default absolute clock (the
authors' NVCaffe) the LR steps down at the end of warm-up, from gamma_0 to
gamma_0 (1 - T_w/T)^p; --decay-clock after_warmup removes that step. The ramp
starts at gamma_0/(T_w+1), not at 0, so that step 0 trains (docs/schedules.md).

example:  lars-ref train --model alexnet_bn --dataset digits \\
              --optimizer lars --batch-size 512 --micro-batch 128 \\
              --lr 20 --warmup-epochs 3 --epochs 30 --out runs/lars512"""

FIELD_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def register(commands) -> None:
    """Add ``train`` to the ``lars-ref`` command tree (argparse subparsers)."""
    parser = commands.add_parser(
        "train", help="train any model x dataset x optimizer; metrics + checkpoints",
        description=DESCRIPTION)
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="JSON file of settings (flags override it)")
    for field in dataclasses.fields(TrainConfig):
        add_setting_flag(parser, field)
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/checkpoint.npz")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over even if <out> holds the checkpoint of an "
                             "earlier run")
    parser.set_defaults(handler=fail_together(run_train_command))  # ranks end together


def add_setting_flag(parser, field: dataclasses.Field) -> None:
    """One flag for one TrainConfig field; absent from the namespace unless given."""
    type_name = str(field.type).replace(" | None", "")
    help_text = field.metadata["help"]
    if "default:" not in help_text:
        help_text += f" (default: {_shown(field.default)})"
    options = dict(default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
    if type_name == "bool":
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = (width_value if field.name == "width"
                           else FIELD_TYPES[type_name])
        options["metavar"] = field.name.upper()
    if field.metadata.get("choices"):
        options["choices"] = field.metadata["choices"]
        options.pop("metavar", None)
    parser.add_argument(flag_name(field.name), dest=field.name, **options)


def _shown(default) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return "none" if default is None else str(default)


def width_value(text: str) -> float | None:
    """``--width``: "auto" (None), a number, or a fraction such as "1/16"."""
    if text == "auto":
        return None
    try:
        return float(fractions.Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"invalid width {text!r}: give auto, a number such as 0.5, or a "
            "fraction such as 1/16") from None


def config_from_args(args) -> TrainConfig:
    """Defaults < --config file < flags given on the command line."""
    config = TrainConfig()
    if getattr(args, "config", None):
        config = TrainConfig.from_json_file(args.config)
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    given = {name: value for name, value in vars(args).items() if name in names}
    if "steps" in given and "epochs" not in given:
        given["epochs"] = None  # --steps alone replaces the default epochs
    if "epochs" in given and "steps" not in given:
        given["steps"] = None
    return config.replace(**given).validate()


def run_train_command(args) -> int:
    """Check everything that needs no data, then train; return the exit status."""
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite starts "
                          "it over; give one of them")
    config = config_from_args(args)
    if needs_launcher(config):  # --procs P: mpiexec -n P lars-ref train ...
        return relaunch(config, resume=args.resume, overwrite=args.overwrite)
    from lars_ref import train as training
    from lars_ref.tools.host_memory import keep_freed_host_memory
    keep_freed_host_memory()
    result = training.train(config, resume=args.resume, overwrite=args.overwrite)
    if result.diverged:
        print(f"lars-ref: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    if result.interrupted:
        print(f"lars-ref: {result.message}", file=sys.stderr)
        return 130
    print(result.summary())
    return 0
