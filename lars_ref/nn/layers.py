"""Thin layers: each wraps one op pair of :mod:`lars_ref.functional`.

Every layer with parameters draws them on the host from the NumPy Generator it
is given (so CPU and GPU runs start bit-identical), in float64, then casts to
``dtype``; move a built model with ``model.to(xp)``. Shapes follow NCHW.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

import math

import numpy as np

from lars_ref import functional as F
from lars_ref.backend import get_xp
from lars_ref.functional.im2col import pad_images
from lars_ref.nn.layout import nchw_view, nhwc_view
from lars_ref.nn.module import Module


def he_normal_std(fan_in: int) -> float:
    """He et al. (2015) std for ReLU networks: sqrt(2 / fan_in)."""
    return math.sqrt(2.0 / fan_in)


def gaussian(rng: np.random.Generator, shape: tuple, std: float, dtype) -> np.ndarray:
    """Host array of N(0, std^2) draws (drawn in float64, then cast to ``dtype``)."""
    return (std * rng.standard_normal(shape)).astype(dtype)


class Conv2d(Module):
    """2-D convolution with channel groups (AlexNet's two-GPU split).

    Parameters
    ----------
    in_channels, out_channels : int
        C and F; both must be divisible by ``groups``.
    kernel_size : int
        HH = WW.
    stride, pad, groups : int
    bias : bool
        Whether the layer has a bias ``b``.
    weight_std : float or None
        Std of the Gaussian init of ``w``; None means He normal, sqrt(2 / fan_in)
        with fan_in = (C / groups) * HH * WW.
    bias_value : float
        Constant init of ``b``.
    rng : numpy.random.Generator
        Host generator ``w`` is drawn from.
    dtype : numpy dtype
    channels_last : bool
        Input (N, H, W, C) and output (N, H', W', F), computed by the row gather
        (:func:`lars_ref.functional.conv2d_nhwc_forward`); False: NCHW and im2col.

    Params: ``w`` (F, C/groups, HH, WW) and ``b`` (F,) in either layout. Input
    (N, C, H, W), output (N, F, H', W') with H' = (H + 2 pad - HH) // stride + 1.

    Attribute ``input_grad`` (default True): False makes ``backward`` skip dL/dx
    and return None, for a model's first layer, whose input (the images) needs no
    gradient (:func:`lars_ref.nn.skip_input_grad`).

    Notes
    -----
    Floor mode, as in PyTorch and Caffe: when ``(H + 2 pad - HH)`` is not a
    multiple of ``stride`` (a 3x3 stride-2 pad-1 conv on 32x32, the first block
    of a ResNet stage), the last rows/columns of the padded input are read by no
    window. :func:`lars_ref.functional.conv2d_forward` floors too, but refuses
    to ignore real (non-padding) pixels; the layer follows PyTorch and Caffe in
    every case: where real pixels go unread, it pads the input itself, drops the
    unread rows and columns, and calls the op with ``pad=0``; backward puts the
    gradient back in place (zero for the dropped entries).
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, stride=1, pad=0,
                 groups=1, bias=True, weight_std=None, bias_value=0.0, rng,
                 dtype=np.float32, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels="
                             f"{out_channels} must be divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad
        self.groups = groups
        self.floor_mode_shape = None  # input shape if the last forward used floor mode
        self.input_grad = True
        w_shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        fan_in = w_shape[1] * kernel_size * kernel_size
        std = he_normal_std(fan_in) if weight_std is None else weight_std
        self.params["w"] = gaussian(rng, w_shape, std, dtype)
        if bias:
            self.params["b"] = np.full((out_channels,), bias_value, dtype=dtype)
        self._init_grads()

    def forward(self, x, train=True):
        if self.channels_last:  # floor mode below works on the NCHW-shaped view
            x = nchw_view(x)
        used = self._floor_mode_extent(x)
        self.floor_mode_shape = None if used is None else x.shape  # for backward
        pad = self.pad
        if used is not None:
            x = pad_images(x, pad)[:, :, :used[0], :used[1]]
            pad = 0
        conv = F.conv2d_nhwc_forward if self.channels_last else F.conv2d_forward
        with self.layer_errors():
            out, self.cache = conv(nhwc_view(x) if self.channels_last else x,
                                   self.params["w"], self.params.get("b"),
                                   stride=self.stride, pad=pad, groups=self.groups)
        return out

    def backward(self, dout):
        channels_last = self.channels_last
        conv_backward = F.conv2d_nhwc_backward if channels_last else F.conv2d_backward
        with self.layer_errors():
            dx, dw, db = conv_backward(dout, self._take_cache(), self.input_grad)
        self.accumulate_grads(w=dw, b=db)
        if dx is not None and self.floor_mode_shape is not None:
            dx = self._unpad_floor_mode_grad(nchw_view(dx) if channels_last else dx)
            dx = nhwc_view(dx) if channels_last else dx
        return dx

    def _floor_mode_extent(self, x):
        """(rows, cols) of the padded input that some window reads, when the op would
        refuse to floor (unread rows that are real pixels); None otherwise.

        None also when every unread row is padding (the op floors those itself, as
        in ResNet's downsampling convs), and when the input is not 4-D or too
        small: the op then raises the ShapeError.
        """
        if x.ndim != 4 or min(x.shape[2:]) + 2 * self.pad < self.kernel_size:
            return None
        padded = [n + 2 * self.pad for n in x.shape[2:]]
        used = [(n - self.kernel_size) // self.stride * self.stride + self.kernel_size
                for n in padded]
        drops_real_pixels = any(n - u > self.pad for n, u in zip(padded, used))
        refused = drops_real_pixels and self.kernel_size >= self.stride
        return tuple(used) if refused else None

    def _unpad_floor_mode_grad(self, dx_used):
        """Scatter dL/d(used padded input) back to dL/dx: zeros where no window read."""
        N, C, H, W = self.floor_mode_shape
        p = self.pad
        dx_padded = get_xp(dx_used).zeros((N, C, H + 2 * p, W + 2 * p),
                                          dtype=dx_used.dtype)
        dx_padded[:, :, :dx_used.shape[2], :dx_used.shape[3]] = dx_used
        return dx_padded[:, :, p:p + H, p:p + W]

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"pad={self.pad}, groups={self.groups}, bias={'b' in self.params}")


class Linear(Module):
    """Fully connected layer, out = x @ w + b.

    Parameters
    ----------
    in_features, out_features : int
        D and M.
    bias, weight_std, bias_value, rng, dtype
        As for :class:`Conv2d`, with fan_in = D.

    Params: ``w`` (D, M) and ``b`` (M,). Input (N, D), output (N, M).
    """

    def __init__(self, in_features, out_features, *, bias=True, weight_std=None,
                 bias_value=0.0, rng, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        std = he_normal_std(in_features) if weight_std is None else weight_std
        self.params["w"] = gaussian(rng, (in_features, out_features), std, dtype)
        if bias:
            self.params["b"] = np.full((out_features,), bias_value, dtype=dtype)
        self._init_grads()

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.linear_forward(x, self.params["w"],
                                               self.params.get("b"))
        return out

    def backward(self, dout):
        with self.layer_errors():
            dx, dw, db = F.linear_backward(dout, self._take_cache())
        self.accumulate_grads(w=dw, b=db)
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={'b' in self.params}"


class ReLU(Module):
    """out = max(x, 0), elementwise; any shape."""

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.relu_forward(x)
        return out

    def backward(self, dout):
        with self.layer_errors():
            return F.relu_backward(dout, self._take_cache())


class Dropout(Module):
    """Inverted dropout: zero entries with probability ``p`` in training.

    Kept entries are multiplied by 1 / (1 - p), so evaluation needs no rescaling.

    Parameters
    ----------
    p : float
        Drop probability (Caffe ``dropout_ratio``; 0.5 in AlexNet).
    rng : numpy.random.Generator
        Host generator of the masks; replace ``layer.rng`` to replay a mask.

    In evaluation (``train=False``) the layer is the identity.
    """

    def __init__(self, p, rng):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: drop probability p={p} must be in [0, 1)")
        self.p, self.rng = p, rng
        self.identity = False  # True when the last forward was in evaluation mode

    def forward(self, x, train=True):
        self.identity = not train
        if self.identity:
            self.cache = ()
            return x
        with self.layer_errors():
            out, self.cache = F.dropout_forward(x, self.p, self.rng)
        return out

    def backward(self, dout):
        cache = self._take_cache()
        if self.identity:
            return dout
        with self.layer_errors():
            return F.dropout_backward(dout, cache)

    def random_state(self) -> dict:
        """The state of the mask generator (JSON-able), for a checkpoint."""
        return self.rng.bit_generator.state

    def load_random_state(self, state: dict) -> None:
        """Continue the mask sequence from :meth:`random_state`'s ``state``."""
        self.rng.bit_generator.state = state

    def extra_repr(self):
        return f"p={self.p}"
