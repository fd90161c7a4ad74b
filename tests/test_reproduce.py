"""The sweep runner and the named experiments (lars_ref.reproduce).

Trains tiny runs on the built-in 8x8 digits in worker processes: resume after an
interruption gives the files of an uninterrupted sweep, finished runs are not
redone, a diverged run is kept with its last accuracy, bad input stops before
anything trains, and docs/results.md equals what the committed results render.
"""
import json
import os
import re

import pytest

from support import file_snapshot

from lars_ref import cli
from lars_ref.reproduce import page
from lars_ref.reproduce.commands import run_and_report
from lars_ref.reproduce.experiments import EXPERIMENTS, SIZES, experiment_specs
from lars_ref.reproduce.grid import expand_grid, read_grid_file, run_name
from lars_ref.reproduce.results import read_csv
from lars_ref.reproduce.runner import plan_runs
from lars_ref.reproduce.worker import STOP_AT_STEP_ENV

DIGITS = {"model": "alexnet_bn", "dataset": "digits", "epochs": 2, "lr": 0.05,
          "optimizer": "sgd", "init": "paper_gain"}
# B=32: 44 steps per epoch; B=256: 5. Stopping at step 20 interrupts only B=32.
TWO_RUNS = {**DIGITS, "batch_size": [32, 256]}
CI_SUBSET = {"dataset": "digits", "train_subset": None, "test_subset": None,
             "epochs": 2}


def _quiet(*_):
    pass


def _user_error(capsys, argv):
    status = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("lars-ref: error: ")
    return lines[0]


# ------------------------------------------------------------------------ grids
def test_expand_grid_is_the_product_of_each_block_with_shared_settings():
    grid = {"model": "m", "seed": [0, 1],
            "grid": [{"batch_size": [16, 32], "lr": 0.1},
                     {"batch_size": 64, "seed": 5}]}
    specs = expand_grid(grid)
    assert [(s["batch_size"], s["seed"]) for s in specs] == [
        (16, 0), (32, 0), (16, 1), (32, 1), (64, 5)]  # shared keys vary slowest
    assert all(s["model"] == "m" for s in specs)
    assert len({run_name(s) for s in specs}) == 5


def test_toml_and_json_grid_files_read_the_same(tmp_path):
    (tmp_path / "g.toml").write_text('model = "alexnet_bn"\nbatch_size = [32, 64]\n'
                                     '[[grid]]\nlr = 0.1\n')
    (tmp_path / "g.json").write_text(json.dumps(
        {"model": "alexnet_bn", "batch_size": [32, 64], "grid": [{"lr": 0.1}]}))
    assert read_grid_file(str(tmp_path / "g.toml")) == \
        read_grid_file(str(tmp_path / "g.json"))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_spans_32_x_b0_and_full_has_three_seeds(name):
    for size in SIZES:
        specs = experiment_specs(name, size)
        assert all(s["batch_size"] <= s["train_subset"] for s in specs)
        assert len(plan_runs(specs, "out")) == len(specs)  # no two runs share a folder
    full = experiment_specs(name, "full")
    groups = {}
    for spec in full:
        key = run_name({**spec, "seed": None})
        groups.setdefault(key, set()).add(spec["seed"])
    assert all(len(seeds) >= 3 for seeds in groups.values())
    if name in ("table1", "table3", "resnet"):
        batches = [s["batch_size"] for s in full]
        assert max(batches) >= 32 * min(batches)


# -------------------------------------------------------------------- bad input
def test_unknown_experiment_is_one_line_error(capsys, tmp_path):
    line = _user_error(capsys, ["reproduce", "table9", "--out", str(tmp_path / "o")])
    assert "table9" in line and "table1" in line
    assert not (tmp_path / "o").exists()


def test_grid_file_with_unknown_key_is_one_line_error(capsys, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**DIGITS, "batchsize": 32}))
    line = _user_error(capsys, ["sweep", str(grid), "--out", str(tmp_path / "o")])
    assert "batchsize" in line and "batch_size" in line
    assert not (tmp_path / "o").exists()


def test_batch_larger_than_data_stops_before_anything_runs_and_keeps_results(
        capsys, tmp_path):
    out = tmp_path / "out"
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**DIGITS, "batch_size": 256, "epochs": 1}))
    assert cli.main(["sweep", str(grid), "--out", str(out)]) == 0
    before = file_snapshot(out)
    grid.write_text(json.dumps({**DIGITS, "batch_size": [256, 2000], "epochs": 1}))
    line = _user_error(capsys, ["sweep", str(grid), "--out", str(out)])
    assert "batch_size 2000" in line and "1437" in line
    assert file_snapshot(out) == before  # nothing computed is lost or changed


def test_check_trains_nothing_and_writes_nothing(capsys, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**DIGITS, "batch_size": [32, 64]}))
    assert cli.main(["sweep", str(grid), "--check", "--out", str(tmp_path / "o")]) == 0
    assert "2 runs: 0 done before, 2 to train" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()


def test_subset_missing_classes_is_one_line_error(capsys, tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({**DIGITS, "batch_size": 4, "train_subset": 6}))
    line = _user_error(capsys, ["sweep", str(grid), "--out", str(tmp_path / "o")])
    assert "subset_seed" in line and "of the 10 classes" in line
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------- resume, divergence
def test_interrupted_sweep_resumes_to_the_files_of_an_uninterrupted_one(
        tmp_path, monkeypatch):
    specs = expand_grid(TWO_RUNS)
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    assert run_and_report(specs, reference, 2, {"kind": "curves", "y": "test_acc"},
                          "t", {}, log=_quiet) == 0

    monkeypatch.setenv(STOP_AT_STEP_ENV, "20")  # the B=32 worker stops, as if killed
    assert run_and_report(specs, resumed, 2, {"kind": "curves", "y": "test_acc"},
                          "t", {}, log=_quiet) == 1
    statuses = {row["batch_size"]: row["status"]
                for row in read_csv(os.path.join(resumed, "runs.csv"))}
    assert statuses == {"32": "missing", "256": "finished"}
    finished_before = file_snapshot(os.path.join(resumed, "runs"))

    monkeypatch.delenv(STOP_AT_STEP_ENV)
    messages = []
    assert run_and_report(specs, resumed, 2, {"kind": "curves", "y": "test_acc"},
                          "t", {}, log=messages.append) == 0
    assert messages[0].startswith("2 runs: 1 done before, 1 to train")
    after = file_snapshot(os.path.join(resumed, "runs"))
    small, large = (run_name(s) for s in specs)
    for path, digest in finished_before.items():  # B=256 was not redone
        if path.startswith(large):
            assert after[path] == digest
    result = json.load(open(os.path.join(resumed, "runs", small, "result.json")))
    assert result["resumed"] is True
    assert read_csv(os.path.join(resumed, "results.csv")) == \
        read_csv(os.path.join(reference, "results.csv"))
    for name in (small, large):
        for stream in ("epochs.jsonl", "steps.jsonl", "layers.jsonl"):
            assert file_snapshot(os.path.join(resumed, "runs", name))[stream] == \
                file_snapshot(os.path.join(reference, "runs", name))[stream]


def test_diverged_run_is_recorded_with_its_last_accuracy_and_not_redone(tmp_path):
    # LR ramps to 20 over 3 epochs: epoch 1 is evaluated, then the loss blows up
    specs = expand_grid({**DIGITS, "batch_size": 128, "lr": 20.0, "epochs": 3,
                         "warmup_epochs": 3})
    out = str(tmp_path / "out")
    assert run_and_report(specs, out, 1, {"kind": "sweep", "x": "lr"}, "t", {},
                          log=_quiet) == 0
    (row,) = read_csv(os.path.join(out, "runs.csv"))
    epochs = [json.loads(line) for line in
              open(os.path.join(out, "runs", row["run"], "epochs.jsonl"))]
    assert row["status"] == "diverged"
    assert row["test_acc"] == f"{100 * epochs[-1]['test_acc']:.2f}"
    assert read_csv(os.path.join(out, "results.csv"))[0]["n_diverged"] == "1"
    messages = []
    run_and_report(specs, out, 1, {"kind": "sweep", "x": "lr"}, "t", {},
                   log=messages.append)
    assert messages[0].startswith("1 runs: 1 done before, 0 to train")


# ------------------------------------------------------------------ CI subset
def test_fig3_quick_grid_on_digits_writes_tables_and_figure(tmp_path):
    specs = experiment_specs("fig3", "quick", overrides=CI_SUBSET)
    out = str(tmp_path / "fig3")
    assert run_and_report(specs, out, 2, EXPERIMENTS["fig3"].plot, "fig3", {},
                          log=_quiet) == 0
    rows = read_csv(os.path.join(out, "results.csv"))
    assert [(r["optimizer"], r["batch_size"]) for r in rows] == [
        ("sgd", "16"), ("sgd", "512"), ("lars", "512")]
    assert all(r["n_runs"] == "1" and r["test_acc_mean"] for r in rows)
    for name in ("figure.png", "results.md", "runs.csv", "meta.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0


# --------------------------------------------------------------- results page
def test_results_page_equals_the_committed_result_files():
    with open(page.PAGE_PATH, encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == page.render_page(), \
        "docs/results.md is stale: run python -m lars_ref.reproduce.page"


def test_every_number_in_the_result_tables_is_in_the_results_csv():
    with open(page.PAGE_PATH, encoding="utf-8") as handle:
        text = handle.read()
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    checked = 0
    for section, name in ((s, n) for s in sections for n in EXPERIMENTS
                          if f"reproduce {n} " in s.split("\n\n")[1]
                          and "not yet run" not in s.splitlines()[0]):
        size = section.split()[0]
        folder = os.path.join(page.RESULTS_DIR, f"{name}-{size}")
        values = {v for row in read_csv(os.path.join(folder, "results.csv"))
                  for v in row.values()}
        for line in section.splitlines():
            if line.startswith("| ") and not line.startswith("| ---"):
                cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
                numbers = [c for c in cells if re.fullmatch(r"-?\d[\d.e+-]*", c)]
                assert set(numbers) <= values, (name, line)
                checked += len(numbers)
    assert checked > 0
