"""lars-ref bench: the block timer (with a scripted clock), the table, and a quick run."""
import re

import pytest

from lars_ref.tools import bench


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


def test_time_interleaved_reports_the_spread_of_block_ratios():
    """Three ABBA blocks with ratios 2, 4 and 3: min 2, median 3, max 4."""
    readings = []
    for ours, theirs in ((2, 1), (4, 1), (3, 1)):    # one timed run per half-block
        t = readings[-1] if readings else 0
        for step in (ours, theirs, theirs, ours):
            readings += [t, t + step]
            t += step
    ours_ms, theirs_ms, ratios = bench.time_interleaved(
        lambda: None, lambda: None, lambda: None, lambda: None,
        clock=ScriptedClock(readings), warmup=0, repeats=1, blocks=3)
    assert ratios == (2.0, 3.0, 4.0)
    assert (ours_ms, theirs_ms) == (3000.0, 1000.0)


def test_format_table_marks_targets_on_the_median():
    text = bench.format_table([
        ("resnet20 step (batch 128)", 1, "cpu", 900.0, 500.0, (1.2, 1.8, 2.0)),
        ("resnet20 step (batch 128)", 2, "wall", 900.0, 600.0, (1.2, 1.5, 2.0)),
        ("conv (16->16 32x32 stride 1)", 1, "cpu", 10.0, None, None)])
    lines = text.splitlines()
    assert lines[1].endswith("<= 1.5: MISSED") and "1.20 1.80 2.00" in lines[1]
    assert lines[2].endswith("<= 1.6: met")
    assert lines[3].split()[-2:] == ["-", "-"]


def test_quick_bench_runs_against_torch(capsys):
    pytest.importorskip("torch")
    assert bench.main(["--quick", "--warmup", "0", "--repeats", "1", "--blocks", "1",
                       "--threads", "1", "--no-memory"]) == 0
    out = capsys.readouterr().out
    losses = re.search(r"first step: loss ours ([\d.]+), torch ([\d.]+)", out)
    ours_loss, torch_loss = float(losses.group(1)), float(losses.group(2))
    assert abs(ours_loss - torch_loss) < 1e-4 * abs(torch_loss)   # the same network
    assert "resnet20 step (batch 8)" in out
    assert "conv (64->64 4x4 stride 1)" in out
    assert re.search(r"numpy BLAS: \w+ .*kernels for", out)   # which kernels ran


def test_child_environment_lacks_both_openblas_pins_and_keeps_the_rest():
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "512",
               "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": "/repo"}
    assert bench.without_openblas_pins(environ) == {"OPENBLAS_NUM_THREADS": "1",
                                                    "PYTHONPATH": "/repo"}
    assert environ["OPENBLAS_CORETYPE"] == "Haswell"   # the caller's copy is kept


@pytest.mark.parametrize("argv", [
    ["--quick", "--threads", "1", "--no-memory"],
    ["--threads", "1", "2", "--blocks", "3", "--repeats", "4", "--warmup", "0",
     "--no-torch", "--backend", "auto"]])
def test_the_child_process_gets_the_same_options(argv):
    parser = bench.argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    assert parser.parse_args(bench.bench_argv(args)) == args


def test_step_memory_is_measured_in_a_fresh_process():
    """Batch 8 of 16x16 needs a few MB, far below the cost of importing anything."""
    report = bench.format_memory(dict(bench.QUICK), with_torch=False).splitlines()
    added_mb = float(report[1].split()[1])
    assert report[1].split()[0] == "ours" and 0 < added_mb < 100


@pytest.mark.parametrize("flags", [["--threads", "0"], ["--blocks", "0"],
                                   ["--repeats", "x"], ["--warmup", "-1"]])
def test_bad_counts_are_refused_with_exit_2(flags, capsys):
    assert bench.main(["--quick", *flags]) == 2
    assert "must be an integer >=" in capsys.readouterr().err


def test_layer_times_cover_every_kind_once():
    """bench-layers: every kind of layer of ResNet-20 is timed in both passes, each
    layer once (the rest of the step stays positive), largest kinds listed first."""
    from lars_ref.tools import bench_layers
    sizes = dict(bench_layers.SIZES["quick"], steps=3)
    times = bench_layers.time_layers(1, **sizes)
    for kind in ("Conv2d", "BatchNorm", "ReLU", "PadShortcut", "GlobalAvgPool",
                 "Linear"):
        assert times[f"{kind} forward"] > 0 and times[f"{kind} backward"] > 0, kind
    # each layer is timed once (not also inside its container): the layers leave
    # a positive rest of the step (loss, residual additions, the update)
    assert times["rest"] > 0
    table = bench_layers.format_layer_table({1: times}, sizes).splitlines()
    listed = [float(line.split()[-1]) for line in table[2:-2]]
    assert len(listed) == 12 and listed == sorted(listed, reverse=True)  # largest first
    assert table[-2].startswith("rest") and table[-1].startswith("step")
