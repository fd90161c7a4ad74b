"""Data parallel without MPI: the communicators' contract, the split of the batch,
and P ranks simulated by P threads (a test double of a communicator) against the
single-process step with ``iter_size = P x k``.

The threads sum the ranks' buffers in rank order, like one MPI_Allreduce; the
mpiexec tests (tests/test_distributed_mpi.py) repeat the exactness checks with
real processes.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from lars_ref.config import TrainConfig
from lars_ref.data import BatchIterator
from lars_ref.data_parallel import (DataParallel, ShardedBatches, check_split,
                                    share_bounds)
from lars_ref.distributed import (SIZE_VARIABLES, DistributedError, SingleProcess,
                                  launched_rank, launched_size, world)
from lars_ref.launch import fail_together, find_mpiexec, needs_launcher
from lars_ref.models import build_model
from lars_ref.nn import Dropout
from lars_ref.optim import LARS, SGD
from lars_ref.train_step import evaluate, train_step


class ThreadGroup:
    """P ranks as P threads of one process: the shared slots of one collective."""

    def __init__(self, size):
        self.size, self.slots = size, [None] * size
        self.barrier = threading.Barrier(size)

    def exchange(self, rank, value):
        self.slots[rank] = value
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()
        return values


class ThreadRank:
    """One rank of a ThreadGroup, with the communicator interface."""

    name = "threads"

    def __init__(self, group, rank):
        self.group, self.rank, self.size = group, rank, group.size

    def allreduce_mean(self, buffer):
        values = self.group.exchange(self.rank, buffer.copy())
        total = values[0].copy()
        for value in values[1:]:  # rank order, as one reduction would
            total += value
        buffer[...] = total / self.size
        return buffer

    def broadcast(self, value, root=0):
        return self.group.exchange(self.rank, value)[root]

    def barrier(self):
        self.group.barrier.wait()

    def abort(self, code):
        raise SystemExit(code)


def on_ranks(size, function):
    """Run ``function(comm)`` on ``size`` thread ranks; their results (or raise)."""
    group = ThreadGroup(size)
    results, errors = [None] * size, [None] * size

    def run(rank):
        try:
            results[rank] = function(ThreadRank(group, rank))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors[rank] = err
            group.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    first = next((e for e in errors if e is not None and
                  not isinstance(e, threading.BrokenBarrierError)), None)
    if first is not None:
        raise first
    return results


CONFIG = TrainConfig(model="alexnet_bn", dtype="float64", batch_size=48, micro_batch=8,
                     steps=3)


def tiny_model(dropout=0.5):
    """AlexNet-BN on 8x8 digits: BN after every layer, dropout after fc6 and fc7."""
    return build_model("alexnet_bn", num_classes=10, in_shape=(1, 8, 8), seed=3,
                       dtype=np.float64, dropout=dropout)


def batches_of(seed, steps=3):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((48, 1, 8, 8)), rng.integers(0, 10, 48))
            for _ in range(steps)]


def make_optimizer(name):
    gamma = lambda t: 0.5 / (1 + t)  # noqa: E731 - a decaying LR
    return SGD(gamma) if name == "sgd" else LARS(gamma, eta=0.01)


def state_of(model, optimizer):
    state = dict(model.state_dict())
    for name, module in model.named_modules():  # the dropout generators
        if isinstance(module, Dropout):
            state[f"rng/{name}"] = module.rng.bit_generator.state  # exact
    state.update({f"opt/{k}": v for k, v in flatten(optimizer.state_dict()).items()})
    return state


def flatten(node, prefix=""):
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}/{key}"))
        return out
    return {prefix: np.asarray(node, dtype=float)} if not isinstance(node, str) else {}


@pytest.mark.parametrize("optimizer_name", ["sgd", "lars"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_thread_ranks_equal_one_process_with_all_micro_batches(optimizer_name, size):
    batches = batches_of(seed=size)
    model, optimizer = tiny_model(), make_optimizer(optimizer_name)
    expected_rows = []
    for x, y in batches:  # one process, iter_size = 6 micro-batches of 8
        loss, correct = train_step(model, optimizer, x, y, iter_size=6)
        expected_rows.append((float(loss), int(correct)))
    expected = state_of(model, optimizer)

    def rank_run(comm):
        parallel = DataParallel(CONFIG.replace(procs=size), comm)
        model, optimizer, rows = tiny_model(), make_optimizer(optimizer_name), []
        for x, y in batches:
            start, stop = share_bounds(len(y), comm.rank, size)
            loss, correct = parallel.train_step(model, optimizer, x[start:stop],
                                                y[start:stop])
            rows.append((float(loss), int(correct)))
        return state_of(model, optimizer), rows

    for state, rows in on_ranks(size, rank_run):
        assert state.keys() == expected.keys()
        for name, want in expected.items():
            if name.startswith("rng/"):  # the single-process masks were drawn
                assert state[name] == want, name
            else:
                np.testing.assert_allclose(state[name], want, rtol=1e-12,
                                           atol=1e-15, err_msg=name)
        assert [c for _, c in rows] == [c for _, c in expected_rows]
        np.testing.assert_allclose([l for l, _ in rows],
                                   [l for l, _ in expected_rows], rtol=1e-12)


def test_bn_running_statistics_are_the_sequential_ones_not_a_mean():
    """The merged running statistics differ from a plain mean of the ranks'."""
    (x, y), = batches_of(seed=7, steps=1)
    model = tiny_model()
    train_step(model, SGD(lambda t: 0.1), x, y, iter_size=6)
    expected = dict(model.named_buffers())

    def rank_run(comm):
        model = tiny_model()
        parallel = DataParallel(CONFIG.replace(procs=2), comm)
        start, stop = share_bounds(48, comm.rank, 2)
        parallel.train_step(model, SGD(lambda t: 0.1), x[start:stop], y[start:stop])
        return dict(model.named_buffers())

    merged = on_ranks(2, rank_run)[0]
    for name, want in expected.items():
        np.testing.assert_allclose(merged[name], want, rtol=1e-12, err_msg=name)
    naive = {}  # the plain mean of what each rank's own 3 updates leave
    for start in (0, 24):
        alone = tiny_model()
        train_step(alone, SGD(lambda t: 0.1), x[start:start + 24],
                   y[start:start + 24], iter_size=3)
        for name, value in alone.named_buffers():
            naive[name] = naive.get(name, 0) + value / 2
    assert any(not np.allclose(naive[name], want, rtol=1e-6)
               for name, want in expected.items())


def test_evaluation_split_over_ranks_equals_one_process():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((101, 1, 8, 8)), rng.integers(0, 10, 101)
    expected = evaluate(tiny_model(), x, y)
    results = on_ranks(3, lambda comm: DataParallel(CONFIG.replace(procs=3), comm)
                       .evaluate(tiny_model(), x, y))
    for loss, accuracy in results:
        assert accuracy == expected[1]
        assert loss == pytest.approx(expected[0], rel=1e-12)


def test_ranks_with_different_settings_are_refused_naming_the_setting():
    def rank_run(comm):
        config = CONFIG.replace(procs=2, lr=0.1 if comm.rank == 0 else 0.2)
        with pytest.raises(DistributedError, match=r"rank\(s\) 1 .*different: lr\)"):
            DataParallel(config, comm)
        return True

    assert on_ranks(2, rank_run) == [True, True]  # every rank refuses


def test_the_union_of_the_shares_is_the_global_batch():
    x, y = np.arange(40.0).reshape(40, 1), np.arange(40)
    global_batches = BatchIterator(x, y, 12, seed=5, drop_last=True)
    shards = [ShardedBatches(BatchIterator(x, y, 12, seed=5, drop_last=True), r, 3)
              for r in range(3)]
    for _ in range(5):  # across an epoch boundary (3 batches per epoch)
        want_x, want_y = global_batches.next_batch()
        parts = [shard.next_batch() for shard in shards]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), want_x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), want_y)
        assert [len(p[1]) for p in parts] == [4, 4, 4]
    assert all(s.state_dict() == global_batches.state_dict() for s in shards)


@pytest.mark.parametrize("count,size", [(10, 3), (3, 4), (128, 2), (0, 2)])
def test_share_bounds_cover_every_item_once(count, size):
    bounds = [share_bounds(count, rank, size) for rank in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == count
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_split_must_divide_the_micro_batches():
    assert check_split(CONFIG.replace(procs=3), 3) == 2
    with pytest.raises(DistributedError, match="--micro-batch 12"):
        check_split(CONFIG.replace(micro_batch=16), 4)  # 3 micro-batches over 4
    with pytest.raises(DistributedError, match="--procs 2, but the launcher started 3"):
        check_split(CONFIG.replace(procs=2), 3)


def test_single_process_is_the_default_and_changes_nothing(monkeypatch):
    for name in SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    comm = world("auto")
    assert isinstance(comm, SingleProcess) and (comm.rank, comm.size) == (0, 1)
    buffer = np.arange(5.0)
    assert comm.allreduce_mean(buffer) is buffer
    np.testing.assert_array_equal(buffer, np.arange(5.0))
    assert comm.broadcast({"a": 1}) == {"a": 1}
    assert not needs_launcher(CONFIG)
    assert needs_launcher(CONFIG.replace(procs=2))


def test_launcher_environment_is_read(monkeypatch):
    for name in SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.delenv("PMI_RANK", raising=False)
    assert (launched_size(), launched_rank()) == (4, 3)
    assert not needs_launcher(CONFIG.replace(procs=4))  # already launched
    with pytest.raises(DistributedError, match="--communicator auto"):
        world("single")
    with pytest.raises(DistributedError, match="--communicator must be one of"):
        world("gloo")


def test_mpiexec_is_found_or_named_in_the_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LARS_REF_MPIEXEC", "mpirun --allow-run-as-root")
    assert find_mpiexec() == ["mpirun", "--allow-run-as-root"]
    monkeypatch.delenv("LARS_REF_MPIEXEC")
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DistributedError, match=r"pip install 'lars-ref\[mpi\]'"):
        find_mpiexec()


def test_fail_together_leaves_one_process_runs_alone(monkeypatch):
    for name in SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def handler(args):
        raise DistributedError("a user mistake")

    with pytest.raises(DistributedError):  # cli.main prints it as usual
        fail_together(handler)(None)
    assert fail_together(lambda args: 7)(None) == 7


def test_dropout_of_another_generator_falls_back_to_separate_streams():
    """Without PCG64 the draws cannot be skipped: rank 1 gets a stream of its own."""
    from lars_ref.data_parallel import DropoutSkips, count_draws
    model = tiny_model()
    micro_batch = np.zeros((8, 1, 8, 8))
    counts = count_draws(model, micro_batch)
    assert [words for _, words in counts] == [2 * 8 * 256]  # fc6 and fc7: (8, 256)
    shared = np.random.Generator(np.random.MT19937(0))
    for name, module in model.named_modules():
        if isinstance(module, Dropout):
            module.rng = shared
    assert count_draws(model, micro_batch) is None
    DropoutSkips(model, micro_batch, rank=1, size=2, k=1)
    drop6, drop7 = [m.rng for _, m in model.named_modules() if isinstance(m, Dropout)]
    assert drop6 is drop7 and drop6 is not shared
    assert drop6.random() != np.random.Generator(np.random.MT19937(0)).random()


def test_scaling_table_reports_medians_ratio_and_shares():
    from lars_ref.tools.bench_scaling import table
    run = lambda step, comm=0.0, wait=0.0: {  # noqa: E731 - a worker's JSON line
        "step_s": [step, step, 9.0 * step], "allreduce_s": [comm] * 3,
        "wait_s": [wait] * 3, "buffer_floats": 100}
    text = table({"1x2": [run(2.0), run(1.0)], "2x1": [run(0.5, 0.05, 0.1)] * 2,
                  "1x1": [run(1.0)] * 2})
    assert "1 process x 2 BLAS threads                96.0" in text  # 128/1, 128/2
    assert "2 processes x 1 thread                   256.0" in text
    assert "median 3.00 (per run: 4.00, 2.00)" in text  # 256/64, 256/128
    assert "median 10.00% (one buffer of 100 floats)" in text and ": 20.00%" in text


def test_buffers_other_than_bn_statistics_are_refused():
    from lars_ref.data_parallel import RunningStatsMerge
    model = tiny_model()
    model.buffers["steps_seen"] = np.zeros(1)  # a buffer no merge rule covers
    with pytest.raises(DistributedError, match="BatchNorm layers only"):
        RunningStatsMerge(model, rank=0, size=2, local_iter_size=1)
