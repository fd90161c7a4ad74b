"""The ``lars-ref`` command (also ``python -m lars_ref``): one argparse tree.

Each command lives in its own module, which adds its subparser to the tree with
``register(commands)`` (``commands`` is argparse's subparsers object) and sets
``handler=FUNCTION`` with ``FUNCTION(args) -> exit status``. :data:`COMMAND_MODULES`
lists those modules once. Every mistake in what the user typed or pointed at
(an unknown model, a bad flag, a batch larger than the data, a corrupt
checkpoint, a folder that cannot be written, ...) ends with one line
``lars-ref: error: ...`` and exit status 2, whichever command it came from; a
diverged run exits with 3, Ctrl-C with 130; anything else is a bug and keeps its
traceback.

Introduced in ``README.md``.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

from lars_ref.backend import BackendError
from lars_ref.errors import UserError

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
# File-system refusals that are the user's to fix (space, quota, permissions).
USER_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)

# The modules that add a command to the tree (each defines register(commands)).
COMMAND_MODULES = (
    "lars_ref.demo",
    "lars_ref.train_command",
    "lars_ref.data.download",
    "lars_ref.tools.bench",
    "lars_ref.tools.bench_optim",
    "lars_ref.tools.bench_layers",
    "lars_ref.tools.bench_scaling",   # bench-scaling (data parallel, MPI)
    "lars_ref.tools.gpu_check",
    "lars_ref.crosscheck.cli",        # vectors, crosscheck
    "lars_ref.reproduce.commands",    # reproduce, sweep
    "lars_ref.exercises",             # exercises make, exercises grade
)

DESCRIPTION = """\
lars-ref: a readable NumPy/CuPy reference of LARS (layer-wise adaptive rate
scaling; You, Gitman, Ginsburg 2017, arXiv:1708.03888).

Start here:
  lars-ref demo                  # a few minutes on a laptop CPU: small vs large
                                 # batch, SGD + warm-up vs LARS, on 8x8 digits
  lars-ref demo --quick          # a few seconds, to see that it works
  lars-ref train --model alexnet_bn --dataset digits --optimizer lars \\
      --batch-size 512 --lr 20 --warmup-epochs 3 --epochs 30 --out runs/lars512
  lars-ref <command> --help      # the flags of one command
"""

EPILOG = """\
exit status: 0 success, 2 a usage or input error (one line on stderr),
3 training diverged (loss became NaN/Inf; the last good checkpoint is kept),
130 interrupted (Ctrl-C or SIGTERM; a train run wrote a checkpoint first).
"""


class CommandLineError(UserError):
    """A flag argparse rejected (unknown, missing, of the wrong type)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every flag's help ends with its default."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if "default" in help_text or action.default in (None, False,
                                                         argparse.SUPPRESS):
            return help_text
        return f"{help_text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors take the one error path of :func:`main`, and
    whose help shows each flag's default (every command of the tree is one)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise CommandLineError(f"{message} (see '{self.prog} --help')")


def main(argv: list[str] | None = None) -> int:
    """Run ``lars-ref`` with ``argv`` (default: ``sys.argv[1:]``); return exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args) or 0)
    except (UserError, BackendError) as err:
        return fail(err)
    except OSError as err:
        if err.errno not in USER_ERRNOS:
            raise
        return fail(f"cannot write {err.filename or 'a file'} ({err.strerror}); free "
                    "some space or pick a folder you can write to (--out)")
    except KeyboardInterrupt:
        print("lars-ref: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def fail(err: BaseException | str) -> int:
    """Print one line ``lars-ref: error: <message>`` on stderr; return 2."""
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"lars-ref: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def build_parser(modules=COMMAND_MODULES) -> argparse.ArgumentParser:
    """The whole command tree: each module of ``modules`` registers its commands."""
    parser = Parser(prog="lars-ref", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version",
                        version=f"lars-ref {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="<command>",
                                     required=True)
    for module_name in modules:
        importlib.import_module(module_name).register(commands)
    return parser


def _version() -> str:
    from lars_ref import __version__
    return __version__
