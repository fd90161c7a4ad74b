"""Checkpoints a user can trust (issue 11 items 1 and 3).

Kill tests through the real entry point: SIGINT mid-epoch and SIGKILL in the
middle of a checkpoint write, then ``--resume``, end with the weights of a run
that was never interrupted, bit for bit. Also: the checkpoint interval, stale
temporary files, a full disk during a checkpoint write, the ignore pattern.
"""
import errno
import fnmatch
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lars_ref import cli
from lars_ref.checkpoint import load_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
# batch 8: 179 steps per epoch of the 1437 digits, so a stop lands mid-epoch
RUN = ["train", "--dataset", "digits", "--model", "alexnet_bn", "--optimizer", "lars",
       "--lr", "2", "--warmup-steps", "5", "--batch-size", "8", "--steps", "200",
       "--log-every", "7", "--diag-every", "5", "--no-progress", "--blas-threads", "1"]
STEPS_PER_EPOCH = 1437 // 8


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def _lars_ref(*argv):
    return subprocess.run([sys.executable, "-m", "lars_ref", *argv], env=_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = _lars_ref(*RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _assert_same_run(out, reference):
    state, expected = (load_checkpoint(p / "checkpoint.npz") for p in (out, reference))
    assert state["step"] == expected["step"] == 200
    for name, array in expected["model"].items():
        assert np.array_equal(state["model"][name], array), name
    for name, array in expected["optimizer"]["v"].items():
        assert np.array_equal(state["optimizer"]["v"][name], array), name
    for name in ("steps.csv", "epochs.csv", "layers.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_sigint_mid_epoch_writes_a_checkpoint_and_resume_is_bit_identical(
        uninterrupted, tmp_path, signal_number):
    process = subprocess.Popen([sys.executable, "-m", "lars_ref", *RUN, "--out",
                                str(tmp_path)], env=_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    steps_file = tmp_path / "steps.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not steps_file.exists() or len(
            steps_file.read_text().splitlines()) < 2):  # the first 7 steps are logged
        time.sleep(0.01)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"stopped by {signal_number.name}" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    stopped_at = load_checkpoint(tmp_path / "checkpoint.npz")["step"]
    assert 7 <= stopped_at < STEPS_PER_EPOCH     # mid-epoch
    resumed = _lars_ref(*RUN, "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(tmp_path, uninterrupted)


_KILL_IN_THIRD_WRITE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    writes = []
    real_savez = np.savez
    def savez_then_die(handle, **arrays):
        writes.append(1)
        if len(writes) == 3:                 # half of the third checkpoint, then die
            handle.write(b"PK partial bytes")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_savez(handle, **arrays)
    np.savez = savez_then_die
    from lars_ref.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigkill_mid_write_then_resume_is_bit_identical(uninterrupted, tmp_path):
    killed = subprocess.run([sys.executable, "-c", _KILL_IN_THIRD_WRITE, *RUN,
                             "--checkpoint-every-steps", "40", "--out", str(tmp_path)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".checkpoint.npz.*.tmp"))
    assert len(stale) == 1                               # the torn write
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 80
    resumed = _lars_ref(*RUN, "--out", str(tmp_path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert list(tmp_path.glob(".*.tmp")) == []           # removed at the start
    _assert_same_run(tmp_path, uninterrupted)


TINY = ["train", "--dataset", "digits", "--model", "alexnet_bn", "--batch-size", "64",
        "--steps", "30", "--log-every", "5", "--no-progress", "--blas-threads", "1"]


def test_checkpoint_every_steps_and_a_full_disk(tmp_path, monkeypatch, capsys):
    out = str(tmp_path)
    writes = []
    real_fsync = os.fsync

    def fsync_until_the_disk_is_full(fd):
        writes.append(fd)
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_the_disk_is_full)
    status = cli.main([*TINY, "--checkpoint-every-steps", "4", "--out", out])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lars-ref: error: cannot write the "
                                                   "checkpoint"), err
    assert "No space left on device" in err and "--resume" in err
    # the two file fsyncs before succeeded (each with a directory fsync): step 4 is kept
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 4
    assert list(tmp_path.glob(".*.tmp")) == []


def test_checkpoint_every_minutes_writes_between_epochs(tmp_path, monkeypatch):
    from lars_ref import train as training
    clock = iter(range(0, 10_000, 30))                     # 30 s per call
    monkeypatch.setattr(training.time, "perf_counter", lambda: next(clock))
    saved = []
    real_save = training.save_checkpoint
    monkeypatch.setattr(training, "save_checkpoint",
                        lambda path, state: saved.append(state["step"])
                        or real_save(path, state))
    assert cli.main([*TINY, "--steps", "10", "--checkpoint-every-minutes", "2",
                     "--out", str(tmp_path)]) == 0
    assert len(saved) > 2 and saved[-1] == 10     # the end, and several in between


def test_stale_temporary_checkpoints_are_removed_at_the_next_start(tmp_path):
    stale = tmp_path / ".checkpoint.npz.x7k2q.tmp"
    stale.write_bytes(b"left by a kill")
    other = tmp_path / "notes.tmp"
    other.write_text("the user's")
    assert cli.main([*TINY, "--steps", "2", "--out", str(tmp_path)]) == 0
    assert not stale.exists() and other.exists()


def test_gitignore_covers_the_temporary_checkpoint_files():
    patterns = [line.strip() for line in (REPO / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    name = ".checkpoint.npz.k2j4x9.tmp"
    assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def test_ctrl_c_in_a_demo_run_stops_the_whole_demo(monkeypatch, tmp_path, capsys):
    from lars_ref import demo
    calls = []

    def interrupted_run(config, dataset=None):
        calls.append(config.out)
        return type("Result", (), {"interrupted": True})()

    monkeypatch.setattr(demo, "train", interrupted_run)
    assert cli.main(["demo", "--out", str(tmp_path), "--no-progress"]) == 130
    assert len(calls) == 1 and "interrupted" in capsys.readouterr().err
