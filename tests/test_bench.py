"""lars-ref bench: the block timer (with a scripted clock), the table, and a quick run."""
import re

import pytest

from lars_ref import bench


class ScriptedClock:
    """A clock whose every call returns the next value of a script."""

    def __init__(self, readings):
        self.readings = iter(readings)

    def __call__(self):
        return next(self.readings)


def test_time_in_blocks_runs_abba_with_untimed_warmups():
    calls = []
    ours, theirs = (lambda: calls.append("ours")), (lambda: calls.append("theirs"))
    # Blocks ours, theirs, theirs, ours of 1 warm-up (no clock reading) + 2 timed runs
    # (two readings each). The machine slows down steadily: ours 2, 2 then 6, 6;
    # theirs 1, 1 then 3, 3.
    readings = [0, 2, 2, 4,   4, 5, 5, 6,   6, 9, 9, 12,   12, 18, 18, 24]
    ours_ms, theirs_ms, ratio = bench.time_in_blocks(
        ours, theirs, lambda: None, lambda: None, clock=ScriptedClock(readings),
        warmup=1, repeats=2)
    assert calls == ["ours"] * 3 + ["theirs"] * 6 + ["ours"] * 3
    assert ours_ms == 4000.0 and theirs_ms == 2000.0      # medians of 2, 2, 6, 6 / 1, 1, 3, 3
    assert ratio == 2.0


def test_time_in_blocks_without_the_other_side():
    readings = [0, 3, 3, 4, 4, 9]
    ours_ms, theirs_ms, ratio = bench.time_in_blocks(
        lambda: None, None, lambda: None, None, clock=ScriptedClock(readings),
        warmup=0, repeats=3)
    assert (ours_ms, theirs_ms, ratio) == (3000.0, None, None)


def test_format_table_marks_targets():
    text = bench.format_table([("conv2d (64->64 3x3 pad 1) fwd+bwd", 300.0, 200.0, 1.6),
                               ("resnet20 step (batch 128, 3x32x32)", 900.0, 500.0, 1.8),
                               ("max-pool (2x2 stride 2) fwd+bwd", 10.0, None, None)])
    lines = text.splitlines()
    assert lines[1].endswith("<= 1.5: MISSED") and "1.60" in lines[1]
    assert lines[2].endswith("<= 2.0: met")
    assert lines[3].split()[-2:] == ["-", "-"]


def test_quick_bench_runs_against_torch(capsys):
    pytest.importorskip("torch")
    assert bench.main(["--quick", "--warmup", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    losses = re.search(r"first step: loss ours ([\d.]+), torch ([\d.]+)", out)
    ours_loss, torch_loss = float(losses.group(1)), float(losses.group(2))
    assert abs(ours_loss - torch_loss) < 1e-4 * abs(torch_loss)   # the same network
    assert "resnet20 step (batch 8, 3x16x16)" in out
