"""Communicators: how the processes of a data-parallel run talk to each other.

lars_ref writes no communication layer of its own. One small interface, five
operations, and three implementations on engines that already exist:

================  ===========================================================
``rank, size``    this process's index and the number of processes
``allreduce_mean(buffer)``  every process gets the element-wise mean of all
                  processes' ``buffer`` (in place; one flat array)
``broadcast(value, root)``  every process gets ``root``'s Python value
``barrier()``     wait until every process arrives
``abort(code)``   end every process of the job with exit status ``code``
================  ===========================================================

* :class:`SingleProcess` -- the default: one process, every operation trivial,
  no MPI needed.
* :class:`MPICommunicator` -- MPI through mpi4py (what ChainerMN and Horovod build
  on), for NumPy arrays; CuPy arrays are staged through the host, or passed
  directly when the MPI library is CUDA-aware (``LARS_REF_CUDA_AWARE_MPI=1``).
* :class:`NCCLCommunicator` -- NCCL through ``cupy.cuda.nccl``, GPU to GPU, for
  CuPy arrays; MPI (when there is more than one process) only hands out the
  NCCL id and carries the Python-object broadcasts.

:func:`world` picks one from the environment that ``mpiexec`` or ``srun`` set
up; ``docs/distributed.md`` says how the training loop uses it.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from lars_ref.errors import UserError

COMMUNICATORS = ("auto", "single", "mpi", "nccl")

# Environment variables in which launchers announce the number of processes and
# this process's rank: MPICH/Intel MPI (hydra), Open MPI, MVAPICH, Slurm's srun.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                  "SLURM_STEP_NUM_TASKS")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK",
                  "SLURM_PROCID")
LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK",
                        "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
MPI_INSTALL_HINT = "pip install 'lars-ref[mpi]' (mpi4py and the mpich runtime)"


class DistributedError(UserError):
    """A data-parallel setting or launch is wrong; the message says what to change."""


def _first_int(variables, default: int) -> int:
    for name in variables:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return default


def launched_size() -> int:
    """Number of processes the launcher started (1 when started without one)."""
    return _first_int(SIZE_VARIABLES, 1)


def launched_rank() -> int:
    """This process's rank as the launcher announced it (0 without a launcher)."""
    return _first_int(RANK_VARIABLES, 0)


def local_rank() -> int:
    """This process's index among the processes on its own machine (picks a GPU)."""
    return _first_int(LOCAL_RANK_VARIABLES, 0)


# ----------------------------------------------------------------------------------
# The three communicators
# ----------------------------------------------------------------------------------
class SingleProcess:
    """One process: the mean of one buffer is itself, and nobody to wait for."""

    name = "single"
    rank, size = 0, 1

    def allreduce_mean(self, buffer):
        return buffer

    def broadcast(self, value, root: int = 0):
        return value

    def barrier(self) -> None:
        pass

    def abort(self, code: int) -> None:
        sys.exit(code)


class MPICommunicator:
    """MPI ``COMM_WORLD`` via mpi4py: NumPy buffers, CuPy via the host or CUDA-aware.

    ``allreduce_mean`` is one ``MPI_Allreduce(SUM)`` in place, then a division
    by ``size`` (MPI has no mean operation).
    """

    name = "mpi"

    def __init__(self):
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.cuda_aware = os.environ.get("LARS_REF_CUDA_AWARE_MPI") == "1"

    def allreduce_mean(self, buffer):
        if isinstance(buffer, np.ndarray) or self.cuda_aware:
            if not isinstance(buffer, np.ndarray):
                _cupy().cuda.get_current_stream().synchronize()  # MPI reads the memory
            self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        else:  # a CuPy array and an MPI that reads only host memory
            host = buffer.get()
            self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
            buffer.set(host)
        buffer /= self.size
        return buffer

    def broadcast(self, value, root: int = 0):
        return self.comm.bcast(value, root=root)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


class NCCLCommunicator:
    """NCCL through ``cupy.cuda.nccl`` for CuPy buffers; MPI bootstraps and broadcasts.

    Parameters
    ----------
    bootstrap : MPICommunicator or SingleProcess
        Hands rank 0's NCCL unique id to every process and carries
        :meth:`broadcast`, :meth:`barrier` and :meth:`abort`.
    """

    name = "nccl"

    def __init__(self, bootstrap):
        cupy = _cupy()
        nccl = import_nccl()
        self.bootstrap, self.nccl_module = bootstrap, nccl
        self.rank, self.size = bootstrap.rank, bootstrap.size
        unique_id = nccl.get_unique_id() if self.rank == 0 else None
        unique_id = bootstrap.broadcast(unique_id)
        self.comm = nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self.types = {np.dtype(np.float32): nccl.NCCL_FLOAT32,
                      np.dtype(np.float64): nccl.NCCL_FLOAT64}
        self.cupy = cupy

    def allreduce_mean(self, buffer):
        if isinstance(buffer, np.ndarray):
            raise TypeError("NCCLCommunicator.allreduce_mean: NCCL reduces device "
                            "arrays; got a NumPy array")
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size,
                            self.types[buffer.dtype], self.nccl_module.NCCL_SUM, stream)
        buffer /= self.size
        return buffer

    def broadcast(self, value, root: int = 0):
        return self.bootstrap.broadcast(value, root)

    def barrier(self) -> None:
        self.bootstrap.barrier()

    def abort(self, code: int) -> None:
        self.comm.abort()
        self.bootstrap.abort(code)


# ----------------------------------------------------------------------------------
# Choosing one
# ----------------------------------------------------------------------------------
def import_mpi():
    """``mpi4py.MPI``, or a DistributedError saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise DistributedError(f"this run needs MPI but mpi4py cannot be imported "
                               f"({err}); {MPI_INSTALL_HINT}") from None
    return MPI


def import_nccl():
    """``cupy.cuda.nccl``, or a DistributedError saying how to get NCCL."""
    try:
        from cupy.cuda import nccl
    except ImportError as err:
        nccl, reason = None, str(err)
    else:
        reason = "CuPy was built without it"
    if nccl is None or not getattr(nccl, "available", True):
        raise DistributedError(f"--communicator nccl needs NCCL in CuPy ({reason}); "
                               "pip install nvidia-nccl-cu12, or use --communicator "
                               "mpi")
    return nccl


def _cupy():
    import cupy
    return cupy


def world(kind: str = "auto", backend: str = "numpy"):
    """The communicator of this process, from the launcher's environment.

    Parameters
    ----------
    kind : "auto", "single", "mpi" or "nccl"
        auto: SingleProcess without a launcher (or with one process), else NCCL
        for the cupy backend and MPI for numpy. nccl with one process runs
        NCCL's plumbing on one GPU without MPI.
    backend : the run's array backend ("numpy", "cupy" or "auto"), for ``auto``

    Raises
    ------
    DistributedError
        mpi4py is missing, or ``single`` was asked for under a multi-process launch.
    """
    if kind not in COMMUNICATORS:
        raise DistributedError(f"--communicator must be one of "
                               f"{', '.join(COMMUNICATORS)}, got {kind!r}")
    size = launched_size()
    if backend == "auto":  # as lars_ref.backend.resolve_backend decides
        from lars_ref.backend import gpu_available
        backend = "cupy" if gpu_available() else "numpy"
    if kind == "single" or (kind == "auto" and size == 1):
        if size > 1:
            raise DistributedError(f"--communicator single, but the launcher started "
                                   f"{size} processes; use --communicator auto")
        return SingleProcess()
    if backend == "cupy":
        _cupy().cuda.Device(local_rank() % _cupy().cuda.runtime.getDeviceCount()).use()
    if kind == "nccl" or (kind == "auto" and backend == "cupy"):
        bootstrap = MPICommunicator() if size > 1 else SingleProcess()
        return NCCLCommunicator(bootstrap)
    return MPICommunicator()
