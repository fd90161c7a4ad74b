"""The GPU paths of the communicators: NCCL (cupy.cuda.nccl) and MPI host staging.

World size 1 on one GPU is enough for the plumbing: NCCL's allreduce of one
rank must return the buffer unchanged (a mean of one), on the device, and a
data-parallel step through NCCL must equal the plain step. Marked ``gpu`` and
skipped without CuPy and a GPU (the MPI case also without mpi4py).
"""
from __future__ import annotations

import numpy as np
import pytest

from lars_ref.backend import gpu_available
from lars_ref.config import TrainConfig
from lars_ref.data_parallel import DataParallel
from lars_ref.distributed import MPICommunicator, NCCLCommunicator, world
from lars_ref.models import build_model
from lars_ref.optim import LARS
from lars_ref.train_step import train_step

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not gpu_available(), reason="CuPy with a GPU needed")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nccl_allreduce_of_one_rank_is_the_buffer(dtype):
    import cupy
    comm = world("nccl", backend="cupy")
    assert isinstance(comm, NCCLCommunicator) and (comm.rank, comm.size) == (0, 1)
    values = np.linspace(-3, 5, 1001).astype(dtype)
    buffer = cupy.asarray(values)
    assert comm.allreduce_mean(buffer) is buffer
    np.testing.assert_array_equal(buffer.get(), values)
    assert comm.broadcast("settings") == "settings"
    comm.barrier()


def test_mpi_stages_cupy_buffers_through_the_host():
    pytest.importorskip("mpi4py", reason="needs mpi4py: pip install -e '.[mpi]'")
    import cupy
    comm = MPICommunicator()  # a singleton MPI world without mpiexec
    values = np.arange(10.0)
    buffer = cupy.asarray(values)
    result = comm.allreduce_mean(buffer)
    assert isinstance(result, cupy.ndarray)
    np.testing.assert_array_equal(result.get(), values)


def test_a_step_through_nccl_equals_the_plain_step():
    import cupy
    config = TrainConfig(model="alexnet_bn", dtype="float64", batch_size=32,
                         micro_batch=8, steps=1, dropout=0.0)
    rng = np.random.default_rng(0)
    x = cupy.asarray(rng.standard_normal((32, 1, 8, 8)))
    y = cupy.asarray(rng.integers(0, 10, 32))
    models = [build_model("alexnet_bn", num_classes=10, in_shape=(1, 8, 8),
                          dtype=np.float64, dropout=0.0, xp=cupy) for _ in range(2)]
    optimizers = [LARS(lambda t: 0.1), LARS(lambda t: 0.1)]
    train_step(models[0], optimizers[0], x, y, iter_size=4)
    parallel = DataParallel(config, world("nccl", backend="cupy"))
    parallel.train_step(models[1], optimizers[1], x, y)
    for (name, want), (_, got) in zip(models[0].state_dict().items(),
                                      models[1].state_dict().items()):
        np.testing.assert_allclose(got.get(), want.get(), rtol=1e-12, err_msg=name)
