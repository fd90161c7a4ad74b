"""Channels-last (NHWC) layout inside the models, NCHW at their edges.

The models keep activations as (N, H, W, C) from the input to the classifier, so
that the row-gather convolution (:mod:`lars_ref.functional.conv_rows`) can read
the C channels of a pixel side by side; the public contract stays NCHW: a
model takes (N, C, H, W) images and returns dL/dx in that shape, and weights keep
the paper's shapes. Every layer that cares about the layout takes
``channels_last``; layers built alone default to NCHW, as in the functional ops.

The window ops of :mod:`lars_ref.functional` (pooling, LRN) are written for NCHW;
on channels-last data they run on the NCHW-shaped *view* ``nchw_view(x)`` (no
copy), which those ops read through their strides.

Taught in ``notebooks/08_channels_last_convolution.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp


def nchw_view(x):
    """(N, H, W, C) -> (N, C, H, W), a view (no copy)."""
    return x.transpose(0, 3, 1, 2)


def nhwc_view(x):
    """(N, C, H, W) -> (N, H, W, C), a view (no copy)."""
    return x.transpose(0, 2, 3, 1)


def to_channels_last(x):
    """(N, C, H, W) -> a C-contiguous (N, H, W, C) copy."""
    return get_xp(x).ascontiguousarray(nhwc_view(x))


def to_channels_first(x):
    """(N, H, W, C) -> a C-contiguous (N, C, H, W) copy."""
    return get_xp(x).ascontiguousarray(nchw_view(x))


def spatial_axes(channels_last: bool) -> tuple[int, int]:
    """The (H, W) axes of a 4-D activation."""
    return (1, 2) if channels_last else (2, 3)


def channel_axis(channels_last: bool) -> int:
    return 3 if channels_last else 1
