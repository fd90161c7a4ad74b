"""Where a ResNet-20 training step's time goes: wall time per kind of layer.

Times our ResNet-20 step (the one of ``lars-ref bench``: batch 128 of 3x32x32,
forward, softmax cross-entropy, backward, momentum SGD) with a timer around every
layer's forward and backward, and prints the milliseconds per step that each
kind of layer takes (``Conv2d forward``, ``BatchNorm backward``, ...), plus the
rest of the step (loss, residual additions, the update), for each thread count.
On a quiet machine the 1-thread wall time is the CPU time that ``lars-ref bench``
reports. As that bench, it times in a child process without the OpenBLAS pins
(``--keep-openblas-env`` keeps them).

    lars-ref bench-layers                 # about 30 s
    lars-ref bench-layers --quick         # small sizes, seconds

Results: ``docs/performance.md`` ("Where the time goes").
"""
from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict

import numpy as np

from lars_ref.tools import bench, run_as_command
from lars_ref.tools.host_memory import keep_freed_host_memory

SIZES = {"full": dict(batch=128, size=32, warmup=2, steps=10),
         "quick": dict(batch=8, size=16, warmup=1, steps=2)}


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes, few steps")
    parser.add_argument("--threads", type=bench.at_least(1), nargs="+", default=[1, 2],
                        help="thread counts to time (default: 1 2)")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="time in this process with the OpenBLAS pins as set")


def register(commands) -> None:
    """Add ``bench-layers`` to the ``lars-ref`` command tree."""
    parser = commands.add_parser("bench-layers", help="time a ResNet-20 step per kind "
                                 "of layer", description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv=None) -> int:
    """``python -m`` entry: the same as ``lars-ref bench-layers [flags]``."""
    return run_as_command("bench-layers", argv)


def run(args) -> int:
    """Print one table of milliseconds per step and kind of layer; return 0."""
    pinned = [name for name in bench.OPENBLAS_PINS if name in os.environ]
    if pinned and not args.keep_openblas_env:
        argv = [*(["--quick"] if args.quick else []), "--threads",
                *map(str, args.threads), "--keep-openblas-env"]
        return bench.run_without_openblas_pins("lars_ref.tools.bench_layers", argv,
                                               pinned)
    keep_freed_host_memory()
    sizes = SIZES["quick" if args.quick else "full"]
    columns = {threads: time_layers(threads, **sizes) for threads in args.threads}
    print(format_layer_table(columns, sizes))
    return 0


def time_layers(threads, *, batch, size, warmup, steps) -> dict:
    """{kind of layer: ms per step} for our step on ``threads`` threads, with
    ``"step"`` (the median step) and ``"rest"`` (the step minus all layers)."""
    bench.set_threads(None, threads)
    step, model, *_ = bench.our_resnet_step(np, batch, size)
    seconds = defaultdict(float)
    for _, module in model.named_modules():
        if not module.children():
            _time_calls(module, type(module).__name__, seconds)
    for _ in range(warmup):
        step()
    seconds.clear()
    step_times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - start)
    per_step = {kind: 1e3 * total / steps for kind, total in seconds.items()}
    per_step["rest"] = 1e3 * sum(step_times) / steps - sum(per_step.values())
    per_step["step"] = 1e3 * statistics.median(step_times)
    return per_step


def _time_calls(module, kind, seconds) -> None:
    """Wrap this module's forward and backward to add their wall time to
    ``seconds[kind + " forward" / " backward"]``."""
    forward, backward = module.forward, module.backward

    def timed_forward(x, train=True):
        start = time.perf_counter()
        out = forward(x, train)
        seconds[f"{kind} forward"] += time.perf_counter() - start
        return out

    def timed_backward(dout):
        start = time.perf_counter()
        dx = backward(dout)
        seconds[f"{kind} backward"] += time.perf_counter() - start
        return dx
    module.forward, module.backward = timed_forward, timed_backward


def format_layer_table(columns: dict, sizes: dict) -> str:
    """columns: {threads: {kind: ms}} -> a table, the largest kinds first."""
    threads = list(columns)
    first = columns[threads[0]]
    kinds = sorted((kind for kind in first if kind not in ("step", "rest")),
                   key=lambda kind: -first[kind])
    lines = [f"ResNet-20 step, batch {sizes['batch']}, {sizes['size']}x{sizes['size']}:"
             f" wall ms per step (mean of {sizes['steps']} steps; step: median)",
             f"{'layer':<22}" + "".join(f"{f'{t} thread(s)':>14}" for t in threads)]
    for kind in kinds + ["rest", "step"]:
        lines.append(f"{kind:<22}" + "".join(f"{columns[t].get(kind, 0.0):>14.1f}"
                                              for t in threads))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
