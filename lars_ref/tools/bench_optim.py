"""Benchmark: one LARS step vs one SGD step over the parameters of ResNet-20.

Usage: ``lars-ref bench-optim [--backend numpy|cupy|auto] [--variants]`` (also
``python -m lars_ref.tools.bench_optim``). Prints ms per optimizer step and the
ratio to SGD (target: LARS <= 1.3x SGD), with and without the per-tensor
statistics. The tensors are the named parameters of ``models.resnet`` (depth 20,
CIFAR-10), with random gradients. The optimizers are timed in turns; "ms/step" is
the fastest repeat and "vs SGD" the median over repeats of the ratio to the SGD
run of the same turn.

Host reads. A LARS step must not read device values back to the host. Two checks:

* everywhere: the step runs on the strict device double
  (:func:`lars_ref.tools.host_reads.count_host_reads`); an implicit read raises,
  an explicit copy is counted. Expected: 0 per step.
* on a GPU: the step is captured into a CUDA graph
  (:func:`lars_ref.tools.cuda_graph.optimizer_capture`), which fails on a copy or
  a synchronisation.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lars_ref.backend import BACKEND_NAMES, backend_name, resolve_backend
from lars_ref.config import DTYPES
from lars_ref.models import build_model
from lars_ref.optim import LARS, PRESETS, SGD, build_preset
from lars_ref.tools import run_as_command
from lars_ref.tools.cuda_graph import optimizer_capture
from lars_ref.tools.host_reads import count_host_reads

HELP = "time the optimizer step of every LARS variant"


def resnet20_tensors(xp, dtype, seed: int = 0) -> tuple[dict, dict]:
    """``(params, grads)``: ResNet-20's named parameters (models.py) and random grads.

    The weights are the model's initialisation; the gradients are drawn on the host
    (std 0.01, seeded) and moved to ``xp`` like the weights.
    """
    model = build_model("resnet20", num_classes=10, in_shape=(3, 32, 32), seed=seed,
                        dtype=dtype, xp=xp)
    params = dict(model.named_parameters())
    rng = np.random.default_rng(seed)
    grads = {name: xp.asarray(rng.normal(0, 0.01, w.shape).astype(dtype))
             for name, w in params.items()}
    return params, grads


def optimizers(record_stats: bool, variants: bool) -> dict:
    """The optimizers to time, by label (same hyperparameters for all)."""
    hyper = dict(momentum=0.9, weight_decay=5e-4)
    table = {"sgd (paper form)": lambda: SGD(0.1, **hyper, record_stats=record_stats),
             "lars (Algorithm 1)": lambda: LARS(0.1, **hyper, eta=0.001,
                                                record_stats=record_stats)}
    if variants:
        for name in PRESETS:
            table[f"lars preset {name}"] = (
                lambda name=name: build_preset(name, 0.1, **hyper, eta=0.001,
                                               record_stats=record_stats))
    return table


def _synchronize(xp) -> None:
    if backend_name(xp) == "cupy":
        xp.cuda.get_current_stream().synchronize()


def time_interleaved(runs: dict, xp, *, steps: int, repeats: int) -> dict:
    """Seconds per step of each ``label: (opt, params, grads)``, timed in turns.

    The optimizers take turns within every repeat, so a change of machine load hits
    all of them alike. Returns ``{label: [seconds per step of each repeat]}``.
    """
    for opt, params, grads in runs.values():            # warm-up (buffers, caches)
        for _ in range(3):
            opt.step(params, grads)
    _synchronize(xp)
    times = {label: [] for label in runs}
    for _ in range(repeats):
        for label, (opt, params, grads) in runs.items():
            start = time.perf_counter()
            for _ in range(steps):
                opt.step(params, grads)
            _synchronize(xp)
            times[label].append((time.perf_counter() - start) / steps)
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``lars-ref bench-optim``."""
    parser.add_argument("--backend", default="numpy", choices=BACKEND_NAMES,
                        help="array backend (default: %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES,
                        help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20,
                        help="steps per timed run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timed turns (default: %(default)s)")
    parser.add_argument("--variants", action="store_true",
                        help="also time every LARS preset")


def register(commands) -> None:
    """Add ``bench-optim`` to the ``lars-ref`` command tree."""
    parser = commands.add_parser("bench-optim", help=HELP,
                                 description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args) -> int:
    """Time SGD vs LARS (``--variants``: every preset); print ratios and host reads."""
    xp, dtype = resolve_backend(args.backend), np.dtype(args.dtype)
    host_params, host_grads = resnet20_tensors(np, dtype)
    count = sum(w.size for w in host_params.values())
    print(f"optimizer step over ResNet-20 (models.py): {len(host_params)} tensors, "
          f"{count:,} values, {dtype.name}, {backend_name(xp)}; {args.repeats} turns "
          f"of {args.steps} steps")
    print(f"{'optimizer':<34} {'stats':>5} {'ms/step':>8} {'vs SGD':>7} "
          f"{'host reads':>10}")
    for record_stats in (True, False):
        table = optimizers(record_stats, args.variants)
        runs = {label: (make(), *resnet20_tensors(xp, dtype))
                for label, make in table.items()}
        times = time_interleaved(runs, xp, steps=args.steps, repeats=args.repeats)
        sgd_times = times["sgd (paper form)"]
        for label, make in table.items():
            ratio = statistics.median(t / s for t, s in zip(times[label], sgd_times))
            reads = len(count_host_reads(make(), host_params, host_grads, steps=2)) / 2
            on = "on" if record_stats else "off"
            print(f"{label:<34} {on:>5} {1e3 * min(times[label]):8.3f} {ratio:6.2f}x "
                  f"{reads:>10g}")
    if backend_name(xp) == "cupy":
        for label, make in optimizers(True, args.variants).items():
            params, grads = resnet20_tensors(xp, dtype)
            print(f"CUDA graph capture of one step, {label}: "
                  f"{optimizer_capture(make(), params, grads, xp)}")
    return 0


def main(argv=None) -> int:
    """``python -m`` entry: the same as ``lars-ref bench-optim [flags]``."""
    return run_as_command("bench-optim", argv)


if __name__ == "__main__":
    raise SystemExit(main())
