"""Benchmark: does a second process beat a second BLAS thread? (data-parallel scaling)

One ResNet-20 training step at global batch 128 (3x32x32, float32; two
micro-batches of 64, momentum SGD), run two ways on the same cores:

* ``1 x 2``: one process with 2 BLAS threads, both micro-batches in turn;
* ``2 x 1``: two MPI processes with 1 BLAS thread each, one micro-batch each,
  then one allreduce of the gradient buffer (:mod:`lars_ref.data_parallel`);
* ``1 x 1``: one process, one thread (the baseline of both).

All compute the same step (same micro-batches, same BN statistics). Each
round starts each case as fresh processes, in the order A B C C B A, and times
``--repeats`` steps after ``--warmup`` untimed ones; the table gives the median
images/s of each, the ratio 2x1 / 1x2 per run pair (and its median), the
machine's load average (the figures are only as quiet as the machine), and the
allreduce's share of the 2-process step (rank 0's wall time inside
``allreduce_mean`` over its step time). A barrier before the allreduce (in the
benchmark only) separates the communication from rank 0's wait for a slower
rank 1, which is reported on its own.

    lars-ref bench-scaling                    # a few minutes on 2 busy cores
    lars-ref bench-scaling --rounds 1 --repeats 2 --warmup 1   # a smoke test
    python -m lars_ref.tools.bench_scaling

Needs mpi4py and mpiexec (``pip install -e '.[mpi]'``). Results:
``docs/distributed.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from lars_ref.tools import run_as_command

GLOBAL_BATCH, MICRO_BATCH, IMAGE = 128, 64, (3, 32, 32)
CASES = {"1x2": (1, 2), "2x1": (2, 1), "1x1": (1, 1)}  # (processes, BLAS threads)
LABELS = {"1x2": "1 process x 2 BLAS threads", "2x1": "2 processes x 1 thread",
          "1x1": "1 process x 1 thread"}


def add_flags(parser) -> None:
    add = parser.add_argument
    add("--rounds", type=int, default=1,
        help="rounds of A B C C B A fresh-process runs (default: %(default)s)")
    add("--repeats", type=int, default=3,
        help="timed steps per run (default: %(default)s)")
    add("--warmup", type=int, default=1,
        help="untimed steps at the start of every run (default: %(default)s)")
    add("--worker", action="store_true", help=argparse.SUPPRESS)


def register(commands) -> None:
    """Add ``lars-ref bench-scaling`` to the command tree (see lars_ref/cli.py)."""
    parser = commands.add_parser(
        "bench-scaling", help="images/s of 1 process x 2 threads vs 2 processes x 1",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser)
    parser.set_defaults(handler=run)


def main(argv=None) -> int:
    """``python -m`` entry: the same as ``lars-ref bench-scaling [flags]``."""
    return run_as_command("bench-scaling", argv)


def run(args) -> int:
    """Worker inside a run, or the driver that starts the runs and prints the table."""
    if args.worker:
        return worker(args)
    from lars_ref.launch import find_mpiexec
    mpiexec = find_mpiexec()
    print(f"ResNet-20 step, global batch {GLOBAL_BATCH} = 2 micro-batches of "
          f"{MICRO_BATCH}, float32; {os.cpu_count()} cores; {args.rounds} round(s) "
          f"of A B C C B A, {args.repeats} timed steps after {args.warmup} untimed")
    results = {case: [] for case in CASES}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for case in list(CASES) + list(CASES)[::-1]:
            results[case].append(start_run(case, args, mpiexec))
            load.append(os.getloadavg()[0])
    print(table(results))
    print(f"load average (1 min) during the runs: {min(load):.1f} to {max(load):.1f} "
          f"on {os.cpu_count()} cores")
    return 0


def start_run(case: str, args, mpiexec) -> dict:
    """One fresh run of ``case``; the worker's JSON line (rank 0)."""
    procs, threads = CASES[case]
    command = [sys.executable, "-m", "lars_ref.tools.bench_scaling", "--worker",
               "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if procs > 1:
        command = mpiexec + ["-n", str(procs)] + command
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"bench-scaling worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    """Median images/s per case, the per-round ratio, the allreduce share."""
    speed = {case: [GLOBAL_BATCH / statistics.median(r["step_s"]) for r in runs]
             for case, runs in results.items()}
    # runs i of the two cases were started next to each other (A B C C B A)
    ratios = [two / one for one, two in zip(speed["1x2"], speed["2x1"])]
    share, wait = ([statistics.median(np.array(r[key]) / np.array(r["step_s"]))
                    for r in results["2x1"]] for key in ("allreduce_s", "wait_s"))
    lines = [f"{'case':<28}{'images/s (median)':>18}{'runs':>6}"]
    for case, label in LABELS.items():
        lines.append(f"{label:<28}{statistics.median(speed[case]):>18.1f}"
                     f"{len(speed[case]):>6}")
    lines.append(f"2x1 / 1x2 images/s: median {statistics.median(ratios):.2f} "
                 f"(per run: {', '.join(f'{r:.2f}' for r in ratios)})")
    lines.append(f"allreduce share of the 2-process step: median "
                 f"{100 * statistics.median(share):.2f}% (one buffer of "
                 f"{results['2x1'][0]['buffer_floats']} floats); rank 0 waiting "
                 f"for rank 1 before it: {100 * statistics.median(wait):.2f}%")
    return "\n".join(lines)


class TimedCommunicator:
    """Wrap a communicator; time the wait for the slowest rank and the allreduce.

    A barrier first absorbs the wait for the other rank (load imbalance on a
    shared machine), so that ``seconds`` is the communication alone.
    """

    def __init__(self, comm):
        self.comm, self.rank, self.size, self.name = comm, comm.rank, comm.size, \
            comm.name
        self.seconds = self.wait_seconds = 0.0

    def allreduce_mean(self, buffer):
        started = time.perf_counter()
        self.comm.barrier()
        arrived = time.perf_counter()
        result = self.comm.allreduce_mean(buffer)
        self.wait_seconds += arrived - started
        self.seconds += time.perf_counter() - arrived
        return result

    def __getattr__(self, name):
        return getattr(self.comm, name)


def worker(args) -> int:
    """Time ``warmup + repeats`` steps of this process's share; rank 0 prints JSON."""
    from lars_ref.config import TrainConfig
    from lars_ref.data_parallel import DataParallel
    from lars_ref.distributed import world
    from lars_ref.models import build_model
    from lars_ref.optim import SGD

    comm = world("auto")  # one process: the plain single-process step
    comm = TimedCommunicator(comm) if comm.size > 1 else comm
    config = TrainConfig(batch_size=GLOBAL_BATCH, micro_batch=MICRO_BATCH,
                         procs=comm.size, model="resnet", steps=1)
    parallel = DataParallel(config, comm)
    rng = np.random.default_rng(0)
    share = GLOBAL_BATCH // comm.size
    x = rng.standard_normal((share,) + IMAGE).astype(np.float32)
    y = rng.integers(0, 10, size=share)
    model = build_model("resnet", num_classes=10, in_shape=IMAGE, seed=0)
    optimizer = SGD(lambda t: 0.1, momentum=0.9, weight_decay=5e-4)
    step_s, allreduce_s, wait_s = [], [], []
    for step in range(args.warmup + args.repeats):
        comm.seconds = comm.wait_seconds = 0.0  # stay 0 on one process
        started = time.perf_counter()
        parallel.train_step(model, optimizer, x, y)
        if step >= args.warmup:
            step_s.append(time.perf_counter() - started)
            allreduce_s.append(comm.seconds)
            wait_s.append(comm.wait_seconds)
    if comm.rank == 0:
        print(json.dumps({"procs": comm.size, "step_s": step_s,
                          "allreduce_s": allreduce_s, "wait_s": wait_s,
                          "buffer_floats": 0 if parallel.buffer is None
                          else int(parallel.buffer.size)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
