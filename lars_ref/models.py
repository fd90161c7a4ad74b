"""The paper's networks: AlexNet (LRN), AlexNet-BN, and the CIFAR ResNet.

All three are plain :class:`~lars_ref.nn.Sequential` models whose parameters
carry the names of the paper's Table 2 (``conv1.w``, ``conv1.b``, ...,
``fc8.b``) or of He et al. (``layer1.0.conv1.w``). Parameters are drawn on the
host from ``numpy.random.default_rng(seed)`` in layer order, then the model is
moved to ``xp``, so NumPy and CuPy runs start from identical weights.

AlexNet geometry. At the paper's size (3x227x227, 1000 classes) the models are
BVLC AlexNet layer for layer. Small inputs (MNIST 1x28x28, CIFAR 3x32x32, digits
1x8x8) keep the layer sequence, the names, the groups, the conv2-conv5 kernels
and padding, and change only conv1 and the widths:

=======  ==============================  =====================================
         paper geometry (H >= 128)       small geometry (H < 128)
=======  ==============================  =====================================
conv1    11x11, stride 4, pad 0          3x3, stride 1, pad 1
widths   96-256-384-384-256, 4096-4096   times ``width`` (default 1/16:
                                         6-16-24-24-16, 256-256), rounded to
                                         even numbers for the 2 groups
=======  ==============================  =====================================

pool1, pool2 and pool5 are max pools of stride 2 whose window is 3 on an odd
input size (AlexNet's overlapping pooling) and 2 on an even one, so windows
always tile the input exactly (:func:`lars_ref.functional.max_pool2d_forward`
accepts only exact fits). Spatial sizes after conv1, pool1, pool2, pool5:
227: 55, 27, 13, 6 (all windows 3, as BVLC); 32: 32, 16, 8, 4; 28: 28, 14, 7, 3;
8: 8, 4, 2, 1. Inputs must be square.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from lars_ref.nn import (LRN, BatchNorm, ChannelsLastNetwork, Conv2d, Dropout, Flatten,
                         GlobalAvgPool, Linear, MaxPool2d, ReLU, ResidualBlock,
                         Sequential)

PAPER_IN_SHAPE = (3, 227, 227)
PAPER_NUM_CLASSES = 1000
ALEXNET_WIDTHS = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256,
                  "fc6": 4096, "fc7": 4096}
SMALL_ALEXNET_WIDTH = 1 / 16
RESNET_WIDTHS = (16, 32, 64)  # He et al. 2016, sec. 4.2: the three stages
POOL_STRIDE = 2
CONV1_PAPER = dict(conv1_kernel=11, conv1_stride=4, conv1_pad=0)
CONV1_SMALL = dict(conv1_kernel=3, conv1_stride=1, conv1_pad=1)


class AlexNetGeometry(NamedTuple):
    """The input-size-dependent choices of AlexNet (see the module docstring)."""
    conv1_kernel: int
    conv1_stride: int
    conv1_pad: int
    pool_windows: tuple  # windows of pool1, pool2, pool5 (stride 2 each)
    pool5_size: int      # H = W after pool5; fc6 reads conv5 width * pool5_size**2


def alexnet(*, num_classes=PAPER_NUM_CLASSES, in_shape=PAPER_IN_SHAPE, width=None,
            geometry="auto", init="auto", dropout=0.5, seed=0, dtype=np.float32,
            channels_last=True):
    """BVLC AlexNet with LRN (Krizhevsky et al. 2012; BVLC ``train_val.prototxt``).

    LRN: size 5, alpha 1e-4, beta 0.75, k 1. Groups 2 in conv2, conv4, conv5.
    Init (BVLC): Gaussian std 0.01 (0.005 for fc6/fc7); bias 0 for conv1, conv3,
    fc8 and 0.1 for conv2, conv4, conv5, fc6, fc7.

    Parameters
    ----------
    num_classes : int
    in_shape : (C, H, W)
    width : float or None
        Multiplier of the channel and fc widths; None: 1 at paper geometry,
        1/16 at small geometry.
    geometry : {"auto", "paper", "small"}
        "auto" picks "paper" when H and W are at least 128.
    init : {"auto", "paper", "paper_gain", "he"}
        "paper": the Gaussian stds above, verbatim. "paper_gain": each std times
        sqrt(paper fan-in / fan-in), so std * sqrt(fan_in) is the paper
        network's. "he": std sqrt(2 / fan_in) (He et al. 2015) for conv1-fc7,
        fc8 as "paper_gain"; biases always as above (see :func:`weight_stds`).
        "auto": "paper" at paper geometry, "he" at small geometry, where the
        authors' stds leave the network at chance (see :func:`weight_stds`).
    dropout : float
        Drop probability of drop6 and drop7.
    seed : int
    dtype : numpy dtype
    channels_last : bool
        Run the layers on (N, H, W, C) activations (the fast row-gather
        convolution; see :mod:`lars_ref.nn.layout`); False: NCHW and im2col.
        Parameters, names and results are the same either way.

    Returns
    -------
    Sequential (a :class:`~lars_ref.nn.ChannelsLastNetwork` when ``channels_last``)
    on the host; input (N, C, H, W), output logits (N, num_classes).
    """
    g, w = _alexnet_plan(in_shape, geometry, width)
    std = weight_stds(w, in_shape[0], g, init, small_default="he")
    rng, dropout_rng = np.random.default_rng(seed), _dropout_rng(seed)
    layout = dict(channels_last=channels_last)

    def conv(name, c_in, kernel, stride=1, pad=0, groups=1, bias_value=0.0):
        return name, Conv2d(c_in, w[name], kernel, stride=stride, pad=pad,
                            groups=groups, weight_std=std[name], bias_value=bias_value,
                            rng=rng, dtype=dtype, **layout)

    return _network(channels_last, [
        conv("conv1", in_shape[0], g.conv1_kernel, g.conv1_stride, g.conv1_pad),
        ("relu1", ReLU()),
        ("norm1", LRN(size=5, alpha=1e-4, beta=0.75, k=1.0, **layout)),
        ("pool1", MaxPool2d(g.pool_windows[0], POOL_STRIDE, **layout)),
        conv("conv2", w["conv1"], 5, pad=2, groups=2, bias_value=0.1),
        ("relu2", ReLU()),
        ("norm2", LRN(size=5, alpha=1e-4, beta=0.75, k=1.0, **layout)),
        ("pool2", MaxPool2d(g.pool_windows[1], POOL_STRIDE, **layout)),
        conv("conv3", w["conv2"], 3, pad=1),
        ("relu3", ReLU()),
        conv("conv4", w["conv3"], 3, pad=1, groups=2, bias_value=0.1),
        ("relu4", ReLU()),
        conv("conv5", w["conv4"], 3, pad=1, groups=2, bias_value=0.1),
        ("relu5", ReLU()),
        ("pool5", MaxPool2d(g.pool_windows[2], POOL_STRIDE, **layout)),
        *_alexnet_head(w, std, num_classes, dropout, rng, dropout_rng, dtype,
                       fc8_bias=0.0, channels_last=channels_last),
    ])


def alexnet_bn(*, num_classes=PAPER_NUM_CLASSES, in_shape=PAPER_IN_SHAPE, width=None,
               geometry="auto", init="auto", dropout=0.5, seed=0, dtype=np.float32,
               channels_last=True):
    """The authors' AlexNet-BN (nvcaffe ``models/alexnet_bn/train_val2.prototxt``).

    No LRN; BatchNorm *without* scale/shift at the inputs of conv2-conv5
    (moving_average_fraction 0.9, eps 1e-4), each named after the conv it
    feeds (bn2 ... bn5). Every conv and fc keeps its bias. Init: Gaussian std
    0.01 (0.005 for fc6/fc7); bias 0.01 (0.1 for fc6/fc7). These initial norms
    are paper Table 2's ``||w||`` row, with its ``.w``/``.b`` labels swapped
    (see ``tests/test_models.py``). Arguments and return value as
    :func:`alexnet`, except that ``init="auto"`` is "paper_gain" at small
    geometry (BN rescales the signal, so the authors' gain trains here).
    """
    g, w = _alexnet_plan(in_shape, geometry, width)
    std = weight_stds(w, in_shape[0], g, init)
    rng, dropout_rng = np.random.default_rng(seed), _dropout_rng(seed)
    layout = dict(channels_last=channels_last)

    def conv(name, c_in, kernel, stride=1, pad=0, groups=1):
        return name, Conv2d(c_in, w[name], kernel, stride=stride, pad=pad,
                            groups=groups, weight_std=std[name], bias_value=0.01, rng=rng,
                            dtype=dtype, **layout)

    def bn(name, channels):
        return name, BatchNorm(channels, affine=False, momentum=0.9, eps=1e-4,
                               dtype=dtype, **layout)

    return _network(channels_last, [
        conv("conv1", in_shape[0], g.conv1_kernel, g.conv1_stride, g.conv1_pad),
        ("relu1", ReLU()),
        ("pool1", MaxPool2d(g.pool_windows[0], POOL_STRIDE, **layout)),
        bn("bn2", w["conv1"]),
        conv("conv2", w["conv1"], 5, pad=2, groups=2),
        ("relu2", ReLU()),
        ("pool2", MaxPool2d(g.pool_windows[1], POOL_STRIDE, **layout)),
        bn("bn3", w["conv2"]),
        conv("conv3", w["conv2"], 3, pad=1),
        ("relu3", ReLU()),
        bn("bn4", w["conv3"]),
        conv("conv4", w["conv3"], 3, pad=1, groups=2),
        ("relu4", ReLU()),
        bn("bn5", w["conv4"]),
        conv("conv5", w["conv4"], 3, pad=1, groups=2),
        ("relu5", ReLU()),
        ("pool5", MaxPool2d(g.pool_windows[2], POOL_STRIDE, **layout)),
        *_alexnet_head(w, std, num_classes, dropout, rng, dropout_rng, dtype,
                       fc8_bias=0.01, channels_last=channels_last),
    ])


def resnet(*, num_classes=10, in_shape=(3, 32, 32), depth=20, width=1.0, shortcut="A",
           seed=0, dtype=np.float32, channels_last=True):
    """CIFAR ResNet of depth 6n + 2 (He et al. 2016, sec. 4.2).

    ``conv1`` (3x3, 16w channels) ``bn1 relu1``, then stages ``layer1``,
    ``layer2``, ``layer3`` of n :class:`~lars_ref.nn.ResidualBlock` each, with
    16w, 32w, 64w channels (w = ``width``; the first block of layer2 and layer3
    has stride 2), then ``pool`` (global average) and ``fc``. Convolutions have
    no bias; BN has scale/shift (gamma 1, beta 0), momentum 0.9 (PyTorch's
    0.1), eps 1e-5. Every conv and the fc weight: He normal, std
    sqrt(2 / fan_in); fc bias 0.

    Parameters
    ----------
    depth : int
        6n + 2: 8, 14, 20 (default), 32, 44, 56, 110, ...
    width : float
        Multiplier of 16/32/64.
    shortcut : {"A", "B"}
        Zero-padding (the paper's CIFAR choice) or projection shortcuts.
    num_classes, in_shape, seed, dtype, channels_last
        As for :func:`alexnet`.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError("resnet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, "
                         f"...), got {depth}")
    _check_in_shape(in_shape)
    blocks_per_stage = (depth - 2) // 6
    stage_widths = [max(1, round(c * width)) for c in RESNET_WIDTHS]
    rng = np.random.default_rng(seed)
    layout = dict(channels_last=channels_last)
    c_in = stage_widths[0]
    layers = [
        ("conv1", Conv2d(in_shape[0], c_in, 3, pad=1, bias=False, rng=rng,
                         dtype=dtype, **layout)),
        ("bn1", BatchNorm(c_in, dtype=dtype, **layout)),
        ("relu1", ReLU()),
    ]
    for stage, c_out in enumerate(stage_widths, start=1):
        blocks = []
        for index in range(blocks_per_stage):
            stride = 2 if (index == 0 and stage > 1) else 1
            block = ResidualBlock(c_in, c_out, stride=stride, shortcut=shortcut,
                                  rng=rng, dtype=dtype, **layout)
            blocks.append((str(index), block))
            c_in = c_out
        layers.append((f"layer{stage}", Sequential(blocks)))
    layers.append(("pool", GlobalAvgPool(**layout)))
    layers.append(("fc", Linear(c_in, num_classes, rng=rng, dtype=dtype)))
    return _network(channels_last, layers)


MODELS = {"alexnet": alexnet, "alexnet_bn": alexnet_bn, "resnet": resnet}


def build_model(name, *, num_classes, in_shape, width=None, seed=0, dtype=np.float32,
                xp=np, **options):
    """Build a model by name on the host, then move it to ``xp``.

    Parameters
    ----------
    name : str
        "alexnet", "alexnet_bn", "resnet", or "resnet<depth>" (e.g. "resnet20").
    num_classes : int
    in_shape : (C, H, W)
    width : float or None
        Width multiplier; None: the model's default (see each constructor).
    seed : int
        Seed of ``numpy.random.default_rng`` that draws the parameters.
    dtype : numpy.float32 or numpy.float64
    xp : numpy or cupy module
    **options
        Passed to the constructor: ``depth``, ``shortcut``, ``geometry``,
        ``dropout``, ``channels_last`` (default True: the layers run on NHWC
        activations; the model still takes and returns NCHW).

    Returns
    -------
    Sequential with its arrays on ``xp``.
    """
    match = re.fullmatch(r"resnet(\d+)", name)
    if match:
        name, options = "resnet", {**options, "depth": int(match.group(1))}
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)} "
                         "or resnet<depth>")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError("build_model: dtype must be float32 or float64, got "
                         f"{np.dtype(dtype)}")
    if width is not None:
        options["width"] = width
    model = MODELS[name](num_classes=num_classes, in_shape=tuple(in_shape), seed=seed,
                         dtype=np.dtype(dtype).type, **options)
    return model.to(xp)


# ---------------------------------------------------------------------- helpers
def _network(channels_last, named_layers):
    """The model container: NCHW at its edges, its layers channels-last or not."""
    return (ChannelsLastNetwork if channels_last else Sequential)(named_layers)


def _alexnet_head(w, std, num_classes, dropout, rng, dropout_rng, dtype, fc8_bias,
                  channels_last):
    """flatten fc6 relu6 drop6 fc7 relu7 drop7 fc8 (shared by both AlexNets)."""
    def fc(c_in, c_out, std, bias_value):
        return Linear(c_in, c_out, weight_std=std, bias_value=bias_value, rng=rng,
                      dtype=dtype)

    return [
        ("flatten", Flatten(channels_last=channels_last)),
        ("fc6", fc(w["fc6_in"], w["fc6"], std=std["fc6"], bias_value=0.1)),
        ("relu6", ReLU()),
        ("drop6", Dropout(dropout, dropout_rng)),
        ("fc7", fc(w["fc6"], w["fc7"], std=std["fc7"], bias_value=0.1)),
        ("relu7", ReLU()),
        ("drop7", Dropout(dropout, dropout_rng)),
        ("fc8", fc(w["fc7"], num_classes, std=std["fc8"], bias_value=fc8_bias)),
    ]


PAPER_WEIGHT_STDS = {"conv1": 0.01, "conv2": 0.01, "conv3": 0.01, "conv4": 0.01,
                     "conv5": 0.01, "fc6": 0.005, "fc7": 0.005, "fc8": 0.01}
ALEXNET_INITS = ("paper", "paper_gain", "he")  # plus "auto" (see weight_stds)


def alexnet_fan_ins(widths, in_channels, conv1_kernel, pool5_size):
    """Fan-in of each AlexNet weight (conv2, conv4, conv5 read half the channels: 2 groups)."""
    return {"conv1": in_channels * conv1_kernel ** 2, "conv2": widths["conv1"] // 2 * 25,
            "conv3": widths["conv2"] * 9, "conv4": widths["conv3"] // 2 * 9,
            "conv5": widths["conv4"] // 2 * 9,
            "fc6": widths["conv5"] * pool5_size ** 2, "fc7": widths["fc6"],
            "fc8": widths["fc7"]}


def weight_stds(widths, in_channels, geometry, init, small_default="paper_gain"):
    """The Gaussian std of each AlexNet weight for ``init`` (see :func:`alexnet`).

    ``small_default`` is what "auto" means at small geometry ("paper" at the
    paper's, where "paper_gain" is the same).

    DEVIATION(init "paper_gain", the default of AlexNet-BN at small geometry):
    the authors' stds (0.01; 0.005 for fc6, fc7) were chosen for fan-ins of 363
    to 9216. A small AlexNet keeps those stds with fan-ins of 9 to 256, so at
    fc6/fc7 the signal is ~1e-3 of the 0.1 biases, the logits hardly depend on
    the image, and plain SGD does not learn at all in tens of epochs (LARS does,
    since it rescales every layer). "paper_gain" multiplies each std by
    sqrt(paper fan-in / fan-in), keeping std * sqrt(fan_in) of the paper's
    network; at the paper's size the factor is 1. Biases are unchanged.

    DEVIATION(init "he", the default of AlexNet with LRN at small geometry):
    "paper_gain" keeps the paper's gains std * sqrt(fan_in) = 0.19 (conv1),
    0.35, 0.48, 0.42, 0.42, 0.48 (fc6), 0.32, 0.64 (fc8); each layer and ReLU
    keeps 0.13-0.45 of the image-dependent part of the signal, 5e-5 from input
    to logits. BVLC feeds mean-subtracted pixels (std ~60), this repository
    unit-std ones, so without BN the logits differ between images by ~4e-5
    while the 0.1 biases keep every unit near the same constant, every gradient
    carries almost no image information, and SGD stays at chance loss ln 10
    (measured in ``docs/paper_notes.md``). "he" gives conv1-fc7 the ReLU gain
    sqrt(2) (He et al. 2015), so the signal keeps its size through the depth,
    and fc8 the "paper_gain" std, so the first logits stay small (loss near
    ln 10) as in the paper.
    """
    if init == "auto":
        paper_size = geometry.conv1_kernel == CONV1_PAPER["conv1_kernel"]
        init = "paper" if paper_size else small_default
    if init not in ALEXNET_INITS:
        names = ", ".join(repr(name) for name in ALEXNET_INITS)
        raise ValueError(f"alexnet: init must be 'auto', {names}; got {init!r}")
    if init == "paper":
        return dict(PAPER_WEIGHT_STDS)
    paper = alexnet_fan_ins(ALEXNET_WIDTHS, PAPER_IN_SHAPE[0], CONV1_PAPER["conv1_kernel"],
                            pool5_size=6)
    actual = alexnet_fan_ins(widths, in_channels, geometry.conv1_kernel, geometry.pool5_size)
    stds = {name: std * np.sqrt(paper[name] / actual[name])
            for name, std in PAPER_WEIGHT_STDS.items()}
    if init == "he":
        stds.update({name: np.sqrt(2 / fan_in) for name, fan_in in actual.items()
                     if name != "fc8"})
    return stds


def _alexnet_plan(in_shape, geometry, width):
    """Pick the geometry and the layer widths for a square input ``in_shape``.

    Returns the :class:`AlexNetGeometry` and ``{layer: width}`` plus
    ``"fc6_in"``, the length of the flattened pool5 output.
    """
    _check_in_shape(in_shape)
    _, H, W = in_shape
    if H != W:
        raise ValueError(f"alexnet: the input must be square, got {tuple(in_shape)}")
    if geometry == "auto":
        geometry = "paper" if H >= 128 else "small"
    if geometry not in ("paper", "small"):
        raise ValueError("alexnet: geometry must be 'auto', 'paper' or 'small', got "
                         f"{geometry!r}")
    if width is None:
        width = 1.0 if geometry == "paper" else SMALL_ALEXNET_WIDTH
    conv1 = CONV1_PAPER if geometry == "paper" else CONV1_SMALL
    g = _alexnet_pools(H, conv1, in_shape)
    widths = {name: max(2, 2 * round(c * width / 2))  # even: two groups
              for name, c in ALEXNET_WIDTHS.items()}
    widths["fc6_in"] = widths["conv5"] * g.pool5_size ** 2
    return g, widths


def _alexnet_pools(H, conv1, in_shape):
    """Follow the size through conv1 (floor) and the pools; pick each pool window."""
    k, stride, pad = conv1["conv1_kernel"], conv1["conv1_stride"], conv1["conv1_pad"]
    size = (H + 2 * pad - k) // stride + 1
    sizes, windows = [size], []
    for _ in range(3):  # pool1, pool2, pool5 (conv2-conv5 keep the size)
        windows.append(3 if size % 2 else 2)  # odd: overlapping 3x3; even: 2x2
        size = (size - windows[-1]) // POOL_STRIDE + 1
        sizes.append(size)
        if size < 1:
            raise ValueError(f"alexnet: input shape {tuple(in_shape)} is too small: "
                             f"spatial sizes after conv1 and the pools: {sizes}")
    return AlexNetGeometry(**conv1, pool_windows=tuple(windows), pool5_size=size)


def _check_in_shape(in_shape):
    if len(in_shape) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0
                                     for n in in_shape):
        raise ValueError(f"in_shape must be (C, H, W), positive ints; got {in_shape!r}")


def _dropout_rng(seed):
    """Generator of the dropout masks: a stream independent of the parameters' one."""
    return np.random.default_rng([seed, 1])
