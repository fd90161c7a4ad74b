"""Whole training steps on the strict device double: no hidden host read anywhere, and
exactly the documented device-to-host copies (``lars_ref/train.py``, ``docs/gpu.md``):
none in a step or in the optimizer, one per logging interval, and at an epoch end
one for the evaluation plus one per array of a checkpoint."""
import filecmp
import os

import numpy as np
import pytest
from support import tiny_run_config

import lars_ref.train as training
from lars_ref.data import load_dataset
from lars_ref.optim import LARS, PRESETS, SGD, build_preset
from lars_ref.tools import strict_device
from lars_ref.tools.bench_optim import main as bench_optim_main, resnet20_tensors
from lars_ref.tools.host_reads import HostReadError, count_host_reads

METRIC_FILES = [f"{stream}.{ext}" for stream in ("steps", "epochs", "layers")
                for ext in ("jsonl", "csv")]


# ------------------------------------------------------------------ the optimizer step
def _few_resnet20_tensors():
    params, grads = resnet20_tensors(np, np.float32)
    names = list(params)[:4] + ["fc.b"]          # fc.b starts at 0: the zero-norm rules
    return {n: params[n] for n in names}, {n: grads[n] for n in names}


@pytest.mark.parametrize("record_stats", [True, False])
@pytest.mark.parametrize("preset", [None, *sorted(PRESETS)])
def test_lars_step_makes_no_host_transfer(preset, record_stats):
    schedule = lambda t: 0.1 / (t + 1)                                 # noqa: E731
    opt = (LARS(schedule, eta=0.01, record_stats=record_stats) if preset is None else
           build_preset(preset, schedule, momentum=0.9, weight_decay=1e-4, eta=0.01,
                        record_stats=record_stats))
    assert count_host_reads(opt, *_few_resnet20_tensors(), steps=3) == []


@pytest.mark.parametrize("form", ["paper", "pytorch"])
def test_sgd_step_makes_no_host_transfer(form):
    opt = SGD(0.1, form=form, nesterov=(form == "pytorch"))
    assert count_host_reads(opt, *_few_resnet20_tensors(), steps=3) == []


def test_a_host_read_in_a_step_is_caught():
    class PeekingLARS(LARS):                       # the pattern a step must never use
        def _update_tensor(self, name, w, g, v, norms):
            if norms[0] > 0:
                pass
            return super()._update_tensor(name, w, g, v, norms)
    with pytest.raises(HostReadError, match=r"bool\(\)"):
        count_host_reads(PeekingLARS(0.1), *_few_resnet20_tensors())


# ------------------------------------------------------------------ whole runs
@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _run_counting(monkeypatch, config, digits, **kwargs):
    """Train on the strict device; return (result, {t: copies in step t}, in-step copies)."""
    monkeypatch.setattr(training, "resolve_backend", lambda name: strict_device.xp)
    per_step, in_optimizer = {}, []
    run_step = training.Run._step

    def counted_step(run):
        t = run.optimizer.t
        if not getattr(run.optimizer, "_counted", False):
            step = run.optimizer.step
            def counted(params, grads):
                in_optimizer.extend(strict_device.count_transfers(step, params, grads)[1])
            run.optimizer.step, run.optimizer._counted = counted, True
        per_step[t] = strict_device.count_transfers(run_step, run)[1]

    monkeypatch.setattr(training.Run, "_step", counted_step)
    result = training.train(config, dataset=digits, **kwargs)
    return result, per_step, in_optimizer


@pytest.mark.parametrize("changes", [
    dict(),                                             # LARS, 2 micro-batches, BN
    dict(optimizer="sgd", micro_batch=128),             # SGD, one batch
    dict(model="alexnet", optimizer="nvcaffe_2017", micro_batch=32)])  # dropout, k=4
def test_training_run_copies_exactly_the_documented_number(monkeypatch, tmp_path,
                                                           digits, changes):
    config = tiny_run_config(tmp_path / "device", **changes)
    result, per_step, in_optimizer = _run_counting(monkeypatch, config, digits)
    assert in_optimizer == []
    model, opt = result.model, result.optimizer
    checkpoint_arrays = (len(list(model.named_parameters()))
                         + len(list(model.named_buffers())) + len(opt.state["v"]))
    # the last epoch row and checkpoint come after the last step (Run._finish)
    epoch_ends = {row["step"] - 1 for row in result.epochs} - {config.steps - 1}
    for t, copies in per_step.items():
        logging_interval_ends = (t + 1) % config.log_every == 0
        expected = 1 if logging_interval_ends or t in epoch_ends else 0
        if t in epoch_ends:                                  # evaluation + checkpoint
            expected += 1 + checkpoint_arrays
        assert len(copies) == expected, (t, copies)
    assert len(per_step) == config.steps and epoch_ends


def test_strict_device_run_writes_the_numpy_run_byte_for_byte(monkeypatch, tmp_path,
                                                             digits):
    host = training.train(tiny_run_config(tmp_path / "host"), dataset=digits)
    _run_counting(monkeypatch, tiny_run_config(tmp_path / "device"), digits)
    for name in METRIC_FILES:
        assert filecmp.cmp(os.path.join(host.out_dir, name),
                           os.path.join(tmp_path / "device", name), shallow=False), name


def test_strict_device_run_resumes_bit_identically(monkeypatch, tmp_path, digits):
    straight = training.train(tiny_run_config(tmp_path / "host"), dataset=digits)
    config = tiny_run_config(tmp_path / "device")
    _run_counting(monkeypatch, config, digits, stop_at_step=6)
    _run_counting(monkeypatch, config, digits, resume=True)
    for name in METRIC_FILES:
        assert filecmp.cmp(os.path.join(straight.out_dir, name),
                           os.path.join(config.out, name), shallow=False), name


# ------------------------------------------------------------------ bench-optim
def test_bench_optim_uses_the_resnet20_of_models_py(capsys):
    params, grads = resnet20_tensors(np, np.float32)
    # He et al. 2016, Table 6: ResNet-20 has 0.27M parameters (19 convs, 19 BNs, fc).
    assert len(params) == 59 and sum(w.size for w in params.values()) == 269_722
    assert all(grads[name].shape == w.shape for name, w in params.items())
    assert bench_optim_main(["--steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "lars (Algorithm 1)" in out and "ResNet-20 (models.py)" in out


# ------------------------------------------------------------------ state dicts
def test_state_dicts_load_from_device_arrays():
    """Module and optimizer state given as device arrays (e.g. copied from another
    run on the GPU) load without a NumPy call on them."""
    from lars_ref.backend import to_device, to_numpy
    from lars_ref.models import build_model
    xp = strict_device.xp
    source = build_model("resnet20", num_classes=10, in_shape=(3, 8, 8), seed=1, xp=xp)
    target = build_model("resnet20", num_classes=10, in_shape=(3, 8, 8), seed=2, xp=xp)
    state = {name: to_device(a, xp) for name, a in source.state_dict().items()}
    target.load_state_dict(state)
    for name, a in target.state_dict().items():
        np.testing.assert_array_equal(a, to_numpy(state[name]), err_msg=name)
    params, grads = _few_resnet20_tensors()
    opt = LARS(0.1)
    opt.step(params, grads)
    device_state = {"t": 1, "v": {k: to_device(v, xp) for k, v in opt.state["v"].items()}}
    restored = LARS(0.1)
    restored.load_state_dict(device_state)
    for name, v in opt.state["v"].items():
        np.testing.assert_array_equal(restored.state["v"][name], v, err_msg=name)
