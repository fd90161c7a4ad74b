"""Parameter-free layers that change the spatial shape: pooling and flattening.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

from lars_ref import functional as F
from lars_ref.nn.module import Module


class _WindowPool2d(Module):
    """Pooling over ``size`` x ``size`` windows moved by ``stride``, no padding.

    Input (N, C, H, W), output (N, C, Ho, Wo) with Ho = floor((H - size) / stride)
    + 1. Flooring may leave trailing rows unread only where the window is smaller
    than the stride; otherwise the op raises ShapeError rather than ignore real
    pixels (the rule of :func:`lars_ref.functional.im2col.output_size`). Subclasses
    set ``forward_op`` and ``backward_op``, the functional pair they wrap.
    """

    def __init__(self, size, stride=None):
        super().__init__()
        self.size = size
        self.stride = size if stride is None else stride

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = self.forward_op(x, self.size, self.stride)
        return out

    def backward(self, dout):
        with self.layer_errors():
            return self.backward_op(dout, self._require_cache())

    def extra_repr(self):
        return f"size={self.size}, stride={self.stride}"


class MaxPool2d(_WindowPool2d):
    """Max pooling (see :class:`_WindowPool2d` for the shapes).

    AlexNet uses overlapping pooling, size 3 and stride 2.
    """
    forward_op = staticmethod(F.max_pool2d_forward)
    backward_op = staticmethod(F.max_pool2d_backward)


class AvgPool2d(_WindowPool2d):
    """Average pooling (see :class:`_WindowPool2d` for the shapes)."""
    forward_op = staticmethod(F.avg_pool2d_forward)
    backward_op = staticmethod(F.avg_pool2d_backward)


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
