"""The training loop: exact micro-batch accumulation, BN chunk semantics, schedules,
bit-identical resume, deterministic metrics, divergence handling."""
import copy
import filecmp
import json
import os

import numpy as np
import pytest
from support import tiny_run_config

from lars_ref.backend import gpu_available
from lars_ref.checkpoint import CheckpointError
from lars_ref.config import ConfigError, TrainConfig
from lars_ref.data import load_dataset
from lars_ref.functional import softmax_cross_entropy
from lars_ref.models import build_model
from lars_ref.nn import BatchNorm, Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from lars_ref.optim import LARS, SGD
from lars_ref.train import (checkpoint_path, evaluate, forward_backward, train,
                            train_step)

METRIC_FILES = [f"{stream}.{ext}" for stream in ("steps", "epochs", "layers")
                for ext in ("jsonl", "csv")]


def _convnet(seed, batchnorm=False):
    """conv-relu-pool-(bn)-linear on (N, 2, 6, 6) inputs, float64, 4 classes."""
    rng = np.random.default_rng(seed)
    layers = [("conv1", Conv2d(2, 3, 3, pad=1, weight_std=0.3, bias_value=0.1, rng=rng,
                               dtype=np.float64)),
              ("relu1", ReLU()), ("pool1", MaxPool2d(2, 2))]
    if batchnorm:
        layers.append(("bn2", BatchNorm(3, dtype=np.float64)))
    layers += [("flatten", Flatten()),
               ("fc2", Linear(27, 4, weight_std=0.3, rng=rng, dtype=np.float64))]
    return Sequential(layers)


def _batch(B=12, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, 2, 6, 6)), rng.integers(0, 4, size=B)


@pytest.mark.parametrize("make_optimizer", [
    lambda: SGD(0.5, momentum=0.9, weight_decay=5e-4),
    lambda: LARS(2.0, momentum=0.9, weight_decay=5e-4, eta=0.01)])
@pytest.mark.parametrize("iter_size", [2, 3, 4])
def test_train_step_micro_batches_equal_whole_batch_without_bn(make_optimizer,
                                                               iter_size):
    x, y = _batch()
    whole, chunked = _convnet(0), _convnet(0)
    opt_whole, opt_chunked = make_optimizer(), make_optimizer()
    for _ in range(2):  # two steps, so the momentum buffers are involved too
        loss_whole, correct_whole = train_step(whole, opt_whole, x, y, iter_size=1)
        loss_chunked, correct_chunked = train_step(chunked, opt_chunked, x, y,
                                                   iter_size)
    pairs = zip(whole.named_parameters(), chunked.named_parameters())
    for (name, w), (_, w_chunked) in pairs:
        np.testing.assert_allclose(w_chunked, w, rtol=1e-12, atol=1e-12, err_msg=name)
    assert abs(float(loss_chunked) - float(loss_whole)) < 1e-12
    assert int(correct_chunked) == int(correct_whole)


def test_forward_backward_with_bn_is_mean_of_per_chunk_gradients():
    x, y = _batch(B=8)
    model, reference = _convnet(0, batchnorm=True), _convnet(0, batchnorm=True)
    forward_backward(model, x, y, iter_size=2)
    chunk_grads = []
    for chunk in (slice(0, 4), slice(4, 8)):  # each chunk alone, BN on its own stats
        reference.zero_grad()
        logits = reference.forward(x[chunk], train=True)
        reference.backward(softmax_cross_entropy(logits, y[chunk])[1])
        chunk_grads.append({n: g.copy() for n, g in reference.named_grads()})
    whole = _convnet(0, batchnorm=True)
    forward_backward(whole, x, y, iter_size=1)
    whole_grads = dict(whole.named_grads())
    for name, g in model.named_grads():
        expected = (chunk_grads[0][name] + chunk_grads[1][name]) / 2
        np.testing.assert_allclose(g, expected, rtol=1e-13, atol=1e-15, err_msg=name)
    # BN statistics per chunk: the conv1 gradient differs from the whole-batch one,
    assert not np.allclose(dict(model.named_grads())["conv1.w"], whole_grads["conv1.w"])
    # and the running statistics were updated once per chunk, like the reference's.
    for (name, a), (_, b) in zip(model.named_buffers(), reference.named_buffers()):
        np.testing.assert_allclose(a, b, rtol=1e-14, err_msg=name)


def test_forward_backward_rejects_uneven_micro_batches():
    x, y = _batch(B=10)
    with pytest.raises(ValueError, match="iter_size=3"):
        forward_backward(_convnet(0), x, y, iter_size=3)


def test_evaluate_uses_running_statistics_and_leaves_them():
    x, y = _batch(B=8)
    model = _convnet(0, batchnorm=True)
    forward_backward(model, x, y)  # move the running statistics away from 0 / 1
    buffers = {n: b.copy() for n, b in model.named_buffers()}
    loss, acc = evaluate(model, x, y, batch_size=3)
    logits = model.forward(x, train=False)
    expected_loss = float(softmax_cross_entropy(logits, y)[0])
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert acc == np.mean(logits.argmax(axis=1) == y)
    for name, b in model.named_buffers():
        np.testing.assert_array_equal(b, buffers[name])


# ----------------------------------------------------------------------------------
# Whole runs on the digits (tiny settings)
# ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("straight")
    return train(tiny_run_config(out), dataset=digits)


def test_train_writes_metrics_checkpoint_and_schedule(straight_run):
    result, out = straight_run, straight_run.out_dir
    for name in METRIC_FILES + ["config.json", "checkpoint.npz", "timings.jsonl"]:
        assert os.path.isfile(os.path.join(out, name)), name
    assert result.steps_done == 15 and not result.diverged
    assert [row["step"] for row in result.steps] == list(range(15))
    # 1437 // 128 = 11 steps per epoch: one whole epoch, then a partial one (15/11).
    assert [row["epoch"] for row in result.epochs] == [1, round(15 / 11, 6)]
    # warm-up in T_w + 1 = 4 equal rungs to gamma_0 = 1 (step 0 at 1/4, not at 0),
    # then (1 - t/15)^2 (absolute clock)
    expected = [(t + 1) / 4 for t in range(3)] + [(1 - t / 15) ** 2 for t in range(3, 15)]
    lrs = [row["lr"] for row in result.steps]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert sorted({row["step"] for row in result.layers}) == [0, 3, 6, 9, 12]
    assert len(result.layers) == 5 * 16  # 16 named tensors in AlexNet-BN
    with open(os.path.join(out, "steps.csv")) as f:
        assert f.readline().strip() == "step,epoch,lr,loss,train_acc"


def test_train_same_seed_gives_identical_metric_files(straight_run, tmp_path, digits):
    again = train(tiny_run_config(tmp_path), dataset=digits)
    for name in METRIC_FILES:
        assert filecmp.cmp(os.path.join(straight_run.out_dir, name),
                           os.path.join(again.out_dir, name), shallow=False), name


@pytest.mark.parametrize("stop", [7, 11])  # mid-epoch, and at the epoch boundary
def test_train_interrupt_and_resume_is_bit_identical(straight_run, tmp_path, digits,
                                                     stop):
    config = tiny_run_config(tmp_path)
    first = train(config, dataset=digits, stop_at_step=stop)
    assert first.steps_done == stop and "resume" in first.message
    resumed = train(config, resume=True, dataset=digits)
    assert resumed.steps_done == 15
    expected = straight_run.model.state_dict()
    for name, array in resumed.model.state_dict().items():
        assert np.array_equal(array, expected[name]), name
    expected_v = straight_run.optimizer.state_dict()["v"]
    for name, v in resumed.optimizer.state_dict()["v"].items():
        assert np.array_equal(v, expected_v[name]), name
    for name in METRIC_FILES:
        assert filecmp.cmp(os.path.join(straight_run.out_dir, name),
                           os.path.join(tmp_path, name), shallow=False), name


def test_train_resume_refuses_another_model(tmp_path, digits):
    train(tiny_run_config(tmp_path, steps=4), dataset=digits)
    with pytest.raises(CheckpointError, match="model: checkpoint has 'alexnet_bn'"):
        train(tiny_run_config(tmp_path, steps=4, model="alexnet"), resume=True,
              dataset=digits)
    with pytest.raises(CheckpointError, match="optimizer: checkpoint has 'lars', this "
                                              "run has 'sgd'"):
        train(tiny_run_config(tmp_path, steps=4, optimizer="sgd"), resume=True,
              dataset=digits)
    with pytest.raises(CheckpointError, match="batch_size"):
        train(tiny_run_config(tmp_path, steps=4, batch_size=64), resume=True,
              dataset=digits)


def test_train_divergence_stops_and_keeps_last_checkpoint(tmp_path, digits):
    train(tiny_run_config(tmp_path), dataset=digits, stop_at_step=4)
    path = checkpoint_path(str(tmp_path))
    saved = open(path, "rb").read()
    result = train(tiny_run_config(tmp_path, lr=1e30), resume=True, dataset=digits)
    assert result.diverged
    assert "diverged at step" in result.message and "(step 4)" in result.message
    assert open(path, "rb").read() == saved  # the good checkpoint is untouched
    last = result.steps[-1]
    assert np.isnan(last["loss"]) and last["step"] >= 4
    with open(os.path.join(str(tmp_path), "steps.jsonl")) as f:
        assert json.loads(f.readlines()[-1])["step"] == last["step"]


def test_train_config_round_trip(tmp_path, straight_run):
    with open(os.path.join(straight_run.out_dir, "config.json")) as f:
        saved = json.load(f)
    assert TrainConfig.from_dict(saved) == copy.deepcopy(straight_run.config)


def _mlp(seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return Sequential([("flatten", Flatten()),
                       ("fc1", Linear(64, 32, rng=rng, dtype=dtype)), ("relu1", ReLU()),
                       ("fc2", Linear(32, 10, rng=rng, dtype=dtype))])


def test_train_accepts_a_user_built_model(tmp_path, digits):
    model = _mlp(0)
    config = tiny_run_config(tmp_path, model="mlp", optimizer="sgd", lr=0.1, steps=4,
                             warmup_steps=0)
    result = train(config, dataset=digits, model=model)
    assert result.model is model and result.steps_done == 4
    names = [row["name"] for row in result.layers[:4]]
    assert names == ["fc1.w", "fc1.b", "fc2.w", "fc2.b"]
    with pytest.raises(ConfigError, match="float64 parameters but config.dtype"):
        train(tiny_run_config(tmp_path, steps=4), dataset=digits,
              model=_mlp(0, np.float64))


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a usable GPU")
def test_train_on_cupy_matches_numpy_in_float64(tmp_path, digits):
    runs = {}
    for backend in ("numpy", "cupy"):
        config = tiny_run_config(tmp_path / backend, backend=backend, dtype="float64",
                                 steps=4, dropout=0.0)
        runs[backend] = train(config, dataset=digits)
    expected = runs["numpy"].model.state_dict()
    for name, array in runs["cupy"].model.state_dict().items():
        np.testing.assert_allclose(array, expected[name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    losses = [[row["loss"] for row in runs[b].steps] for b in ("numpy", "cupy")]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-9)
