"""Run a list of run specs: check them all, then train the missing ones, N at a time.

Each run lives in ``<out>/runs/<run_name>/`` (its ``spec.json``, the training
files, ``worker.log``, and ``result.json`` once done). :func:`run_sweep`

1. checks every run before anything trains (settings, model, optimizer, data,
   batch against the data) and stops with a :class:`ConfigError` naming the run;
2. skips runs that have a ``result.json``; the others start in a worker process
   (:mod:`lars_ref.reproduce.worker`), which resumes from the run's checkpoint if
   an earlier attempt was killed;
3. keeps ``jobs`` workers busy, each with one BLAS thread.

A killed sweep therefore continues where it stopped when started again. Workers
die with the runner (Linux ``PR_SET_PDEATHSIG``), so no orphan keeps writing.

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from lars_ref.config import ConfigError
from lars_ref.errors import UserError
from lars_ref.reproduce.grid import SUBSET_KEYS, run_name, train_config
from lars_ref.reproduce.worker import (RESULT_NAME, SPEC_NAME, load_run_data, read_json,
                                       write_json_atomically)

POLL_SECONDS = 0.2
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS")}


def plan_runs(specs: list[dict], out_dir: str) -> list[tuple[str, dict]]:
    """``(run_dir, spec)`` for every spec; duplicates are dropped."""
    runs = {}
    for spec in specs:
        runs.setdefault(os.path.join(out_dir, "runs", run_name(spec)), spec)
    return list(runs.items())


# ----------------------------------------------------------------------------- checks
def check_runs(runs: list[tuple[str, dict]]) -> None:
    """Raise ConfigError for the first run that cannot train; train nothing."""
    datasets = {}
    checked = set()
    for run_dir, spec in runs:
        where = f"run {os.path.basename(run_dir)}"
        try:
            config = train_config(spec, run_dir).validate()
            _check_subsets(spec)
            key = (spec.get("dataset", "digits"), spec.get("data_dir"),
                   *(spec.get(name) for name in SUBSET_KEYS))
            if key not in datasets:
                datasets[key] = load_run_data(spec)
            _check_sizes(config.batch_size, spec, datasets[key])
            construction = repr(sorted((k, v) for k, v in spec.items() if k != "seed"))
            if construction not in checked:
                _dry_run(spec, datasets[key])
                checked.add(construction)
        except UserError as err:
            raise ConfigError(f"{where}: {err}") from None


def _check_subsets(spec: dict) -> None:
    """train_subset, test_subset: integers >= 1; subset_seed: an integer >= 0."""
    for key in SUBSET_KEYS:
        value, least = spec.get(key), 0 if key == "subset_seed" else 1
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < least):
            raise ConfigError(f"{key} must be an integer >= {least} or absent, "
                              f"got {value!r}")


def _check_sizes(batch: int, spec: dict, dataset) -> None:
    num_train = len(dataset.x_train)
    if batch > num_train:
        raise ConfigError(f"batch_size {batch} is larger than the {num_train} training "
                          f"images (dataset {dataset.name}, train_subset "
                          f"{spec.get('train_subset')}); use at most {num_train}")
    for split, labels in (("train", dataset.y_train), ("test", dataset.y_test)):
        present = len(set(labels.tolist()))
        if present < len(dataset.classes):
            raise ConfigError(
                f"the {split} subset holds only {present} of the "
                f"{len(dataset.classes)} classes of {dataset.name} (its files may be "
                "sorted by class); set subset_seed to draw a random subset, or a "
                f"larger {split}_subset")


def _dry_run(spec: dict, dataset) -> None:
    """Build the run's model, schedule and optimizer (no step) in a scratch folder."""
    from lars_ref.train import train
    with tempfile.TemporaryDirectory(prefix="lars_ref_check_") as scratch:
        train(train_config(spec, scratch), dataset=dataset, stop_at_step=0)


# ------------------------------------------------------------------------------ runs
def is_done(run_dir: str) -> bool:
    return os.path.exists(os.path.join(run_dir, RESULT_NAME))


def run_sweep(runs: list[tuple[str, dict]], jobs: int = 1, log=print,
              check_only: bool = False) -> list[dict]:
    """Check, then train every run without a result; return one row per run.

    ``check_only``: stop after the checks and the plan (nothing is written).
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    check_runs(runs)
    pending = [(d, s) for d, s in runs if not is_done(d)]
    log(f"{len(runs)} runs: {len(runs) - len(pending)} done before, "
        f"{len(pending)} to train ({jobs} at a time)")
    if check_only:
        return []
    for run_dir, spec in pending:
        os.makedirs(run_dir, exist_ok=True)
        write_json_atomically(os.path.join(run_dir, SPEC_NAME), spec)
    failed = _train_all([d for d, _ in pending], jobs, log)
    if failed:
        log(f"{len(failed)} run(s) failed; see worker.log in "
            + ", ".join(failed[:3]) + (" ..." if len(failed) > 3 else ""))
    return collect(runs)


def _train_all(run_dirs: list[str], jobs: int, log) -> list[str]:
    """Keep ``jobs`` workers busy until every run has ended; return failed run dirs."""
    waiting, active, failed, total = list(run_dirs), {}, [], len(run_dirs)
    try:
        while waiting or active:
            while waiting and len(active) < jobs:
                run_dir = waiting.pop(0)
                active[run_dir] = (_start_worker(run_dir), time.perf_counter())
            time.sleep(POLL_SECONDS)
            for run_dir, (process, started) in list(active.items()):
                if process.poll() is None:
                    continue
                del active[run_dir]
                process.log_file.close()
                if not is_done(run_dir):
                    failed.append(run_dir)
                done = total - len(waiting) - len(active)
                log(f"[{done}/{total}] {_describe(run_dir)} "
                    f"({time.perf_counter() - started:.0f} s)")
    finally:
        for process, _ in active.values():  # interrupted: stop the workers
            process.kill()
            process.wait()
    return failed


def _start_worker(run_dir: str) -> subprocess.Popen:
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    env = {**os.environ, **ONE_THREAD}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    log_file = open(os.path.join(run_dir, "worker.log"), "a", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "lars_ref.reproduce.worker", os.path.abspath(run_dir)],
        stdout=log_file, stderr=subprocess.STDOUT, env=env,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    process.log_file = log_file
    return process


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the runner dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _describe(run_dir: str) -> str:
    name = os.path.basename(run_dir)
    if not is_done(run_dir):
        return f"{name}: FAILED (see {os.path.join(run_dir, 'worker.log')})"
    result = read_json(os.path.join(run_dir, RESULT_NAME))
    acc = result["test_acc"]
    acc_text = "n/a" if acc is None else f"{100 * acc:.2f}%"
    return f"{name}: {result['status']}, test top-1 {acc_text}"


def collect(runs: list[tuple[str, dict]]) -> list[dict]:
    """One row per run: its settings, ``run``, and its result (or status "missing")."""
    rows = []
    for run_dir, spec in runs:
        result = (read_json(os.path.join(run_dir, RESULT_NAME)) if is_done(run_dir)
                  else {"status": "missing"})
        rows.append({"run": os.path.basename(run_dir), "run_dir": run_dir,
                     "spec": spec, **result})
    return rows
