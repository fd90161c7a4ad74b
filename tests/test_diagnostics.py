"""Diagnostics: recorded norms and ratios, one gather per flush, CSV / JSON lines, Table 2."""
import csv
import doctest
import json
import math

import numpy as np
import pytest

from lars_ref import diagnostics
from lars_ref.diagnostics import (COLUMNS, DiagnosticsRecorder, format_table2, gather_scalars,
                                  table2_rows)
from lars_ref.optim import LARS, SGD


def test_docstring_examples_hold():
    result = doctest.testmod(diagnostics)
    assert result.attempted >= 4 and result.failed == 0


def two_tensor_run(steps=4, every=2):
    params = {"conv1.w": np.array([[3.0, 4.0]]), "conv1.b": np.zeros(2)}
    grads = {"conv1.w": np.array([[0.0, 2.0]]), "conv1.b": np.array([1.0, 0.0])}
    opt = LARS(0.5, momentum=0.0, weight_decay=0.0, eta=0.1)
    recorder = DiagnosticsRecorder(every=every)
    for t in range(steps):
        before = {k: v.copy() for k, v in params.items()}
        opt.step(params, grads)
        recorder.record(t, opt.last_stats)
        if t == 0:
            first = (before, {k: v.copy() for k, v in params.items()})
    return recorder, first


def test_recorder_rows_hold_the_norms_and_ratios():
    recorder, (before, after) = two_tensor_run()
    rows = recorder.flush()
    assert [(r["step"], r["name"]) for r in rows] == [
        (0, "conv1.w"), (0, "conv1.b"), (2, "conv1.w"), (2, "conv1.b")]
    first = rows[0]
    assert first["w_norm"] == 5.0 and first["g_norm"] == 2.0 and first["w_over_g"] == 2.5
    assert first["local_lr"] == pytest.approx(0.1 * 5.0 / 2.0)
    step = np.linalg.norm(after["conv1.w"] - before["conv1.w"])
    assert first["update_norm"] == pytest.approx(step)
    assert first["update_over_w"] == pytest.approx(step / 5.0)
    bias = rows[1]                                   # zero-initialised: frozen, ratios 0/x and x/0
    assert bias["w_norm"] == 0.0 and bias["w_over_g"] == 0.0 and bias["local_lr"] == 0.0
    assert math.isnan(bias["update_over_w"])
    assert recorder.flush() == [] and len(recorder.rows) == 4


def test_flush_gathers_everything_in_one_transfer(monkeypatch):
    calls = []
    real = diagnostics.to_numpy
    monkeypatch.setattr(diagnostics, "to_numpy", lambda a: calls.append(a.shape) or real(a))
    recorder, _ = two_tensor_run(steps=6, every=1)
    recorder.flush()
    assert calls == [(6 * 2 * 4,)]                   # steps x tensors x fields, one copy


def test_csv_and_jsonl_exports(tmp_path):
    recorder, _ = two_tensor_run()
    recorder.to_csv(tmp_path / "d.csv")
    recorder.to_jsonl(tmp_path / "d.jsonl")
    with open(tmp_path / "d.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS and len(table) == 4
    assert float(table[0]["w_over_g"]) == 2.5
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert lines[0]["local_lr"] == pytest.approx(0.25)
    assert lines[1]["update_over_w"] is None         # NaN -> null
    steps, values = recorder.series("conv1.w", "w_norm")
    assert steps == [0, 2] and values[0] == 5.0


def test_sgd_stats_work_with_the_recorder():
    params, grads = {"w": np.ones(4)}, {"w": np.full(4, 0.5)}
    opt, recorder = SGD(0.1, momentum=0.0, weight_decay=0.0), DiagnosticsRecorder()
    opt.step(params, grads)
    recorder.record(0, opt.last_stats)
    row = recorder.flush()[0]
    assert row["local_lr"] == 1.0 and row["update_norm"] == pytest.approx(0.1)


def test_table2_rows_and_markdown():
    params = {"conv1.w": np.full((2, 2), 0.5), "conv1.b": np.array([0.3, 0.4])}
    grads = {"conv1.w": np.full((2, 2), 0.01), "conv1.b": np.array([0.0, 0.0])}
    rows = table2_rows(params, grads)
    assert rows[0] == {"name": "conv1.w", "w_norm": 1.0, "g_norm": 0.02, "ratio": 50.0}
    assert rows[1]["ratio"] == math.inf
    text = format_table2(rows)
    assert "| Layer | conv1.w | conv1.b |" in text and "| ratio | 50 | inf |" in text
    with pytest.raises(ValueError, match=r"conv1\.b.*\(3,\).*\(2,\)"):
        table2_rows(params, {"conv1.w": grads["conv1.w"], "conv1.b": np.zeros(3)})


def test_gather_scalars_and_bad_interval():
    assert gather_scalars([np.float32(1.5), np.float64(2.0)]) == [1.5, 2.0]
    assert gather_scalars([]) == []
    with pytest.raises(ValueError, match="every=0"):
        DiagnosticsRecorder(every=0)
