"""Tests of lars_ref.models: BVLC shapes, paper Table 2 norms, small variants, ResNet.

Expected numbers come from outside the code: the BVLC / nvcaffe prototxt files
(shapes, init), paper Table 2 (printed norms), He et al. 2016 Table 6 (ResNet
parameter counts), and closed forms (std * sqrt(count)).
"""
import math

import numpy as np
import pytest

from lars_ref import models, nn
from lars_ref.models import build_model
from lars_ref.nn.layout import nchw_view, to_channels_last

# Shapes of BVLC AlexNet (models/bvlc_alexnet/deploy.prototxt) in our layout:
# conv w (F, C/groups, HH, WW); fc w (D, M), i.e. Caffe's (M, D) transposed.
BVLC_ALEXNET_SHAPES = {
    "conv1.w": (96, 3, 11, 11), "conv1.b": (96,),
    "conv2.w": (256, 48, 5, 5), "conv2.b": (256,),
    "conv3.w": (384, 256, 3, 3), "conv3.b": (384,),
    "conv4.w": (384, 192, 3, 3), "conv4.b": (384,),
    "conv5.w": (256, 192, 3, 3), "conv5.b": (256,),
    "fc6.w": (9216, 4096), "fc6.b": (4096,),
    "fc7.w": (4096, 4096), "fc7.b": (4096,),
    "fc8.w": (4096, 1000), "fc8.b": (1000,),
}

# Paper Table 2, row ||w||, exactly as printed (arXiv 1708.03888v3).
TABLE2_PRINTED_NORMS = {
    "conv1.b": 1.86, "conv1.w": 0.098, "conv2.b": 5.546, "conv2.w": 0.16,
    "conv3.b": 9.40, "conv3.w": 0.196, "conv4.b": 8.15, "conv4.w": 0.196,
    "conv5.b": 6.65, "conv5.w": 0.16, "fc6.b": 30.7, "fc6.w": 6.4,
    "fc7.b": 20.5, "fc7.w": 6.4, "fc8.b": 20.2, "fc8.w": 0.316,
}

# nvcaffe models/alexnet_bn/train_val2.prototxt fillers: (weight std, bias value).
ALEXNET_BN_INIT = {"conv1": (0.01, 0.01), "conv2": (0.01, 0.01), "conv3": (0.01, 0.01),
                   "conv4": (0.01, 0.01), "conv5": (0.01, 0.01), "fc6": (0.005, 0.1),
                   "fc7": (0.005, 0.1), "fc8": (0.01, 0.01)}


def swapped_label(name):
    """conv1.w -> conv1.b and back: the paper's Table 2 prints them swapped."""
    layer, kind = name.split(".")
    return f"{layer}.{'b' if kind == 'w' else 'w'}"


@pytest.fixture(scope="module")
def paper_alexnet_bn():
    return build_model("alexnet_bn", num_classes=1000, in_shape=(3, 227, 227), seed=0)


def test_alexnet_bn_paper_size_shapes_match_bvlc(paper_alexnet_bn):
    shapes = {name: p.shape for name, p in paper_alexnet_bn.named_parameters()}
    assert shapes == BVLC_ALEXNET_SHAPES
    assert list(shapes) == list(BVLC_ALEXNET_SHAPES)  # Table 2's order, stable


def test_alexnet_bn_init_norms_reproduce_table2_with_swapped_labels(paper_alexnet_bn):
    """||w|| at init is std * sqrt(count) (weights) or value * sqrt(count) (biases).

    The paper prints the weight norms under ".b" and the bias norms under ".w"
    (paper.md section 3): our conv1.w norm must match the printed "conv1.b".
    """
    for name, p in paper_alexnet_bn.named_parameters():
        layer, kind = name.split(".")
        std, bias_value = ALEXNET_BN_INIT[layer]
        closed_form = (std if kind == "w" else bias_value) * math.sqrt(p.size)
        printed = TABLE2_PRINTED_NORMS[swapped_label(name)]
        # The printed values are the closed forms rounded or cut to 2-4 digits.
        assert closed_form == pytest.approx(printed, rel=5e-3), name
        norm = float(np.linalg.norm(p.astype(np.float64)))
        if kind == "b":
            assert norm == pytest.approx(closed_form, rel=1e-6), name
        else:  # ||w||^2 / std^2 ~ chi-square(count): rel. sd of ||w|| ~ 1/sqrt(2 count)
            assert abs(norm / closed_form - 1) < 5 / math.sqrt(2 * p.size), name
        unswapped = TABLE2_PRINTED_NORMS[name]
        assert abs(norm / unswapped - 1) > 0.5, f"{name} would fit the label as printed"


def test_alexnet_bn_paper_size_forward_gives_1000_logits(paper_alexnet_bn):
    x = np.random.default_rng(0).standard_normal((1, 3, 227, 227)).astype(np.float32)
    logits = paper_alexnet_bn.forward(x, train=False)
    assert logits.shape == (1, 1000) and logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_alexnet_paper_size_matches_bvlc_layout_and_init():
    model = build_model("alexnet", num_classes=1000, in_shape=(3, 227, 227), seed=0)
    assert {n: p.shape for n, p in model.named_parameters()} == BVLC_ALEXNET_SHAPES
    assert [name for name, _ in model.children()] == [
        "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2",
        "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "flatten",
        "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    # BVLC bias fillers: 0 (conv1, conv3, fc8) and 0.1 (conv2, conv4, conv5, fc6, fc7)
    biases = {n: float(p[0]) for n, p in model.named_parameters() if n.endswith(".b")}
    assert biases == pytest.approx({"conv1.b": 0.0, "conv2.b": 0.1, "conv3.b": 0.0,
                                    "conv4.b": 0.1, "conv5.b": 0.1, "fc6.b": 0.1,
                                    "fc7.b": 0.1, "fc8.b": 0.0})
    assert [model[f"conv{i}"].groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    norm1 = model["norm1"]
    assert (norm1.size, norm1.alpha, norm1.beta, norm1.k) == (5, 1e-4, 0.75, 1.0)
    assert [model[p].size for p in ("pool1", "pool2", "pool5")] == [3, 3, 3]


def test_alexnet_bn_layer_sequence_is_train_val2():
    model = build_model("alexnet_bn", num_classes=10, in_shape=(3, 32, 32))
    assert [name for name, _ in model.children()] == [
        "conv1", "relu1", "pool1", "bn2", "conv2", "relu2", "pool2", "bn3", "conv3",
        "relu3", "bn4", "conv4", "relu4", "bn5", "conv5", "relu5", "pool5", "flatten",
        "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    for name in ("bn2", "bn3", "bn4", "bn5"):
        bn = model[name]
        assert (bn.affine, bn.momentum, bn.eps) == (False, 0.9, 1e-4)
    assert [model[d].p for d in ("drop6", "drop7")] == [0.5, 0.5]


@pytest.mark.parametrize("name", ["alexnet", "alexnet_bn", "resnet"])
@pytest.mark.parametrize("in_shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8)])
def test_small_variants_give_logits(name, in_shape):
    model = build_model(name, num_classes=10, in_shape=in_shape, seed=0)
    x = np.random.default_rng(1).standard_normal((2, *in_shape)).astype(np.float32)
    logits = model.forward(x, train=True)
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    dx = model.backward(np.ones_like(logits))
    assert dx.shape == x.shape


@pytest.mark.parametrize("in_shape, pool5_size", [((3, 32, 32), 4), ((1, 28, 28), 3),
                                                  ((1, 8, 8), 1)])
def test_small_alexnet_widths_and_fc6_input(in_shape, pool5_size):
    """Default small width 1/16: 6-16-24-24-16 channels and 256-wide fc6/fc7."""
    model = build_model("alexnet_bn", num_classes=10, in_shape=in_shape)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    assert shapes["conv1.w"] == (6, in_shape[0], 3, 3)
    assert shapes["conv2.w"] == (16, 3, 5, 5)  # groups 2: 6 / 2 input channels
    assert shapes["conv5.w"] == (16, 12, 3, 3)
    assert shapes["fc6.w"] == (16 * pool5_size ** 2, 256)
    assert shapes["fc8.w"] == (256, 10)


@pytest.mark.parametrize("depth, millions", [(20, 0.27), (32, 0.46), (56, 0.85)])
def test_resnet_parameter_count_matches_he_et_al_table6(depth, millions):
    model = build_model(f"resnet{depth}", num_classes=10, in_shape=(3, 32, 32))
    count = sum(p.size for name, p in model.named_parameters())
    assert round(count / 1e6, 2) == millions


def test_resnet_stage_shapes_and_he_init():
    model = build_model("resnet", num_classes=10, in_shape=(3, 32, 32), depth=8, seed=3)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    h = to_channels_last(x)  # the models' layers run channels-last (nn/layout.py)
    shapes = {}
    for name, module in model.children():
        h = module.forward(h)
        shapes[name] = h.shape if h.ndim == 2 else nchw_view(h).shape
    assert shapes["layer1"] == (2, 16, 32, 32)
    assert shapes["layer2"] == (2, 32, 16, 16)
    assert shapes["layer3"] == (2, 64, 8, 8)
    assert shapes["fc"] == (2, 10)
    w = model["layer3"]["0"].conv2.params["w"]  # 64 x 64 x 3 x 3: fan_in 576
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 576), rel=0.02)


def test_build_model_is_deterministic_in_the_seed():
    def state(seed):
        model = build_model("resnet8", num_classes=10, in_shape=(1, 8, 8), seed=seed)
        return model.state_dict()
    a, b, c = state(0), state(0), state(1)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    assert not np.array_equal(a["conv1.w"], c["conv1.w"])


def test_build_model_dtype_and_width():
    model = build_model("resnet", num_classes=3, in_shape=(1, 8, 8), width=0.5,
                        dtype=np.float64, depth=8)
    assert all(p.dtype == np.float64 for _, p in model.named_parameters())
    assert model["conv1"].params["w"].shape == (8, 1, 3, 3)
    assert isinstance(model["layer2"]["0"].shortcut, nn.PadShortcut)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="vgg"), "unknown model 'vgg'"),
    (dict(name="resnet", depth=21), "6n \\+ 2"),
    (dict(name="alexnet", in_shape=(3, 4, 4)), "too small"),
    (dict(name="alexnet", in_shape=(3, 32, 16)), "square"),
    (dict(name="alexnet", dtype=np.float16), "float32 or float64"),
])
def test_build_model_rejects_bad_requests(kwargs, message):
    kwargs = {"num_classes": 10, "in_shape": (3, 32, 32), **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(kwargs.pop("name"), **kwargs)


def test_paper_fan_ins_are_bvlc_alexnet():
    # BVLC train_val.prototxt: 3*11*11, 48*5*5, 256*3*3, 192*3*3, 192*3*3, 256*6*6, 4096, 4096.
    fan_ins = models.alexnet_fan_ins(models.ALEXNET_WIDTHS, 3, 11, pool5_size=6)
    assert fan_ins == {"conv1": 363, "conv2": 1200, "conv3": 2304, "conv4": 1728,
                       "conv5": 1728, "fc6": 9216, "fc7": 4096, "fc8": 4096}


@pytest.mark.parametrize("name", ["alexnet", "alexnet_bn"])
def test_paper_gain_init_scales_only_weights_by_the_fan_in_ratio(name):
    kwargs = dict(num_classes=10, in_shape=(1, 8, 8), seed=3)
    paper = build_model(name, init="paper", **kwargs).state_dict()
    gain = build_model(name, init="paper_gain", **kwargs).state_dict()
    auto = build_model(name, **kwargs).state_dict()
    # small geometry on 1x8x8: conv1 1x3x3 (fan-in 9); fc6 reads 16 features; fc8 256.
    for layer, paper_fan_in, fan_in in (("conv1", 363, 9), ("fc6", 9216, 16),
                                        ("fc8", 4096, 256)):
        factor = np.sqrt(paper_fan_in / fan_in)
        np.testing.assert_allclose(gain[f"{layer}.w"], paper[f"{layer}.w"] * factor,
                                   rtol=1e-6)
    for key in paper:
        if name == "alexnet_bn":  # alexnet's small default is "he" (test_alexnet_init)
            np.testing.assert_array_equal(auto[key], gain[key])  # auto = paper_gain
        if not key.endswith(".w"):
            np.testing.assert_array_equal(gain[key], paper[key])


def test_unknown_init_is_named():
    with pytest.raises(ValueError, match="init must be 'auto', 'paper', 'paper_gain', "
                                         "'he'; got 'xavier'"):
        build_model("alexnet_bn", num_classes=10, in_shape=(1, 8, 8), init="xavier")
