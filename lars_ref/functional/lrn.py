"""Local response normalisation across channels (Krizhevsky et al. 2012, Section 3.3).

For channel c of an activation a: (N, C, H, W), at every pixel,

    scale_c = k + (alpha / size) * sum_{c' = c - size//2}^{c + size//2} a_{c'}^2
    b_c     = a_c / scale_c^beta

with channels outside [0, C) counting as zero. Convention: the sum is multiplied by
alpha / size, as in Caffe (which the LARS authors used; AlexNet's prototxt has
local_size 5, alpha 1e-4, beta 0.75) and in PyTorch's ``local_response_norm``. The
paper's Section 3.3 writes alpha without the 1/size (its alpha = 1e-4 would be
5e-4 here). ``size`` must be odd (as Caffe requires) so the window is centred.

Backward: with r_c = dout_c * a_c * scale_c^(-beta - 1),

    dx_j = dout_j * scale_j^(-beta)
           - (2 * alpha * beta / size) * a_j * sum_{c in window(j)} r_c

(the window is symmetric, so channel j lies in c's window exactly when c lies in j's).
"""
from __future__ import annotations

from typing import NamedTuple

from lars_ref.backend import get_xp
from lars_ref.functional.errors import require_ndim, require_positive_int


class LrnCache(NamedTuple):
    """What :func:`lrn_backward` reads."""
    x: object       # (N, C, H, W) input a: both terms of dx
    scale: object   # (N, C, H, W) k + alpha/size * window sum of a^2
    size: int
    alpha: float
    beta: float


def _channel_window_sum(v, size: int):
    """``out[:, c] = sum of v[:, c'] over |c' - c| <= size // 2`` (zero outside).

    v and out: (N, C, H, W).
    """
    xp = get_xp(v)
    half = size // 2
    C = v.shape[1]
    padded = xp.pad(v, ((0, 0), (half, half), (0, 0), (0, 0)))
    total = xp.zeros_like(v)
    for shift in range(size):  # one vectorised add per channel offset
        total += padded[:, shift:shift + C]
    return total


def lrn_forward(x, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                k: float = 1.0):
    """Local response normalisation across channels.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    size : odd int, number of channels in the window (AlexNet: 5)
    alpha, beta, k : as in the module docstring (AlexNet: 1e-4, 0.75; k = 2 in the
        paper, 1 in Caffe's AlexNet)

    Returns
    -------
    out : array, shape and dtype of x
    cache : LrnCache
    """
    op = "lrn"
    require_ndim(op, "x", x, (4,), "(N, C, H, W)")
    require_positive_int(op, "size", size)
    if size % 2 == 0:
        raise ValueError(f"{op}: size must be odd so the window is centred (as in "
                         f"Caffe), got {size}")
    scale = k + (alpha / size) * _channel_window_sum(x * x, size)
    out = x * scale ** (-beta)
    return out, LrnCache(x, scale, size, alpha, beta)


def lrn_backward(dout, cache: LrnCache):
    """Gradient of :func:`lrn_forward`; dout and dx have shape (N, C, H, W)."""
    x, scale, size, alpha, beta = cache
    scale_pow = scale ** (-beta)
    r = dout * x * scale_pow / scale             # dout_c * a_c * scale_c^(-beta - 1)
    window_sum_r = _channel_window_sum(r, size)
    return dout * scale_pow - (2 * alpha * beta / size) * x * window_sum_r
