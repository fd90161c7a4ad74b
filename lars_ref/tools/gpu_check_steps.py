"""The steps of ``lars-ref gpu-check``, one function each, run in a child process.

Each takes the output folder and returns ``{"status": "ok" | "failed: ..." |
"skipped (...)",
"markdown": the step's figures}`` (``device`` also returns ``"device"``). The
benchmarks are called through their command lines, so that this module depends on
their flags only. See :mod:`lars_ref.tools.gpu_check` and ``docs/gpu.md``.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np

from lars_ref.tools.gpu_check import module_present

BENCH_OPS_ARGS = ("bench", "--backend", "cupy", "--threads", "1", "--no-memory")
BENCH_OPTIM_ARGS = ("bench-optim", "--backend", "cupy", "--steps", "10",
                    "--repeats", "5")
PACKAGES = ("numpy", "cupy", "torch", "pytest", "sklearn", "tqdm", "threadpoolctl",
            "matplotlib", "mpi4py")


def device(out_dir: str) -> dict:
    """The GPU (or why there is none), CUDA and package versions."""
    from lars_ref.backend import cupy_status
    status = cupy_status()
    rows = [("python", platform.python_version()), ("numpy", np.__version__),
            ("cupy status", status)]
    name = "no usable GPU (see the cupy status below)"
    if status == "ok":
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else name
        rows += [("device", name),
                 ("compute capability", f"{props['major']}.{props['minor']}"),
                 ("memory", f"{props['totalGlobalMem'] / 2**30:.1f} GiB"),
                 ("cupy", cupy.__version__),
                 ("CUDA runtime", str(cupy.cuda.runtime.runtimeGetVersion())),
                 ("CUDA driver", str(cupy.cuda.runtime.driverGetVersion()))]
    if module_present("torch"):
        import torch
        rows += [("torch", torch.__version__),
                 ("torch CUDA", str(torch.cuda.is_available())),
                 ("cuDNN", str(torch.backends.cudnn.version()))]
    rows.append(("packages present",
                 ", ".join(p for p in PACKAGES if module_present(p)) or "none"))
    print(name)
    table = ["| item | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows]
    return {"status": "ok", "device": name, "markdown": "\n".join(table)}


def _command(command: list, title: str) -> dict:
    """Run a command line; its output, in a code block, is the step's figures."""
    done = subprocess.run(command, capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip().splitlines()
    print("\n".join(output))
    text = (f"`{' '.join(command[2:])}` ({title}):\n\n```\n"
            + "\n".join(output[-60:]) + "\n```")
    status = "ok" if done.returncode == 0 else f"failed: exit code {done.returncode}"
    return {"status": status, "markdown": text}


def _pytest(selection: list, title: str) -> dict:
    if not module_present("pytest"):
        return {"status": "failed: pytest is not installed on this machine",
                "markdown": "pytest is not installed on this machine."}
    if not os.path.isdir("tests"):
        return {"status": "failed: no tests/ folder (run from the repository root)",
                "markdown": "Run from the repository root."}
    return _command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     "-m", "gpu", *selection, "tests"], title)


def gpu_tests(out_dir: str) -> dict:
    """``pytest -m gpu`` (all but the NCCL tests, which have their own step)."""
    return _pytest(["-k", "not nccl"], "the gpu marker")


def bench_ops(out_dir: str) -> dict:
    """``lars-ref bench --backend cupy``: CuPy vs PyTorch (cuDNN if torch has CUDA)."""
    return _command([sys.executable, "-m", "lars_ref", *BENCH_OPS_ARGS],
                    "a ResNet-20 step and its convolutions, against PyTorch")


def bench_optim(out_dir: str) -> dict:
    """``lars-ref bench-optim --backend cupy``: step times, host reads, CUDA graphs."""
    result = _command([sys.executable, "-m", "lars_ref", *BENCH_OPTIM_ARGS],
                      "LARS vs SGD on ResNet-20's parameters")
    if result["status"] == "ok" and ": failed" in result["markdown"]:
        result["status"] = "failed: a CUDA graph capture failed"
    return result


def curves(out_dir: str, device_backend: str = "cupy") -> dict:
    """One short run (seed 0, float64) on NumPy and on CuPy; compare the loss curves."""
    from lars_ref.config import TrainConfig
    from lars_ref.train import train
    dataset, source = curve_dataset()
    runs = {}
    for role, backend in (("host", "numpy"), ("device", device_backend)):
        config = TrainConfig(model="alexnet_bn", dataset="digits", optimizer="lars",
                             lr=1.0, batch_size=128, micro_batch=64, epochs=None,
                             steps=30, warmup_steps=3, dtype="float64", log_every=5,
                             diag_every=10, seed=0, progress=False, backend=backend,
                             out=os.path.join(out_dir, "curves", role))
        runs[role] = train(config, dataset=dataset)
    return compare_curves(runs["host"], runs["device"], source)


def compare_curves(host, device, source: str, tolerance: float = 1e-6) -> dict:
    """Largest relative loss difference per step; status ok under ``tolerance``."""
    host_loss = np.array([r["loss"] for r in host.steps])
    device_loss = np.array([r["loss"] for r in device.steps])
    if host_loss.shape != device_loss.shape:
        return {"status": "failed: the two runs logged different steps",
                "markdown": f"{len(host_loss)} vs {len(device_loss)} steps"}
    worst = float(np.max(np.abs(device_loss - host_loss) / np.abs(host_loss)))
    lines = [f"AlexNet-BN on {source}, LARS, 30 steps, batch 128 of 2 micro-batches, "
             f"float64, seed 0.", "",
             "| | loss step 0 | loss last step | final test acc |",
             "| --- | --- | --- | --- |"]
    for name, run in (("numpy", host), ("device", device)):
        first, last = run.steps[0]["loss"], run.steps[-1]["loss"]
        lines.append(f"| {name} | {first:.12g} | {last:.12g} "
                     f"| {run.final_test_acc} |")
    lines += ["", "Largest relative difference of the loss over all steps: "
              f"{worst:.3g} "
              f"(tolerance {tolerance:g})."]
    status = "ok" if worst < tolerance else f"failed: loss curves differ by {worst:.3g}"
    return {"status": status, "markdown": "\n".join(lines)}


def curve_dataset():
    """The 8x8 digits if scikit-learn is present; else a seeded synthetic lookalike."""
    from lars_ref.data import Dataset, load_dataset
    if module_present("sklearn"):
        return load_dataset("digits"), "the 8x8 digits"
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, size=(10, 1, 8, 8))
    def split(n):
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(-40, 41, size=(n, 1, 8, 8))
        return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8), labels
    (x_train, y_train), (x_test, y_test) = split(1400), split(400)
    classes = tuple(str(c) for c in range(10))
    return (Dataset(x_train, y_train, x_test, y_test, classes, "digits"),
            "synthetic 8x8 digits (scikit-learn absent)")


def cuda_graph(out_dir: str) -> dict:
    """Capture one LARS and one SGD step on ResNet-20's parameters in a CUDA graph."""
    import cupy
    from lars_ref.optim import LARS, SGD
    from lars_ref.tools.bench_optim import resnet20_tensors
    from lars_ref.tools.cuda_graph import optimizer_capture
    lines, failed = ["| optimizer step (ResNet-20, float32, statistics on) | capture |",
                     "| --- | --- |"], []
    for label, opt in (("LARS (Algorithm 1)", LARS(0.1)),
                       ("SGD (paper form)", SGD(0.1))):
        params, grads = resnet20_tensors(cupy, np.float32)
        outcome = optimizer_capture(opt, params, grads, cupy)
        lines.append(f"| {label} | {outcome} |")
        failed += [label] if outcome != "ok" else []
    lines += ["", f"Also (informative, not required): one whole ResNet-20 training step "
              f"(forward, loss, backward over 2 micro-batches, LARS): "
              f"{_capture_training_step(cupy)}"]
    status = "ok" if not failed else f"failed: {', '.join(failed)}"
    return {"status": status, "markdown": "\n".join(lines)}


def _capture_training_step(cupy) -> str:
    from lars_ref.models import build_model
    from lars_ref.optim import LARS
    from lars_ref.tools.cuda_graph import capture_step
    from lars_ref.train_step import train_step
    model = build_model("resnet20", num_classes=10, in_shape=(3, 32, 32), xp=cupy)
    rng, opt = np.random.default_rng(0), LARS(0.1)
    x = cupy.asarray(rng.normal(size=(32, 3, 32, 32)).astype(np.float32))
    y = cupy.asarray(rng.integers(0, 10, size=32))
    try:
        return capture_step(lambda: train_step(model, opt, x, y, 2), cupy)
    except Exception as err:                      # the warm-up itself failed
        return f"failed before the capture: {type(err).__name__}: {err}"


def nccl(out_dir: str) -> dict:
    """The NCCL tests of ``lars_ref.distributed`` (world size 1), when it exists."""
    if not module_present("lars_ref.distributed"):
        return {"status": "skipped (lars_ref.distributed is not in this checkout)",
                "markdown": "Skipped: lars_ref.distributed is not in this checkout."}
    return _pytest(["-k", "nccl"], "the NCCL path at world size 1")
