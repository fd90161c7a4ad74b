"""Benchmark: our ops and a whole ResNet-20 training step against PyTorch.

Times, in one run, the forward+backward of conv2d (64->64, 3x3, pad 1),
batch norm and max-pool (2x2, stride 2) on a (128, 64, 32, 32) float32 batch,
and one ResNet-20 training step (batch 128, 3x32x32: forward, softmax
cross-entropy, backward, momentum-SGD update), each against the same
computation in PyTorch with the same number of threads. Each side runs in two
blocks, in the order ours, torch, torch, ours, of ``--warmup`` untimed and
``--repeats`` timed runs; the table shows each side's median time and their ratio.

    python -m lars_ref.bench                  # full size, CPU, one thread per core
    python -m lars_ref.bench --quick          # small sizes, a few seconds
    python -m lars_ref.bench --threads 1 --clock cpu --profile
    lars-ref bench --backend cupy             # GPU: CuPy against torch on CUDA

``--clock cpu`` measures the CPU time of the process instead of wall time: on a
machine shared with other jobs it counts only our own work (use it with one
thread, where CPU time equals compute time). The torch column stays empty when
PyTorch is not installed (or, with ``--backend cupy``, has no CUDA). Results and
their analysis: ``docs/performance.md``.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from collections import OrderedDict

import numpy as np

from lars_ref import functional as F
from lars_ref.backend import resolve_backend, to_device
from lars_ref.tools.host_memory import keep_freed_host_memory
from lars_ref.models import build_model
from lars_ref.optim import SGD

FULL = dict(batch=128, channels=64, size=32, warmup=2, repeats=5)
QUICK = dict(batch=8, channels=16, size=16, warmup=1, repeats=3)
TARGETS = {"conv2d": 1.5, "resnet20 step": 2.0}  # ours / torch, the project's goals
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="lars-ref bench",
                                     description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes, few repeats")
    add("--backend", default="numpy", choices=("numpy", "cupy", "auto"))
    add("--threads", type=int, default=os.cpu_count(),
        help="BLAS threads for us and torch.set_num_threads (default: cores)")
    add("--clock", default="wall", choices=tuple(CLOCKS),
        help="wall time, or CPU time of this process (default: wall)")
    add("--repeats", type=int,
        help="timed runs per block; each side runs two blocks (the median is reported)")
    add("--warmup", type=int, help="untimed runs at the start of every block")
    add("--no-torch", action="store_true", help="time our side only")
    add("--default-malloc", action="store_true",
        help="leave glibc's malloc settings alone (see tools.host_memory)")
    add("--profile", action="store_true",
        help="also cProfile one of our ResNet-20 steps (own time per function)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the benchmark and print the table; return 0."""
    args = parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("warmup", "repeats"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    xp = resolve_backend(args.backend)
    kept = False if args.default_malloc else keep_freed_host_memory()
    torch, device = (None, None) if args.no_torch else _load_torch(xp, args.threads)
    print(_describe_setup(xp, args, torch, device, sizes))
    print("host allocator: " + ("freed blocks kept for reuse (keep_freed_host_memory)"
                                if kept else "glibc defaults"))
    clock, rows = CLOCKS[args.clock], []
    cases = _cases(xp, torch, device, sizes)
    for name, (ours, theirs) in cases.items():
        timed = time_in_blocks(ours, theirs, _synchronizer(xp),
                               _torch_synchronizer(torch, device), clock=clock,
                               warmup=sizes["warmup"], repeats=sizes["repeats"])
        rows.append((name, *timed))
    print(format_table(rows))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(cases[rows[-1][0]][0])  # our ResNet-20 step
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return 0


def time_in_blocks(ours, theirs, sync_ours, sync_theirs, *, clock, warmup, repeats):
    """Time ``ours()`` and ``theirs()`` in blocks ordered ours, theirs, theirs, ours.

    Each block is ``warmup`` untimed runs and then ``repeats`` timed ones. The ABBA
    order cancels a steady drift of machine speed (another job starting, a busy
    neighbour of a virtual machine), and the untimed runs at the start of every block
    let the other side's worker threads go idle before timing resumes (PyTorch's
    OpenMP threads keep spinning for a while after each call, and with ``--clock
    cpu`` their time would be counted as ours). ``theirs`` may be None (ours alone).

    Returns
    -------
    (ours ms, theirs ms, ratio) : the median time of each side over its two blocks and
    ours / theirs of these medians (None, None without ``theirs``).
    """
    def timed_block(fn, synchronize):
        for _ in range(warmup):
            fn()
            synchronize()
        times = []
        for _ in range(repeats):
            start = clock()
            fn()
            synchronize()
            times.append(clock() - start)
        return times

    if theirs is None:
        return 1e3 * statistics.median(timed_block(ours, sync_ours)), None, None
    ours_times = timed_block(ours, sync_ours)
    theirs_times = timed_block(theirs, sync_theirs) + timed_block(theirs, sync_theirs)
    ours_times += timed_block(ours, sync_ours)
    ours_ms, theirs_ms = (1e3 * statistics.median(t) for t in (ours_times, theirs_times))
    return ours_ms, theirs_ms, ours_ms / theirs_ms


def format_table(rows):
    """rows: (case, ours ms, torch ms or None, ratio or None) -> an aligned text table."""
    lines = [f"{'case':<36}{'ours ms':>10}{'torch ms':>10}{'ours/torch':>12}  target"]
    for name, ours_ms, torch_ms, ratio in rows:
        if torch_ms is None:
            lines.append(f"{name:<36}{ours_ms:>10.1f}{'-':>10}{'-':>12}")
            continue
        target = TARGETS.get(name.split(" (")[0])
        verdict = "" if target is None else f"<= {target}: " + (
            "met" if ratio <= target else "MISSED")
        lines.append(f"{name:<36}{ours_ms:>10.1f}{torch_ms:>10.1f}{ratio:>12.2f}  "
                     f"{verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the cases
def _cases(xp, torch, device, sizes):
    """{case name: (our callable, torch callable or None)}; inputs drawn on the host."""
    rng = np.random.default_rng(0)
    N, C, S = sizes["batch"], sizes["channels"], sizes["size"]
    arrays = dict(x=rng.standard_normal((N, C, S, S)),
                  w=0.05 * rng.standard_normal((C, C, 3, 3)),
                  b=rng.standard_normal(C), gamma=rng.standard_normal(C),
                  beta=rng.standard_normal(C),
                  dout_full=rng.standard_normal((N, C, S, S)),
                  dout_half=rng.standard_normal((N, C, S // 2, S // 2)))
    arrays = {name: a.astype(np.float32) for name, a in arrays.items()}
    ours = _our_layer_cases(xp, **arrays)
    theirs = {} if torch is None else _torch_layer_cases(torch, device, **arrays)
    names = {"conv": f"conv2d ({C}->{C} 3x3 pad 1) fwd+bwd",
             "bn": "batchnorm (train) fwd+bwd",
             "pool": "max-pool (2x2 stride 2) fwd+bwd"}
    cases = {names[key]: (ours[key], theirs.get(key)) for key in ours}
    cases[f"resnet20 step (batch {N}, 3x{S}x{S})"] = _resnet_step_cases(
        xp, torch, device, N, S)
    return cases


def _our_layer_cases(xp, *, x, w, b, gamma, beta, dout_full, dout_half):
    x, w, b, gamma, beta, dout_full, dout_half = (
        to_device(a, xp) for a in (x, w, b, gamma, beta, dout_full, dout_half))
    running_mean, running_var = xp.zeros_like(gamma), xp.ones_like(gamma)

    def conv():
        _, cache = F.conv2d_forward(x, w, b, stride=1, pad=1)
        F.conv2d_backward(dout_full, cache)

    def bn():
        _, cache, _, _ = F.batchnorm_forward(x, gamma, beta, running_mean, running_var,
                                             train=True)
        F.batchnorm_backward(dout_full, cache)

    def pool():
        _, cache = F.max_pool2d_forward(x, 2, 2)
        F.max_pool2d_backward(dout_half, cache)

    return {"conv": conv, "bn": bn, "pool": pool}


def _torch_layer_cases(torch, device, *, x, w, b, gamma, beta, dout_full, dout_half):
    tf = torch.nn.functional
    leaves = [torch.tensor(a, device=device, requires_grad=True)
              for a in (x, w, b, gamma, beta)]
    x_t, w_t, b_t, gamma_t, beta_t = leaves
    dout_full_t, dout_half_t = (torch.tensor(a, device=device)
                                for a in (dout_full, dout_half))
    running_mean, running_var = torch.zeros_like(gamma_t), torch.ones_like(gamma_t)

    def run(make_output, dout):
        for leaf in leaves:
            leaf.grad = None
        make_output().backward(dout)

    def batch_norm():
        return tf.batch_norm(x_t, running_mean, running_var, gamma_t, beta_t,
                             training=True, momentum=0.1, eps=1e-5)

    def conv():
        return tf.conv2d(x_t, w_t, b_t, padding=1)

    return {"conv": lambda: run(conv, dout_full_t),
            "bn": lambda: run(batch_norm, dout_full_t),
            "pool": lambda: run(lambda: tf.max_pool2d(x_t, 2, 2), dout_half_t)}


def _resnet_step_cases(xp, torch, device, N, S):
    """One training step of ResNet-20 in each framework, from the same weights."""
    model = build_model("resnet20", num_classes=10, in_shape=(3, S, S), seed=0, xp=xp)
    rng = np.random.default_rng(1)
    x_host = rng.standard_normal((N, 3, S, S)).astype(np.float32)
    labels_host = rng.integers(0, 10, size=N)
    x, labels = to_device(x_host, xp), to_device(labels_host, xp)
    params, grads = dict(model.named_parameters()), dict(model.named_grads())
    optimizer = SGD(LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, form="pytorch",
                    record_stats=False)

    def ours():
        model.zero_grad()
        loss, dlogits = F.softmax_cross_entropy(model.forward(x, train=True), labels)
        model.backward(dlogits)
        optimizer.step(params, grads)
        return loss

    if torch is None:
        return ours, None
    theirs = _torch_resnet_step(torch, device, model.state_dict(), x_host, labels_host)
    print(f"same init, first step: loss ours {float(ours()):.6f}, "
          f"torch {float(theirs()):.6f}")
    return ours, theirs


# ---------------------------------------------------------------------- torch side
def _torch_resnet_step(torch, device, state, x, labels):
    """A torch ResNet-20 holding our weights ``state``; return a one-step callable."""
    model = _torch_resnet20(torch).to(device)
    torch_state = model.state_dict()  # tensors sharing storage with the model
    torch_leaf = {"w": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}
    for name, value in state.items():
        prefix, leaf = name.rsplit(".", 1)
        value = value.T if name == "fc.w" else value  # ours (D, M), torch (M, D)
        target = torch_state[f"{prefix}.{torch_leaf.get(leaf, leaf)}"]
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    x_t, labels_t = torch.tensor(x, device=device), torch.tensor(labels, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x_t), labels_t)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _torch_resnet20(torch):
    """ResNet-20 with option-A shortcuts in torch, named like ours (layer1.0.bn2)."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c_out)
            self.conv2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c_out)
            self.stride, self.extra_channels = stride, c_out - c_in

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            short = x[:, :, ::self.stride, ::self.stride]
            if self.extra_channels:  # option A: zero channels appended
                short = tnn.functional.pad(short, (0, 0, 0, 0, 0, self.extra_channels))
            return torch.relu(out + short)

    stages, c_in = [], 16
    for stage, (c_out, stride) in enumerate(zip((16, 32, 64), (1, 2, 2)), start=1):
        blocks = [Block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                  for i in range(3)]
        stages.append((f"layer{stage}", tnn.Sequential(*blocks)))
        c_in = c_out
    return tnn.Sequential(OrderedDict([
        ("conv1", tnn.Conv2d(3, 16, 3, 1, 1, bias=False)), ("bn1", tnn.BatchNorm2d(16)),
        ("relu1", tnn.ReLU()), *stages, ("pool", tnn.AdaptiveAvgPool2d(1)),
        ("flatten", tnn.Flatten()), ("fc", tnn.Linear(64, 10))]))


# ---------------------------------------------------------------------- setup
def _load_torch(xp, threads):
    """Import torch (or return None), set its threads; pick cpu or cuda to match xp."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: the torch column stays empty.")
        return None, None
    torch.set_num_threads(threads)
    if xp is np:
        return torch, "cpu"
    if not torch.cuda.is_available():
        print("This PyTorch has no CUDA: no GPU comparison, the torch column is empty.")
        return None, None
    return torch, "cuda"


def _describe_setup(xp, args, torch, device, sizes):
    """Set our BLAS threads; describe the machine, the libraries and the sizes."""
    blas = _limit_blas_threads(args.threads)
    lines = [f"backend: {xp.__name__} {xp.__version__}; threads: {args.threads} (of "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}); "
             f"numpy BLAS: {blas}"]
    if torch is not None:
        lines.append(f"torch {torch.__version__} on {device}, "
                     f"torch.get_num_threads() = {torch.get_num_threads()}")
    lines.append(f"float32; median {args.clock} time of two blocks (ours, torch, torch, "
                 f"ours) of {sizes['warmup']} warm-up and {sizes['repeats']} timed runs")
    return "\n".join(lines)


def _limit_blas_threads(threads):
    """Limit NumPy's BLAS to ``threads`` with threadpoolctl; return a description."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return ("threadpoolctl missing, BLAS threads not set (set "
                f"OPENBLAS_NUM_THREADS={threads} before starting Python)")
    threadpool_limits(limits=threads, user_api="blas")
    described = [f"{lib['internal_api']} {lib.get('version')} ({lib['num_threads']} "
                 f"threads, {os.path.basename(lib['filepath'])})"
                 for lib in threadpool_info() if lib["user_api"] == "blas"]
    return "; ".join(described) or "not found by threadpoolctl"


def _synchronizer(xp):
    """A function that waits for queued GPU work (nothing to wait for on NumPy)."""
    if xp is np:
        return lambda: None
    return xp.cuda.get_current_stream().synchronize


def _torch_synchronizer(torch, device):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


if __name__ == "__main__":
    raise SystemExit(main())
