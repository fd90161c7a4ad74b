"""Rows of metrics as files: JSON lines and CSV, written by one pair of functions.

A row is a dict of column -> value. In JSON lines a NaN or infinity becomes
``null`` (JSON has neither); in CSV a float is written with ``repr`` (all its
digits, ``nan``/``inf`` as such) and None as an empty field. Used by
:mod:`lars_ref.metrics` (the files of a training run) and
:mod:`lars_ref.diagnostics` (per-tensor LARS rows).

Introduced in ``docs/architecture.md``.
"""
from __future__ import annotations

import json
import math

import numpy as np


def append_jsonl(path, rows: list[dict]) -> None:
    """Append ``rows`` to ``path`` as JSON lines; non-finite floats become ``null``."""
    with open(path, "a", encoding="utf-8") as handle:
        for row in rows:
            clean = {key: None if isinstance(value, float) and not math.isfinite(value)
                     else value for key, value in row.items()}
            handle.write(json.dumps(clean) + "\n")


def append_csv(path, rows: list[dict], columns, *, header: bool) -> None:
    """Append ``rows`` to ``path`` as CSV in ``columns`` order (with a header line)."""
    with open(path, "a", encoding="utf-8") as handle:
        if header:
            handle.write(",".join(columns) + "\n")
        for row in rows:
            handle.write(",".join(csv_field(row[column]) for column in columns) + "\n")


def csv_field(value) -> str:
    """One CSV field: "" for None, every digit of a float (``repr``), else ``str``."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = str(value)
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text
