"""Parameter-free layers that change the spatial shape: pooling and flattening.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

from lars_ref import functional as F
from lars_ref.nn.module import Module


class MaxPool2d(Module):
    """Max pooling over ``size`` x ``size`` windows moved by ``stride``, no padding.

    Input (N, C, H, W), output (N, C, Ho, Wo) with Ho = (H - size) / stride + 1,
    which must be a whole number (windows tile the input exactly; the op raises
    ShapeError otherwise).
    AlexNet uses overlapping pooling, size 3 and stride 2.
    """

    def __init__(self, size, stride=None):
        super().__init__()
        self.size = size
        self.stride = size if stride is None else stride

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.max_pool2d_forward(x, self.size, self.stride)
        return out

    def backward(self, dout):
        with self.layer_errors():
            return F.max_pool2d_backward(dout, self._require_cache())

    def extra_repr(self):
        return f"size={self.size}, stride={self.stride}"


class AvgPool2d(Module):
    """Average pooling over ``size`` x ``size`` windows moved by ``stride``."""

    def __init__(self, size, stride=None):
        super().__init__()
        self.size = size
        self.stride = size if stride is None else stride

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.avg_pool2d_forward(x, self.size, self.stride)
        return out

    def backward(self, dout):
        with self.layer_errors():
            return F.avg_pool2d_backward(dout, self._require_cache())

    def extra_repr(self):
        return f"size={self.size}, stride={self.stride}"


class GlobalAvgPool(Module):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C) (the ResNet head)."""

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.global_avg_pool_forward(x)
        return out

    def backward(self, dout):
        with self.layer_errors():
            return F.global_avg_pool_backward(dout, self._require_cache())


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), channel slowest, as Caffe's InnerProduct reads it."""

    def forward(self, x, train=True):
        self.cache = x.shape  # backward reshapes dout back to the input shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self._require_cache())
