"""The ``lars-ref`` command (also ``python -m lars_ref``).

Each subcommand is a small function that turns flags into a call of the
library. Mistakes in what the user typed or pointed at (an unknown model, a
batch larger than the data, a corrupt checkpoint, ...) end with one line
``lars-ref: error: ...`` and exit status 2; a diverged run exits with 3;
anything else is a bug and keeps its traceback.

Introduced in ``README.md``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from lars_ref.backend import BackendError, keep_freed_host_memory
from lars_ref.config import ConfigError, TrainConfig
from lars_ref.errors import UserError

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3

DESCRIPTION = """\
lars-ref: a readable NumPy/CuPy reference of LARS (layer-wise adaptive rate
scaling; You, Gitman, Ginsburg 2017, arXiv:1708.03888).

Start here:
  lars-ref demo                  # about a minute on a laptop CPU: small vs large
                                 # batch, SGD + warm-up vs LARS, on 8x8 digits
  lars-ref demo --quick          # a few seconds, to see that it works
  lars-ref train --model alexnet_bn --dataset digits --optimizer lars \\
      --batch-size 512 --lr 20 --warmup-epochs 3 --epochs 30 --out runs/lars512
  lars-ref <command> --help      # the flags of one command
"""

EPILOG = """\
exit status: 0 success, 2 a usage or input error (message on stderr),
3 training diverged (loss became NaN/Inf; the last good checkpoint is kept).
"""

# Subcommands written in other modules: (module, function, one-line help).
# They are imported only when called, and get the rest of the command line.
FORWARDED = {
    "bench": ("lars_ref.tools.bench", "main",
              "time a ResNet-20 step and its convolutions against PyTorch"),
    "bench-optim": ("lars_ref.bench_optim", "main",
                    "time the optimizer step of every LARS variant"),
    "vectors": ("lars_ref.crosscheck.cli", "vectors_main",
                "write the reference trajectories (golden vectors) of every preset"),
    "crosscheck": ("lars_ref.crosscheck.cli", "crosscheck_main",
                   "check your own LARS against the presets: which LARS is mine?"),
    "exercises": ("lars_ref.exercises", "main",
                  "course mode: make student copies, grade their notebooks"),
}


def main(argv: list[str] | None = None) -> int:
    """Run ``lars-ref`` with ``argv`` (default: ``sys.argv[1:]``); return exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        return _run_forwarded(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (UserError, BackendError) as err:
        return _fail(err)
    except KeyboardInterrupt:
        print("lars-ref: interrupted; continue a train run with --resume",
              file=sys.stderr)
        return 130


def _fail(err: BaseException) -> int:
    """Print one line ``lars-ref: error: <message>`` on stderr; return 2."""
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"lars-ref: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def _run_forwarded(name: str, rest: list[str]) -> int:
    module_name, function_name, _ = FORWARDED[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise  # the module exists but something it imports is missing: a bug
        return _fail(ConfigError(f"the '{name}' command is not available in this "
                                 f"install ({module_name} is missing)"))
    status = getattr(module, function_name)(rest)
    return int(status or 0)


# ----------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lars-ref", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"lars-ref {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="<command>",
                                     required=True)
    _add_demo(commands)
    _add_train(commands)
    _add_download(commands)
    from lars_ref.reproduce.commands import register as register_reproduce
    register_reproduce(commands)  # reproduce, sweep (until COMMAND_MODULES lands)
    for name, (_, _, help_line) in FORWARDED.items():
        forwarded = commands.add_parser(name, help=help_line, add_help=False)
        forwarded.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _version() -> str:
    from lars_ref import __version__
    return __version__


def _add_demo(commands) -> None:
    demo = commands.add_parser(
        "demo", help="the paper's story in about a minute on 8x8 digits (start here)",
        description=(
            "Train a small AlexNet-BN on scikit-learn's 8x8 digits at a small and a\n"
            "large batch, with (a) SGD + linear LR scaling + warm-up and (b) LARS.\n"
            "Prints a table shaped like the paper's Tables 1 and 3 and saves plots\n"
            "(test accuracy curves; local LR of the first and last layer, as in\n"
            "paper Fig. 2) in the output folder.\n\n"
            "example:  lars-ref demo --out demo_out"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--quick", action="store_true",
                      help="tiny settings that finish in seconds (a smoke test)")
    demo.add_argument("--out", default="lars_ref_out/demo",
                      help="folder for the table, metrics and plots "
                           "(default: %(default)s)")
    demo.add_argument("--backend", default="numpy", choices=("numpy", "cupy", "auto"),
                      help="array backend; cupy runs on a GPU (default: %(default)s)")
    demo.add_argument("--epochs", type=float, default=None,
                      help="epochs per run (default: the demo's tuned value)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_cmd_demo)


def _cmd_demo(args) -> int:
    from lars_ref import demo
    keep_freed_host_memory()
    demo.run_demo(out_dir=args.out, backend=args.backend, quick=args.quick,
                  epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    return 0


def _add_train(commands) -> None:
    train = commands.add_parser(
        "train", help="train any model x dataset x optimizer; metrics + checkpoints",
        description=(
            "Train one model. Settings come from the defaults, then from --config\n"
            "(a JSON object with the same names, underscores for dashes), then\n"
            "from the flags. Writes metrics (JSON lines and CSV), config.json and\n"
            "checkpoint.npz into --out; --resume continues from that checkpoint\n"
            "and gives the same weights as a run that was never interrupted.\n\n"
            "example:  lars-ref train --model alexnet_bn --dataset digits \\\n"
            "              --optimizer lars --batch-size 512 --micro-batch 128 \\\n"
            "              --lr 20 --warmup-epochs 3 --epochs 30 --out runs/lars512"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    flag = train.add_argument
    flag("--config", help="JSON file of settings (flags override it)")
    flag("--model", help="model name, e.g. alexnet_bn, alexnet, resnet20")
    flag("--dataset", help="digits (built in), mnist, fashion_mnist, cifar10, ...")
    flag("--data-dir", help="where datasets live (default: $LARS_REF_DATA)")
    flag("--width", type=int, help="channels of the first layer (model size)")
    flag("--init", choices=("auto", "paper", "paper_gain"),
         help="AlexNet weight init. paper: the authors' Gaussian stds verbatim; "
              "paper_gain: those stds scaled to the paper network's std*sqrt(fan_in), "
              "so that plain SGD trains the small AlexNets; auto (default): paper at "
              "the paper's size, paper_gain for small inputs")
    flag("--dtype", choices=("float32", "float64"))
    flag("--augment", action=argparse.BooleanOptionalAction, default=None,
         help="random crops and flips on the training images")
    flag("--optimizer", help="sgd, lars, or a LARS preset name (see `lars-ref "
                             "crosscheck --help`)")
    flag("--lr", type=float, help="peak learning rate gamma_0 at --batch-size")
    flag("--lr-base-batch", type=int,
         help="scale --lr linearly: gamma_0 = lr * batch_size / lr_base_batch")
    flag("--momentum", type=float, help="momentum m (default 0.9)")
    flag("--weight-decay", type=float, help="weight decay beta (default 5e-4)")
    flag("--eta", type=float, help="LARS trust coefficient eta (default 0.001)")
    flag("--epochs", type=float, help="length of training in epochs")
    flag("--steps", type=int, help="length of training in optimizer steps")
    flag("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    flag("--warmup-steps", type=int, help="linear warm-up length in steps")
    flag("--warmup-start-lr", type=float, help="LR at the start of warm-up (default 0)")
    flag("--poly-power", type=float, help="power of the poly decay (default 2)")
    flag("--batch-size", type=int, help="global batch B of one optimizer step")
    flag("--micro-batch", type=int,
         help="size of the chunks that build B (Caffe iter_size = B / micro-batch)")
    flag("--seed", type=int)
    flag("--backend", choices=("numpy", "cupy", "auto"))
    flag("--out", help="output folder (default runs/train)")
    flag("--log-every", type=int, help="steps between loss gathers (default 10)")
    flag("--diag-every", type=int,
         help="steps between per-layer LARS rows (default 10)")
    flag("--checkpoint-every", type=int, help="epochs between checkpoints (default 1)")
    flag("--eval-every", type=int, help="epochs between test evaluations (default 1)")
    flag("--resume", action="store_true", help="continue from <out>/checkpoint.npz")
    flag("--overwrite", action="store_true",
         help="start over even if <out> holds the checkpoint of an earlier run")
    flag("--blas-threads", type=int,
         help="CPU threads of NumPy's BLAS (1 is fastest for small models on a "
              "busy machine; default: the library's choice)")
    flag("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_cmd_train)


def config_from_args(args) -> TrainConfig:
    """Defaults < --config file < flags given on the command line."""
    config = TrainConfig()
    if args.config:
        config = TrainConfig.from_json_file(args.config)
    names = {f for f in config.to_dict()}
    given = {name: value for name, value in vars(args).items()
             if name in names and value is not None}
    if args.no_progress:
        given["progress"] = False
    if given.get("steps") is not None and "epochs" not in given:
        given["epochs"] = None  # --steps alone replaces the default epochs
    if given.get("epochs") is not None and "steps" not in given:
        given["steps"] = None
    return config.replace(**given).validate()


def _cmd_train(args) -> int:
    config = config_from_args(args)
    from lars_ref import train as training
    existing = training.checkpoint_path(config.out)
    if not args.resume and not args.overwrite and os.path.exists(existing):
        raise ConfigError(f"{existing} holds the checkpoint of an earlier run; "
                          "continue it with --resume, start over with --overwrite, "
                          "or pick another --out")
    keep_freed_host_memory()
    result = training.train(config, resume=args.resume)
    if result.diverged:
        print(f"lars-ref: {result.message}", file=sys.stderr)
        return EXIT_DIVERGED
    print(result.summary())
    return 0


def _add_download(commands) -> None:
    download = commands.add_parser(
        "download", help="fetch a dataset (hash-checked) into the data folder",
        description=("Download the official files of a dataset and check their "
                     "hashes.\n\n"
                     "example:  lars-ref download mnist --data-dir ~/data"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    download.add_argument("name",
                          help="dataset name, e.g. mnist, fashion_mnist, cifar10")
    download.add_argument("--data-dir", help="target folder (default: $LARS_REF_DATA)")
    download.set_defaults(handler=_cmd_download)


def _cmd_download(args) -> int:
    from lars_ref import data
    path = data.download(args.name, data_dir=args.data_dir)
    print(f"{args.name} is in {path}")
    return 0
