"""Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1), per channel.

For 4-D input x: (N, C, H, W) each channel c is normalised over its m = N*H*W values
(the "convolutional" BN of Section 3.2); for 2-D input x: (N, D) each feature over
its m = N values. With B the m values of one channel:

    [BN Alg1 L1]  mu_B      = (1/m) sum_i x_i                      (mini-batch mean)
    [BN Alg1 L2]  sigma2_B  = (1/m) sum_i (x_i - mu_B)^2            (biased variance)
    [BN Alg1 L3]  x_hat_i   = (x_i - mu_B) / sqrt(sigma2_B + eps)   (normalise)
    [BN Alg1 L4]  y_i       = gamma * x_hat_i + beta                (scale and shift)

``gamma``/``beta`` may be None: no learnable scale/shift, as in the authors'
AlexNet-BN (NVCaffe ``scale_bias: false``; You et al. 2017, Section 5).

Symbols: this module's gamma and beta are BN's scale and shift. They are unrelated
to LARS's gamma (learning rate) and beta (weight decay) in ``lars_ref.optim``.

Introduced in ``notebooks/01_convolution_and_batchnorm.ipynb``.
"""
from __future__ import annotations

from typing import NamedTuple

from lars_ref.backend import get_xp
from lars_ref.functional.conv_rows import for_each_row_share
from lars_ref.functional.errors import (ShapeError, require_ndim, require_same_dtype,
                                        require_shape)


class BatchNormCache(NamedTuple):
    """What :func:`batchnorm_backward` reads."""
    x_hat: object     # normalised input, shape of x: dgamma and the train-mode dx
    inv_std: object   # (C,) 1/sqrt(var + eps): dx's scale
    gamma: object     # (C,) scale or None: dx_hat = dout * gamma
    has_beta: bool    # beta was given, so dbeta is returned (None otherwise)
    train: bool       # batch statistics (they depend on x) or running ones (constants)


def _widen(a):
    """(M, C) -> (M/k, k*C), k the largest of 64, 32, ..., 1 that divides M.

    The same values in the same order (a free view when a is contiguous), in rows
    of k*C: NumPy broadcasts a per-channel vector along rows of 16 values about 3x
    slower than along rows of 256 (the channels-last models hand BN their
    (N*H*W, C) activations). Undone by ``reshape(a.shape)``.
    """
    M, C = a.shape
    k = next(k for k in (64, 32, 16, 8, 4, 2, 1) if M % k == 0)
    return a.reshape(M // k, k * C)


def _channel_sum(a, C: int):
    """Sum of each of the C channels' values: (C,), over axes (0, 2, 3) for NCHW;
    for a (widened) matrix, over its rows and then its k repeats of the channels.

    ``ones @ a`` is one BLAS pass, many times faster than NumPy's reduction over
    the first axis of a matrix with few columns.
    """
    if a.ndim == 2:
        column_sums = get_xp(a).ones(a.shape[0], dtype=a.dtype) @ a
        return column_sums.reshape(-1, C).sum(axis=0)
    return a.sum(axis=(0, 2, 3))


def _channel_dot(a, b, C: int):
    """Sum of each of the C channels' products ``a * b``, as :func:`_channel_sum`.

    ``einsum`` multiplies and adds in one pass, without the full-size product that
    ``_channel_sum(a * b, C)`` would write and read back (4-5x faster on NumPy).
    """
    xp = get_xp(a)
    if a.ndim == 2:
        return xp.einsum("ij,ij->j", a, b).reshape(-1, C).sum(axis=0)
    return xp.einsum("nchw,nchw->c", a, b)


def _per_channel(v, x):
    """A (C,) vector shaped to broadcast against x: (1, C, 1, 1) for NCHW, or one
    row (1, k*C) repeating it k times for a (widened) matrix."""
    if x.ndim == 4:
        return v.reshape(1, -1, 1, 1)
    return get_xp(v).tile(v, x.shape[1] // v.size).reshape(1, -1)


def _check_batchnorm_args(x, gamma, beta, running_mean, running_var, train, momentum,
                          eps) -> None:
    op = "batchnorm"
    require_ndim(op, "x", x, (2, 4), "(N, C, H, W) or (N, D)")
    C = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if a is not None:
            require_shape(op, name, a, (C,))
    require_same_dtype(op, x, gamma=gamma, beta=beta, running_mean=running_mean,
                       running_var=running_var)
    m = x.size // C
    if train and m < 2:
        raise ShapeError(f"{op}: training needs more than one value per channel to "
                         f"form batch statistics; x: {tuple(x.shape)} gives m = {m}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{op}: momentum must be in [0, 1], got {momentum!r}")
    if not eps > 0.0:
        raise ValueError(f"{op}: eps must be positive, got {eps!r}")


def batchnorm_forward(x, gamma, beta, running_mean, running_var, *, train: bool,
                      momentum: float = 0.9, eps: float = 1e-5):
    """Normalise each channel, in training mode (batch stats) or evaluation mode.

    Parameters
    ----------
    x : array, shape (N, C, H, W) or (N, C)
    gamma, beta : arrays, shape (C,), or None for no scale / no shift
    running_mean, running_var : arrays, shape (C,); the running statistics
    train : True: normalise with the batch statistics (Alg. 1 L1-L2) and update the
        running ones; False: normalise with the running statistics (the inference
        network of Ioffe & Szegedy, Algorithm 2) and leave them unchanged.
    momentum : Caffe's ``moving_average_fraction``; the running-statistics update is
        ``running = momentum * running + (1 - momentum) * batch_stat``.
        (PyTorch's ``momentum`` is 1 minus this: our 0.9 is its 0.1.)
    eps : added to the variance before the square root (NVCaffe AlexNet-BN: 1e-4).

    Returns
    -------
    out : array, shape and dtype of x
    cache : BatchNormCache
    new_running_mean, new_running_var : arrays, shape (C,); new arrays in training
        mode, the inputs themselves in evaluation mode.

    Notes
    -----
    The running variance is updated with the *unbiased* batch variance
    ``sigma2_B * m / (m - 1)`` (Ioffe & Szegedy, Algorithm 2 line 10; BVLC Caffe and
    PyTorch do the same), while normalisation uses the biased ``sigma2_B`` (L2).
    BVLC Caffe also divides its accumulated sums by an accumulated weight (a bias
    correction for the first steps); the NVCaffe CPU layer (borisgin/nvcaffe,
    ``batch_norm_layer.cpp``) instead copies the first batch's statistics and stores the
    biased variance plus eps. This op implements the plain rule above.
    """
    _check_batchnorm_args(x, gamma, beta, running_mean, running_var, train,
                          momentum, eps)
    xp = get_xp(x)
    shape, C = x.shape, x.shape[1]
    m = x.size // C
    x = _widen(x) if x.ndim == 2 else x
    x_hat = xp.empty_like(x)  # x - mu, then normalised in place (L3)
    # Every pass below runs on shares of the rows, one per worker thread
    # (for_each_row_share); the statistics add the shares' per-channel sums.
    if train:
        sums = for_each_row_share(xp, lambda r: _channel_sum(x[r], C), x)
        mu = sum(sums) / m                                          # [BN Alg1 L1]
        mu_row = _per_channel(mu, x)

        def centre(r):  # x_hat = x - mu, and this share's sum of its squares
            xp.subtract(x[r], mu_row, out=x_hat[r])
            return _channel_dot(x_hat[r], x_hat[r], C)
        var = sum(for_each_row_share(xp, centre, x)) / m             # [BN Alg1 L2]
        new_running_mean = momentum * running_mean + (1 - momentum) * mu
        new_running_var = momentum * running_var + (1 - momentum) * var * (m / (m - 1))
    else:
        mean_row = _per_channel(running_mean, x)
        for_each_row_share(xp, lambda r: xp.subtract(x[r], mean_row, out=x_hat[r]), x)
        var = running_var
        new_running_mean, new_running_var = running_mean, running_var
    inv_std = 1 / xp.sqrt(var + eps)
    out = xp.empty_like(x)  # never aliases x_hat (the cache's)
    scale_row, gamma_row, beta_row = (None if v is None else _per_channel(v, x)
                                      for v in (inv_std, gamma, beta))

    def normalise(r):
        x_hat[r] *= scale_row                                       # [BN Alg1 L3]
        if gamma_row is not None:                   # [BN Alg1 L4] gamma x_hat + beta
            xp.multiply(x_hat[r], gamma_row, out=out[r])
        else:
            out[r] = x_hat[r]
        if beta_row is not None:
            out[r] += beta_row
    for_each_row_share(xp, normalise, x)
    cache = BatchNormCache(x_hat.reshape(shape), inv_std, gamma, beta is not None,
                           train)
    return out.reshape(shape), cache, new_running_mean, new_running_var


def batchnorm_backward(dout, cache: BatchNormCache):
    """Gradients of :func:`batchnorm_forward`.

    Parameters
    ----------
    dout : array, shape of x

    Returns
    -------
    dx : array, shape of x
    dgamma : array (C,), or None when gamma was None
    dbeta : array (C,), or None when beta was None

    Notes
    -----
    With ``dx_hat = dout * gamma`` and means taken per channel over the m values, the
    training-mode gradient (the chain rule through Alg. 1 L1-L3, where mu_B and
    sigma2_B depend on every x_i) is

    .. math:: \\frac{\\partial L}{\\partial x_i} =
              \\frac{1}{\\sqrt{\\sigma_B^2+\\epsilon}}
              \\Big(\\hat{dx}_i - \\overline{\\hat{dx}}
                    - \\hat{x}_i\\,\\overline{\\hat{dx}\\,\\hat{x}}\\Big)

    Since gamma is constant per channel, this is computed as
    ``gamma * inv_std * (dout - mean(dout) - x_hat * mean(dout * x_hat))``, whose two
    per-channel sums are also dbeta and dgamma. In each channel dx sums to zero (out
    ignores a shift of x) and ``sum(dx * (x - mu)) = eps / (var + eps) *
    sum(dx_hat * x_hat)``, zero as eps -> 0 (out ignores a scaling of x). In
    evaluation mode the statistics are constants and
    ``dx = dx_hat / sqrt(running_var + eps)``.
    """
    x_hat, inv_std, gamma, has_beta, train = cache
    shape, C = x_hat.shape, x_hat.shape[1]
    m = x_hat.size // C
    if x_hat.ndim == 2:
        x_hat, dout = _widen(x_hat), _widen(dout)
    # Per channel: gamma / sqrt(var + eps), the factor from dx_hat to dx.
    scale = inv_std if gamma is None else inv_std * gamma
    xp = get_xp(dout)
    need_sum_dout, need_sum_dout_x_hat = train or has_beta, train or gamma is not None

    def sums(r):  # this share's sum(dout) (= its dbeta) and sum(dout * x_hat) (dgamma)
        return (_channel_sum(dout[r], C) if need_sum_dout else 0,
                _channel_dot(dout[r], x_hat[r], C) if need_sum_dout_x_hat else 0)
    shares = for_each_row_share(xp, sums, dout)
    sum_dout = sum(s[0] for s in shares) if need_sum_dout else None
    sum_dout_x_hat = sum(s[1] for s in shares) if need_sum_dout_x_hat else None
    dx, scale_row = xp.empty_like(dout), _per_channel(scale, x_hat)
    if train:
        # dx = scale * (dout - mean(dout) - x_hat * mean(dout * x_hat)), built in
        # place, share by share, to spare full-size temporaries.
        slope_row = _per_channel(-sum_dout_x_hat / m, x_hat)
        mean_row = _per_channel(sum_dout / m, x_hat)

        def input_grad(r):
            xp.multiply(x_hat[r], slope_row, out=dx[r])
            dx[r] += dout[r]
            dx[r] -= mean_row
            dx[r] *= scale_row
    else:
        def input_grad(r):
            xp.multiply(dout[r], scale_row, out=dx[r])
    for_each_row_share(xp, input_grad, dout)
    dgamma = sum_dout_x_hat if gamma is not None else None
    dbeta = sum_dout if has_beta else None
    return dx.reshape(shape), dgamma, dbeta


def batchnorm_forward_naive(x, gamma, beta, running_mean, running_var, *, train: bool,
                            momentum: float = 0.9, eps: float = 1e-5):
    """Channel-by-channel loop version of :func:`batchnorm_forward` (the oracle).

    Same parameters; returns ``(out, new_running_mean, new_running_var)``. Each
    channel's values are gathered and Algorithm 1's lines applied with explicit sums.
    """
    _check_batchnorm_args(x, gamma, beta, running_mean, running_var, train,
                          momentum, eps)
    xp = get_xp(x)
    out = xp.empty_like(x)
    new_running_mean = xp.array(running_mean, copy=True)
    new_running_var = xp.array(running_var, copy=True)
    for c in range(x.shape[1]):
        values = x[:, c]                      # (N, H, W) or (N,)
        m = values.size
        if train:
            mu = xp.sum(values) / m                         # [BN Alg1 L1]
            var = xp.sum((values - mu) ** 2) / m            # [BN Alg1 L2]
            new_running_mean[c] = momentum * running_mean[c] + (1 - momentum) * mu
            new_running_var[c] = (momentum * running_var[c]
                                  + (1 - momentum) * var * m / (m - 1))
        else:
            mu, var = running_mean[c], running_var[c]
        y = (values - mu) / xp.sqrt(var + eps)              # [BN Alg1 L3]
        if gamma is not None:
            y = gamma[c] * y                                # [BN Alg1 L4]
        if beta is not None:
            y = y + beta[c]
        out[:, c] = y
    return out, new_running_mean, new_running_var


def batchnorm_backward_naive(dout, x, gamma, running_mean, running_var, *, train: bool,
                             eps: float = 1e-5, has_beta: bool = True):
    """Channel-by-channel loop version of :func:`batchnorm_backward` (the oracle).

    The chain rule written step by step as in Ioffe & Szegedy (2015), Section 3,
    one channel at a time (B = its m values; dx_hat = dout * gamma):

        dvar = sum_i dx_hat_i * (x_i - mu) * (-1/2) * (var + eps)^(-3/2)
        dmu  = -sum_i dx_hat_i / sqrt(var + eps) + dvar * (-2/m) * sum_i (x_i - mu)
        dx_i = dx_hat_i / sqrt(var + eps) + dvar * 2 (x_i - mu) / m + dmu / m
        dgamma = sum_i dout_i * x_hat_i ;  dbeta = sum_i dout_i

    In evaluation mode mu and var are the running statistics (constants), so only
    the first term of dx_i remains.

    dout, x : (N, C, H, W) or (N, C). Returns (dx, dgamma or None, dbeta or None).
    """
    xp = get_xp(dout, x)
    dx = xp.empty_like(dout)
    C = x.shape[1]
    dgamma = xp.zeros(C, dtype=dout.dtype) if gamma is not None else None
    dbeta = xp.zeros(C, dtype=dout.dtype) if has_beta else None
    for c in range(C):
        values, d_out = x[:, c], dout[:, c]
        m = values.size
        scale = gamma[c] if gamma is not None else 1.0
        d_x_hat = d_out * scale
        mu = xp.sum(values) / m if train else running_mean[c]
        var = xp.sum((values - mu) ** 2) / m if train else running_var[c]
        inv_std = 1 / xp.sqrt(var + eps)
        if train:
            d_var = xp.sum(d_x_hat * (values - mu)) * -0.5 * inv_std ** 3
            d_mu = -xp.sum(d_x_hat) * inv_std + d_var * (-2 / m) * xp.sum(values - mu)
            dx[:, c] = d_x_hat * inv_std + d_var * 2 * (values - mu) / m + d_mu / m
        else:
            dx[:, c] = d_x_hat * inv_std
        if gamma is not None:
            dgamma[c] = xp.sum(d_out * (values - mu) * inv_std)
        if has_beta:
            dbeta[c] = xp.sum(d_out)
    return dx, dgamma, dbeta
