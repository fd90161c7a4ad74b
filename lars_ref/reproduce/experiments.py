"""The paper's tables and figures in miniature, as data: one small grid each.

An experiment's runs are the grid (see :mod:`lars_ref.reproduce.grid`) built from
three layers of settings, later ones winning: the size's data and length
(:data:`SIZES`), the experiment's ``settings`` and its ``sizes[size]``, then each
block of its ``blocks``. ``B0`` is the base batch; the largest batch is 32 x B0
(the paper's 512 -> 16K).

``quick`` trains on the first 4096 MNIST images for a few epochs (minutes on a
2-core CPU); ``full`` on 8192 CIFAR-10 images (a seeded draw from the JPEG
copy, whose files are sorted by class) with three seeds
(estimated in ``docs/results.md``).

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import dataclasses

from lars_ref.config import ConfigError
from lars_ref.reproduce.grid import expand_grid

B0, MID, LARGE = 16, 128, 512          # 512 = 32 x B0
SIZES = {
    "quick": {"dataset": "mnist", "train_subset": 4096, "test_subset": 2000,
              "epochs": 6, "seed": 0},
    "full": {"dataset": "cifar10_jpg", "train_subset": 8192, "test_subset": 2000,
             "subset_seed": 0, "epochs": 10, "seed": [0, 1, 2]},  # files by class
}
# LARS base LR per batch (grows with B, not linearly: paper Table 3); 40 at 512 is
# the best of fig4 quick (at 80 it loses 0.95 points) and fig4 full
LARS_LR = {B0: 2.0, 64: 5.0, LARGE: 40.0}
RESNET_LARS_LR = {B0: 2.0, MID: 5.0, LARGE: 10.0}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One named experiment: what it reproduces, its grid, and its figure."""
    title: str
    paper: str          # the paper's numbers or figure, in words (Markdown)
    claim: str          # the paper's claim that this experiment checks
    settings: dict      # shared by every run
    blocks: tuple       # the grid's blocks (each a product of its lists)
    plot: dict          # see lars_ref.reproduce.figures
    sizes: dict = dataclasses.field(default_factory=dict)  # per-size overrides


SGD_SMALL = {"optimizer": "sgd", "batch_size": B0, "lr": 0.02}
# B=512 at 0.32 (= 0.01 at B0, scaled linearly): the paper's LR of its large batch in
# Fig. 1, and within seed noise of the best LR of table1 full at 512 for AlexNet-BN
SGD_LARGE = {"optimizer": "sgd", "batch_size": LARGE, "lr": 0.32, "warmup_epochs": 1}
LARS_LARGE = {"optimizer": "lars", "batch_size": LARGE, "lr": LARS_LR[LARGE],
              "warmup_epochs": 1}

EXPERIMENTS = {
    "table1": Experiment(
        title="Table 1: AlexNet and AlexNet-BN, SGD + linear LR scaling + warm-up",
        paper="AlexNet: 58.8 % at B=512, best 53.1 % at 4K, 44.8 % at 8K; "
              "AlexNet-BN: 60.2 % at 512, 58.9 % at 4K, 58.0 % at 8K (100 epochs; "
              "warm-up 2.5 epochs for AlexNet, none for AlexNet-BN; here one warm-up "
              "epoch for both, and `lr` is the LR at B0 = 16, scaled linearly).",
        claim="Accuracy falls at large batch even with the best LR, and BN narrows "
              "the fall.",
        settings={"optimizer": "sgd", "model": ["alexnet", "alexnet_bn"],
                  "warmup_epochs": 1, "lr_base_batch": B0,
                  "batch_size": [B0, MID, LARGE], "lr": [0.005, 0.01, 0.02, 0.04]},
        blocks=({},), plot={"kind": "sweep", "x": "lr", "panels": "model"}),
    "table3": Experiment(
        title="Table 3: AlexNet and AlexNet-BN with LARS + warm-up, B0 to 32 x B0",
        paper="AlexNet: 58.7 / 58.5 / 58.2 / 55.0 % at 512 / 4K / 8K / 16K; "
              "AlexNet-BN: 60.2 / 60.4 / 60.1 / 59.3 / 57.8 % up to 32K.",
        claim="With LARS the accuracy holds to 8K and falls a little at 16K-32K.",
        settings={"optimizer": "lars", "model": ["alexnet", "alexnet_bn"],
                  "warmup_epochs": 1},
        blocks=({"batch_size": B0, "lr": [1.0, 2.0, 4.0, 8.0]},
                {"batch_size": MID, "lr": [2.0, 5.0, 10.0, 20.0]},
                {"batch_size": LARGE, "lr": [5.0, 10.0, 20.0, 40.0, 80.0]}),
        plot={"kind": "sweep", "x": "batch_size", "panels": "model", "best_of": "lr"}),
    "fig1": Experiment(
        title="Figure 1: the test-minus-train loss gap, small and large batch",
        paper="AlexNet-BN, B=512 (LR 0.02) and 8K (LR 0.32): both gaps noisy in "
              "0-0.8, no systematic difference.",
        claim="Large-batch training does not generalize worse: no larger loss gap.",
        settings={"model": "alexnet_bn"}, blocks=(SGD_SMALL, SGD_LARGE),
        plot={"kind": "curves", "y": "gap"}),
    "fig2": Experiment(
        title="Figure 2: LARS local LR of conv1 and conv5, weights and biases",
        paper="Batches 256 / 1K / 8K: spikes in the first epochs, then lower; the "
              "larger batch sits lower late in training.",
        claim="The local LR differs strongly between layers and batch sizes.",
        settings={"model": "alexnet_bn", "optimizer": "lars", "warmup_epochs": 1,
                  "diag_every": 1},
        blocks=tuple({"batch_size": b, "lr": LARS_LR[b]} for b in (B0, 64, LARGE)),
        plot={"kind": "local_lr",
              "tensors": ["conv1.w", "conv1.b", "conv5.w", "conv5.b"]}),
    "fig3": Experiment(
        title="Figure 3: test accuracy over epochs at a large batch, without and "
              "with LARS",
        paper="AlexNet-BN B=8K: without LARS ends about 0.55 against 0.58 for B=512; "
              "with LARS it catches up by epoch 60 and ends about 0.60.",
        claim="LARS closes the large-batch gap that SGD + warm-up leaves.",
        settings={"model": "alexnet_bn"}, blocks=(SGD_SMALL, SGD_LARGE, LARS_LARGE),
        plot={"kind": "curves", "y": "test_acc"}),
    "fig4": Experiment(
        title="Figure 4: accuracy against the LARS base LR at the two largest batches",
        paper="AlexNet-BN, 16K: 58.6-59.4 % for LR 10-25; 32K: 54.1 % at LR 8, "
              "57-57.8 % for LR 13-29, dropping at 30+.",
        claim="A wide range of base LRs gives nearly the best accuracy.",
        settings={"model": "alexnet_bn", "optimizer": "lars", "warmup_epochs": 1,
                  "batch_size": [256, LARGE], "lr": [5.0, 10.0, 20.0, 40.0, 80.0]},
        blocks=({},), plot={"kind": "sweep", "x": "lr"}),
    "table5": Experiment(
        title="Table 5: accuracy against training length at the largest batch",
        paper="AlexNet-BN B=32K: 57.8 / 59.2 / 59.5 / 59.5 / 59.9 % after "
              "100 / 125 / 150 / 175 / 200 epochs.",
        claim="Training longer recovers the accuracy lost at a very large batch.",
        settings={**LARS_LARGE, "model": "alexnet_bn"}, blocks=({},),
        sizes={"quick": {"epochs": [6, 9, 12]}, "full": {"epochs": [10, 15, 20]}},
        plot={"kind": "sweep", "x": "epochs"}),
    "resnet": Experiment(
        title="Table 4 in miniature: ResNet-20 with LARS across batches",
        paper="ResNet-50: 73.0 % at B=256 (no LARS); with LARS 72.7 / 73.0 / 72.3 % "
              "at 8K / 16K / 32K ([v3]).",
        claim="With LARS and warm-up, ResNet keeps the baseline accuracy up to 32K.",
        settings={"model": "resnet20", "warmup_epochs": 1},
        blocks=({"optimizer": "sgd", "batch_size": B0, "lr": 0.05,
                 "warmup_epochs": 0},
                *({"optimizer": "lars", "batch_size": b, "lr": lr}
                  for b, lr in RESNET_LARS_LR.items())),
        sizes={"quick": {"train_subset": 2048, "epochs": 4},
               "full": {"train_subset": 4096, "epochs": 6}},
        plot={"kind": "sweep", "x": "batch_size", "best_of": "lr"}),
}


def experiment_grid(name: str, size: str) -> dict:
    """The grid of experiment ``name`` at ``size`` ("quick" or "full")."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; choose one of "
                          f"{', '.join(EXPERIMENTS)}")
    if size not in SIZES:
        raise ConfigError(f"unknown --size {size!r}; choose one of {', '.join(SIZES)}")
    experiment = EXPERIMENTS[name]
    return {**SIZES[size], **experiment.settings, **experiment.sizes.get(size, {}),
            "grid": [dict(block) for block in experiment.blocks]}


def experiment_specs(name: str, size: str, overrides: dict | None = None) -> list[dict]:
    """The run specs of an experiment; ``overrides`` replace settings of every run."""
    specs = expand_grid(experiment_grid(name, size), where=f"experiment {name}")
    return [{**spec, **(overrides or {})} for spec in specs]
