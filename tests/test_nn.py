"""Tests of lars_ref.nn: the Module contract, the layers' bookkeeping, the containers.

The maths of each op is tested beside the op (tests/test_functional_*.py); here we
test what the layers add: names, gradient accumulation, buffers, state dicts,
errors, Conv2d's floor mode and the residual block, with float64 finite
differences and PyTorch as independent oracles.
"""
import numpy as np
import pytest

from lars_ref import nn
from lars_ref.functional import ShapeError
from lars_ref.gradcheck import numerical_gradient, relative_error


def small_net(rng, dtype=np.float64):
    """conv1 -> bn2 (no scale/shift) -> relu -> pool -> flatten -> fc."""
    return nn.Sequential([
        ("conv1", nn.Conv2d(3, 4, 3, pad=1, bias_value=0.1, rng=rng, dtype=dtype)),
        ("bn2", nn.BatchNorm(4, affine=False, dtype=dtype)),
        ("relu", nn.ReLU()),
        ("pool", nn.MaxPool2d(2, 2)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4 * 3 * 3, 5, rng=rng, dtype=dtype)),
    ])


def forward_backward(model, x, rng):
    """One forward in train mode and a backward of a fixed random upstream gradient."""
    out = model.forward(x, train=True)
    model.backward(rng.standard_normal(out.shape).astype(out.dtype))
    return out


# ----------------------------------------------------------------------- names
def test_named_parameters_are_dotted_and_in_forward_order(rng):
    model = small_net(rng)
    assert [name for name, _ in model.named_parameters()] == [
        "conv1.w", "conv1.b", "fc.w", "fc.b"]
    assert [name for name, _ in model.named_buffers()] == [
        "bn2.running_mean", "bn2.running_var"]
    assert [name for name, _ in model.named_grads()] == [
        name for name, _ in model.named_parameters()]
    for (_, p), (_, g) in zip(model.named_parameters(), model.named_grads()):
        assert g.shape == p.shape and g.dtype == p.dtype and not g.any()


def test_nested_containers_give_nested_names(rng):
    model = nn.Sequential([
        ("layer1", nn.Sequential([
            ("0", nn.ResidualBlock(2, 2, rng=rng)),
            ("1", nn.ResidualBlock(2, 4, stride=2, shortcut="B", rng=rng)),
        ])),
    ])
    names = [name for name, _ in model.named_parameters()]
    assert names[:4] == ["layer1.0.conv1.w", "layer1.0.bn1.gamma", "layer1.0.bn1.beta",
                         "layer1.0.conv2.w"]
    assert "layer1.1.shortcut.conv.w" in names and "layer1.1.shortcut.bn.beta" in names
    assert "layer1.0.shortcut.conv.w" not in names  # same shape: identity shortcut
    buffers = [name for name, _ in model.named_buffers()]
    assert buffers[:2] == ["layer1.0.bn1.running_mean", "layer1.0.bn1.running_var"]
    assert model["layer1"][1].conv1.name == "layer1.1.conv1"


def test_sequential_rejects_bad_child_names(rng):
    with pytest.raises(ValueError, match="unique"):
        nn.Sequential([("a", nn.ReLU()), ("a", nn.ReLU())])
    with pytest.raises(ValueError, match="without dots"):
        nn.Sequential([("a.b", nn.ReLU())])


# ----------------------------------------------------------------------- grads
def test_backward_accumulates_over_micro_batches_and_zero_grad_resets(rng):
    model = small_net(rng)
    x_a, x_b = rng.standard_normal((2, 3, 3, 6, 6))
    dout_a, dout_b = rng.standard_normal((2, 3, 5))

    def grads_of(pairs):
        model.zero_grad()
        for x, dout in pairs:
            model.forward(x, train=True)
            model.backward(dout)
        return {name: g.copy() for name, g in model.named_grads()}

    grads_a, grads_b = grads_of([(x_a, dout_a)]), grads_of([(x_b, dout_b)])
    grads_ab = grads_of([(x_a, dout_a), (x_b, dout_b)])
    for name in grads_ab:
        np.testing.assert_allclose(grads_ab[name], grads_a[name] + grads_b[name],
                                   rtol=1e-12, atol=1e-14)
    grad_arrays = [g for _, g in model.named_grads()]
    model.zero_grad()
    assert all(not g.any() for g in grad_arrays)
    assert all(g is h for g, (_, h) in zip(grad_arrays, model.named_grads()))


def test_backward_before_forward_names_the_layer(rng):
    model = small_net(rng)
    with pytest.raises(RuntimeError, match="'fc'.*without a forward"):
        model.backward(np.ones((2, 5)))


def test_backward_releases_every_cache(rng):
    """Each forward serves one backward: the backward frees the activations it
    read (a lower peak memory), and a second backward is refused, as in PyTorch."""
    model = small_net(rng)
    x = rng.standard_normal((2, 3, 6, 6))
    model.backward(np.ones_like(model.forward(x)))
    assert all(module.cache is None for _, module in model.named_modules())
    with pytest.raises(RuntimeError, match="'fc'.*without a forward"):
        model.backward(np.ones((2, 5)))


def test_float32_model_keeps_float32(rng):
    model = small_net(rng, dtype=np.float32)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    out = forward_backward(model, x, rng)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for _, g in model.named_grads())


# ----------------------------------------------------------------------- buffers
def test_batchnorm_running_stats_change_only_in_train_mode(rng):
    bn = nn.BatchNorm(3, momentum=0.9, eps=1e-5, dtype=np.float64)
    x = 2.0 + rng.standard_normal((4, 3, 5, 5))
    bn.forward(x, train=False)
    np.testing.assert_array_equal(bn.buffers["running_mean"], np.zeros(3))
    np.testing.assert_array_equal(bn.buffers["running_var"], np.ones(3))
    bn.forward(x, train=True)
    # running = momentum * running + (1 - momentum) * batch statistic, from mean 0
    np.testing.assert_allclose(bn.buffers["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)),
                               rtol=1e-12)
    # the running variance takes the unbiased batch variance (Ioffe & Szegedy 2015,
    # Algorithm 2 line 10; documented in lars_ref.functional.batchnorm_forward)
    np.testing.assert_allclose(bn.buffers["running_var"],
                               0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    before = {name: b.copy() for name, b in bn.named_buffers()}
    bn.forward(x, train=False)
    for name, b in bn.named_buffers():
        np.testing.assert_array_equal(b, before[name])


def test_batchnorm_without_affine_has_no_parameters():
    bn = nn.BatchNorm(5, affine=False, momentum=0.9, eps=1e-4)
    assert list(bn.named_parameters()) == [] and list(bn.named_grads()) == []
    assert [name for name, _ in bn.named_buffers()] == ["running_mean", "running_var"]


# ----------------------------------------------------------------------- state
def test_state_dict_round_trip_reproduces_outputs(rng):
    source = small_net(np.random.default_rng(1))
    target = small_net(np.random.default_rng(2))
    x = rng.standard_normal((3, 3, 6, 6))
    source.forward(x, train=True)  # moves the running statistics off their start
    state = source.state_dict()
    assert list(state) == ["conv1.w", "conv1.b", "fc.w", "fc.b",
                           "bn2.running_mean", "bn2.running_var"]
    target_arrays = [a for _, a in target.named_parameters()]
    target.load_state_dict(state)
    np.testing.assert_array_equal(target.forward(x, train=False),
                                  source.forward(x, train=False))
    assert all(a is b for a, (_, b) in zip(target_arrays, target.named_parameters()))
    state["fc.w"][...] = 0.0  # a copy: the model is untouched
    assert source["fc"].params["w"].any()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("fc.b"), "missing entry 'fc.b'"),
    (lambda s: s.update({"fc.w": np.zeros((5, 36))}), r"'fc.w'.*\(36, 5\).*\(5, 36\)"),
    (lambda s: s.update({"fc.gamma": np.zeros(5)}), "unexpected entry 'fc.gamma'"),
])
def test_load_state_dict_names_the_first_mismatch(rng, edit, message):
    model = small_net(rng)
    state = model.state_dict()
    edit(state)
    with pytest.raises(nn.StateDictError, match=message):
        model.load_state_dict(state)


def test_to_numpy_keeps_names_and_values(rng):
    model = small_net(rng)
    before = model.state_dict()
    model.to(np)
    after = model.state_dict()
    assert list(after) == list(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


# ----------------------------------------------------------------------- errors
def test_shape_error_names_the_layer_and_the_shapes(rng):
    model = nn.Sequential([("features", small_net(rng))])
    with pytest.raises(ShapeError, match=r"layer 'features\.conv1'.*\(2, 2, 6, 6\)"):
        model.forward(rng.standard_normal((2, 2, 6, 6)))
    stage = nn.Sequential([("0", nn.ResidualBlock(3, 3, rng=rng))])
    block = nn.Sequential([("layer1", stage)])
    with pytest.raises(ShapeError, match=r"layer 'layer1\.0\.conv1'.*\(1, 2, 4, 4\)"):
        block.forward(rng.standard_normal((1, 2, 4, 4)))


# ----------------------------------------------------------------------- dropout
def test_dropout_is_identity_in_eval_and_replays_a_mask(rng):
    x = rng.standard_normal((4, 6))
    drop = nn.Dropout(0.5, np.random.default_rng(3))
    assert drop.forward(x, train=False) is x
    assert drop.backward(x) is x
    out = drop.forward(x, train=True)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2.0 * x[kept])  # 1 / (1 - p)
    drop.rng = np.random.default_rng(3)
    np.testing.assert_array_equal(drop.forward(x, train=True), out)
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), 2.0 * kept)


# ----------------------------------------------------------------------- floor mode
@pytest.mark.parametrize("kernel, stride, pad, size", [
    (3, 2, 1, 8),   # ResNet downsampling: the bottom/right padding row is never read
    (1, 2, 0, 8),   # option-B projection: odd rows/columns are skipped
    (11, 4, 0, 17),  # BVLC conv1 geometry on a size that does not fit exactly
])
def test_conv2d_floor_mode_matches_torch(rng, kernel, stride, pad, size):
    torch = pytest.importorskip("torch")
    conv = nn.Conv2d(4, 6, kernel, stride=stride, pad=pad, groups=2, rng=rng,
                     dtype=np.float64)
    x = rng.standard_normal((2, 4, size, size))
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    x_t = torch.tensor(x, requires_grad=True)
    w_t = torch.tensor(conv.params["w"], requires_grad=True)
    b_t = torch.tensor(conv.params["b"], requires_grad=True)
    out_t = torch.nn.functional.conv2d(x_t, w_t, b_t, stride=stride, padding=pad,
                                       groups=2)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, tensor in (("w", w_t), ("b", b_t)):
        np.testing.assert_allclose(conv.grads[name], tensor.grad.numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_conv2d_floor_mode_input_gradient_by_finite_differences(rng):
    conv = nn.Conv2d(2, 3, 3, stride=2, pad=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 6, 6))
    dout = rng.standard_normal(conv.forward(x).shape)
    dx = conv.backward(dout)
    dx_num = numerical_gradient(lambda x_: conv.forward(x_), x, dout)
    assert relative_error(dx, dx_num) < 1e-8


# ----------------------------------------------------------------------- residual block
def test_pad_shortcut_subsamples_and_appends_zero_channels(rng):
    shortcut = nn.PadShortcut(2, 5, stride=2)
    x = rng.standard_normal((2, 2, 5, 5))
    out = shortcut.forward(x)
    assert out.shape == (2, 5, 3, 3)
    np.testing.assert_array_equal(out[:, :2], x[:, :, ::2, ::2])
    assert not out[:, 2:].any()
    dout = rng.standard_normal(out.shape)
    dx_num = numerical_gradient(lambda x_: shortcut.forward(x_), x, dout)
    np.testing.assert_allclose(shortcut.backward(dout), dx_num, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("in_channels, out_channels, stride, shortcut", [
    (3, 3, 1, "A"), (2, 4, 2, "A"), (2, 4, 2, "B")])
def test_residual_block_input_gradient(rng, in_channels, out_channels, stride,
                                       shortcut):
    block = nn.ResidualBlock(in_channels, out_channels, stride=stride,
                             shortcut=shortcut, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, in_channels, 6, 6))
    out = block.forward(x)
    assert out.shape == (3, out_channels, 6 // stride, 6 // stride)
    dout = rng.standard_normal(out.shape)
    dx = block.backward(dout)
    dx_num = numerical_gradient(lambda x_: block.forward(x_), x, dout)
    assert relative_error(dx, dx_num) < 1e-7


def test_residual_block_matches_torch(rng):
    """Forward and all gradients of an option-B block against PyTorch autograd."""
    torch = pytest.importorskip("torch")
    block = nn.ResidualBlock(2, 4, stride=2, shortcut="B", rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 2, 6, 6))
    out = block.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = block.backward(dout)
    tensors = {name: torch.tensor(p, requires_grad=True)
               for name, p in block.named_parameters()}
    x_t = torch.tensor(x, requires_grad=True)

    def conv_bn(h, conv, bn, stride, pad):
        h = torch.nn.functional.conv2d(h, tensors[f"{conv}.w"], stride=stride,
                                       padding=pad)
        return torch.nn.functional.batch_norm(
            h, None, None, tensors[f"{bn}.gamma"], tensors[f"{bn}.beta"],
            training=True, eps=1e-5)

    main = torch.relu(conv_bn(x_t, "conv1", "bn1", 2, 1))
    main = conv_bn(main, "conv2", "bn2", 1, 1)
    out_t = torch.relu(main + conv_bn(x_t, "shortcut.conv", "shortcut.bn", 2, 0))
    out_t.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-8, atol=1e-10)
    for name, g in block.named_grads():
        np.testing.assert_allclose(g, tensors[name].grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=name)


@pytest.mark.parametrize("channels_last", [True, False])
def test_skip_input_grad_keeps_every_parameter_gradient(channels_last):
    """Without dL/dx of the first conv, every parameter gradient is the same bit for
    bit (dx of the first layer feeds nothing), and backward gives None."""
    from lars_ref.functional import softmax_cross_entropy
    from lars_ref.models import build_model
    from lars_ref.nn import skip_input_grad

    def grads(skip):
        model = build_model("resnet20", num_classes=10, in_shape=(3, 8, 8), seed=3,
                            dtype=np.float64, channels_last=channels_last)
        if skip:
            skip_input_grad(model)
        x = np.random.default_rng(4).standard_normal((4, 3, 8, 8))
        _, dlogits = softmax_cross_entropy(model.forward(x), np.array([0, 1, 2, 3]))
        dx = model.backward(dlogits)
        return dx, {name: g.copy() for name, g in model.named_grads()}

    dx_full, full = grads(skip=False)
    dx_skipped, skipped = grads(skip=True)
    assert dx_full.shape == (4, 3, 8, 8) and dx_skipped is None
    assert full.keys() == skipped.keys()
    for name in full:
        np.testing.assert_array_equal(skipped[name], full[name], err_msg=name)


def test_skip_input_grad_needs_a_conv_first():
    from lars_ref.nn import skip_input_grad
    model = nn.Sequential([("fc", nn.Linear(3, 2, rng=np.random.default_rng(0)))])
    with pytest.raises(ValueError, match="first layer must be a Conv2d"):
        skip_input_grad(model)
