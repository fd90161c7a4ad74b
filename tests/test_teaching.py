"""The helpers behind notebooks 00 and 05-07 (lars_ref.teaching), on tiny inputs."""
from __future__ import annotations

import numpy as np
import pytest

from lars_ref import teaching
from lars_ref.models import build_model
from lars_ref.train_step import forward_backward


def test_the_paper_map_names_only_things_that_exist():
    rows = teaching.paper_map_rows()
    assert len(rows) > 10 and set(rows[0]) == {"paper", "code", "notebook", "tests"}
    assert teaching.missing_map_targets(rows) == []


def test_map_check_reports_a_missing_file_function_test_and_notebook():
    row = {"paper": "x", "code": "`optim/lars.py::no_such_function`, `nowhere.py`",
           "notebook": "01, 99",
           "tests": "`test_lars.py::test_that_does_not_exist`, `test_lars.py`"}
    assert teaching.missing_map_targets([row]) == [
        "optim/lars.py::no_such_function", "nowhere.py",
        "test_lars.py::test_that_does_not_exist", "notebook 99"]


def test_largest_trained_lr_uses_the_mean_over_seeds():
    row = teaching.SweepRow
    rows = [row("m", 0, 0.1, 0.9, False), row("m", 1, 0.1, 0.8, False),
            row("m", 0, 0.2, 0.9, False), row("m", 1, 0.2, 0.0, True),
            row("n", 0, 0.4, 0.9, False)]
    assert teaching.mean_top1(rows, "m") == {0.1: pytest.approx(0.85), 0.2: 0.45}
    assert teaching.largest_trained_lr(rows, "m") == 0.1      # 0.2: mean 45 % < 50 %
    assert teaching.largest_trained_lr(rows, "m", threshold=0.95) is None


def test_workers_average_to_the_micro_batch_gradient_with_bn():
    x = np.random.default_rng(0).standard_normal((16, 1, 8, 8))
    y = np.arange(16) % 10

    def model():
        return build_model("alexnet_bn", num_classes=10, in_shape=(1, 8, 8),
                           dtype=np.float64, dropout=0.0)

    one = model()
    forward_backward(one, x, y, iter_size=4)
    workers = teaching.mean_over_workers(teaching.worker_gradients(model(), x, y, 2, 2))
    for name, grad in one.named_grads():
        np.testing.assert_allclose(workers[name], grad, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="does not split over 3 workers"):
        teaching.worker_gradients(model(), x, y, 3)


def test_scale_invariance_holds_for_alexnet_bn_and_not_for_alexnet():
    x, y = teaching.normalised_digits_batch(teaching.digits(), 32)
    x = x.astype(np.float64)
    # with a BN eps of 1e-30 the invariance is exact (float64 rounding only)
    bn_change, bn_grad_ratio = teaching.scale_invariance(
        "alexnet_bn", "conv1", 3.0, x, y, bn_eps=1e-30)
    lrn_change, _ = teaching.scale_invariance("alexnet", "conv1", 3.0, x, y)
    assert bn_change < 1e-12 and bn_grad_ratio == pytest.approx(1 / 3, rel=1e-10)
    assert lrn_change > 0.5
