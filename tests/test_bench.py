"""lars-ref bench: the turn-taking timer (with a scripted clock) and a quick end-to-end run."""
import re

import pytest

from lars_ref import bench


class ScriptedClock:
    """A clock whose every call returns the next value of a script."""

    def __init__(self, readings):
        self.readings = iter(readings)

    def __call__(self):
        return next(self.readings)


def test_time_in_turns_alternates_and_takes_the_median_of_per_turn_ratios():
    calls = []
    ours, theirs = (lambda: calls.append("ours")), (lambda: calls.append("theirs"))
    # Three turns; each reads the clock at the start and end of ours, then of theirs.
    # Durations: ours 2, 4, 10 and theirs 1, 4, 5, so the per-turn ratios are 2, 1, 2:
    # their median is 2, while the ratio of the two medians (4 / 4) would be 1.
    readings = [0, 2, 2, 3,   10, 14, 14, 18,   20, 30, 30, 35]
    ours_ms, theirs_ms, ratio = bench.time_in_turns(
        ours, theirs, lambda: None, lambda: None, clock=ScriptedClock(readings),
        warmup=1, repeats=3)
    assert calls == ["ours", "theirs"] + ["ours", "theirs"] * 3   # warm-ups, then turns
    assert ours_ms == 4000.0 and theirs_ms == 4000.0              # medians, in ms
    assert ratio == 2.0


def test_time_in_turns_without_the_other_side():
    readings = [0, 3, 3, 4, 4, 9]
    ours_ms, theirs_ms, ratio = bench.time_in_turns(
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
