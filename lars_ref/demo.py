"""``lars-ref demo``: paper Tables 1 and 3 and Fig. 2 in miniature, on 8x8 digits.

A small AlexNet-BN (the authors' layer order, widths / 16) is trained on
scikit-learn's 8x8 digits (1437 training, 360 test images) for the same number
of epochs at a small and at a large batch:

* (a) SGD with momentum, the LR scaled linearly with the batch (paper Eq. 2-3)
  and a linear warm-up for the large batch (Goyal et al. 2017), as in Table 1;
  the large batch is also run at half the linearly scaled LR, because the
  paper's best large-batch LRs were not linear either (Table 1a);
* (b) LARS (Algorithm 1, eta = 0.001) with warm-up, as in Table 3.

It prints both tables, saves ``accuracy.png`` (test top-1 per epoch, Fig. 3
style) and ``local_lr.png`` (the local LR lambda of the first and last layer
over training, Fig. 2 style) plus each run's metrics, in the output folder.

The weights start from the authors' init rescaled to the paper network's gain
(``init="paper_gain"``, see :func:`lars_ref.models.weight_stds`):
with the unscaled init, SGD does not learn the small model at any batch size.

Introduced in ``README.md``.
"""
from __future__ import annotations

import dataclasses
import os
import time

from lars_ref.backend import BACKEND_NAMES, resolve_backend
from lars_ref.tools.host_memory import keep_freed_host_memory
from lars_ref.config import TrainConfig
from lars_ref.data import load_dataset
from lars_ref.run_folder import check_output_folder
from lars_ref.train import train


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """One row of the demo's tables."""
    table: str             # "sgd" (Table 1 shape) or "lars" (Table 3 shape)
    batch_size: int
    lr: float              # gamma_0 at this batch
    warmup_epochs: float
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.table}_B{self.batch_size}_lr{self.lr:g}"


SMALL_BATCH, LARGE_BATCH = 32, 512
BASE_LR = 0.04             # SGD at the small batch; linear scaling gives 0.64 at 512
LINEAR_LR = BASE_LR * LARGE_BATCH / SMALL_BATCH
DEFAULT_EPOCHS = 30
WARMUP_EPOCHS = 3.0
DEFAULT_RUNS = (
    DemoRun("sgd", SMALL_BATCH, BASE_LR, 0.0, "baseline"),
    DemoRun("sgd", LARGE_BATCH, LINEAR_LR, WARMUP_EPOCHS, "linear scaling"),
    DemoRun("sgd", LARGE_BATCH, LINEAR_LR / 2, WARMUP_EPOCHS, "half of linear"),
    DemoRun("lars", SMALL_BATCH, 3.0, WARMUP_EPOCHS),
    DemoRun("lars", LARGE_BATCH, 20.0, WARMUP_EPOCHS),
)
QUICK_EPOCHS = 1
QUICK_RUNS = (
    DemoRun("sgd", 128, 0.16, 0.0, "baseline"),
    DemoRun("sgd", 512, 0.64, 0.5, "linear scaling"),
    DemoRun("lars", 128, 3.0, 0.5),
    DemoRun("lars", 512, 20.0, 0.5),
)


def register(commands) -> None:
    """Add ``demo`` to the ``lars-ref`` command tree (argparse subparsers)."""
    demo = commands.add_parser(
        "demo", help="the paper's story in a few minutes on 8x8 digits (start here)",
        description=(
            "Train a small AlexNet-BN on scikit-learn's 8x8 digits at a small and a\n"
            "large batch, with (a) SGD + linear LR scaling + warm-up and (b) LARS.\n"
            "Prints a table shaped like the paper's Tables 1 and 3 and saves plots\n"
            "(test accuracy curves; local LR of the first and last layer, as in\n"
            "paper Fig. 2) in the output folder.\n\n"
            "example:  lars-ref demo --out demo_out"))
    flag = demo.add_argument
    flag("--quick", action="store_true",
         help="tiny settings that finish in seconds (a smoke test)")
    flag("--out", default="lars_ref_out/demo",
         help="folder for the table, metrics and plots (default: %(default)s)")
    flag("--backend", default="numpy", choices=BACKEND_NAMES,
         help="array backend; cupy runs on a GPU (default: %(default)s)")
    flag("--epochs", type=float, default=None,
         help="epochs per run (default: the demo's tuned value, "
              f"{DEFAULT_EPOCHS})")
    flag("--seed", type=int, default=0, help="seed (default: %(default)s)")
    flag("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=run_demo_command)


def run_demo_command(args) -> int:
    """``lars-ref demo``: check the output folder, then run the demo."""
    check_output_folder(args.out, "--out")
    keep_freed_host_memory()
    run_demo(out_dir=args.out, backend=args.backend, quick=args.quick,
             epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    return 0


def demo_config(run: DemoRun, *, epochs: float, seed: int, out_dir: str,
                backend: str, progress: bool, num_train: int = 1437) -> TrainConfig:
    """The :class:`TrainConfig` of one demo run (AlexNet-BN on the digits' 1437)."""
    steps_per_epoch = num_train // run.batch_size
    return TrainConfig(
        model="alexnet_bn", dataset="digits", init="paper_gain", optimizer=run.table,
        lr=run.lr, momentum=0.9, weight_decay=5e-4, eta=0.001, epochs=epochs,
        warmup_epochs=run.warmup_epochs, batch_size=run.batch_size, seed=seed,
        backend=backend, out=os.path.join(out_dir, run.name), progress=progress,
        log_every=max(1, steps_per_epoch), diag_every=max(1, steps_per_epoch // 8),
        console=False,  # the demo prints one line per run instead
        blas_threads=1)  # small GEMMs: 1 BLAS thread is fastest (unused on a GPU)


def run_demo(out_dir: str = "lars_ref_out/demo", *, backend: str = "numpy",
             quick: bool = False, epochs: float | None = None, seed: int = 0,
             progress: bool = True) -> list[tuple[DemoRun, object]]:
    """Train every demo run, print the tables, save the plots; return (run, result)."""
    runs = QUICK_RUNS if quick else DEFAULT_RUNS
    epochs = epochs or (QUICK_EPOCHS if quick else DEFAULT_EPOCHS)
    resolve_backend(backend)  # a missing GPU is reported before any training
    digits = load_dataset("digits")
    started, results = time.perf_counter(), []
    for i, run in enumerate(runs, start=1):
        print(f"[{i}/{len(runs)}] {run.table.upper()} B={run.batch_size} lr={run.lr:g} "
              f"warm-up={run.warmup_epochs:g} epochs ...", flush=True)
        config = demo_config(run, epochs=epochs, seed=seed, out_dir=out_dir,
                             backend=backend, progress=progress,
                             num_train=len(digits.x_train))
        result = train(config, dataset=digits)
        if result.interrupted:  # Ctrl-C: the run wrote its checkpoint; stop the demo
            raise KeyboardInterrupt
        results.append((run, result))
    tables = format_tables(results, epochs)
    if quick:
        tables += "\n(--quick: a smoke test of seconds; its accuracies mean nothing)\n"
    print("\n" + tables)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tables.md"), "w", encoding="utf-8") as f:
        f.write(tables)
    plots = [plot_accuracy(results, out_dir),
             plot_local_lr(results, out_dir, len(digits.x_train))]
    names = ", ".join(os.path.basename(p) for p in plots)
    print(f"\n{len(results)} runs in {time.perf_counter() - started:.0f} s. Tables, "
          f"plots ({names}) and per-run metrics are in {os.path.abspath(out_dir)}")
    return results


def format_tables(results, epochs: float) -> str:
    """Markdown tables shaped like paper Tables 1 and 3: batch, LR, warm-up, top-1."""
    titles = {"sgd": f"(a) SGD + linear LR scaling + warm-up (paper Table 1 shape), "
                     f"{epochs:g} epochs",
              "lars": f"(b) LARS, eta = 0.001 (paper Table 3 shape), {epochs:g} epochs"}
    blocks = []
    for table, title in titles.items():
        lines = [title, "", "| Batch | Base LR | warm-up (epochs) | top-1 % | note |",
                 "| ---: | ---: | ---: | ---: | --- |"]
        for run, result in results:
            if run.table != table:
                continue
            acc = result.final_test_acc
            top1 = "diverged" if result.diverged else (
                "n/a" if acc is None else f"{100 * acc:.1f}")
            warmup = f"{run.warmup_epochs:g}" if run.warmup_epochs else "none"
            lines.append(f"| {run.batch_size} | {run.lr:g} | {warmup} | {top1} | "
                         f"{run.note} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# ----------------------------------------------------------------------------------
# Plots (matplotlib, Agg backend: no display needed)
# ----------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(run: DemoRun) -> str:
    return f"{run.table.upper()} B={run.batch_size}, LR {run.lr:g}"


def plot_accuracy(results, out_dir: str) -> str:
    """Test top-1 per epoch of every run (paper Fig. 3 style); return the PNG path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run, result in results:
        rows = [r for r in result.epochs if r["test_acc"] is not None]
        ax.plot([r["epoch"] for r in rows], [100 * r["test_acc"] for r in rows],
                linestyle="-" if run.table == "lars" else "--", marker=".",
                label=_label(run))
    ax.set(xlabel="epoch", ylabel="test top-1 (%)", ylim=(0, 100),
           title="AlexNet-BN on 8x8 digits: small vs large batch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    path = os.path.join(out_dir, "accuracy.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _epoch_means(result, layer: str, steps_per_epoch: int):
    """Per epoch, the mean local LR of ``layer`` over its diagnostics rows."""
    by_epoch: dict[int, list] = {}
    for row in result.layers:
        if row["name"] == layer:
            epoch = row["step"] // steps_per_epoch
            by_epoch.setdefault(epoch, []).append(row["local_lr"])
    epochs = sorted(by_epoch)
    means = [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
    return [e + 1 for e in epochs], means


def plot_local_lr(results, out_dir: str, num_train: int) -> str:
    """Local LR lambda of the first and the last weight in the LARS runs (Fig. 2)."""
    plt = _pyplot()
    lars_runs = [(run, result) for run, result in results if run.table == "lars"]
    weights = [row["name"] for row in lars_runs[0][1].layers
               if row["step"] == 0 and row["name"].endswith(".w")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, layer in zip(axes, (weights[0], weights[-1])):
        for run, result in lars_runs:
            steps_per_epoch = num_train // run.batch_size
            epochs, mean_lambda = _epoch_means(result, layer, steps_per_epoch)
            ax.plot(epochs, mean_lambda, marker=".", label=f"B={run.batch_size}")
        ax.set(xlabel="epoch", ylabel="local LR lambda (mean over the epoch)",
               yscale="log", title=f"LARS: eta ||w|| / (||g|| + beta ||w||) of {layer}")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    path = os.path.join(out_dir, "local_lr.png")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
