"""Estimate the wall time of the full setting from measured per-image times.

For each model, :func:`measure_model` times training steps and a test pass on
the full setting's data (in this process, one BLAS thread). It counts CPU time,
not wall time, so that the other work on a shared machine does not inflate it;
on a quiet machine a one-thread run's wall time is its CPU time. A run then takes
``epochs x (N_train x train_s + N_test x test_s) + startup_s`` and an experiment
the sum over its runs divided by the jobs that run side by side. Writes
``results/estimate.json`` (shown on the results page):
``python -m lars_ref.reproduce.estimate`` (``--reuse`` keeps the measured costs
and only recounts the runs, after a grid changed).

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time

from lars_ref.reproduce.experiments import EXPERIMENTS, experiment_specs
from lars_ref.reproduce.grid import train_config
from lars_ref.reproduce.worker import load_run_data, read_json, write_json_atomically

JOBS = 2
TIMED_IMAGES = 1024   # training images timed per model
TIMED_BATCH = 128


def measure_model(spec: dict) -> dict:
    """Seconds per training image and per test image of ``spec``'s model and data.

    Run A trains one epoch of TIMED_IMAGES images and tests on one image; run B
    trains one step and tests on the whole test subset. Their difference gives
    the test pass.
    """
    from lars_ref.train import train
    data = load_run_data({**spec, "train_subset": TIMED_IMAGES})
    settings = {**spec, "batch_size": TIMED_BATCH, "epochs": 1, "warmup_epochs": 0}
    with tempfile.TemporaryDirectory() as scratch:
        config = train_config(settings, scratch)
        started = time.process_time()
        train(config, dataset=data._replace(x_test=data.x_test[:1],
                                            y_test=data.y_test[:1]))
        train_s = (time.process_time() - started) / TIMED_IMAGES
        started = time.process_time()
        train(config.replace(steps=1, epochs=None), dataset=data)
        test_s = max(0.0, time.process_time() - started - TIMED_BATCH * train_s)
    return {"train_s_per_image": round(train_s, 6),
            "test_s_per_image": round(test_s / len(data.x_test), 6)}


def estimate(startup_s: float = 5.0, per_model: dict | None = None) -> dict:
    """Per experiment of the full setting: runs and estimated seconds with JOBS jobs.

    ``per_model``: costs measured before (``estimate.json``); models missing
    from it are measured now.
    """
    per_model, experiments = dict(per_model or {}), {}
    for name in EXPERIMENTS:
        specs = experiment_specs(name, "full")
        seconds = 0.0
        for spec in specs:
            if spec["model"] not in per_model:
                per_model[spec["model"]] = measure_model(spec)
            cost = per_model[spec["model"]]
            seconds += spec["epochs"] * (
                spec["train_subset"] * cost["train_s_per_image"]
                + spec["test_subset"] * cost["test_s_per_image"]) + startup_s
        experiments[name] = {"runs": len(specs), "seconds": round(seconds / JOBS)}
    basis = (f"measured {datetime.date.today().isoformat()}: per-image train and test "
             f"CPU times of each model at batch {TIMED_BATCH}, one thread, plus "
             f"{startup_s:g} s start-up per run, divided by {JOBS} jobs")
    return {"jobs": JOBS, "basis": basis, "per_model": per_model,
            "experiments": experiments}


def main(argv=None) -> int:
    """``--reuse``: keep the per-model costs of ``results/estimate.json``."""
    from lars_ref.reproduce.page import RESULTS_DIR
    path = os.path.join(RESULTS_DIR, "estimate.json")
    argv = sys.argv[1:] if argv is None else argv
    earlier = read_json(path) if "--reuse" in argv and os.path.exists(path) else {}
    result = estimate(per_model=earlier.get("per_model"))
    if earlier:
        result["basis"] = earlier["basis"]
    write_json_atomically(path, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
