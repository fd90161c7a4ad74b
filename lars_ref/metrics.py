"""Metrics of a run: device scalars gathered in batches, written as JSON lines and CSV.

Two small pieces used by :mod:`lars_ref.train`:

* :class:`ScalarBuffer` keeps the per-step loss and accuracy as device 0-d
  arrays and copies them to the host in one transfer per logging interval, so
  the training step itself never waits for the GPU.
* :class:`MetricsWriter` writes each stream (``steps``, ``epochs``, ``layers``)
  to ``<name>.jsonl`` (NaN/Inf as ``null``) and ``<name>.csv`` (``nan``/``inf``).
  Rows hold no wall-clock times, so two runs with the same seed on the same
  machine write byte-identical files; timings go to a separate
  ``timings.jsonl``. It keeps every row in memory so that a checkpoint can hold
  "the metrics so far" and a resumed run rewrites the files exactly as they
  were when the checkpoint was taken.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from lars_ref.diagnostics import gather_scalars

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


def _format_csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


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
        with open(self.path(stream, "jsonl"), "a", encoding="utf-8") as jsonl:
            for row in rows:  # JSON has no NaN/Infinity: those become null
                clean = {k: None if isinstance(v, float) and not math.isfinite(v)
                         else v for k, v in row.items()}
                jsonl.write(json.dumps(clean) + "\n")
        with open(self.path(stream, "csv"), "a", encoding="utf-8") as csv:
            if header:
                csv.write(",".join(columns) + "\n")
            for row in rows:
                csv.write(",".join(_format_csv_value(row[c]) for c in columns) + "\n")

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
        with open(os.path.join(self.out_dir, "timings.jsonl"), "a",
                  encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
