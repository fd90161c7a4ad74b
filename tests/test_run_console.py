"""What a run says and does (issue 11 items 4-6, issue 9 item 6).

One console line per epoch also into a pipe; the LARS zero-norm rule named
once and frozen tensors warned about; ``--optimizer lars`` moves every tensor;
the logged LR is the one L5 used; step 0 trains; Dropout keeps its own
generator.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from lars_ref import cli
from lars_ref.checkpoint import load_checkpoint
from lars_ref.config import TrainConfig
from lars_ref.data import load_dataset
from lars_ref.models import build_model
from lars_ref.nn import Dropout
from lars_ref.train import train

TINY = ["--dataset", "digits", "--batch-size", "64", "--no-progress",
        "--blas-threads", "1"]


def test_one_line_per_epoch_when_stdout_is_a_pipe(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lars_ref", "train", *TINY, "--epochs", "2.5",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2.5", "2/2.5", "2.5/2.5"]
    for line in lines:
        for word in ("loss", "train", "test", "lr"):
            assert f" {word} " in line, line
        assert line.endswith(" s")


def _resnet20_run(tmp_path, optimizer, capsys):
    out = tmp_path / optimizer
    status = cli.main(["train", *TINY, "--model", "resnet20", "--optimizer", optimizer,
                       "--lr", "1", "--steps", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return load_checkpoint(out / "checkpoint.npz")["model"], captured


def test_lars_default_moves_every_tensor_and_the_literal_box_warns(tmp_path, capsys):
    digits = load_dataset("digits")
    start = build_model("resnet20", num_classes=10, in_shape=digits.x_train.shape[1:],
                        seed=0, dtype=np.float32).state_dict()
    trained = {name: start[name] for name in start}
    weights, captured = _resnet20_run(tmp_path, "lars", capsys)
    params = [name for name in weights if not name.endswith(("running_mean",
                                                             "running_var"))]
    frozen = [name for name in params if np.array_equal(weights[name], trained[name])]
    assert frozen == []                   # BN shifts and the last bias move too
    assert captured.out.count("lam = 1 where ||w|| or ||g|| is 0") == 1
    assert "warning" not in captured.err
    weights, captured = _resnet20_run(tmp_path, "paper_iclr", capsys)
    frozen = [name for name in params if np.array_equal(weights[name], trained[name])]
    assert len(frozen) == 20 and all(n.endswith((".beta", ".b")) for n in frozen)
    assert captured.err.count("lars-ref: warning: 20 of ") == 1
    assert "never move" in captured.err and "--optimizer lars" in captured.err


def _gamma(t, gamma_0=2.0, T=6, T_w=3):
    """Warm-up in T_w + 1 even rungs, then Algorithm 1 L3 on the absolute clock."""
    return gamma_0 * (t + 1) / (T_w + 1) if t < T_w else gamma_0 * (1 - t / T) ** 2


@pytest.mark.parametrize("optimizer, offset", [("lars", 0), ("paper_v3", 1)])
def test_logged_lr_is_the_one_line_5_used(tmp_path, optimizer, offset):
    config = TrainConfig(dataset="digits", optimizer=optimizer, lr=2.0, steps=6,
                         epochs=None, warmup_steps=3, batch_size=128, out=str(tmp_path),
                         progress=False, console=False, log_every=2, blas_threads=1)
    result = train(config)
    logged = [row["lr"] for row in result.steps]
    np.testing.assert_allclose(logged, [_gamma(t + offset) for t in range(6)],
                               rtol=1e-15)
    assert logged[0] > 0                  # step 0 trains (no step at LR 0)


def test_help_and_docs_explain_the_two_schedule_surprises():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    help_text = subprocess.run([sys.executable, "-m", "lars_ref", "train", "--help"],
                               capture_output=True, text=True, env=env).stdout
    flat = " ".join(help_text.split())
    assert "steps down at the end of warm-up" in flat
    assert "so that step 0 trains" in flat
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "schedules.md")
    text = " ".join(open(docs, encoding="utf-8").read().split())
    assert "steps down at the end of warm-up" in text and "step 0" in text


def test_dropout_saves_and_restores_its_own_generator():
    layer = Dropout(0.5, np.random.default_rng(3))
    x = np.ones((4, 6))
    layer.forward(x)
    state = layer.random_state()
    expected = layer.forward(x)
    layer.forward(x)
    layer.load_random_state(state)
    np.testing.assert_array_equal(layer.forward(x), expected)
