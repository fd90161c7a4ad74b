"""lars-ref demo: the quick mode end to end, the table format, the default settings."""
import os

import pytest

from lars_ref import cli, demo
from lars_ref.train import TrainResult


def test_demo_quick_writes_tables_plots_and_metrics(tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--quick", "--out", out, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "(a) SGD + linear LR scaling + warm-up" in printed and "(b) LARS" in printed
    assert os.path.abspath(out) in printed  # the folder is named at the end
    for name in ("tables.md", "accuracy.png", "local_lr.png"):
        path = os.path.join(out, name)
        assert os.path.getsize(path) > 0, name
    with open(os.path.join(out, "accuracy.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    for run in demo.QUICK_RUNS:
        assert os.path.isfile(os.path.join(out, run.name, "epochs.csv")), run.name


def _result(acc, diverged=False):
    row = {"epoch": 1, "step": 3, "lr": 0.1, "train_loss": 1.0, "train_acc": 0.5,
           "test_loss": 1.0, "test_acc": acc}
    return TrainResult(config=None, out_dir="x", steps_done=3, epochs=[row], steps=[],
                       layers=[], diverged=diverged)


def test_demo_tables_have_the_paper_columns():
    results = [(demo.DemoRun("sgd", 32, 0.04, 0.0, "baseline"), _result(0.975)),
               (demo.DemoRun("sgd", 512, 0.64, 3.0), _result(0.1, diverged=True)),
               (demo.DemoRun("lars", 512, 20.0, 3.0), _result(0.9312))]
    text = demo.format_tables(results, epochs=30)
    assert "| Batch | Base LR | warm-up (epochs) | top-1 % | note |" in text
    assert "| 32 | 0.04 | none | 97.5 | baseline |" in text
    assert "| 512 | 0.64 | 3 | diverged |  |" in text
    assert "| 512 | 20 | 3 | 93.1 |  |" in text
    assert text.index("(a) SGD") < text.index("| 32 |") < text.index("(b) LARS")


def test_demo_default_runs_follow_linear_scaling_and_are_valid():
    sgd = [run for run in demo.DEFAULT_RUNS if run.table == "sgd"]
    small, large = sgd[0], sgd[1]
    assert large.lr == pytest.approx(small.lr * large.batch_size / small.batch_size)
    assert small.warmup_epochs == 0 and large.warmup_epochs > 0
    for run in demo.DEFAULT_RUNS:
        config = demo.demo_config(run, epochs=demo.DEFAULT_EPOCHS, seed=0, out_dir="o",
                                  backend="numpy", progress=False)
        config.validate()
        assert config.model == "alexnet_bn" and config.dataset == "digits"
