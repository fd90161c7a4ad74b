"""The experiments of the read-along notebooks 05-07, small enough for a laptop CPU.

Each function runs one short experiment on scikit-learn's 8x8 digits with the
library's own training loop (:func:`lars_ref.train.train`) and returns plain
rows, so a notebook only calls, prints, plots and asserts:

* :func:`lr_sweep` (notebook 05): AlexNet (LRN) against AlexNet-BN over a grid of
  base LRs, paper Table 1 (a) against (b) in miniature;
* :func:`scale_invariance` (notebook 05): why BN lets the LR grow;
* :func:`batch_sweep` (notebook 06): SGD and LARS at several batch sizes, paper
  Table 3 and Fig. 3 in miniature, with the per-tensor diagnostics of Fig. 2;
* :func:`epoch_means` (notebook 06): a diagnostics column averaged per epoch;
* :func:`worker_gradients` (notebook 07): the gradients of P data-parallel
  workers, computed one after the other in this process.

Introduced in ``notebooks/05_alexnet_vs_alexnet_bn.ipynb``.
"""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import NamedTuple

import numpy as np

from lars_ref.checkpoint import load_checkpoint
from lars_ref.config import TrainConfig
from lars_ref.data import channel_stats, eval_transform, load_dataset
from lars_ref.demo import DemoRun, demo_config
from lars_ref.errors import UserError
from lars_ref.functional import softmax_cross_entropy
from lars_ref.models import build_model
from lars_ref.nn import BatchNorm, ChannelsLastNetwork
from lars_ref.nn.layout import to_channels_last
from lars_ref.train import checkpoint_path, train
from lars_ref.train_step import forward_backward

DIGITS_SHAPE, DIGITS_CLASSES = (1, 8, 8), 10
TRAINS_AT = 0.5    # a run "trains" when its test top-1 reaches 50% (chance: 10%)


def digits():
    """scikit-learn's 8x8 digits as a :class:`lars_ref.data.Dataset` (offline)."""
    return load_dataset("digits")


def normalised_digits_batch(dataset, size: int):
    """The first ``size`` training digits, normalised as in training, and labels."""
    mean, std = channel_stats(dataset.x_train)
    x = eval_transform(mean, std)(dataset.x_train[:size]).astype(np.float32)
    return x, dataset.y_train[:size]


class SweepRow(NamedTuple):
    """One run of a sweep."""
    model: str
    seed: int
    lr: float
    top1: float      # final test top-1 in [0, 1]; 0.1 is chance on the digits
    diverged: bool


def lr_sweep(model_names, lrs, seeds, *, batch_size=256, epochs=15,
             warmup_epochs=None) -> list:
    """Train each model at each base LR and seed with SGD + poly(2); return SweepRow.

    Both networks start from init "he" (:func:`lars_ref.models.weight_stds`): at
    the authors' init the small AlexNet with LRN learns nothing in tens of
    epochs, so there would be no LR range to compare.

    ``warmup_epochs`` maps a model name to its linear warm-up from LR 0.001
    (paper Table 1: 2.5 epochs for AlexNet, none for AlexNet-BN). The runs'
    files go to a temporary folder, removed at the end.
    """
    with tempfile.TemporaryDirectory(prefix="lars_ref_sweep_") as out_dir:
        return [_sweep_run(name, seed, lr, batch_size, epochs,
                           (warmup_epochs or {}).get(name, 0.0), out_dir)
                for name in model_names for seed in seeds for lr in lrs]


def _sweep_run(name, seed, lr, batch_size, epochs, warmup_epochs, out_dir) -> SweepRow:
    """One SGD run of :func:`lr_sweep` (init "he", warm-up from LR 0.001)."""
    config = TrainConfig(
        model=name, dataset="digits", init="he", optimizer="sgd", lr=lr, epochs=epochs,
        batch_size=batch_size, seed=seed, warmup_start_lr=0.001,
        warmup_epochs=warmup_epochs, progress=False, console=False,
        out=os.path.join(out_dir, f"{name}_s{seed}_lr{lr:g}"),
        log_every=1000, diag_every=1000, blas_threads=1)
    result = train(config, dataset=digits())
    return SweepRow(name, seed, lr, result.final_test_acc or 0.0, result.diverged)


def mean_top1(rows, model: str) -> dict:
    """``{lr: mean test top-1 over the seeds}`` of one model's sweep rows."""
    by_lr: dict = {}
    for row in rows:
        if row.model == model:
            by_lr.setdefault(row.lr, []).append(row.top1)
    return {lr: float(np.mean(v)) for lr, v in sorted(by_lr.items())}


def largest_trained_lr(rows, model: str, threshold: float = TRAINS_AT):
    """The largest base LR whose mean top-1 reaches ``threshold`` (None if none)."""
    trained = [lr for lr, top1 in mean_top1(rows, model).items() if top1 >= threshold]
    return max(trained) if trained else None


def output_of(model, x, layer: str, train: bool = True):
    """The output of the child ``layer`` of a Sequential ``model`` for input ``x``.

    ``x`` is NCHW; a :class:`~lars_ref.nn.ChannelsLastNetwork` hands its children
    NHWC, and so does this function (the output is then in that layout).
    """
    if isinstance(model, ChannelsLastNetwork) and x.ndim == 4:
        x = to_channels_last(x)
    for name, module in model.layers:
        x = module.forward(x, train=train)
        if name == layer:
            return x
    raise KeyError(f"model has no child {layer!r}")


def scale_invariance(model_name: str, layer: str, factor: float, x, y, seed=0,
                     probe: str = "conv2", bn_eps=None):
    """Scale ``layer.w`` and ``layer.b`` by ``factor``; compare an output and ||grad||.

    Returns ``(||out_after - out_before|| / ||out_before||,
    ||g_after|| / ||g_before||)``
    with ``out`` the output of the child ``probe`` and ``g`` the gradient of
    ``layer.w``, in training mode. For conv1 of AlexNet-BN the ReLU and max-pool
    pass the factor through and the BN at conv2's input removes it, so conv2's
    output stays (up to BN's eps) and the gradient shrinks by 1 / factor.
    The model has ``x``'s dtype; ``bn_eps`` replaces every BatchNorm's eps
    (a tiny one makes the invariance exact, to rounding).
    """
    def probe_and_grad_norm(model):
        probed = output_of(model, x, probe).astype(np.float64)
        _, dlogits = softmax_cross_entropy(model.forward(x, train=True), y)
        model.zero_grad()
        model.backward(dlogits)
        return probed, float(np.linalg.norm(dict(model.named_grads())[f"{layer}.w"]))

    model = build_model(model_name, num_classes=DIGITS_CLASSES, in_shape=DIGITS_SHAPE,
                        seed=seed, dropout=0.0, dtype=x.dtype)
    for _, module in model.named_modules():
        if bn_eps is not None and isinstance(module, BatchNorm):
            module.eps = bn_eps
    before, grad_before = probe_and_grad_norm(model)
    params = dict(model.named_parameters())
    for suffix in (".w", ".b"):
        params[layer + suffix] *= factor
    after, grad_after = probe_and_grad_norm(model)
    return float(np.linalg.norm(after - before) / np.linalg.norm(before)), \
        grad_after / grad_before


def batch_sweep(runs, *, epochs=20, seed=0) -> list:
    """Train AlexNet-BN on the digits for each :class:`DemoRun`; return (run, result).

    The settings are those of ``lars-ref demo`` (momentum 0.9, weight decay 5e-4,
    eta 0.001, poly(2), the authors' init rescaled to the paper's gain). The
    runs' files go to a temporary folder, removed at the end; the results keep
    their metric rows and trained models in memory.
    """
    dataset = digits()
    with tempfile.TemporaryDirectory(prefix="lars_ref_batches_") as out_dir:
        return [(run, train(demo_config(run, epochs=epochs, seed=seed, out_dir=out_dir,
                                        backend="numpy", progress=False,
                                        num_train=len(dataset.x_train)),
                            dataset=dataset))
                for run in runs]


def worker_gradients(model, x, y, workers: int, iter_size: int = 1) -> list:
    """Each of ``workers`` data-parallel workers' gradients, computed in this process.

    Worker p takes the p-th contiguous shard of the global batch (B / workers
    samples) and accumulates it over ``iter_size`` micro-batches, exactly as a
    process of a data-parallel run does before the all-reduce. Returns one
    ``{name: grad copy}`` per worker; their mean is what the all-reduce gives.
    """
    B = x.shape[0]
    if B % workers:
        raise ValueError(f"a batch of {B} does not split over {workers} workers")
    shard = B // workers
    grads = []
    for p in range(workers):
        part = slice(p * shard, (p + 1) * shard)
        forward_backward(model, x[part], y[part], iter_size)
        grads.append({name: g.copy() for name, g in model.named_grads()})
    return grads


def mean_over_workers(grads: list) -> dict:
    """The element-wise mean of the workers' gradients (an all-reduce of the mean)."""
    return {name: sum(g[name] for g in grads) / len(grads) for name in grads[0]}


def max_relative_difference(a: dict, b: dict) -> float:
    """max over tensors of ``max|a - b| / max|b|`` (0 when they are equal)."""
    return max(float(np.abs(a[n] - b[n]).max() / np.abs(b[n]).max()) for n in b)


def data_parallel_status():
    """None when multi-process runs work here; else what is missing, and the fix."""
    try:
        from lars_ref.distributed import import_mpi
        from lars_ref.launch import find_mpiexec
    except ImportError:
        return ("this lars_ref has no data-parallel support (lars_ref/distributed.py); "
                "update it, then pip install -e '.[mpi]'")
    try:
        import_mpi()
        find_mpiexec()
    except UserError as err:
        return str(err)
    return None


def trained_weights(settings: dict, procs: int = 1) -> dict:
    """Train ``TrainConfig(**settings)`` in ``procs`` processes; the final weights.

    ``procs > 1`` runs ``python -m lars_ref train --config`` with ``procs = P``
    (lars-ref then starts ``mpiexec``); :func:`data_parallel_status` says
    whether this machine can.
    """
    with tempfile.TemporaryDirectory(prefix="lars_ref_procs_") as out_dir:
        config = TrainConfig(**settings, out=out_dir, progress=False, console=False)
        if procs == 1:
            train(config)
        else:
            settings_file = os.path.join(out_dir, "settings.json")
            with open(settings_file, "w", encoding="utf-8") as f:
                json.dump(dict(config.to_dict(), procs=procs), f)
            command = [sys.executable, "-m", "lars_ref", "train", "--config",
                       settings_file]
            run = subprocess.run(command, capture_output=True, text=True, check=False)
            if run.returncode:
                raise RuntimeError(f"{' '.join(command)} failed:\n{run.stderr[-2000:]}")
        return load_checkpoint(checkpoint_path(out_dir))["model"]


def epoch_means(result, tensor: str, field: str) -> tuple:
    """``(epochs, means)``: a diagnostics column of one tensor averaged per epoch.

    ``field`` is a column of :data:`lars_ref.diagnostics.COLUMNS`, e.g.
    ``"local_lr"`` (paper Fig. 2) or ``"w_over_g"`` (Table 2's ratio).
    Epochs count from 1.
    """
    steps_per_epoch = len(digits().x_train) // result.config.batch_size
    by_epoch: dict = {}
    for row in result.layers:
        if row["name"] == tensor:
            by_epoch.setdefault(row["step"] // steps_per_epoch, []).append(row[field])
    epochs = sorted(by_epoch)
    return [e + 1 for e in epochs], [float(np.mean(by_epoch[e])) for e in epochs]


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAP_PATH = os.path.join(REPO_ROOT, "docs", "paper_map.md")


def paper_map_rows(path: str = MAP_PATH) -> list:
    """The rows of ``docs/paper_map.md``'s table as dicts.

    Keys: the table's header, ``paper``, ``code``, ``notebook``, ``tests``.
    """
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
            for line in lines[2:]]


def _named_in(path: str, name: str) -> bool:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    last = name.split(".")[-1]
    return any(f"{kind} {last}" in text for kind in ("def", "class")) or \
        f"{last} =" in text


def missing_map_targets(rows, root: str = REPO_ROOT) -> list:
    """Every file, function, notebook or test the map names that does not exist.

    A code reference ``path.py::name`` is looked up under ``lars_ref/`` (a bare
    file name in any of its folders), a test ``test_x.py::test_y`` under
    ``tests/``, a notebook number ``NN`` as ``notebooks/NN_*.ipynb``. Returns
    the references not found (empty: the map is true).
    """
    missing = []
    for row in rows:
        for cell, folder in ((row["code"], "lars_ref"), (row["tests"], "tests")):
            for ref in re.findall(r"`([^`]+\.py(?:::[\w.]+)?)`", cell):
                file_name, _, name = ref.partition("::")
                paths = glob.glob(os.path.join(root, folder, file_name)) or glob.glob(
                    os.path.join(root, folder, "**", file_name), recursive=True)
                if not paths or (name and not any(_named_in(p, name) for p in paths)):
                    missing.append(ref)
        for number in re.findall(r"\b(\d\d)\b", row["notebook"]):
            if not glob.glob(os.path.join(root, "notebooks", f"{number}_*.ipynb")):
                missing.append(f"notebook {number}")
    return missing


__all__ = ["DemoRun", "SweepRow", "TRAINS_AT", "batch_sweep", "digits", "epoch_means",
           "largest_trained_lr", "lr_sweep", "max_relative_difference",
           "mean_over_workers", "mean_top1", "data_parallel_status", "trained_weights",
           "missing_map_targets", "paper_map_rows",
           "normalised_digits_batch", "output_of", "scale_invariance",
           "worker_gradients"]
