"""Metrics of a run: device scalars gathered in batches, written as JSON lines and CSV.

Three small pieces used by :mod:`lars_ref.train`:

* :class:`ScalarBuffer` keeps the per-step loss and accuracy as device 0-d
  arrays and copies them to the host in one transfer per logging interval, so
  the training step itself never waits for the GPU.
* :class:`MetricsWriter` writes each stream (``steps``, ``epochs``, ``layers``)
  to ``<name>.jsonl`` (NaN/Inf as ``null``) and ``<name>.csv`` (``nan``/``inf``)
  with the writers of :mod:`lars_ref.table_files`.
  Rows hold no wall-clock times, so two runs with the same seed on the same
  machine write byte-identical files; timings go to a separate
  ``timings.jsonl``. It keeps every row in memory so that a checkpoint can hold
  "the metrics so far" and a resumed run rewrites the files exactly as they
  were when the checkpoint was taken.
* :class:`RunRecords` holds both, plus the per-tensor diagnostics, for one run:
  queue a step, flush (stopping at the first NaN/Inf loss), add an epoch row.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np

from lars_ref.diagnostics import DiagnosticsRecorder, gather_scalars
from lars_ref.table_files import append_csv, append_jsonl

STREAMS = ("steps", "epochs", "layers")


class ScalarBuffer:
    """Collect named device scalars per step; gather them to the host in one copy."""

    def __init__(self):
        self._rows: list[tuple[dict, dict]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, host_fields: dict, device_scalars: dict) -> None:
        """Queue one row: plain host values plus 0-d device arrays (not yet copied)."""
        self._rows.append((host_fields, device_scalars))

    def pending_values(self) -> list:
        """The queued device scalars, in row order (what :meth:`take` expects back)."""
        return [v for _, device in self._rows for v in device.values()]

    def take(self, host_values: list) -> list[dict]:
        """The queued rows with ``host_values`` (floats) filled in; clears the queue."""
        rows, self._rows = self._rows, []
        host = iter(host_values)
        gathered = []
        for host_fields, device in rows:
            row = dict(host_fields)
            row.update({name: next(host) for name in device})
            gathered.append(row)
        return gathered

    def gather(self) -> list[dict]:
        """Return the queued rows, device scalars as Python floats; empty the buffer.

        All queued scalars are stacked on the device and copied with one transfer
        (:func:`lars_ref.diagnostics.gather_scalars`).
        """
        return self.take(gather_scalars(self.pending_values()))


class MetricsWriter:
    """Append rows to ``<out>/<stream>.jsonl`` and ``<out>/<stream>.csv``.

    Parameters
    ----------
    out_dir : str
        Output folder (created if needed).
    """

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.records: dict[str, list[dict]] = {name: [] for name in STREAMS}
        self._rewrite_all()

    def path(self, stream: str, extension: str) -> str:
        return os.path.join(self.out_dir, f"{stream}.{extension}")

    def write(self, stream: str, rows: list[dict]) -> None:
        """Append ``rows`` (dicts with the same keys, in the same order) to a stream."""
        if not rows:
            return
        records = self.records[stream]
        columns = list((records or rows)[0])
        for row in rows:
            if list(row) != columns:
                raise ValueError(f"metrics stream {stream!r}: row keys {list(row)} "
                                 f"differ from the columns {columns}")
        new_file = not records
        records.extend(rows)
        self._append(stream, rows, columns, header=new_file)

    def _append(self, stream, rows, columns, header):
        append_jsonl(self.path(stream, "jsonl"), rows)
        append_csv(self.path(stream, "csv"), rows, columns, header=header)

    def _rewrite_all(self) -> None:
        for stream in STREAMS:
            for extension in ("jsonl", "csv"):
                open(self.path(stream, extension), "w", encoding="utf-8").close()
            rows = self.records[stream]
            if rows:
                self._append(stream, rows, list(rows[0]), header=True)

    def state_dict(self) -> dict:
        """The rows so far, for the checkpoint (copies of the lists)."""
        return {name: list(rows) for name, rows in self.records.items()}

    def load_state_dict(self, state: dict) -> None:
        """Replace the rows with a checkpoint's and rewrite every file from them."""
        self.records = {name: list(state.get(name, [])) for name in STREAMS}
        self._rewrite_all()

    def log_timing(self, row: dict) -> None:
        """Append wall-clock information to ``timings.jsonl`` (never compared)."""
        append_jsonl(os.path.join(self.out_dir, "timings.jsonl"), [row])


class Flushed(NamedTuple):
    """What :meth:`RunRecords.flush` gathered and wrote."""
    steps: list             # the step rows written (all finite)
    layers: list            # the diagnostics rows written
    first_bad: dict | None  # the first step row whose loss is NaN/Inf (not written)


class RunRecords:
    """The rows of one run (steps, per-tensor diagnostics, epochs) and their files.

    Creating it empties the metric files of ``out_dir``; :meth:`load_state_dict`
    then restores the rows of a checkpoint.
    """

    def __init__(self, out_dir: str, diag_every: int, writer=None):
        self.pending = ScalarBuffer()
        self.diagnostics = DiagnosticsRecorder(every=diag_every)
        # writer: data-parallel ranks other than 0 keep the rows without files
        self.writer = MetricsWriter(out_dir) if writer is None else writer

    @property
    def rows(self) -> dict:
        """``{"steps": [...], "epochs": [...], "layers": [...]}`` written so far."""
        return self.writer.records

    def add_step(self, step: int, epoch: int, lr: float, loss, correct, batch: int,
                 last_stats: dict) -> None:
        """Queue one step's device scalars (and, every diag_every, its tensor stats)."""
        self.pending.add({"step": step, "epoch": epoch, "lr": lr},
                         {"loss": loss, "train_acc": correct / batch})
        self.diagnostics.record(step, last_stats)

    def flush(self) -> Flushed:
        """Gather the queued step and layer scalars in ONE device-to-host copy; write
        the steps up to the first NaN/Inf loss, and the layer rows."""
        step_values = self.pending.pending_values()
        host = gather_scalars(step_values + self.diagnostics.pending_values())
        rows = self.pending.take(host[:len(step_values)])
        finite = [math.isfinite(row["loss"]) for row in rows]
        good = rows if all(finite) else rows[:finite.index(False)]
        self.writer.write("steps", good)
        layers = self.diagnostics.take(host[len(step_values):])
        self.writer.write("layers", layers)
        self.diagnostics.rows.clear()  # the writer keeps them
        return Flushed(good, layers, rows[len(good)] if len(good) < len(rows) else None)

    def add_epoch(self, epochs_done: float, step: int, lr: float, test_loss,
                  test_acc) -> dict:
        """Write the epoch row: train means over its steps, the test score; return it."""
        epoch_index = math.ceil(epochs_done) - 1  # a partial last epoch: 2.5 -> 2
        steps = [r for r in self.rows["steps"] if r["epoch"] == epoch_index]
        row = {"epoch": epochs_done, "step": step, "lr": lr,
               "train_loss": float(np.mean([r["loss"] for r in steps])),
               "train_acc": float(np.mean([r["train_acc"] for r in steps])),
               "test_loss": test_loss, "test_acc": test_acc}
        self.writer.write("epochs", [row])
        return row


def console_line(epoch_row: dict, total_epochs: float, seconds: float) -> str:
    """The one console line of an epoch: loss, train and test top-1, LR, seconds."""
    test = epoch_row["test_acc"]
    test_text = "   n/a" if test is None else f"{100 * test:5.1f}%"
    row = epoch_row
    return (f"epoch {row['epoch']:.4g}/{total_epochs:.4g}  step {row['step']}  "
            f"loss {row['train_loss']:.4f}  train {100 * row['train_acc']:5.1f}%  "
            f"test {test_text}  lr {row['lr']:.4g}  {seconds:.1f} s")


def frozen_warning(layer_rows: list[dict], optimizer_name: str) -> str | None:
    """A warning naming the tensors with ||w|| = 0 and lam = 0 at step 0, or None.

    Under the box read literally such a tensor never moves (lam = 0 forever).
    """
    frozen = [row["name"] for row in layer_rows if row["step"] == 0
              and row["w_norm"] == 0 and row["local_lr"] == 0]
    if not frozen:
        return None
    count = len({row["name"] for row in layer_rows if row["step"] == 0})
    shown = ", ".join(frozen[:4]) + (", ..." if len(frozen) > 4 else "")
    return (f"{len(frozen)} of {count} tensors start with ||w|| = 0 and get lam = 0 "
            f"under --optimizer {optimizer_name}, so they never move ({shown}); "
            "--optimizer lars uses the authors' lam = 1 there")
