"""The result tables of a sweep: one row per run, and mean and spread over seeds.

Numbers are written as text once, here (accuracy in % with 2 decimals, losses with
4), and every table (``runs.csv``, ``results.csv``, ``results.md``) and the
results page show exactly those strings.

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import csv
import os
import statistics

GROUP_FIELDS = ("n_runs", "n_diverged", "n_missing", "test_acc_mean", "test_acc_std",
                "train_loss_mean", "test_loss_mean", "gap_mean", "best")


def percent(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def loss(value) -> str:
    return "" if value is None else f"{value:.4f}"


def varying_keys(rows: list[dict]) -> list[str]:
    """Settings that differ between runs (seed aside), in first-seen order."""
    keys = []
    for row in rows:
        keys += [k for k in row["spec"] if k not in keys]
    return [k for k in keys if k != "seed"
            and len({repr(r["spec"].get(k)) for r in rows}) > 1]


def fixed_settings(rows: list[dict]) -> dict:
    """Settings shared by every run (seed aside)."""
    varying = set(varying_keys(rows)) | {"seed"}
    return {k: v for k, v in rows[0]["spec"].items() if k not in varying}


def group_by_settings(rows: list[dict]) -> list[tuple[dict, list[dict]]]:
    """``(settings without seed, runs)`` in first-seen order."""
    groups: dict[str, tuple[dict, list]] = {}
    for row in rows:
        settings = {k: v for k, v in row["spec"].items() if k != "seed"}
        groups.setdefault(repr(sorted(settings.items())), (settings, []))[1].append(row)
    return list(groups.values())


def _mean(values):
    return statistics.fmean(values) if values else None


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per setting: the varying keys, counts, mean and std over seeds.

    Means are over finished runs; diverged runs are counted in ``n_diverged``
    (their last accuracy is in ``runs.csv``). ``gap`` is test loss - train loss
    of the last epoch (paper Fig. 1). ``best`` marks the best mean accuracy
    among rows that differ only in ``lr`` (the paper's bold rows).
    """
    keys, table = varying_keys(rows), []
    for settings, runs in group_by_settings(rows):
        done = [r for r in runs if r["status"] == "finished"]
        accs = [r["test_acc"] for r in done if r["test_acc"] is not None]
        gaps = [r["test_loss"] - r["train_loss"] for r in done
                if r["test_loss"] is not None and r["train_loss"] is not None]
        table.append({
            **{k: settings.get(k) for k in keys}, "n_runs": len(runs),
            "n_diverged": sum(r["status"] == "diverged" for r in runs),
            "n_missing": sum(r["status"] not in ("finished", "diverged") for r in runs),
            "test_acc_mean": percent(_mean(accs)),
            "test_acc_std": percent(statistics.stdev(accs)) if len(accs) > 1 else "",
            "train_loss_mean": loss(_mean([r["train_loss"] for r in done])),
            "test_loss_mean": loss(_mean([r["test_loss"] for r in done])),
            "gap_mean": loss(_mean(gaps)), "best": ""})
    if "lr" in keys:
        _mark_best(table, [k for k in keys if k != "lr"])
    return table


def _mark_best(table: list[dict], other_keys: list[str]) -> None:
    """Mark the best row of each LR sweep (rows alike but for ``lr``; two or more)."""
    sweeps: dict[tuple, list] = {}
    for row in table:
        sweeps.setdefault(tuple(repr(row[k]) for k in other_keys), []).append(row)
    for rows in sweeps.values():
        scored = [row for row in rows if row["test_acc_mean"]]
        if len(rows) > 1 and scored:
            max(scored, key=lambda row: float(row["test_acc_mean"]))["best"] = "yes"


def run_table(rows: list[dict]) -> list[dict]:
    """One row per run: name, varying settings, seed, status and last numbers."""
    keys = varying_keys(rows)
    return [{"run": r["run"], **{k: r["spec"].get(k) for k in keys},
             "seed": r["spec"].get("seed", 0), "status": r["status"],
             "epochs_done": r.get("epochs_done"),
             "test_acc": percent(r.get("test_acc")),
             "train_loss": loss(r.get("train_loss")),
             "test_loss": loss(r.get("test_loss")), "wall_s": r.get("wall_s"),
             "cpu_s": r.get("cpu_s")}
            for r in rows]


def write_csv(table: list[dict], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def read_csv(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


HEADINGS = {"batch_size": "batch", "warmup_epochs": "warm-up (epochs)",
            "n_runs": "seeds", "n_diverged": "diverged", "n_missing": "missing",
            "test_acc_mean": "test top-1 %", "test_acc_std": "std",
            "gap_mean": "test-train loss", "lr_base_batch": "LR given at batch"}
MARKDOWN_FIELDS = ("n_runs", "n_diverged", "test_acc_mean", "test_acc_std", "gap_mean")


def markdown_table(table: list[dict]) -> str:
    """``results.csv`` rows (strings) as a Markdown table; best rows in bold."""
    keys = [k for k in table[0] if k not in GROUP_FIELDS]
    if any(row.get("n_missing") not in ("0", 0) for row in table):
        keys_extra = ("n_missing",)
    else:
        keys_extra = ()
    columns = keys + list(MARKDOWN_FIELDS) + list(keys_extra)
    lines = ["| " + " | ".join(HEADINGS.get(c, c) for c in columns) + " |",
             "| " + " | ".join("---:" for _ in columns) + " |"]
    for row in table:
        cells = [str(row[c]) if row[c] not in (None, "") else "-" for c in columns]
        if row.get("best") == "yes":
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out_dir: str) -> list[str]:
    """Write ``runs.csv``, ``results.csv`` and ``results.md``; return their paths."""
    paths = [os.path.join(out_dir, name) for name in
             ("runs.csv", "results.csv", "results.md")]
    write_csv(run_table(rows), paths[0])
    write_csv(aggregate(rows), paths[1])
    settings = ", ".join(f"{k}={v}" for k, v in fixed_settings(rows).items())
    with open(paths[2], "w", encoding="utf-8") as handle:
        handle.write(f"Settings of every run: {settings}\n\n")
        handle.write(markdown_table(read_csv(paths[1])))
    return paths
