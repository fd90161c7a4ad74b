"""``lars-ref gpu-check`` without a GPU: the dry run writes the whole report, a hung
step is killed at its budget, and the curve comparison judges real differences."""
import os
import sys
import time
import types

import numpy as np
import pytest

from lars_ref import cli
from lars_ref.backend import gpu_available
from lars_ref.tools import gpu_check, gpu_check_steps

GPU_STEPS = [step.name for step in gpu_check.STEPS if step.needs_gpu]


def _report(out) -> str:
    with open(os.path.join(out, gpu_check.REPORT_NAME), encoding="utf-8") as f:
        return f.read()


def test_dry_run_writes_the_report_with_every_gpu_step_skipped(tmp_path, capsys):
    assert cli.main(["gpu-check", "--out", str(tmp_path), "--dry-run"]) == 0
    report = _report(tmp_path)
    assert "- date: 20" in report and " UTC" in report and "- device: " in report
    assert "| device | " in report and "| ok |" in report
    for name in GPU_STEPS:
        assert f"| {name} | " in report and f"## {name}" in report
    assert report.count("| skipped (dry run) |") == len(GPU_STEPS)
    assert "| python |" in report and "| numpy |" in report   # the device step's table
    assert os.path.exists(tmp_path / "steps" / "device.json")
    assert "gpu-check: the device is " in capsys.readouterr().out


@pytest.mark.skipif(gpu_available(), reason="a usable GPU is present")
def test_without_a_gpu_the_check_is_a_dry_run_by_itself(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path), "--only", "device", "curves"]) == 0
    report = _report(tmp_path)
    assert "| curves | " in report and "| skipped (no GPU) |" in report
    assert "mode: dry run" in report


def test_a_hung_step_is_killed_at_its_budget_with_its_children(tmp_path):
    log, pid_file = str(tmp_path / "hang.log"), tmp_path / "child.pid"
    script = ("import subprocess, time; child = subprocess.Popen(['sleep', '60']); "
              f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    start = time.monotonic()
    status, seconds = gpu_check.run_command([sys.executable, "-c", script], 2, log)
    assert status == "timed out after 2 s" and time.monotonic() - start < 10
    assert 2 <= seconds < 10
    time.sleep(0.2)
    assert not _running(int(pid_file.read_text()))      # the grandchild died too


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(")")[-1].split()[0] != "Z"   # a zombie is dead
    except FileNotFoundError:
        return False


def test_a_failing_step_reports_its_exit_code(tmp_path):
    status, _ = gpu_check.run_command([sys.executable, "-c", "raise SystemExit(3)"], 30,
                                      str(tmp_path / "fail.log"))
    assert status == "failed (exit code 3)"


def test_the_budgets_fit_in_eight_minutes(tmp_path):
    assert sum(step.budget_s for step in gpu_check.STEPS) <= gpu_check.TOTAL_BUDGET_S - 30
    late = gpu_check._run_or_skip(gpu_check.STEPS[0], str(tmp_path), None, 3.0)
    assert late["status"] == "skipped (the 8-minute budget is spent)"


def _fake_run(losses, acc=0.5):
    return types.SimpleNamespace(steps=[{"loss": v} for v in losses], final_test_acc=acc)


@pytest.mark.parametrize("device_losses, status, worst", [
    ([2.0, 1.0, 0.5], "ok", "0 "),
    ([2.0, 1.0, 0.5000001], "ok", "2e-07"),                # |0.5000001 - 0.5| / 0.5
    ([2.0, 1.2, 0.5], "failed: loss curves differ by 0.2", "0.2 ")])
def test_curve_comparison(device_losses, status, worst):
    result = gpu_check_steps.compare_curves(_fake_run([2.0, 1.0, 0.5]),
                                            _fake_run(device_losses), "test data")
    assert result["status"] == status
    assert f"over all steps: {worst}" in result["markdown"]


def test_synthetic_curve_data_without_scikit_learn(monkeypatch):
    monkeypatch.setattr(gpu_check_steps, "module_present", lambda name: name != "sklearn")
    data, source = gpu_check_steps.curve_dataset()
    assert "synthetic" in source and data.x_train.shape == (1400, 1, 8, 8)
    assert data.x_train.dtype == np.uint8 and set(np.unique(data.y_test)) <= set(range(10))


def test_the_curves_step_runs_numpy_against_itself_exactly(tmp_path):
    result = gpu_check_steps.curves(str(tmp_path), device_backend="numpy")
    assert result["status"] == "ok"
    assert "over all steps: 0 " in result["markdown"]


@pytest.mark.parametrize("arguments", [gpu_check_steps.BENCH_OPS_ARGS,
                                       gpu_check_steps.BENCH_OPTIM_ARGS])
def test_the_benchmark_flags_the_check_uses_exist(arguments, capsys):
    with pytest.raises(SystemExit) as stop:        # flags are checked before --help
        cli.main([*arguments, "--help"])
    assert stop.value.code == 0


def test_an_earlier_report_is_kept_unless_overwrite(tmp_path, capsys):
    report = tmp_path / gpu_check.REPORT_NAME
    report.write_text("an earlier GPU check\n")
    assert cli.main(["gpu-check", "--out", str(tmp_path), "--only", "device"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lars-ref: error: ") and "--overwrite" in err
    assert report.read_text() == "an earlier GPU check\n"
    (tmp_path / "file").write_text("x")
    assert gpu_check.main(["--out", str(tmp_path / "file"), "--dry-run"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert gpu_check.main(["--out", str(tmp_path), "--only", "device", "--overwrite"]) == 0
    assert "an earlier GPU check" not in report.read_text()
