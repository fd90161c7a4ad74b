"""Data-parallel training: P processes build one global batch, as one process would.

The global batch of one optimizer step is ``B = P x k x b``: P processes, k
micro-batches per process, b images per micro-batch (``--batch-size B
--micro-batch b``; ``iter_size = B / b = P x k``). One step on rank p::

    take images [p*B/P, (p+1)*B/P) of the global batch   # every rank draws the same
                                                       # seeded permutation
    zero the BN running statistics (remember them)
    k micro-batches: forward, backward, grads += ...   # BN: each micro-batch's own
    grads /= k                                         # mean and variance, as Caffe
    pack grads, BN contributions, loss, correct into ONE flat buffer
    allreduce_mean(buffer)                             # the one collective of a step
    optimizer.step(params, averaged grads)             # LARS norms see the global
                                                       # gradient (Algorithm 1 L4)

Micro-batch ``i`` of rank ``p`` is micro-batch ``j = p*k + i`` of the
single-process loop with ``iter_size = P x k``, and the mean of the P ranks'
gradient means is that loop's mean over its ``P x k`` micro-batches.

BN running statistics. The single-process loop updates each running statistic
once per micro-batch, ``r <- m r + (1 - m) s_j``, so after the ``K = P k``
micro-batches of a step (by induction)::

    r_K = m^K r_0 + sum_p m^((P-1-p) k) c_p,   c_p = sum_i (1 - m) m^(k-1-i) s_(pk+i)

and ``c_p`` is exactly what rank p's own k updates leave when they start from
zero. So each rank zeroes its running statistics before its micro-batches,
sends ``P m^((P-1-p) k) c_p`` in the same buffer as the gradients, and sets
``r = m^K r_0 + mean``: every rank ends with the running statistics of the
single-process run (up to rounding).

Introduced in ``docs/distributed.md``.
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from lars_ref.backend import get_xp, to_numpy
from lars_ref.distributed import DistributedError, SingleProcess
from lars_ref.metrics import STREAMS, MetricsWriter
from lars_ref.nn import BatchNorm, Dropout
from lars_ref.train_step import DivergenceError, evaluate, forward_backward, train_step


class DataParallel:
    """The data-parallel hooks of one training run.

    Parameters
    ----------
    config : TrainConfig
        Its ``batch_size``, ``iter_size`` and ``procs`` are checked against the
        communicator's size.
    comm : communicator (see :mod:`lars_ref.distributed`), default SingleProcess
        With SingleProcess every hook is the plain single-process code path; any
        other communicator (even of one process) packs, reduces and unpacks.
    """

    def __init__(self, config, comm=None):
        self.comm = SingleProcess() if comm is None else comm
        self.rank, self.size = self.comm.rank, self.comm.size
        self.is_writer = self.rank == 0  # rank 0 alone prints and writes files
        self.alone = isinstance(self.comm, SingleProcess)  # the plain code path
        self.local_iter_size = check_split(config, self.size)
        self.buffer = None          # the flat allreduce buffer, allocated once
        self.running_stats = None   # RunningStatsMerge, built at the first step
        self.dropout = None         # DropoutSkips, built at the first step
        self.check_same_settings(config.to_dict())

    # ------------------------------------------------------------------ data
    def shard(self, batches):
        """Wrap the global batch iterator so that it yields this rank's share."""
        return batches if self.alone else ShardedBatches(batches, self.rank,
                                                         self.size)

    def metrics_writer(self, out_dir: str) -> MetricsWriter:
        """Rank 0 writes the metric files; the others keep the rows in memory."""
        return MetricsWriter(out_dir) if self.is_writer else InMemoryMetrics()

    # ------------------------------------------------------------------ step
    def train_step(self, model, optimizer, x, y):
        """One optimizer step on this rank's share ``x, y`` of the global batch.

        Returns the device scalars ``(loss, correct)`` of the whole global batch
        (the loss averaged over all ``P x k`` micro-batches, the correct
        predictions summed over all ranks).
        """
        if self.alone:
            return train_step(model, optimizer, x, y, self.local_iter_size)
        k = self.local_iter_size
        if self.running_stats is None:
            self.running_stats = RunningStatsMerge(model, self.rank, self.size, k)
            self.dropout = DropoutSkips(model, x[:len(x) // k], self.rank,
                                        self.size, k)
        self.running_stats.start()
        self.dropout.skip(self.dropout.before)  # the masks of the ranks before
        try:
            loss, correct = forward_backward(model, x, y, k)
        except DivergenceError:  # NaN logits here: the NaN loss in the buffer
            loss = correct = None  # tells every rank, at the next metrics gather
        self.dropout.skip(self.dropout.after)  # and of the ranks after this one
        buffer = self._pack(model, loss, correct)
        self.comm.allreduce_mean(buffer)           # the one collective of a step
        loss, correct = self._unpack(model, buffer)
        optimizer.step(dict(model.named_parameters()), dict(model.named_grads()))
        return loss, correct

    def _pack(self, model, loss, correct):
        grads = [g for _, g in model.named_grads()]
        parts = grads + self.running_stats.contributions()
        if self.buffer is None:
            xp = get_xp(grads[0])
            size = sum(part.size for part in parts) + 2
            self.buffer = xp.empty(size, dtype=grads[0].dtype)
        buffer, offset = self.buffer, 0
        for part in parts:
            buffer[offset:offset + part.size] = part.ravel()
            offset += part.size
        if loss is None:
            buffer[...] = math.nan
        else:
            buffer[-2], buffer[-1] = loss, correct
        return buffer

    def _unpack(self, model, buffer):
        offset = 0
        for _, grad in model.named_grads():
            grad[...] = buffer[offset:offset + grad.size].reshape(grad.shape)
            offset += grad.size
        self.running_stats.finish(buffer[offset:-2])
        xp = get_xp(buffer)
        loss = buffer[-2].copy()  # the buffer is reused by the next step
        correct = xp.rint(buffer[-1] * self.size)  # a mean of counts, times P
        return loss, correct

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model, x, y) -> tuple[float, float]:
        """Test loss and accuracy; each rank evaluates a contiguous share, summed."""
        if self.alone:
            return evaluate(model, x, y)
        start, stop = share_bounds(len(x), self.rank, self.size)
        count = stop - start
        sums = [0.0, 0.0]
        if count:
            loss, accuracy = evaluate(model, x[start:stop], y[start:stop])
            sums = [loss * count, round(accuracy * count)]
        xp = get_xp(next(iter(dict(model.named_parameters()).values())))
        totals = to_numpy(self.comm.allreduce_mean(xp.asarray(sums, dtype=xp.float64)))
        totals = totals * self.size
        return float(totals[0]) / len(x), float(round(totals[1])) / len(x)

    # ------------------------------------------------------------------ settings
    def check_same_settings(self, settings: dict) -> None:
        """Refuse to start when the ranks were started with different settings.

        Rank 0 broadcasts its settings and their hash; every rank flags its own
        rank and each setting where it differs, and one allreduce tells all.
        """
        if self.size == 1:
            return
        text = json.dumps(settings, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        reference_digest, reference = self.comm.broadcast((digest, settings))
        names = sorted(reference)
        flags = np.zeros(self.size + len(names))
        if digest != reference_digest:
            flags[self.rank] = 1
            for index, name in enumerate(names):
                flags[self.size + index] = settings.get(name) != reference[name]
        flags = to_numpy(self.comm.allreduce_mean(self._flag_array(flags)))
        if flags.any():
            ranks = [str(r) for r in range(self.size) if flags[r]]
            keys = [name for i, name in enumerate(names) if flags[self.size + i]]
            raise DistributedError(
                f"rank(s) {', '.join(ranks)} were started with other settings than "
                f"rank 0 (settings hash {reference_digest[:12]}; different: "
                f"{', '.join(keys) or 'unknown keys'}); start every process with the "
                "same command line and --config file")

    def _flag_array(self, flags):
        if getattr(self.comm, "name", "") == "nccl":  # NCCL reduces device arrays
            import cupy
            return cupy.asarray(flags)
        return flags


def check_split(config, size: int) -> int:
    """k, the micro-batches per process; refuse splits that do not divide evenly."""
    if config.procs not in (1, size):
        raise DistributedError(
            f"--procs {config.procs}, but the launcher started {size} process(es); "
            "drop --procs when starting with mpiexec or srun, or give the same count")
    iter_size = config.iter_size
    if iter_size % size:
        b = config.micro_batch or config.batch_size
        raise DistributedError(
            f"--batch-size {config.batch_size} in micro-batches of {b} is "
            f"{iter_size} micro-batch(es), which do not split over {size} processes; "
            f"choose --micro-batch so that batch_size / micro_batch is a multiple of "
            f"{size}, e.g. --micro-batch {config.batch_size // size}")
    return iter_size // size


def share_bounds(count: int, rank: int, size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank's contiguous share of ``count`` items (near-equal)."""
    return count * rank // size, count * (rank + 1) // size


class ShardedBatches:
    """This rank's contiguous share of each global batch of a BatchIterator.

    Every rank draws the same global batch (same seeded permutation, same
    augmentation draws, so the union of the shares is exactly the
    single-process batch) and keeps rows ``[p*B/P, (p+1)*B/P)``. Position,
    epoch and checkpoint state are those of the global iterator.
    """

    def __init__(self, batches, rank: int, size: int):
        self.batches, self.rank, self.size = batches, rank, size

    def next_batch(self):
        x, y = self.batches.next_batch()
        start, stop = share_bounds(len(y), self.rank, self.size)
        return x[start:stop], y[start:stop]

    def __getattr__(self, name):  # epoch, position, state_dict, load_state_dict...
        return getattr(self.batches, name)


class RunningStatsMerge:
    """Combine the ranks' BN running statistics into the single-process ones.

    See the module docstring: each rank starts its micro-batches from zero,
    contributes ``P m^((P-1-p) k) c_p``, and after the mean sets
    ``r = m^(P k) r_0 + mean``.
    """

    def __init__(self, model, rank: int, size: int, local_iter_size: int):
        k = local_iter_size
        self.layers = [m for _, m in model.named_modules() if isinstance(m, BatchNorm)]
        others = [name for name, m in model.named_modules()
                  if m.buffers and not isinstance(m, BatchNorm)]
        if others:  # a buffer this merge does not know would drift between ranks
            raise DistributedError(f"data parallel merges the running statistics of "
                                   f"BatchNorm layers only; {', '.join(others)} hold "
                                   "other buffers; train this model in one process")
        self.keep = [m.momentum ** (size * k) for m in self.layers]       # m^K
        self.weight = [size * m.momentum ** ((size - 1 - rank) * k)
                       for m in self.layers]                             # P m^(..)
        self.initial = []

    def _running(self, layer):
        return [layer.buffers["running_mean"], layer.buffers["running_var"]]

    def start(self) -> None:
        """Remember r_0 and zero the running statistics before the micro-batches."""
        self.initial = []
        for layer in self.layers:
            for running in self._running(layer):
                self.initial.append(running.copy())
                running[...] = 0

    def contributions(self) -> list:
        return [weight * running for layer, weight in zip(self.layers, self.weight)
                for running in self._running(layer)]

    def finish(self, averaged) -> None:
        """``r = m^K r_0 + (mean of the contributions)``, in place."""
        offset, index = 0, 0
        for layer, keep in zip(self.layers, self.keep):
            for running in self._running(layer):
                merged = averaged[offset:offset + running.size]
                running[...] = keep * self.initial[index] + merged
                offset, index = offset + running.size, index + 1


class DropoutSkips:
    """Rank p draws exactly the dropout masks of its micro-batches in one process.

    The single-process loop draws the masks of micro-batch ``j`` after those of
    micro-batches ``0 .. j-1`` from each dropout generator: ``u`` 64-bit words
    per micro-batch (one per float64 of ``Generator.random``). Rank p skips the
    ``p k u`` words of the ranks before it (``PCG64.advance``), draws its own
    ``k u``, and skips the ``(P-1-p) k u`` after it, so every rank's generators
    end each step where the single-process ones do. ``u`` is counted once, by
    a forward pass of one micro-batch on copies of the generators, and the
    count is checked against PCG64's own state. Without that (another bit
    generator, another draw), rank p > 0 falls back to its generators jumped p
    times: masks that no rank shares, but not the single-process ones.
    """

    def __init__(self, model, micro_batch, rank: int, size: int, k: int):
        self.before, self.after = rank * k, (size - 1 - rank) * k
        self.counts = count_draws(model, micro_batch)  # [(generator, u)] or None
        if self.counts is None:
            separate_dropout_streams(model, rank)
            self.counts = []

    def skip(self, micro_batches: int) -> None:
        for generator, words in self.counts:
            if micro_batches * words:
                generator.bit_generator.advance(micro_batches * words)


class CountingGenerator:
    """Stands in for a dropout generator: draws from a copy and counts the floats."""

    def __init__(self, generator):
        self.copy = np.random.Generator(type(generator.bit_generator)())
        self.copy.bit_generator.state = generator.bit_generator.state
        self.start = generator.bit_generator.state
        self.floats = 0

    def random(self, size=None):
        self.floats += int(np.prod(size)) if size is not None else 1
        return self.copy.random(size)

    def advance_matches(self) -> bool:
        """True when ``floats`` PCG64 words from the start give the copy's state."""
        check = np.random.PCG64()
        check.state = self.start
        check.advance(self.floats)
        return check.state == self.copy.bit_generator.state


def count_draws(model, micro_batch):
    """``[(generator, words per micro-batch)]`` of the model's dropout generators.

    One training forward of ``micro_batch`` on counting copies of the
    generators; BN running statistics are put back. None when the count cannot
    be trusted (a bit generator other than PCG64, or draws it cannot see).
    """
    dropouts = [m for _, m in model.named_modules() if isinstance(m, Dropout)]
    if not dropouts:
        return []
    if not all(isinstance(m.rng.bit_generator, np.random.PCG64) for m in dropouts):
        return None
    originals = [m.rng for m in dropouts]
    counters = {id(g): CountingGenerator(g) for g in originals}
    buffers = [(b, b.copy()) for _, b in model.named_buffers()]
    try:
        for module in dropouts:
            module.rng = counters[id(module.rng)]
        model.forward(micro_batch, train=True)
    except (AttributeError, TypeError):  # the dropout draws some other way
        return None
    finally:
        for module, generator in zip(dropouts, originals):
            module.rng = generator
        for buffer, saved in buffers:
            buffer[...] = saved
    if not all(c.advance_matches() for c in counters.values()):
        return None
    generators = {id(g): g for g in originals}
    return [(generators[key], counter.floats) for key, counter in counters.items()]


def separate_dropout_streams(model, rank: int) -> None:
    """Fallback of DropoutSkips: rank p > 0 draws from its generators jumped p times."""
    if rank == 0:
        return
    jumped = {}
    for _, module in model.named_modules():
        if isinstance(module, Dropout):
            key = id(module.rng)
            if key not in jumped:
                jumped[key] = np.random.Generator(module.rng.bit_generator.jumped(rank))
            module.rng = jumped[key]


class InMemoryMetrics(MetricsWriter):
    """The metric rows of a rank other than 0: kept for the epoch means, not written."""

    def __init__(self):
        self.out_dir = None
        self.records = {name: [] for name in STREAMS}

    def _append(self, stream, rows, columns, header):
        pass

    def _rewrite_all(self) -> None:
        pass

    def log_timing(self, row: dict) -> None:
        pass
