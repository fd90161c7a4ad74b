"""Cross-check every functional op against PyTorch autograd, in float64.

PyTorch is an independent implementation; forward outputs and the gradients of a
random upstream gradient must agree to 1e-10 relative.
"""

import numpy as np
import pytest

from lars_ref import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RTOL, ATOL = 1e-10, 1e-12


def leaf(a):
    """A float64 torch tensor requiring grad (None stays None)."""
    return (
        None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True)
    )


def torch_forward_backward(fn, arrays, dout):
    """Run fn on torch leaves; return (out, [grad of each array or None])."""
    leaves = [leaf(a) for a in arrays]
    out = fn(*leaves)
    out.backward(torch.tensor(dout))
    grads = [None if t is None else t.grad.numpy() for t in leaves]
    return out.detach().numpy(), grads


def assert_close(ours, theirs, name):
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def assert_grads_close(ours, theirs, names):
    for name, a, t in zip(names, ours, theirs, strict=True):
        if t is None:
            assert a is None, f"{name} should be None"
        else:
            assert_close(a, t, name)


@pytest.mark.parametrize(
    "size, stride, pad, groups, with_bias",
    [
        (8, 1, 0, 1, True),
        (7, 2, 1, 1, True),
        (8, 1, 1, 2, False),
        (7, 2, 0, 3, True),
        (8, 3, 2, 1, False),
        (8, 2, 1, 1, True),
    ],
)
def test_conv2d_matches_torch(size, stride, pad, groups, with_bias, rng):
    x = rng.standard_normal((2, 6, size, size))
    w = rng.standard_normal((3 * groups, 6 // groups, 3, 3))
    b = rng.standard_normal(3 * groups) if with_bias else None
    out, cache = F.conv2d_forward(x, w, b, stride, pad, groups)
    dout = rng.standard_normal(out.shape)
    ours = F.conv2d_backward(dout, cache)
    theirs_out, theirs = torch_forward_backward(
        lambda x, w, b: TF.conv2d(x, w, b, stride=stride, padding=pad, groups=groups),
        [x, w, b],
        dout,
    )
    assert_close(out, theirs_out, "out")
    assert_grads_close(ours, theirs, ("dx", "dw", "db"))


def test_linear_matches_torch(rng):
    x, w, b = (
        rng.standard_normal((4, 6)),
        rng.standard_normal((6, 3)),
        rng.standard_normal(3),
    )
    out, cache = F.linear_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    theirs_out, theirs = torch_forward_backward(
        lambda x, w, b: x @ w + b, [x, w, b], dout
    )
    assert_close(out, theirs_out, "out")
    assert_grads_close(F.linear_backward(dout, cache), theirs, ("dx", "dw", "db"))


def test_softmax_cross_entropy_matches_torch(rng):
    logits = 3.0 * rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, size=6)
    loss, dlogits = F.softmax_cross_entropy(logits, labels)
    logits_t = leaf(logits)
    loss_t = TF.cross_entropy(logits_t, torch.tensor(labels))
    loss_t.backward()
    assert_close(loss, loss_t.item(), "loss")
    assert_close(dlogits, logits_t.grad.numpy(), "dlogits")


def test_relu_matches_torch(rng):
    x = rng.standard_normal((3, 4, 5))
    out, cache = F.relu_forward(x)
    dout = rng.standard_normal(out.shape)
    theirs_out, (theirs_dx,) = torch_forward_backward(TF.relu, [x], dout)
    assert_close(out, theirs_out, "out")
    assert_close(F.relu_backward(dout, cache), theirs_dx, "dx")


@pytest.mark.parametrize(
    "size, stride, shape",
    [(2, 2, (2, 3, 6, 4)), (3, 2, (2, 2, 7, 5)), (3, 1, (2, 2, 5, 5))],
)
def test_pools_match_torch(size, stride, shape, rng):
    x = rng.standard_normal(shape)
    for ours_fwd, ours_bwd, theirs_fn in [
        (F.max_pool2d_forward, F.max_pool2d_backward, TF.max_pool2d),
        (F.avg_pool2d_forward, F.avg_pool2d_backward, TF.avg_pool2d),
    ]:
        out, cache = ours_fwd(x, size, stride)
        dout = rng.standard_normal(out.shape)
        theirs_out, (theirs_dx,) = torch_forward_backward(
            lambda x: theirs_fn(x, size, stride), [x], dout
        )
        assert_close(out, theirs_out, f"{theirs_fn.__name__} out")
        assert_close(ours_bwd(dout, cache), theirs_dx, f"{theirs_fn.__name__} dx")


def test_global_avg_pool_matches_torch(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out, cache = F.global_avg_pool_forward(x)
    dout = rng.standard_normal(out.shape)
    theirs_out, (theirs_dx,) = torch_forward_backward(
        lambda x: TF.adaptive_avg_pool2d(x, 1).flatten(1), [x], dout
    )
    assert_close(out, theirs_out, "out")
    assert_close(F.global_avg_pool_backward(dout, cache), theirs_dx, "dx")


@pytest.mark.parametrize("shape", [(3, 2, 3, 4), (5, 3)], ids=["nchw", "nd"])
@pytest.mark.parametrize("affine", [True, False], ids=["scale_shift", "no_scale_shift"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_matches_torch(shape, affine, train, rng):
    C = shape[1]
    x = 2.0 * rng.standard_normal(shape) + 0.5
    gamma = rng.uniform(0.5, 1.5, size=C) if affine else None
    beta = rng.standard_normal(C) if affine else None
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, size=C)
    out, cache, new_rm, new_rv = F.batchnorm_forward(
        x, gamma, beta, rm, rv, train=train, momentum=0.9, eps=1e-4
    )
    dout = rng.standard_normal(out.shape)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)  # torch updates these in place
    theirs_out, theirs = torch_forward_backward(
        lambda x, g, b: TF.batch_norm(
            x, rm_t, rv_t, g, b, training=train, momentum=0.1, eps=1e-4
        ),  # torch momentum = 1 - ours
        [x, gamma, beta],
        dout,
    )
    assert_close(out, theirs_out, "out")
    assert_close(new_rm, rm_t.numpy(), "running_mean")
    assert_close(new_rv, rv_t.numpy(), "running_var")
    assert_grads_close(
        F.batchnorm_backward(dout, cache), theirs, ("dx", "dgamma", "dbeta")
    )


@pytest.mark.parametrize(
    "size, alpha, beta, k",
    [(5, 1e-4, 0.75, 1.0), (3, 0.8, 0.75, 2.0), (5, 2.0, 0.5, 1.0)],
)
def test_lrn_matches_torch(size, alpha, beta, k, rng):
    # PyTorch, like Caffe and lars_ref, multiplies the window sum by alpha / size.
    x = rng.standard_normal((2, 7, 3, 4))
    out, cache = F.lrn_forward(x, size, alpha, beta, k)
    dout = rng.standard_normal(out.shape)
    theirs_out, (theirs_dx,) = torch_forward_backward(
        lambda x: TF.local_response_norm(x, size, alpha, beta, k), [x], dout
    )
    assert_close(out, theirs_out, "out")
    assert_close(F.lrn_backward(dout, cache), theirs_dx, "dx")
