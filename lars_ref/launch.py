"""Starting and ending a multi-process run from the command line.

* :func:`relaunch` -- ``lars-ref train --procs P`` starts
  ``mpiexec -n P python -m lars_ref train --config <the resolved settings>``,
  so a user never has to type ``mpiexec``.
* :func:`fail_together` -- under a multi-process launch, a failure on any rank
  (a bad setting, missing data, a bug, Ctrl-C) prints one message and ends every
  rank through ``MPI_Abort`` with a non-zero status, instead of leaving the
  other ranks waiting forever in the next allreduce. Rank 0 alone prints
  otherwise: the other ranks' stdout and stderr are silenced.

Introduced in ``docs/distributed.md``.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from lars_ref.backend import BackendError
from lars_ref.distributed import (MPI_INSTALL_HINT, DistributedError, import_mpi,
                                  launched_rank, launched_size)
from lars_ref.errors import UserError

EXIT_USER_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 1, 130
# A rank other than 0 waits this long before printing its failure, so that when
# every rank fails the same way (the common case) rank 0's abort ends it first.
OTHER_RANKS_WAIT_S = 2.0
# After printing, a rank waits this long before MPI_Abort: the launcher kills
# every process at once, and output still in its pipes can be dropped (no pause:
# 4 of 100 launches on two busy cores lost the message; 0.5 s: none of 400).
ABORT_PAUSE_S = 0.5
MPIEXEC_VARIABLE = "LARS_REF_MPIEXEC"  # e.g. "mpirun --allow-run-as-root" (Open MPI)


def needs_launcher(config) -> bool:
    """True when ``--procs`` asks for processes that no launcher has started yet."""
    return config.procs > 1 and launched_size() == 1


def find_mpiexec() -> list[str]:
    """The launcher command: $LARS_REF_MPIEXEC, the one beside Python, or PATH's."""
    if os.environ.get(MPIEXEC_VARIABLE):
        return shlex.split(os.environ[MPIEXEC_VARIABLE])
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside_python if os.access(beside_python, os.X_OK) else \
        shutil.which("mpiexec")
    if found is None:
        raise DistributedError(f"--procs needs mpiexec, which is not installed; "
                               f"{MPI_INSTALL_HINT}, or set ${MPIEXEC_VARIABLE}")
    return [found]


def relaunch(config, *, resume: bool, overwrite: bool) -> int:
    """Run ``lars-ref train`` in ``config.procs`` processes under mpiexec; its status.

    The settings travel as one JSON file, so every rank reads the same ones. If
    neither ``blas_threads`` nor ``$OMP_NUM_THREADS`` is set, each process gets
    ``cpu_count // procs`` BLAS threads (no oversubscription).
    """
    from lars_ref.data_parallel import check_split
    check_split(config, config.procs)  # refuse an uneven split before starting
    command = find_mpiexec() + ["-n", str(config.procs)]
    env = dict(os.environ)
    if config.blas_threads is None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // config.procs))
    with tempfile.TemporaryDirectory(prefix="lars_ref_launch_") as folder:
        path = os.path.join(folder, "config.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config.to_dict(), handle)
        command += [sys.executable, "-m", "lars_ref", "train", "--config", path]
        command += ["--resume"] * resume + ["--overwrite"] * overwrite
        return subprocess.run(command, env=env, check=False).returncode


def fail_together(handler):
    """Wrap a command handler so that ranks of a multi-process launch end together.

    With one process the handler runs unchanged. With several, ranks other
    than 0 run with stdout and stderr silenced, and any exception on any rank
    prints ``lars-ref: error: [rank r of P] ...`` (a traceback for bugs) and
    calls ``MPI_Abort``, which ends every rank with the status: 2 for a user
    error, 1 for a bug, 130 for Ctrl-C.
    """
    @functools.wraps(handler)
    def run(args):
        size = launched_size()
        if size == 1:
            return handler(args)
        rank = launched_rank()
        try:
            with _silenced(rank != 0):
                return handler(args)
        except BaseException as err:  # noqa: BLE001 - every failure must abort
            _report_and_abort(err, rank, size)

    return run


@contextlib.contextmanager
def _silenced(silence: bool):
    if not silence:
        yield
        return
    with open(os.devnull, "w", encoding="utf-8") as devnull, \
            contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        yield


def _report_and_abort(err: BaseException, rank: int, size: int) -> None:
    if isinstance(err, SystemExit) and not err.code:
        raise err
    if rank != 0:
        time.sleep(OTHER_RANKS_WAIT_S)
    out = sys.__stderr__
    where = f"[rank {rank} of {size}]"
    if isinstance(err, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
        print(f"lars-ref: interrupted {where}; continue with --resume", file=out)
    elif isinstance(err, SystemExit):
        code = err.code if isinstance(err.code, int) else EXIT_BUG
        print(f"lars-ref: {where} exited with status {code}", file=out)
    elif isinstance(err, (UserError, BackendError)):
        code = EXIT_USER_ERROR
        print(f"lars-ref: error: {where} {' '.join(str(err).split())}", file=out)
    else:
        code = EXIT_BUG
        traceback.print_exception(err, file=out)
        print(f"lars-ref: error: {where} {type(err).__name__}: {err}; every rank is "
              "stopped", file=out)
    out.flush()
    time.sleep(ABORT_PAUSE_S)
    try:
        import_mpi().COMM_WORLD.Abort(code)
    except DistributedError:  # no MPI to abort with: every rank fails alike
        pass
    os._exit(code)
