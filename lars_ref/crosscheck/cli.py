"""Command-line entry points of the cross-check kit.

:func:`register` adds ``lars-ref vectors`` and ``lars-ref crosscheck`` to the
command tree of :mod:`lars_ref.cli`; :func:`vectors_main` and
:func:`crosscheck_main` run them from Python with the arguments after the
subcommand, and ``python -m lars_ref.crosscheck.cli vectors|crosscheck ...`` works too.

    lars-ref vectors --out DIR                write every preset x case, and the manifest
    lars-ref vectors --verify DIR             check every file's content hash
    lars-ref crosscheck --adapter optax       identify a LARS (see --help for adapters)

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import importlib
import sys

from lars_ref.crosscheck.storage import ReferenceFileError
from lars_ref.errors import UserError

ADAPTER_HELP = ("which optimizer to check: 'preset:NAME' (lars_ref itself as a preset), "
                "'optax', 'pytorch-optimizer', 'torch:MODULE.CLASS' (any PyTorch optimizer "
                "class, LR set per step), or 'MODULE:ATTR' (your adapter object or factory "
                "make(case, init_params) -> step(grads, t, gamma_t))")


def register(commands) -> None:
    """Add ``vectors`` and ``crosscheck`` to the ``lars-ref`` command tree."""
    from lars_ref.optim import PRESETS
    vectors = commands.add_parser(
        "vectors",
        help="write the reference trajectories (golden vectors) of every preset",
        description="Reference LARS trajectories (float64 .npz + manifest.json) for "
                    "every preset on every case.")
    target = vectors.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="directory to write (created if needed)")
    target.add_argument("--verify", help="directory to check against its manifest")
    vectors.add_argument("--presets",
                         help="comma-separated preset names (default: all)")
    vectors.set_defaults(handler=run_vectors)
    crosscheck = commands.add_parser(
        "crosscheck",
        help="check your own LARS against the presets: which LARS is mine?",
        description="Identify a LARS implementation by replaying the reference cases "
                    "through it.",
        epilog="presets: " + ", ".join(PRESETS) + " (docs/variants.md); protocol "
               "and file format: docs/crosscheck.md")
    crosscheck.add_argument("--adapter", required=True, help=ADAPTER_HELP)
    crosscheck.add_argument("--tol", type=float, default=None,
                            help="match tolerance (default: 1e-9)")
    crosscheck.add_argument("--no-explain", action="store_true",
                            help="skip the search for one-option explanations")
    crosscheck.set_defaults(handler=run_crosscheck)


def vectors_main(argv=None) -> int:
    """``lars-ref vectors ARGV``: write (``--out``) or check (``--verify``) the files."""
    from lars_ref.cli import main as lars_ref_main
    return lars_ref_main(["vectors", *(sys.argv[1:] if argv is None else argv)])


def run_vectors(args) -> int:
    """``lars-ref vectors`` with parsed ``args``."""
    from lars_ref.crosscheck.vectors import load_vectors, write_vectors
    try:
        if args.verify:
            count = load_vectors(args.verify).verify_all()
            print(f"{count} reference files in {args.verify}: every content hash matches")
            return 0
        presets = args.presets.split(",") if args.presets else None
        path = write_vectors(args.out, presets=presets)
    except (ReferenceFileError, ValueError) as err:
        raise UserError(str(err)) from None
    print(f"wrote {path} and the .npz files beside it")
    return 0


def resolve_adapter(spec: str):
    """Turn an ``--adapter`` string into an adapter (see :data:`ADAPTER_HELP`)."""
    from lars_ref.crosscheck import adapters
    if spec.startswith("preset:"):
        return adapters.LarsRefAdapter(spec.split(":", 1)[1])
    if spec == "optax":
        return adapters.OptaxAdapter()
    if spec == "pytorch-optimizer":
        return adapters.pytorch_optimizer_adapter()
    if spec.startswith("torch:"):
        module_name, _, class_name = spec.split(":", 1)[1].rpartition(".")
        return adapters.TorchAdapter(getattr(importlib.import_module(module_name), class_name))
    if ":" in spec:
        module_name, attribute = spec.split(":", 1)
        return getattr(importlib.import_module(module_name), attribute)
    raise ValueError(f"unknown adapter {spec!r}; {ADAPTER_HELP}")


def crosscheck_main(argv=None) -> int:
    """``lars-ref crosscheck ARGV``: "which LARS is mine?"; 0 when a preset matches."""
    from lars_ref.cli import main as lars_ref_main
    return lars_ref_main(["crosscheck", *(sys.argv[1:] if argv is None else argv)])


def run_crosscheck(args) -> int:
    """``lars-ref crosscheck`` with parsed ``args``; 0 when a preset matches, else 1."""
    from lars_ref.crosscheck.checker import MATCH_TOLERANCE, check
    from lars_ref.crosscheck.report import format_report
    try:
        adapter = resolve_adapter(args.adapter)
    except (ImportError, AttributeError, ValueError) as err:
        raise UserError(f"cannot load adapter {args.adapter!r}: "
                        f"{type(err).__name__}: {err}") from None
    report = check(adapter, tol=args.tol or MATCH_TOLERANCE, explain=not args.no_explain)
    print(format_report(report), end="")
    if report.error is not None:
        return 2
    return 0 if report.matches else 1


def main(argv=None) -> int:
    """``python -m lars_ref.crosscheck.cli vectors|crosscheck ...``: ``lars-ref``."""
    from lars_ref.cli import main as lars_ref_main
    return lars_ref_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
