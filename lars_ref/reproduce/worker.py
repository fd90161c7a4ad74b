"""One run of a sweep, in its own process: ``python -m lars_ref.reproduce.worker DIR``.

``DIR/spec.json`` holds the run's settings (see :mod:`lars_ref.reproduce.grid`).
The worker trains with :func:`lars_ref.train.train`, resuming from
``DIR/checkpoint.npz`` when an earlier attempt left one, and ends by writing
``DIR/result.json`` (atomically): ``status`` ("finished" or "diverged"), the
final (or, for a diverged run, the last) test accuracy and losses, and the
wall time of this attempt. A run with a ``result.json`` is done and is skipped.

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from lars_ref.data import load_dataset
from lars_ref.reproduce.grid import train_config

SPEC_NAME, RESULT_NAME = "spec.json", "result.json"
STOP_AT_STEP_ENV = "LARS_REF_SWEEP_STOP_AT_STEP"  # test hook: simulate a kill


def read_json(path: str):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_json_atomically(path: str, value) -> None:
    """Write ``value`` to ``path`` through a temporary file and ``os.replace``."""
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def subset(dataset, train_subset=None, test_subset=None, subset_seed=None):
    """``train_subset`` training and ``test_subset`` test images (None: all).

    Without ``subset_seed`` they are the first images of each split (fine for
    MNIST, whose files are shuffled); with it, a random draw without
    replacement by ``numpy.random.default_rng(subset_seed)`` (needed for
    class-sorted files such as the CIFAR-10 JPEG copy).
    """
    def pick(x, y, count):
        if subset_seed is None:
            return x[:count], y[:count]
        order = np.random.default_rng(subset_seed).permutation(len(x))[:count]
        return x[np.sort(order)], y[np.sort(order)]

    x_train, y_train = pick(dataset.x_train, dataset.y_train, train_subset)
    x_test, y_test = pick(dataset.x_test, dataset.y_test, test_subset)
    return dataset._replace(x_train=x_train, y_train=y_train, x_test=x_test,
                            y_test=y_test)


def load_run_data(spec: dict):
    """The dataset of a run, cut to its subsets."""
    dataset = load_dataset(spec.get("dataset", "digits"), spec.get("data_dir"))
    return subset(dataset, spec.get("train_subset"), spec.get("test_subset"),
                  spec.get("subset_seed"))


def run_one(run_dir: str) -> dict:
    """Train the run in ``run_dir`` (resuming if it can); write, return its result."""
    started, cpu_started = time.perf_counter(), time.process_time()
    spec = read_json(os.path.join(run_dir, SPEC_NAME))
    config = train_config(spec, run_dir)
    from lars_ref.train import checkpoint_path, train
    resume = os.path.exists(checkpoint_path(run_dir))
    stop = os.environ.get(STOP_AT_STEP_ENV)
    outcome = train(config, resume=resume, dataset=load_run_data(spec),
                    stop_at_step=int(stop) if stop else None)
    if outcome.message and not outcome.diverged:
        return {}  # stopped on purpose (the test hook): no result, as after a kill
    result = summarize(outcome)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    result["cpu_s"] = round(time.process_time() - cpu_started, 2)
    result["resumed"] = resume
    write_json_atomically(os.path.join(run_dir, RESULT_NAME), result)
    return result


def summarize(outcome) -> dict:
    """Status, last evaluated test accuracy and losses of a TrainResult."""
    evaluated = [row for row in outcome.epochs if row["test_acc"] is not None]
    last = evaluated[-1] if evaluated else {}
    return {"status": "diverged" if outcome.diverged else "finished",
            "message": outcome.message, "steps_done": outcome.steps_done,
            "epochs_done": last.get("epoch"), "test_acc": last.get("test_acc"),
            "test_loss": last.get("test_loss"), "train_loss": last.get("train_loss")}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m lars_ref.reproduce.worker RUN_DIR", file=sys.stderr)
        return 2
    result = run_one(argv[0])
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
