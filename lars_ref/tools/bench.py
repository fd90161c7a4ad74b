"""Benchmark: a ResNet-20 training step and each of its convolutions against PyTorch.

For each case, ours / PyTorch on 1 thread (CPU time of the process) and on 2
threads (wall time), over ``--blocks`` interleaved blocks; each block runs the two
sides in the order ours, torch, torch, ours (:func:`time_in_blocks`) and gives one
ratio; the table shows min / median / max of the ratios and the median times.
Then the memory that one ResNet-20 step adds to the peak resident set, ours and
PyTorch's, each measured in a fresh process of its own.

Cases: one training step of ResNet-20 (batch 128 of 3x32x32: forward, softmax
cross-entropy, backward, momentum-SGD update), and forward + backward (dx, dw) of
every convolution shape of ResNet-20 at batch 128, ours channels-last (the layout
the models use), PyTorch's NCHW.

    python -m lars_ref.tools.bench            # or: lars-ref bench
    python -m lars_ref.tools.bench --quick    # small sizes, seconds
    lars-ref bench --backend cupy             # GPU: CuPy against torch on CUDA

OpenBLAS's kernels: an environment may pin NumPy's OpenBLAS to older kernels with
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (this project's CI machine sets
both, to Haswell's AVX2 kernels). To measure what a user of a current NumPy gets,
the bench runs its timing and memory work in a child process whose environment
lacks both (``--keep-openblas-env`` keeps them); the report names the kernels
each side ran. Nothing else in ``lars_ref`` touches these variables.

Results and their history: ``docs/performance.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import OrderedDict

import numpy as np

from lars_ref import functional as F
from lars_ref.backend import BACKEND_NAMES, resolve_backend, to_device
from lars_ref.functional.conv_rows import set_conv_workers
from lars_ref.models import build_model
from lars_ref.nn import skip_input_grad
from lars_ref.optim import SGD
from lars_ref.tools import run_as_command
from lars_ref.tools.host_memory import keep_freed_host_memory

FULL = dict(batch=128, size=32, warmup=1, repeats=2, blocks=5)
QUICK = dict(batch=8, size=16, warmup=1, repeats=1, blocks=2)
THREADS = {1: "cpu", 2: "wall"}          # threads -> clock of the targets below
TARGETS = {("resnet20 step", 1): 1.5, ("resnet20 step", 2): 1.6, ("conv", 1): 1.8,
           ("conv", 2): 1.8}             # ours / torch, issue 10
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # removed together
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
STEP_CASE = "resnet20 step"
# (C_in, C_out, input size as a fraction of the image, stride) of ResNet-20's convs
RESNET20_CONVS = ((3, 16, 1, 1), (16, 16, 1, 1), (16, 32, 1, 2), (32, 32, 2, 1),
                  (32, 64, 2, 2), (64, 64, 4, 1))


def at_least(minimum):
    """An argparse type: an int >= ``minimum`` (argparse reports anything else)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, "
                                             f"got {text!r}")
        return value
    return parse


def add_arguments(parser):
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes, few blocks")
    add("--backend", default="numpy", choices=BACKEND_NAMES,
        help="array backend of our side")
    add("--threads", type=at_least(1), nargs="+", default=sorted(THREADS),
        help="thread counts to run; 1 is timed in CPU time, others in wall time")
    add("--blocks", type=at_least(1),
        help="interleaved blocks per case (default: 5; 2 quick)")
    add("--repeats", type=at_least(1),
        help="timed runs per side in each half-block (default 2)")
    add("--warmup", type=at_least(0),
        help="untimed runs at the start of every half-block (default 1)")
    add("--no-torch", action="store_true", help="time our side only")
    add("--no-memory", action="store_true", help="skip the memory measurement")
    add("--keep-openblas-env", action="store_true",
        help="time in this process with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE as "
             "set; by default the timing runs in a child process without both, so "
             "NumPy's OpenBLAS picks the kernels for this CPU")
    add("--memory-child", choices=("ours", "torch"), help=argparse.SUPPRESS)


def register(commands):
    """Add ``lars-ref bench`` to the command tree (see lars_ref/cli.py)."""
    parser = commands.add_parser("bench", help="time a ResNet-20 step and its convs "
                                 "against PyTorch", description=__doc__.split("\n")[0])
    add_arguments(parser)
    parser.set_defaults(handler=run)


def main(argv=None) -> int:
    """``python -m`` entry: the same as ``lars-ref bench [flags]``."""
    return run_as_command("bench", argv)


def run(args) -> int:
    """Print the setup, the timing table and the memory table; return 0."""
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("warmup", "repeats", "blocks"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    if args.memory_child:
        print(json.dumps(step_memory(args.memory_child, sizes)))
        return 0
    pinned = [name for name in OPENBLAS_PINS if name in os.environ]
    if pinned and not args.keep_openblas_env:
        return run_without_openblas_pins("lars_ref.tools.bench", bench_argv(args),
                                         pinned)
    xp = resolve_backend(args.backend)
    keep_freed_host_memory()
    torch, device = (None, None) if args.no_torch else _load_torch(xp)
    print(_describe_setup(xp, torch, device, sizes))
    rows = []
    for threads in args.threads:
        clock = THREADS.get(threads, "wall")
        set_threads(torch, threads)
        for name, (ours, theirs) in _cases(xp, torch, device, sizes).items():
            rows.append((name, threads, clock,
                         *time_interleaved(ours, theirs, _synchronizer(xp),
                                           _torch_synchronizer(torch, device),
                                           clock=CLOCKS[clock], **sizes)))
    print(format_table(rows))
    if not args.no_memory and xp is np:
        print(format_memory(sizes, with_torch=torch is not None))
    return 0


def without_openblas_pins(environ) -> dict:
    """A copy of ``environ`` without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (both:
    the L2 size is tuned for the pinned core type)."""
    return {name: value for name, value in environ.items()
            if name not in OPENBLAS_PINS}


def run_without_openblas_pins(module, argv, pinned) -> int:
    """Run ``python -m module *argv`` in a child process whose environment lacks the
    OpenBLAS pins; pass its report through line by line; return its exit status."""
    print("timing in a child process without "
          + ", ".join(f"{name}={os.environ[name]}" for name in pinned)
          + " (--keep-openblas-env keeps them)", flush=True)
    child = subprocess.Popen([sys.executable, "-m", module, *argv],
                             env=without_openblas_pins(os.environ),
                             stdout=subprocess.PIPE, text=True)
    for line in child.stdout:
        print(line, end="", flush=True)
    return child.wait()


def bench_argv(args) -> list:
    """The command-line options that reproduce ``args`` (for the child process)."""
    argv = ["--backend", args.backend, "--threads", *map(str, args.threads)]
    for flag in ("quick", "no_torch", "no_memory"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for key in ("blocks", "repeats", "warmup"):
        if getattr(args, key) is not None:
            argv += [f"--{key}", str(getattr(args, key))]
    return argv


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


def time_interleaved(ours, theirs, sync_ours, sync_theirs, *, clock, warmup, repeats,
                     blocks, **_sizes):
    """Run :func:`time_in_blocks` ``blocks`` times; summarise.

    Returns (ours ms, theirs ms, (min, median, max) of the per-block ratios): the
    times are medians over the blocks; without ``theirs``, (ours ms, None, None).
    """
    results = [time_in_blocks(ours, theirs, sync_ours, sync_theirs, clock=clock,
                              warmup=warmup, repeats=repeats) for _ in range(blocks)]
    ours_ms = statistics.median(r[0] for r in results)
    if theirs is None:
        return ours_ms, None, None
    ratios = sorted(r[2] for r in results)
    return (ours_ms, statistics.median(r[1] for r in results),
            (ratios[0], statistics.median(ratios), ratios[-1]))


def format_table(rows):
    """rows: (case, threads, clock, ours ms, torch ms or None, (min, median, max) or
    None) -> an aligned text table, the target verdict judged on the median."""
    lines = [f"{'case':<34}{'threads':>8}{'clock':>6}{'ours ms':>10}{'torch ms':>10}"
             f"{'ours/torch min med max':>25}  target"]
    for name, threads, clock, ours_ms, torch_ms, ratios in rows:
        head = f"{name:<34}{threads:>8}{clock:>6}{ours_ms:>10.1f}"
        if torch_ms is None:
            lines.append(f"{head}{'-':>10}{'-':>25}")
            continue
        target = TARGETS.get((name.split(" (")[0], threads))
        verdict = "" if target is None else f"<= {target}: " + (
            "met" if ratios[1] <= target else "MISSED")
        spread = " ".join(f"{r:.2f}" for r in ratios)
        lines.append(f"{head}{torch_ms:>10.1f}{spread:>25}  {verdict}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the cases
def conv_case_name(c_in, c_out, size, stride):
    return f"conv ({c_in}->{c_out} {size}x{size} stride {stride})"


def _cases(xp, torch, device, sizes):
    """{case name: (our callable, torch callable or None)}; inputs drawn on the host."""
    N, S = sizes["batch"], sizes["size"]
    cases = OrderedDict()
    cases[f"{STEP_CASE} (batch {N})"] = _resnet_step_cases(xp, torch, device, N, S)
    rng = np.random.default_rng(0)
    for c_in, c_out, shrink, stride in RESNET20_CONVS:
        size = S // shrink
        x = rng.standard_normal((N, c_in, size, size)).astype(np.float32)
        w = (0.1 * rng.standard_normal((c_out, c_in, 3, 3))).astype(np.float32)
        ours = _our_conv(xp, x, w, stride)
        theirs = None if torch is None else _torch_conv(torch, device, x, w, stride)
        cases[conv_case_name(c_in, c_out, size, stride)] = (ours, theirs)
    return cases


def _our_conv(xp, x, w, stride):
    """Forward + backward of the row-gather convolution, as the models call it."""
    x_nhwc = to_device(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), xp)
    w = to_device(w, xp)

    def conv():
        out, cache = F.conv2d_nhwc_forward(x_nhwc, w, None, stride=stride, pad=1)
        F.conv2d_nhwc_backward(out, cache)
    return conv


def _torch_conv(torch, device, x, w, stride):
    x_t = torch.tensor(x, device=device, requires_grad=True)
    w_t = torch.tensor(w, device=device, requires_grad=True)

    def conv():
        x_t.grad = w_t.grad = None
        out = torch.nn.functional.conv2d(x_t, w_t, None, stride=stride, padding=1)
        out.backward(out.detach())
    return conv


def _resnet_step_cases(xp, torch, device, N, S):
    """One training step of ResNet-20 in each framework, from the same weights."""
    ours, model, x_host, labels_host = our_resnet_step(xp, N, S)
    if torch is None:
        return ours, None
    theirs = _torch_resnet_step(torch, device, model.state_dict(), x_host, labels_host)
    print(f"same init, first step: loss ours {float(ours()):.6f}, "
          f"torch {float(theirs()):.6f}")
    return ours, theirs


def our_resnet_step(xp, N, S):
    model = build_model("resnet20", num_classes=10, in_shape=(3, S, S), seed=0, xp=xp)
    skip_input_grad(model)  # as torch: the images need no gradient
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
    return ours, model, x_host, labels_host


# ---------------------------------------------------------------------- memory
def step_memory(side, sizes):
    """In this (fresh) process: MB that the first ResNet-20 step adds to the peak
    resident set, on one thread, for ``side`` "ours" or "torch".

    A step on 2 images runs first, so that one-time costs of the process (BLAS
    buffers, oneDNN's kernels) are not counted; the reused buffers of our
    convolutions are (the larger batch needs its own).
    """
    torch = None
    if side == "torch":
        import torch
        torch.set_num_threads(1)
    _limit_blas_threads(1)

    def make_step(batch):
        ours, model, x, labels = our_resnet_step(np, batch, sizes["size"])
        return ours if side == "ours" else _torch_resnet_step(
            torch, "cpu", model.state_dict(), x, labels)

    make_step(2)()  # one-time costs (BLAS buffers, kernel set-up) are not the step's
    step = make_step(sizes["batch"])
    before = _memory_status_mb("VmRSS")
    step()
    return {"side": side, "added_mb": _memory_status_mb("VmHWM") - before}


def _memory_status_mb(field):
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MB, from
    /proc/self/status (Linux). Not ``getrusage``: its peak carries the parent's
    over fork and exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024   # kB
    raise RuntimeError(f"no {field} in /proc/self/status: memory needs Linux")


def format_memory(sizes, with_torch):
    """Run :func:`step_memory` in a child process per side; a two-line report."""
    lines = [f"memory added by one ResNet-20 step (batch {sizes['batch']}, peak RSS, "
             "fresh process each, 1 thread):"]
    flags = ["--quick"] if sizes["batch"] == QUICK["batch"] else []
    for side in ("ours", "torch") if with_torch else ("ours",):
        out = subprocess.run([sys.executable, "-m", "lars_ref.tools.bench",
                              "--memory-child", side, *flags], capture_output=True,
                             text=True, check=True).stdout
        added = json.loads(out.strip().splitlines()[-1])["added_mb"]
        lines.append(f"  {side:<6}{added:>8.0f} MB")
    return "\n".join(lines)


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
def _load_torch(xp):
    """Import torch (or return None); pick cpu or cuda to match xp."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: the torch column stays empty.")
        return None, None
    if xp is np:
        return torch, "cpu"
    if not torch.cuda.is_available():
        print("This PyTorch has no CUDA: no GPU comparison, the torch column is empty.")
        return None, None
    return torch, "cuda"


def set_threads(torch, threads):
    """``threads`` Python threads on our convolutions' chunks, BLAS on one thread
    each (:func:`lars_ref.functional.conv_rows.set_conv_workers`); torch's own."""
    _limit_blas_threads(1)
    set_conv_workers(threads)
    if torch is not None:
        torch.set_num_threads(threads)


def _describe_setup(xp, torch, device, sizes):
    """Describe the machine, the libraries and the sizes."""
    lines = [f"backend: {xp.__name__} {xp.__version__}; {os.cpu_count()} cores, load "
             f"average {os.getloadavg()[0]:.1f}; numpy BLAS: {_limit_blas_threads(1)}"]
    if torch is not None:
        kernels = f": {_describe_torch_cpu(torch)}" if device == "cpu" else ""
        lines.append(f"torch {torch.__version__} on {device}{kernels}")
    lines.append(f"float32; {sizes['blocks']} interleaved blocks per case, each ours, "
                 f"torch, torch, ours of {sizes['warmup']} warm-up and "
                 f"{sizes['repeats']} timed runs; 1 thread: CPU time, 2: wall time; "
                 "our threads: conv chunks, BN and ReLU rows on Python threads, "
                 "BLAS on one thread each")
    return "\n".join(lines)


def _limit_blas_threads(threads):
    """Limit NumPy's BLAS to ``threads`` with threadpoolctl; return a description."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return ("threadpoolctl missing, BLAS threads not set (set "
                f"OPENBLAS_NUM_THREADS={threads} before starting Python)")
    threadpool_limits(limits=threads, user_api="blas")
    described = [f"{lib['internal_api']} {lib.get('version')} "
                 f"({os.path.basename(lib['filepath'])}, kernels for "
                 f"{lib.get('architecture')}; "
                 + ", ".join(f"{name}={os.environ.get(name, 'unset')}"
                             for name in OPENBLAS_PINS) + ")"
                 for lib in threadpool_info() if lib["user_api"] == "blas"]
    return "; ".join(described) or "not found by threadpoolctl"


def _describe_torch_cpu(torch):
    """PyTorch's CPU kernels: its BLAS (MKL, linked in: no OpenBLAS to pin) and the
    vector instructions its oneDNN convolutions and ATen kernels use."""
    blas = "MKL" if torch.backends.mkl.is_available() else "its own BLAS"
    return (f"{blas} and oneDNN, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()} (no OpenBLAS)")


def _synchronizer(xp):
    """A function that waits for queued GPU work (nothing to wait for on NumPy)."""
    if xp is np:
        return lambda: None
    return xp.cuda.get_current_stream().synchronize


def _torch_synchronizer(torch, device):
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


if __name__ == "__main__":
    raise SystemExit(main())
