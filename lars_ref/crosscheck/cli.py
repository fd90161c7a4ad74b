"""Command-line entry points of the cross-check kit.

``lars-ref vectors`` and ``lars-ref crosscheck`` (the ``lars_ref.cli`` command)
call :func:`vectors_main` and :func:`crosscheck_main` with the arguments after the
subcommand; ``python -m lars_ref.crosscheck.cli vectors|crosscheck ...`` works too.

    lars-ref vectors --out DIR                write every preset x case, and the manifest
    lars-ref vectors --verify DIR             check every file's content hash
    lars-ref crosscheck --adapter optax       identify a LARS (see --help for adapters)

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lars_ref.crosscheck.storage import ReferenceFileError

ADAPTER_HELP = ("which optimizer to check: 'preset:NAME' (lars_ref itself as a preset), "
                "'optax', 'pytorch-optimizer', 'torch:MODULE.CLASS' (any PyTorch optimizer "
                "class, LR set per step), or 'MODULE:ATTR' (your adapter object or factory "
                "make(case, init_params) -> step(grads, t, gamma_t))")


def vectors_main(argv=None) -> int:
    """``lars-ref vectors``: write (``--out``) or verify (``--verify``) reference files."""
    parser = argparse.ArgumentParser(prog="lars-ref vectors",
                                     description="Reference LARS trajectories (float64 .npz + "
                                     "manifest.json) for every preset on every case.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", help="directory to write (created if needed)")
    target.add_argument("--verify", help="directory to check against its manifest")
    parser.add_argument("--presets", help="comma-separated preset names (default: all)")
    args = parser.parse_args(argv)
    from lars_ref.crosscheck.vectors import load_vectors, write_vectors
    try:
        if args.verify:
            count = load_vectors(args.verify).verify_all()
            print(f"{count} reference files in {args.verify}: every content hash matches")
            return 0
        presets = args.presets.split(",") if args.presets else None
        path = write_vectors(args.out, presets=presets)
    except (ReferenceFileError, ValueError) as err:
        print(f"lars-ref vectors: error: {err}", file=sys.stderr)
        return 2
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
    """``lars-ref crosscheck``: print the "which LARS is mine?" report; 0 when a preset matches."""
    from lars_ref.optim import PRESETS
    parser = argparse.ArgumentParser(prog="lars-ref crosscheck",
                                     description="Identify a LARS implementation by replaying "
                                     "the reference cases through it.",
                                     epilog="presets: " + ", ".join(PRESETS) +
                                     " (docs/variants.md); protocol and file format: "
                                     "docs/crosscheck.md")
    parser.add_argument("--adapter", required=True, help=ADAPTER_HELP)
    parser.add_argument("--tol", type=float, default=None, help="match tolerance (1e-9)")
    parser.add_argument("--no-explain", action="store_true",
                        help="skip the search for one-option explanations")
    args = parser.parse_args(argv)
    from lars_ref.crosscheck.checker import MATCH_TOLERANCE, check
    from lars_ref.crosscheck.report import format_report
    try:
        adapter = resolve_adapter(args.adapter)
    except (ImportError, AttributeError, ValueError) as err:
        print(f"lars-ref crosscheck: error: cannot load adapter {args.adapter!r}: "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 2
    report = check(adapter, tol=args.tol or MATCH_TOLERANCE, explain=not args.no_explain)
    print(format_report(report), end="")
    if report.error is not None:
        return 2
    return 0 if report.matches else 1


def main(argv=None) -> int:
    """``python -m lars_ref.crosscheck.cli vectors|crosscheck ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"vectors": vectors_main, "crosscheck": crosscheck_main}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m lars_ref.crosscheck.cli {{{'|'.join(commands)}}} ...",
              file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
