"""Data parallel across processes, run through ``mpiexec -n 2`` and ``-n 3``.

The oracle is the single-process run with ``iter_size = P x k``: P processes of
k micro-batches must give the same weights, momentum buffers, BN running
statistics and metric rows to 1e-12 relative (float64), because they compute
the same sums in another order (lars_ref/data_parallel.py's docstring).

Skipped, with the reason, when mpi4py or mpiexec is absent
(``pip install -e '.[mpi]'`` brings both). mpiexec is looked up beside the
Python running the tests, then on PATH, as ``lars-ref train --procs`` does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lars_ref.checkpoint import load_checkpoint
from lars_ref.config import TrainConfig
from lars_ref.launch import find_mpiexec
from lars_ref.train import checkpoint_path, train

pytest.importorskip("mpi4py", reason="needs mpi4py: pip install -e '.[mpi]'")
try:
    MPIEXEC = find_mpiexec()
except Exception as err:  # noqa: BLE001 - any reason to skip is printed
    pytest.skip(f"no mpiexec ({err})", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 180
# AlexNet-BN (BN after every conv and fc layer, dropout 0.5 after fc6 and fc7) on
# 8x8 digits, float64.
SETTINGS = dict(model="alexnet_bn", dataset="digits", dtype="float64",
                batch_size=96, micro_batch=16, steps=6, lr=2.0, warmup_steps=2,
                log_every=2, diag_every=2, progress=False, blas_threads=1)


def run_ranks(tmp_path, procs: int, settings: dict, *extra, per_rank=None,
              timeout=TIMEOUT_S):
    """``mpiexec -n procs python -m lars_ref train --config <settings> extra...``."""
    path = tmp_path / f"settings_{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(settings))
    command = [sys.executable, "-m", "lars_ref", "train", "--config", str(path),
               *extra]
    if per_rank is None:
        argv = MPIEXEC + ["-n", str(procs)] + command
    else:  # MPMD: "-n 1 cmd0 : -n 1 cmd1", each rank its own extra flags
        argv = list(MPIEXEC)
        for rank, flags in enumerate(per_rank):
            argv += ([":"] if rank else []) + ["-n", "1"] + command + list(flags)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


def leaves(node, path=""):
    """(path, leaf) of a nested checkpoint state, in order."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}/{index}")
    else:
        yield path, node


def assert_same_state(expected_dir, actual_dir, rtol=1e-12):
    """Weights, momentum, BN statistics, metric rows: equal to ``rtol`` relative."""
    expected = dict(leaves(load_checkpoint(checkpoint_path(expected_dir))))
    actual = dict(leaves(load_checkpoint(checkpoint_path(actual_dir))))
    assert expected.keys() == actual.keys()
    compared = 0
    for key, want in expected.items():
        got = actual[key]
        if key.startswith("/config/"):  # out dir, procs
            continue
        if isinstance(want, (np.ndarray, float)):
            want, got = np.asarray(want, float), np.asarray(got, float)
            scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
            assert np.max(np.abs(want - got), initial=0.0) <= rtol * scale, key
            compared += 1
        else:
            assert got == want, key
    assert compared > 100  # model, optimizer/v, BN running stats, metric rows
    assert any("running_var" in key for key in expected)
    assert any(key.startswith("/rng/drop6/") for key in expected)  # dropout streams


def single_process(tmp_path, name, **changes):
    config = TrainConfig.from_dict(dict(SETTINGS, out=str(tmp_path / name), **changes))
    return train(config)


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_two_processes_equal_one_with_twice_the_micro_batches(tmp_path, optimizer):
    single_process(tmp_path, "one", optimizer=optimizer)
    settings = dict(SETTINGS, optimizer=optimizer, out=str(tmp_path / "two"))
    done = run_ranks(tmp_path, 2, settings)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("6 steps") == 1  # rank 0 alone prints
    assert_same_state(tmp_path / "one", tmp_path / "two")
    for stream in ("steps", "epochs", "layers"):  # and writes the same files
        rows = [json.loads(line) for line in (tmp_path / "two" / f"{stream}.jsonl")
                .read_text().splitlines()]
        assert rows == load_checkpoint(checkpoint_path(tmp_path / "two"))[
            "metrics"][stream]


def test_three_processes_equal_one(tmp_path):
    single_process(tmp_path, "one", optimizer="lars")
    settings = dict(SETTINGS, optimizer="lars", out=str(tmp_path / "three"))
    done = run_ranks(tmp_path, 3, settings)  # 6 micro-batches: 2 per process
    assert done.returncode == 0, done.stderr
    assert_same_state(tmp_path / "one", tmp_path / "three")


def test_procs_flag_starts_mpiexec(tmp_path):
    single_process(tmp_path, "one", optimizer="lars", steps=2)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(dict(SETTINGS, optimizer="lars", steps=2)))
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "lars_ref", "train", "--config",
                           str(path), "--procs", "2", "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "two" / "config.json").read_text())["procs"] == 2
    assert_same_state(tmp_path / "one", tmp_path / "two")


def test_saved_at_two_processes_resumes_at_one(tmp_path):
    single_process(tmp_path, "uninterrupted", optimizer="lars")
    settings = dict(SETTINGS, optimizer="lars", out=str(tmp_path / "resumed"))
    script = ("import json, sys; from lars_ref.config import TrainConfig; "
              "from lars_ref.train import train; "
              "train(TrainConfig.from_dict(json.load(open(sys.argv[1]))), "
              "stop_at_step=3)")
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    done = subprocess.run(MPIEXEC + ["-n", "2", sys.executable, "-m", "mpi4py", "-c",
                                     script, str(path)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(checkpoint_path(tmp_path / "resumed"))["step"] == 3
    train(TrainConfig.from_dict(settings), resume=True)  # one process
    assert_same_state(tmp_path / "uninterrupted", tmp_path / "resumed")


def test_ranks_with_different_settings_are_refused(tmp_path):
    settings = dict(SETTINGS, out=str(tmp_path / "run"))
    done = run_ranks(tmp_path, 2, settings, per_rank=[["--lr", "1"], ["--lr", "2"]])
    assert done.returncode == 2
    messages = [line for line in done.stderr.splitlines() if "lars-ref: error" in line]
    assert len(messages) == 1, done.stderr
    assert "other settings than rank 0" in messages[0] and "lr" in messages[0]


def test_an_error_on_one_rank_ends_every_rank(tmp_path):
    settings = dict(SETTINGS, out=str(tmp_path / "run"))
    started = time.monotonic()
    done = run_ranks(tmp_path, 2, settings,
                     per_rank=[[], ["--config", str(tmp_path / "missing.json")]])
    assert time.monotonic() - started < 60
    assert done.returncode == 2
    messages = [line for line in done.stderr.splitlines() if "lars-ref: error" in line]
    assert len(messages) == 1, done.stderr  # from the failing rank, with its rank
    assert messages[0].startswith("lars-ref: error: [rank 1 of 2] ")
    assert "missing.json" in messages[0] and "does not exist" in messages[0]


def test_data_missing_on_one_rank_ends_every_rank(tmp_path):
    """Rank 1 fails after MPI started, while rank 0 waits in its first allreduce."""
    data = os.environ.get("LARS_REF_DATA")
    if not data or not os.path.isdir(os.path.join(data, "mnist")):
        pytest.skip("needs $LARS_REF_DATA with mnist")
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(dict(SETTINGS, dataset="mnist", out=str(tmp_path / "r"))))
    command = [sys.executable, "-m", "lars_ref", "train", "--config", str(path)]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run(MPIEXEC + ["-n", "1"] + command + [":", "-n", "1", "env",
                                     f"LARS_REF_DATA={empty}"] + command,
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert time.monotonic() - started < 60
    assert done.returncode == 2
    messages = [line for line in done.stderr.splitlines() if "lars-ref: error" in line]
    assert len(messages) == 1 and messages[0].startswith(
        "lars-ref: error: [rank 1 of 2]") and "mnist" in messages[0], done.stderr


def test_a_killed_rank_ends_the_job_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    settings = dict(SETTINGS, batch_size=32, steps=None, epochs=100.0, lr=0.02,
                    out=str(out))
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    job = subprocess.Popen(MPIEXEC + ["-n", "2", sys.executable, "-m", "lars_ref",
                                      "train", "--config", str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not os.path.exists(checkpoint_path(out)):  # after the first epoch
            assert job.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(rank_pid(job.pid, rank=1), signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = job.communicate(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    report = stdout + stderr  # the launcher's message (hydra: on stdout)
    # Either mpiexec reports the kill first, or the surviving rank's allreduce fails
    # first and MPI aborts the job naming that failure (a race between the two).
    names_the_kill = "Killed" in report or "signal 9" in report or "KILLED" in report
    names_the_broken_allreduce = "Fatal error" in report and "Allreduce" in report
    assert names_the_kill or names_the_broken_allreduce, report
    state = load_checkpoint(checkpoint_path(out))
    assert state["step"] % 44 == 0 and state["step"] > 0  # 1437 // 32 per epoch


def rank_pid(launcher_pid: int, rank: int) -> int:
    """The pid of ``rank`` among the descendants of ``mpiexec`` (Linux /proc)."""
    for pid in descendants(launcher_pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in variables or \
                f"OMPI_COMM_WORLD_RANK={rank}".encode() in variables:
            return pid
    raise AssertionError(f"no process of rank {rank} under pid {launcher_pid}")


def descendants(pid: int) -> list[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found
