"""Pure functional ops, NCHW (and the channels-last convolution the models run).

Each op is a pair ``<op>_forward(...) -> (out, cache)`` and
``<op>_backward(dout, cache) -> grads``. Images are NCHW, features (N, D), except
for ``conv2d_nhwc_*`` (:mod:`lars_ref.functional.conv_rows`), which take (N, H, W, C).
Loop versions (``*_naive``) of the forward and backward passes are the test oracles. Every op
finds its array module from its inputs (NumPy or CuPy, see :mod:`lars_ref.backend`),
preserves the input dtype, and never mutates its arguments. Backward functions
return the gradients of the forward's array arguments in their order. Bad shapes
raise :class:`ShapeError` (a ValueError).
"""
from lars_ref.functional.activations import (DropoutCache, ReluCache, dropout_backward,
                                             dropout_forward, relu_backward,
                                             relu_forward)
from lars_ref.functional.batchnorm import (BatchNormCache, batchnorm_backward,
                                           batchnorm_backward_naive, batchnorm_forward,
                                           batchnorm_forward_naive)
from lars_ref.functional.conv import (Conv2dCache, conv2d_backward,
                                      conv2d_backward_naive, conv2d_forward,
                                      conv2d_forward_naive)
from lars_ref.functional.conv_rows import (RowConvCache, conv2d_nhwc_backward,
                                           conv2d_nhwc_forward)
from lars_ref.functional.errors import ShapeError
from lars_ref.functional.im2col import col2im, im2col
from lars_ref.functional.linear import LinearCache, linear_backward, linear_forward
from lars_ref.functional.losses import softmax_cross_entropy
from lars_ref.functional.lrn import LrnCache, lrn_backward, lrn_forward
from lars_ref.functional.pool import (AvgPoolCache, GlobalAvgPoolCache, MaxPoolCache,
                                      avg_pool2d_backward, avg_pool2d_backward_naive,
                                      avg_pool2d_forward,
                                      avg_pool2d_forward_naive,
                                      global_avg_pool_backward, global_avg_pool_forward,
                                      max_pool2d_backward, max_pool2d_backward_naive,
                                      max_pool2d_forward,
                                      max_pool2d_forward_naive)

__all__ = [
    "ShapeError",
    "im2col", "col2im",
    "Conv2dCache", "conv2d_forward", "conv2d_backward", "conv2d_forward_naive",
    "conv2d_backward_naive",
    "RowConvCache", "conv2d_nhwc_forward", "conv2d_nhwc_backward",
    "LinearCache", "linear_forward", "linear_backward",
    "ReluCache", "relu_forward", "relu_backward",
    "DropoutCache", "dropout_forward", "dropout_backward",
    "MaxPoolCache", "max_pool2d_forward", "max_pool2d_backward",
    "max_pool2d_forward_naive", "max_pool2d_backward_naive",
    "AvgPoolCache", "avg_pool2d_forward", "avg_pool2d_backward",
    "avg_pool2d_forward_naive", "avg_pool2d_backward_naive",
    "GlobalAvgPoolCache", "global_avg_pool_forward", "global_avg_pool_backward",
    "BatchNormCache", "batchnorm_forward", "batchnorm_backward",
    "batchnorm_forward_naive", "batchnorm_backward_naive",
    "LrnCache", "lrn_forward", "lrn_backward",
    "softmax_cross_entropy",
]
