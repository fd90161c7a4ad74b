"""Benchmark: one LARS step vs one SGD step over the parameter shapes of ResNet-20.

Usage: ``python -m lars_ref.bench_optim [--backend numpy|cupy|auto] [--variants]``
(also ``lars-ref bench-optim``). Prints ms per optimizer step and the ratio to SGD
(target: LARS <= 1.3x SGD), with and without the per-tensor statistics. The
optimizers are timed in turns; "ms/step" is the fastest repeat and "vs SGD" the
median over repeats of the ratio to the SGD run of the same turn.

Host reads. A LARS step must not read device values back to the host (on a GPU every
such read is a device-to-host copy plus a synchronisation). Two checks:

* everywhere: the step runs once on :class:`HostReadProbe` arrays, a NumPy subclass
  that logs every host read of a value (``bool``, ``float``, ``int``, ``index``,
  ``item``, ``tolist``): exactly the calls that synchronise in CuPy. NumPy and CuPy
  share one code path, so a read would show here too. Expected: 0 per step.
* on a GPU: the step is captured into a CUDA graph (``Stream.begin_capture``); a
  device-to-host copy or a synchronisation inside the capture makes it fail.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from lars_ref.backend import BACKEND_NAMES, backend_name, resolve_backend
from lars_ref.config import DTYPES
from lars_ref.optim import LARS, PRESETS, SGD, build_preset


def resnet20_shapes(num_classes: int = 10) -> dict:
    """``{name: shape}`` of the CIFAR ResNet-20 parameters (He et al. 2016, option A shortcuts).

    conv 3x3 with 16/32/64 channels (no bias; 19 convs), BatchNorm gamma/beta after
    each, and the final fc 64 x num_classes with a bias: 0.27 M values in 59 tensors.
    """
    shapes = {"conv1.w": (16, 3, 3, 3), "bn1.gamma": (16,), "bn1.beta": (16,)}
    in_channels = 16
    for stage, channels in enumerate((16, 32, 64), start=1):
        for block in range(3):
            for conv in (1, 2):
                prefix = f"stage{stage}.block{block}"
                shapes[f"{prefix}.conv{conv}.w"] = (channels, in_channels, 3, 3)
                shapes[f"{prefix}.bn{conv}.gamma"] = (channels,)
                shapes[f"{prefix}.bn{conv}.beta"] = (channels,)
                in_channels = channels
    shapes["fc.w"] = (64, num_classes)
    shapes["fc.b"] = (num_classes,)
    return shapes


def make_tensors(shapes: dict, xp, dtype, seed: int = 0):
    """Random weights and gradients (drawn on the host, then moved to ``xp``)."""
    rng = np.random.default_rng(seed)
    params = {k: xp.asarray(rng.normal(0, 0.1, s).astype(dtype)) for k, s in shapes.items()}
    grads = {k: xp.asarray(rng.normal(0, 0.01, s).astype(dtype)) for k, s in shapes.items()}
    return params, grads


def optimizers(record_stats: bool, variants: bool) -> dict:
    """The optimizers to time, by label (same hyperparameters for all)."""
    hyper = dict(momentum=0.9, weight_decay=5e-4)
    table = {"sgd (paper form)": SGD(0.1, **hyper, record_stats=record_stats),
             "lars (Algorithm 1)": LARS(0.1, **hyper, eta=0.001, record_stats=record_stats)}
    if variants:
        for name in PRESETS:
            table[f"lars preset {name}"] = build_preset(name, 0.1, **hyper, eta=0.001,
                                                        record_stats=record_stats)
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


class HostReadProbe(np.ndarray):
    """A NumPy array that logs every host read of its values in ``HostReadProbe.log``.

    Results of ufuncs and NumPy functions on probes are probes again, so a value
    derived from a probe (a norm, a trust ratio) is caught when the host reads it.
    """

    log: list = []

    def _read(self, what):
        HostReadProbe.log.append(f"{what} of a {self.shape} array")

    def __bool__(self):
        self._read("bool()")
        return super().__bool__()

    def __float__(self):
        self._read("float()")
        return super().__float__()

    def __int__(self):
        self._read("int()")
        return super().__int__()

    def __index__(self):
        self._read("index")
        return super().__index__()

    def item(self, *args):
        self._read(".item()")
        return super().item(*args)

    def tolist(self):
        self._read(".tolist()")
        return super().tolist()

    def __array_function__(self, func, types, args, kwargs):
        return _as_probe(super().__array_function__(func, types, args, kwargs))


def _as_probe(x):
    if isinstance(x, tuple):
        return tuple(_as_probe(item) for item in x)
    if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, HostReadProbe):
        return np.asarray(x).view(HostReadProbe)
    return x


def count_host_reads(opt, shapes: dict, dtype=np.float32, steps: int = 2) -> list:
    """Run ``steps`` steps of ``opt`` on probe arrays; return the host reads made (expect [])."""
    params, grads = make_tensors(shapes, np, dtype)
    params = {k: v.view(HostReadProbe) for k, v in params.items()}
    grads = {k: v.view(HostReadProbe) for k, v in grads.items()}
    HostReadProbe.log = []
    for _ in range(steps):
        opt.step(params, grads)
    return list(HostReadProbe.log)


def cuda_graph_capture_ok(opt, params, grads, xp) -> str:
    """Capture one step into a CUDA graph: "ok" if it has no D2H copy / sync, else the error."""
    opt.step(params, grads)                       # warm the memory pool and the kernel cache
    stream = xp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            opt.step(params, grads)
        except Exception as err:                  # the sync raised during capture
            return f"failed: {type(err).__name__}: {err}"
        finally:
            try:
                stream.end_capture()
            except Exception as err:              # capture invalidated by a sync
                return f"failed: {type(err).__name__}: {err}"
    return "ok"


def register(commands) -> None:
    """Add ``bench-optim`` to the ``lars-ref`` command tree (argparse subparsers)."""
    parser = commands.add_parser("bench-optim",
                                 help="time the optimizer step of every LARS variant",
                                 description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser) -> None:
    parser.add_argument("--backend", default="numpy", choices=BACKEND_NAMES)
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=15, help="timed turns")
    parser.add_argument("--variants", action="store_true", help="also time every LARS preset")


def main(argv=None) -> int:
    """Time SGD vs LARS (and with ``--variants`` every preset); print ratios and host reads."""
    parser = argparse.ArgumentParser(prog="lars-ref bench-optim",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    """``lars-ref bench-optim`` with parsed ``args``."""
    xp, dtype, shapes = resolve_backend(args.backend), np.dtype(args.dtype), resnet20_shapes()
    count = sum(int(np.prod(s)) for s in shapes.values())
    print(f"optimizer step over ResNet-20 shapes: {len(shapes)} tensors, {count:,} values, "
          f"{dtype.name}, {backend_name(xp)}; {args.repeats} turns of {args.steps} steps")
    print(f"{'optimizer':<34} {'stats':>5} {'ms/step':>8} {'vs SGD':>7} {'host reads':>10}")
    for record_stats in (True, False):
        runs = {label: (opt, *make_tensors(shapes, xp, dtype))
                for label, opt in optimizers(record_stats, args.variants).items()}
        times = time_interleaved(runs, xp, steps=args.steps, repeats=args.repeats)
        sgd_times = times["sgd (paper form)"]
        for label, (opt, _, _) in runs.items():
            ratio = statistics.median(t / s for t, s in zip(times[label], sgd_times))
            reads = len(count_host_reads(_fresh_copy(opt), shapes, dtype)) / 2
            on = "on" if record_stats else "off"
            print(f"{label:<34} {on:>5} {1e3 * min(times[label]):8.3f} {ratio:6.2f}x "
                  f"{reads:>10g}")
    if backend_name(xp) == "cupy":
        for label, opt in optimizers(True, args.variants).items():
            params, grads = make_tensors(shapes, xp, dtype)
            print(f"CUDA graph capture of one step, {label}: "
                  f"{cuda_graph_capture_ok(opt, params, grads, xp)}")
    return 0


def _fresh_copy(opt):
    """A new optimizer with the same settings and no state (for the host-read probe)."""
    if isinstance(opt, SGD):
        return SGD(opt.schedule, momentum=opt.momentum, weight_decay=opt.weight_decay,
                   form=opt.form, dampening=opt.dampening, nesterov=opt.nesterov,
                   record_stats=opt.record_stats)
    return LARS(opt.schedule, momentum=opt.momentum, weight_decay=opt.weight_decay,
                eta=opt.eta, options=opt.options, record_stats=opt.record_stats)


if __name__ == "__main__":
    raise SystemExit(main())
