"""Checkpoints: exact round trip, atomic write under SIGKILL, clear errors."""
import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lars_ref.checkpoint import (CheckpointError, check_compatible, describe_arrays,
                                 load_checkpoint, save_checkpoint)


def _nested_state():
    rng = np.random.default_rng(123)
    rng.normal(size=7)  # advance, so the state is not the seed's
    return {
        "model": {"conv1.w": rng.normal(size=(4, 1, 3, 3)).astype(np.float32),
                  "bn2.running_var": np.arange(3, dtype=np.float64),
                  "count": np.array(5, dtype=np.int64)},
        "optimizer": {"t": 17,
                      "v": {"conv1.w": np.full((4, 1, 3, 3), -0.5, np.float32)},
                      "scale": np.float32(0.1)},
        "rng": rng.bit_generator.state,
        "metrics": [{"step": 0, "loss": 2.302585092994046, "bad": float("nan")}],
        "labels": np.array([3, 1, 2], dtype=np.uint8),
        "note": None,
        "pair": (1, "two"),
    }


def test_checkpoint_round_trip_is_exact(tmp_path):
    state = _nested_state()
    path = save_checkpoint(tmp_path / "checkpoint.npz", state)
    loaded = load_checkpoint(path)
    for name, array in state["model"].items():
        assert loaded["model"][name].dtype == array.dtype
        np.testing.assert_array_equal(loaded["model"][name], array)
    assert loaded["optimizer"]["t"] == 17 and isinstance(loaded["optimizer"]["t"], int)
    assert loaded["optimizer"]["scale"] == np.float32(0.1)
    assert loaded["optimizer"]["scale"].dtype == np.float32
    np.testing.assert_array_equal(loaded["optimizer"]["v"]["conv1.w"],
                                  state["optimizer"]["v"]["conv1.w"])
    assert loaded["metrics"][0]["loss"] == 2.302585092994046
    assert np.isnan(loaded["metrics"][0]["bad"])
    assert loaded["note"] is None and loaded["pair"] == [1, "two"]
    assert loaded["labels"].dtype == np.uint8


def test_checkpoint_restores_generator_stream(tmp_path):
    rng = np.random.default_rng(5)
    rng.integers(0, 10, size=3)
    save_checkpoint(tmp_path / "c.npz", {"rng": rng.bit_generator.state})
    expected = rng.normal(size=4)
    restored = np.random.default_rng()
    restored.bit_generator.state = load_checkpoint(tmp_path / "c.npz")["rng"]
    np.testing.assert_array_equal(restored.normal(size=4), expected)


def test_checkpoint_overwrite_leaves_no_temp_files(tmp_path):
    for i in range(3):
        save_checkpoint(tmp_path / "c.npz", {"i": i})
    assert load_checkpoint(tmp_path / "c.npz")["i"] == 2
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_checkpoint_failed_write_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c.npz", {"w": np.ones(3)})

    def broken_savez(handle, **arrays):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.npz", {"w": np.zeros(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "c.npz")["w"], np.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from lars_ref.checkpoint import save_checkpoint
    path = sys.argv[1]
    save_checkpoint(path, {"marker": "A", "w": np.zeros(10)})
    print("ready", flush=True)
    big = np.arange(4_000_000, dtype=np.float64)  # 32 MB: each write takes a while
    round_ = 0
    while True:
        round_ += 1
        save_checkpoint(path, {"marker": f"B{round_}", "w": big + round_})
""")


def test_checkpoint_survives_sigkill_mid_write(tmp_path):
    path = tmp_path / "checkpoint.npz"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            temps = glob.glob(str(tmp_path / ".checkpoint.npz.*.tmp"))
            if temps and os.path.getsize(temps[0]) > 1_000_000:
                break  # caught it in the middle of writing the big array
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert glob.glob(str(tmp_path / ".checkpoint.npz.*.tmp")), "not killed mid-write"
    state = load_checkpoint(path)  # the last complete checkpoint, intact
    if state["marker"] == "A":
        np.testing.assert_array_equal(state["w"], np.zeros(10))
    else:  # an earlier B round had completed: it must be whole
        round_ = int(state["marker"][1:])
        np.testing.assert_array_equal(
            state["w"], np.arange(4_000_000, dtype=np.float64) + round_)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", None])
def test_checkpoint_corrupt_file_raises_clear_error(tmp_path, content):
    path = tmp_path / "c.npz"
    if content is None:  # a real checkpoint cut in half
        save_checkpoint(path, {"w": np.arange(1000.0)})
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_checkpoint_missing_file_raises_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.npz")


def test_checkpoint_rejects_unstorable_objects(tmp_path):
    with pytest.raises(TypeError, match="set"):
        save_checkpoint(tmp_path / "c.npz", {"bad": {1, 2}})
    assert not os.listdir(tmp_path)


def test_check_compatible_names_every_difference():
    saved = {"model": "alexnet_bn", "optimizer": "lars",
             "arrays": describe_arrays({"fc.w": np.zeros((4, 3), np.float32),
                                        "fc.b": np.zeros(3, np.float32)})}
    current = {"model": "resnet20", "optimizer": "lars",
               "arrays": describe_arrays({"fc.w": np.zeros((5, 3), np.float32),
                                          "conv.w": np.zeros(2, np.float32)})}
    with pytest.raises(CheckpointError) as info:
        check_compatible(saved, current, "run/checkpoint.npz")
    message = str(info.value)
    assert "model: checkpoint has 'alexnet_bn', this run has 'resnet20'" in message
    assert "tensor fc.w: checkpoint has float32 (4, 3), this model has float32 (5, 3)" \
        in message
    assert "missing from the checkpoint: conv.w" in message
    assert "not in this model: fc.b" in message
    check_compatible(saved, dict(saved))  # identical: no error
