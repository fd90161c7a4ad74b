"""The figures of a sweep (PNG, matplotlib's Agg backend), chosen by a small plot spec.

Three kinds, each averaging over seeds (lines are labelled by the settings that
differ between them):

* ``{"kind": "sweep", "x": KEY, "panels": KEY?, "best_of": KEY?}``: final test
  accuracy against one setting (LR, batch, epochs), error bars one std; with
  ``best_of`` ("lr"), each point is the best over that setting (Tables 1, 3, 4,
  5; Fig. 4);
* ``{"kind": "curves", "y": "test_acc" | "gap"}``: per epoch, test accuracy or
  |test loss - train loss| (Figs. 3 and 1);
* ``{"kind": "local_lr", "tensors": [...]}``: the LARS local LR lambda of some
  tensors, mean per epoch, one panel each (Fig. 2).

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import json
import math
import os
import statistics

from lars_ref.reproduce.results import group_by_settings, varying_keys


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(settings: dict, keys: list[str]) -> str:
    shown = {k: "default" if settings.get(k) is None else settings[k] for k in keys}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "all runs"


def _read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _mean_curve(curves: list[dict]) -> tuple[list, list]:
    """Mean over seeds of ``{x: y}`` curves, at the x every curve has."""
    xs = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return xs, [statistics.fmean(c[x] for c in curves) for x in xs]


def plot(rows: list[dict], spec: dict, path: str, title: str) -> str:
    """Draw the figure ``spec`` asks for from the runs in ``rows``; return ``path``."""
    plt = _pyplot()
    draw = {"sweep": _sweep, "curves": _curves, "local_lr": _local_lr}[spec["kind"]]
    fig = draw(plt, rows, spec)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sweep(plt, rows, spec):
    x_key, panel_key = spec["x"], spec.get("panels")
    panels = sorted({r["spec"].get(panel_key) for r in rows}, key=str) if panel_key \
        else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7, 5 * len(panels)), 4.5),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        chosen = [r for r in rows
                  if panel_key is None or r["spec"].get(panel_key) == panel]
        for label, points in _sweep_lines(chosen, spec).items():
            xs = sorted(points)
            ax.errorbar(xs, [points[x][0] for x in xs], [points[x][1] for x in xs],
                        marker="o", capsize=3, label=label)
        if x_key in ("lr", "batch_size"):
            ax.set_xscale("log", base=2 if x_key == "batch_size" else 10)
        best = f" (best {spec['best_of']} of each point)" if "best_of" in spec else ""
        ax.set(xlabel=x_key, ylabel="final test top-1 (%)" + best,
               title=f"{panel_key}={panel}" if panel_key else "")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _sweep_lines(rows, spec) -> dict:
    """``{label: {x: (mean %, std %)}}`` over seeds; ``best_of``: its best value."""
    x_key, best_of = spec["x"], spec.get("best_of")
    line_keys = [k for k in varying_keys(rows)
                 if k not in (x_key, spec.get("panels"), best_of)]
    lines: dict[str, dict] = {}
    for settings, runs in group_by_settings(rows):
        accs = [100 * r["test_acc"] for r in runs
                if r["status"] == "finished" and r["test_acc"] is not None]
        if not accs:
            continue
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        point = (statistics.fmean(accs), spread)
        line = lines.setdefault(_label(settings, line_keys), {})
        x = settings[x_key]
        if x not in line or point[0] > line[x][0]:  # without best_of: one group per x
            line[x] = point
    return lines


def _curves(plt, rows, spec):
    y_key = spec["y"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = varying_keys(rows)
    for settings, runs in group_by_settings(rows):
        curves = []
        for run in runs:
            rows_of_run = _read_jsonl(os.path.join(run["run_dir"], "epochs.jsonl"))
            epochs = [e for e in rows_of_run if e["test_loss"] is not None]
            if y_key == "gap":
                curves.append({e["epoch"]: abs(e["test_loss"] - e["train_loss"])
                               for e in epochs})
            else:
                curves.append({e["epoch"]: 100 * e[y_key] for e in epochs})
        xs, ys = _mean_curve(curves)
        ax.plot(xs, ys, marker=".", label=_label(settings, keys))
    ax.set(xlabel="epoch", ylabel={"gap": "|test loss - train loss|",
                                   "test_acc": "test top-1 (%)"}[y_key])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _local_lr(plt, rows, spec):
    tensors = spec["tensors"]
    columns = 2
    fig, axes = plt.subplots(math.ceil(len(tensors) / columns), columns,
                             figsize=(10, 3.5 * math.ceil(len(tensors) / columns)),
                             squeeze=False)
    keys = varying_keys(rows)
    for ax, tensor in zip(axes.ravel(), tensors):
        for settings, runs in group_by_settings(rows):
            xs, ys = _mean_curve([_local_lr_per_epoch(r["run_dir"], tensor)
                                  for r in runs])
            ax.plot(xs, ys, marker=".", label=_label(settings, keys))
        ax.set(xlabel="epoch", ylabel="local LR lambda (epoch mean)", yscale="log",
               title=tensor)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig


def _local_lr_per_epoch(run_dir: str, tensor: str) -> dict:
    """Epoch (1-based) -> mean local LR of ``tensor`` over that epoch's rows."""
    epochs = _read_jsonl(os.path.join(run_dir, "epochs.jsonl"))
    if not epochs:
        return {}
    steps_per_epoch = max(1, round(epochs[0]["step"] / epochs[0]["epoch"]))
    by_epoch: dict[int, list] = {}
    for row in _read_jsonl(os.path.join(run_dir, "layers.jsonl")):
        if row["name"] == tensor and row["local_lr"] is not None:
            by_epoch.setdefault(row["step"] // steps_per_epoch + 1, []).append(
                row["local_lr"])
    return {epoch: statistics.fmean(values) for epoch, values in by_epoch.items()}
