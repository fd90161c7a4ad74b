"""Containers: :class:`Sequential` and the CIFAR :class:`ResidualBlock`.

A container names its children, so parameters read ``conv1.w``,
``layer1.0.conv1.w``, ``layer2.0.shortcut.conv.w``, and it runs their forward in
order and their backward in reverse order.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

import numpy as np

from lars_ref.backend import get_xp
from lars_ref.functional.conv_rows import for_each_row_share
from lars_ref.nn.layers import Conv2d, ReLU
from lars_ref.nn.layout import channel_axis, to_channels_first, to_channels_last
from lars_ref.nn.module import Module
from lars_ref.nn.normalization import BatchNorm


class Sequential(Module):
    """Named modules applied one after the other.

    Parameters
    ----------
    named_modules : list of (str, Module)
        Children in forward order; names must be unique, non-empty and
        contain no dot. ``Sequential`` objects nest (``layer1.0.conv1``).
    """

    def __init__(self, named_modules):
        super().__init__()
        self.layers = list(named_modules)
        names = [name for name, _ in self.layers]
        for name, module in self.layers:
            if not name or "." in name or not isinstance(module, Module):
                raise ValueError(f"Sequential: child {name!r} must have a non-empty "
                                 "name without dots and be a Module, got "
                                 f"{type(module).__name__}")
        if len(set(names)) != len(names):
            raise ValueError(f"Sequential: child names must be unique, got {names}")
        self.set_name("")

    def children(self):
        return self.layers

    def __getitem__(self, key):
        """The child called ``key`` (str), or the ``key``-th child (int)."""
        if isinstance(key, int):
            return self.layers[key][1]
        for name, module in self.layers:
            if name == key:
                return module
        names = [name for name, _ in self.layers]
        raise KeyError(f"Sequential has no child {key!r}; children: {names}")

    def __len__(self):
        return len(self.layers)

    def forward(self, x, train=True):
        for _, module in self.layers:
            x = module.forward(x, train=train)
        return x

    def backward(self, dout):
        for _, module in reversed(self.layers):
            dout = module.backward(dout)
        return dout

    def __repr__(self):
        lines = [f"  ({name}): {module!r}".replace("\n", "\n  ")
                 for name, module in self.layers]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


class ChannelsLastNetwork(Sequential):
    """A model whose layers run channels-last, behind an NCHW front door.

    ``forward`` takes (N, C, H, W) images and hands its children (N, H, W, C);
    ``backward`` returns dL/dx as (N, C, H, W). Children, names, parameters and
    state dicts are those of :class:`Sequential` (see :mod:`lars_ref.nn.layout`).
    """

    def forward(self, x, train=True):
        return super().forward(to_channels_last(x) if x.ndim == 4 else x, train=train)

    def backward(self, dout):
        dx = super().backward(dout)
        return to_channels_first(dx) if dx is not None and dx.ndim == 4 else dx


def skip_input_grad(model: Sequential) -> None:
    """Let ``model.backward`` skip dL/d(input), which training never reads.

    The first layer, a :class:`Conv2d` in every model of :mod:`lars_ref.models`,
    then computes only its parameters' gradients, and ``model.backward`` returns
    None (PyTorch likewise skips the gradient of an input that does not require
    one). Parameter gradients are unchanged.
    """
    first = model[0]
    if not isinstance(first, Conv2d):
        raise ValueError("skip_input_grad: the model's first layer must be a Conv2d, "
                         f"got {type(first).__name__}")
    first.input_grad = False


class PadShortcut(Module):
    """He et al. (2016) option A shortcut: subsample by ``stride``, add zero channels.

    (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)); channels
    C_in..C_out-1 are zeros (appended after the input channels, as
    fb.resnet.torch's shortcutType 'A'). No parameters. With ``channels_last``
    input and output are (N, H, W, C).
    """

    def __init__(self, in_channels, out_channels, stride, channels_last=False):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"PadShortcut: out_channels={out_channels} < "
                             f"in_channels={in_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.channels_last = stride, channels_last

    def _subsampled(self, a):
        """Every stride-th row and column of the 4-D array a (a view)."""
        s = self.stride
        return a[:, ::s, ::s] if self.channels_last else a[:, :, ::s, ::s]

    def forward(self, x, train=True):
        xp = get_xp(x)
        self.cache = x.shape  # backward scatters dout back into an input-shaped array
        x_sub = self._subsampled(x)
        axis = channel_axis(self.channels_last)
        zeros_shape = list(x_sub.shape)
        zeros_shape[axis] = self.out_channels - self.in_channels
        zeros = xp.zeros(zeros_shape, dtype=x.dtype)
        return xp.concatenate([x_sub, zeros], axis=axis)

    def backward(self, dout):
        xp = get_xp(dout)
        dx = xp.zeros(self._take_cache(), dtype=dout.dtype)
        kept = [slice(None)] * 4
        kept[channel_axis(self.channels_last)] = slice(0, self.in_channels)
        self._subsampled(dx)[...] = dout[tuple(kept)]
        return dx

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class ResidualBlock(Module):
    """Basic residual block of the CIFAR ResNet (He et al. 2016, sec. 4.2, Fig. 2).

    ``out = relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))`` with 3x3
    convolutions without bias (``conv1`` carries the ``stride``), BatchNorm with
    scale/shift, and ReLU after the addition.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        1, or 2 at the first block of a stage that halves H and W.
    shortcut : {"A", "B"}
        How the shortcut matches shapes when they change (identity otherwise):
        "A" zero-pads channels (:class:`PadShortcut`, the paper's CIFAR choice),
        "B" is a 1x1 convolution with stride plus BatchNorm (children
        ``shortcut.conv`` and ``shortcut.bn``).
    bn_momentum, bn_eps : float
        See :class:`BatchNorm`.
    rng : numpy.random.Generator
    dtype : numpy dtype
    channels_last : bool
        Input and output (N, H, W, C), for every child.

    Input (N, C_in, H, W), output (N, C_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels, out_channels, *, stride=1, shortcut="A",
                 bn_momentum=0.9, bn_eps=1e-5, rng, dtype=np.float32,
                 channels_last=False):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ValueError(f"ResidualBlock: shortcut must be 'A' or 'B', "
                             f"got {shortcut!r}")
        bn = dict(momentum=bn_momentum, eps=bn_eps, dtype=dtype,
                  channels_last=channels_last)
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, pad=1,
                            bias=False, rng=rng, dtype=dtype,
                            channels_last=channels_last)
        self.bn1 = BatchNorm(out_channels, **bn)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, pad=1, bias=False, rng=rng,
                            dtype=dtype, channels_last=channels_last)
        self.bn2 = BatchNorm(out_channels, **bn)
        self.relu2 = ReLU()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.shortcut_option = stride, shortcut
        self.shortcut = None  # identity
        if stride != 1 or in_channels != out_channels:
            if shortcut == "A":
                self.shortcut = PadShortcut(in_channels, out_channels, stride,
                                            channels_last)
            else:
                self.shortcut = _projection(in_channels, out_channels, stride, bn, rng)
        self.set_name("")

    def children(self):
        main = [("conv1", self.conv1), ("bn1", self.bn1), ("relu1", self.relu1),
                ("conv2", self.conv2), ("bn2", self.bn2)]
        short = [] if self.shortcut is None else [("shortcut", self.shortcut)]
        return main + short + [("relu2", self.relu2)]

    def forward(self, x, train=True):
        main = self.bn1.forward(self.conv1.forward(x, train), train)
        main = self.conv2.forward(self.relu1.forward(main, train), train)
        main = self.bn2.forward(main, train)
        short = x if self.shortcut is None else self.shortcut.forward(x, train)
        return self.relu2.forward(add_into(main, short), train)

    def backward(self, dout):
        d_sum = self.relu2.backward(dout)  # reaches both branches of the addition
        d_main = self.conv2.backward(self.bn2.backward(d_sum))
        d_main = self.conv1.backward(self.bn1.backward(self.relu1.backward(d_main)))
        d_short = d_sum if self.shortcut is None else self.shortcut.backward(d_sum)
        return add_into(d_main, d_short)


    def extra_repr(self):
        kind = "identity" if self.shortcut is None else f"option {self.shortcut_option}"
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, "
                f"shortcut={kind}")


def add_into(total, other):
    """``total += other``, by shares of the images over the worker threads
    (:func:`~lars_ref.functional.conv_rows.for_each_row_share`); returns ``total``.
    The residual block adds into arrays that it alone holds: bn2's output in the
    forward pass, conv1's dx in the backward pass."""
    xp = get_xp(total)
    for_each_row_share(xp, lambda r: xp.add(total[r], other[r], out=total[r]), total)
    return total


def _projection(in_channels, out_channels, stride, bn, rng):
    """Option B shortcut: 1x1 convolution with ``stride`` (no bias), then BatchNorm."""
    conv = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, rng=rng,
                  dtype=bn["dtype"], channels_last=bn["channels_last"])
    return Sequential([("conv", conv), ("bn", BatchNorm(out_channels, **bn))])
