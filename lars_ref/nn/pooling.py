"""Parameter-free layers that change the spatial shape: pooling and flattening.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

from lars_ref import functional as F
from lars_ref.backend import get_xp
from lars_ref.nn.layout import nchw_view, nhwc_view
from lars_ref.nn.module import Module


class _WindowPool2d(Module):
    """Pooling over ``size`` x ``size`` windows moved by ``stride``, no padding.

    Input (N, C, H, W), output (N, C, Ho, Wo) with Ho = floor((H - size) / stride)
    + 1. Flooring may leave trailing rows unread only where the window is smaller
    than the stride; otherwise the op raises ShapeError rather than ignore real
    pixels (the rule of :func:`lars_ref.functional.im2col.output_size`). Subclasses
    set ``forward_op`` and ``backward_op``, the functional pair they wrap. With
    ``channels_last`` input and output are (N, H, W, C); the op reads the
    NCHW-shaped view.
    """

    def __init__(self, size, stride=None, channels_last=False):
        super().__init__()
        self.size = size
        self.stride = size if stride is None else stride
        self.channels_last = channels_last

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = self.forward_op(nchw_view(x) if self.channels_last else x,
                                              self.size, self.stride)
        return nhwc_view(out) if self.channels_last else out

    def backward(self, dout):
        with self.layer_errors():
            dx = self.backward_op(nchw_view(dout) if self.channels_last else dout,
                                  self._take_cache())
        return nhwc_view(dx) if self.channels_last else dx

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
    """Mean over the spatial axes: (N, C, H, W) -> (N, C) (the ResNet head).

    With ``channels_last`` the input is (N, H, W, C); the output is the same.
    """

    def __init__(self, channels_last=False):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.global_avg_pool_forward(
                nchw_view(x) if self.channels_last else x)
        return out

    def backward(self, dout):
        with self.layer_errors():
            dx = F.global_avg_pool_backward(dout, self._take_cache())
        return nhwc_view(dx) if self.channels_last else dx


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), channel slowest, as Caffe's InnerProduct reads it.

    With ``channels_last`` the input is (N, H, W, C) and is flattened in the same
    NCHW order (a copy), so an fc layer's weights mean the same in both layouts
    and checkpoints and cross-checks carry over.
    """

    def __init__(self, channels_last=False):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x, train=True):
        if self.channels_last:
            x = nchw_view(x)
        self.cache = x.shape  # backward reshapes dout back to the input shape
        return get_xp(x).ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, dout):
        dx = dout.reshape(self._take_cache())
        return nhwc_view(dx) if self.channels_last else dx
