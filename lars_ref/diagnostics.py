"""Per-tensor LARS diagnostics: ||w||, ||g||, ||w||/||g||, local LR, update/weight ratio.

Paper: You, Gitman, Ginsburg (2017), Table 2 (``||w||``, ``||grad L(w)||`` and their
ratio per layer at the first iteration) and Figure 2 (the local LR lambda^l of
conv1/conv5 weights and biases over training).

Cheap by design: an optimizer leaves device 0-d arrays in ``opt.last_stats`` every
step; :class:`DiagnosticsRecorder` keeps references to them every ``every`` steps
and :meth:`DiagnosticsRecorder.flush` stacks all pending values into one array and
copies it to the host in one transfer. Rows export as CSV and JSON lines.

Row columns (:data:`COLUMNS`): ``step, name, w_norm, g_norm, w_over_g, local_lr,
update_norm, update_over_w`` with ``w_over_g = ||w||/||g||`` and ``update_over_w =
||w_{t+1} - w_t|| / ||w_t||`` (the effective step). A ratio with a zero denominator
is ``inf`` (CSV) or ``null`` (JSON lines, which has no infinity).

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

import math
import os

from lars_ref.backend import get_xp, to_numpy
from lars_ref.optim import l2_norm
from lars_ref.table_files import append_csv, append_jsonl

STAT_FIELDS = ("w_norm", "g_norm", "local_lr", "update_norm")
COLUMNS = ("step", "name", "w_norm", "g_norm", "w_over_g", "local_lr", "update_norm",
           "update_over_w")
TABLE2_COLUMNS = ("name", "w_norm", "g_norm", "ratio")


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


def gather_scalars(values: list) -> list:
    """Copy a list of device 0-d values to host floats in ONE device-to-host transfer."""
    if not values:
        return []
    xp = get_xp(*values)
    stacked = xp.stack([xp.asarray(v).astype(xp.float64) for v in values])
    return [float(x) for x in to_numpy(stacked)]


class DiagnosticsRecorder:
    """Collect ``opt.last_stats`` every ``every`` steps; gather to the host on ``flush``.

    Parameters
    ----------
    every : int
        Record at steps ``t`` with ``t % every == 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from lars_ref.optim import LARS
    >>> params, grads = {"fc.w": np.array([3.0, 4.0])}, {"fc.w": np.array([0.0, 1.0])}
    >>> opt, recorder = LARS(1.0, weight_decay=0.0, eta=0.1), DiagnosticsRecorder()
    >>> opt.step(params, grads)
    >>> recorder.record(0, opt.last_stats)
    True
    >>> row = recorder.flush()[0]
    >>> row["name"], row["w_over_g"], row["local_lr"]
    ('fc.w', 5.0, 0.5)
    """

    def __init__(self, every: int = 1):
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got every={every!r}")
        self.every = int(every)
        self._pending = []          # (step, name, {field: device 0-d value})
        self.rows = []              # host rows, in recording order

    def record(self, step: int, last_stats: dict) -> bool:
        """Keep references to this step's stats if ``step % every == 0``; no transfer."""
        if step % self.every != 0:
            return False
        for name, stats in last_stats.items():
            missing = [f for f in STAT_FIELDS if f not in stats]
            if missing:
                raise ValueError(f"stats of tensor {name!r} lack fields {missing}")
            self._pending.append((int(step), name, {f: stats[f] for f in STAT_FIELDS}))
        return True

    def pending_values(self) -> list:
        """The pending device values, in the order :meth:`take` expects them back."""
        return [stats[f] for _, _, stats in self._pending for f in STAT_FIELDS]

    def take(self, host_values: list) -> list:
        """The pending rows, built from ``host_values`` (floats); kept in ``rows``."""
        host = iter(host_values)
        new_rows = []
        for step, name, _ in self._pending:
            w_norm, g_norm, local_lr, update_norm = (next(host) for _ in STAT_FIELDS)
            new_rows.append({"step": step, "name": name, "w_norm": w_norm, "g_norm": g_norm,
                             "w_over_g": _ratio(w_norm, g_norm), "local_lr": local_lr,
                             "update_norm": update_norm,
                             "update_over_w": _ratio(update_norm, w_norm)})
        self._pending = []
        self.rows.extend(new_rows)
        return new_rows

    def flush(self) -> list:
        """Gather every pending value in one copy; return (and keep) the new rows."""
        return self.take(gather_scalars(self.pending_values()))

    def to_csv(self, path) -> None:
        """Flush, then write every row to ``path`` as CSV (header :data:`COLUMNS`)."""
        self.flush()
        write_csv(self.rows, path, COLUMNS)

    def to_jsonl(self, path) -> None:
        """Flush, then write every row to ``path`` as JSON lines."""
        self.flush()
        write_jsonl(self.rows, path)

    def series(self, name: str, field: str = "local_lr"):
        """``(steps, values)`` of one tensor's column, e.g. lambda^l over time (Figure 2)."""
        self.flush()
        picked = [(r["step"], r[field]) for r in self.rows if r["name"] == name]
        return [s for s, _ in picked], [v for _, v in picked]


def write_csv(rows: list, path, columns=COLUMNS) -> None:
    """Write dict rows to a new CSV file with the given column order."""
    _truncate(path)
    append_csv(path, rows, columns, header=True)


def write_jsonl(rows: list, path) -> None:
    """Write dict rows to a new JSON lines file; non-finite floats become ``null``."""
    _truncate(path)
    append_jsonl(path, rows)


def _truncate(path) -> None:
    with open(os.fspath(path), "w", encoding="utf-8"):
        pass


def table2_rows(params: dict, grads: dict) -> list:
    """Paper Table 2: ``||w||``, ``||grad L(w)||`` and their ratio for every named tensor.

    Parameters
    ----------
    params, grads : dict of {dotted_name: array}
        The same names and shapes (e.g. a model's parameters and the gradients of
        its first iteration).

    Returns
    -------
    list of dict
        ``{"name", "w_norm", "g_norm", "ratio"}`` in the order of ``params``.
    """
    names = list(params)
    for name in names:
        if name not in grads or grads[name].shape != params[name].shape:
            shape = None if name not in grads else tuple(grads[name].shape)
            raise ValueError(f"tensor {name!r}: gradient shape {shape} does not match "
                             f"weight shape {tuple(params[name].shape)}")
    norms = []
    for name in names:
        norms += [l2_norm(params[name]), l2_norm(grads[name])]
    host = gather_scalars(norms)
    return [{"name": n, "w_norm": host[2 * i], "g_norm": host[2 * i + 1],
             "ratio": _ratio(host[2 * i], host[2 * i + 1])} for i, n in enumerate(names)]


def format_table2(rows: list, digits: int = 4) -> str:
    """Table 2 rows as a Markdown table (one column per tensor, as in the paper)."""
    fmt = lambda x: f"{x:.{digits}g}"                          # noqa: E731
    lines = ["| Layer | " + " | ".join(r["name"] for r in rows) + " |",
             "| --- " * (len(rows) + 1) + "|"]
    for label, key in (("‖w‖", "w_norm"), ("‖∇L(w)‖", "g_norm"), ("ratio", "ratio")):
        lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows) + " |")
    return "\n".join(lines)
