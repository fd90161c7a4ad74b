"""Tools around the library, not part of it: benchmarks, device probes, GPU check."""
import sys


def run_as_command(name: str, argv: list[str] | None = None) -> int:
    """``python -m lars_ref.tools.<module> [flags]`` runs as ``lars-ref <name> [flags]``.

    The tool's flags and its error handling are written once, in its
    ``register`` and in :func:`lars_ref.cli.main`.
    """
    from lars_ref import cli  # here: cli imports the tools to build its tree
    return cli.main([name, *(sys.argv[1:] if argv is None else argv)])
