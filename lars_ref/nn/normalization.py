"""Normalisation layers: BatchNorm (with running statistics) and LRN.

Introduced in ``notebooks/02_lars_algorithm1.ipynb`` (where the models meet LARS).
"""
from __future__ import annotations

import numpy as np

from lars_ref import functional as F
from lars_ref.nn.layout import nchw_view, nhwc_view
from lars_ref.nn.module import Module


class BatchNorm(Module):
    """Batch normalisation per channel over (N, H, W) (Ioffe and Szegedy 2015, Alg. 1).

    Parameters
    ----------
    num_channels : int
        C.
    affine : bool
        True: learnable scale ``gamma`` (ones) and shift ``beta`` (zeros), as in
        ResNet. False: no parameters, as the authors' AlexNet-BN
        (Caffe ``scale_bias: false``).
    momentum : float
        Fraction of the old running statistic that is kept at each training
        forward: ``running = momentum * running + (1 - momentum) * batch``
        (Caffe ``moving_average_fraction``; PyTorch's momentum=0.1 is 0.9 here).
    eps : float
        Added to the variance before the square root (1e-5 for ResNet, 1e-4 in
        AlexNet-BN).
    dtype : numpy dtype
    channels_last : bool
        4-D input is (N, H, W, C): normalised as the (N*H*W, C) matrix it is in
        memory, the same statistics over the same m = N*H*W values per channel.

    Params (when ``affine``): ``gamma`` (C,), ``beta`` (C,). Buffers:
    ``running_mean`` (C,) starting at 0 and ``running_var`` (C,) starting at 1;
    they change only in training mode and are what evaluation normalises with.
    The batch-versus-running rule and the variance estimator are those of
    :func:`lars_ref.functional.batchnorm_forward`. Input and output
    (N, C, H, W), or (N, C) for features.
    """

    def __init__(self, num_channels, *, affine=True, momentum=0.9, eps=1e-5,
                 dtype=np.float32, channels_last=False):
        super().__init__()
        self.channels_last = channels_last
        self.num_channels, self.affine = num_channels, affine
        self.momentum, self.eps = momentum, eps
        if affine:
            self.params["gamma"] = np.ones((num_channels,), dtype=dtype)
            self.params["beta"] = np.zeros((num_channels,), dtype=dtype)
        self.buffers["running_mean"] = np.zeros((num_channels,), dtype=dtype)
        self.buffers["running_var"] = np.ones((num_channels,), dtype=dtype)
        self._init_grads()

    def forward(self, x, train=True):
        shape = x.shape
        if self.channels_last and x.ndim == 4:
            x = x.reshape(-1, shape[3])   # (N*H*W, C): free when x is contiguous
        with self.layer_errors():
            out, self.cache, new_mean, new_var = F.batchnorm_forward(
                x, self.params.get("gamma"), self.params.get("beta"),
                self.buffers["running_mean"], self.buffers["running_var"],
                train=train, momentum=self.momentum, eps=self.eps)
        if train:  # in place, so references held elsewhere stay valid
            self.buffers["running_mean"][...] = new_mean
            self.buffers["running_var"][...] = new_var
        return out.reshape(shape)

    def backward(self, dout):
        shape = dout.shape
        if self.channels_last and dout.ndim == 4:
            dout = dout.reshape(-1, shape[3])
        with self.layer_errors():
            dx, dgamma, dbeta = F.batchnorm_backward(dout, self._take_cache())
        self.accumulate_grads(gamma=dgamma, beta=dbeta)   # both None without scale/shift
        return dx.reshape(shape)

    def extra_repr(self):
        return (f"{self.num_channels}, affine={self.affine}, momentum={self.momentum}, "
                f"eps={self.eps}")


class LRN(Module):
    """Local response normalisation across channels (Krizhevsky et al. 2012, sec. 3.3).

    ``out = x / (k + alpha / size * sum_{nearby c'} x_{c'}^2) ** beta`` over a
    window of ``size`` channels; the exact convention is that of
    :func:`lars_ref.functional.lrn_forward`. BVLC AlexNet: size 5, alpha 1e-4,
    beta 0.75, k 1. Input and output (N, C, H, W), or (N, H, W, C) when
    ``channels_last`` (the op then reads the NCHW-shaped view).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=1.0, channels_last=False):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.channels_last = channels_last

    def forward(self, x, train=True):
        with self.layer_errors():
            out, self.cache = F.lrn_forward(nchw_view(x) if self.channels_last else x,
                                            size=self.size, alpha=self.alpha,
                                            beta=self.beta, k=self.k)
        return nhwc_view(out) if self.channels_last else out

    def backward(self, dout):
        with self.layer_errors():
            dx = F.lrn_backward(nchw_view(dout) if self.channels_last else dout,
                                self._take_cache())
        return nhwc_view(dx) if self.channels_last else dx

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
