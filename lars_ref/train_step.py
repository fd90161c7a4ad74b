"""One training step over k micro-batches (Caffe ``iter_size``), and the evaluation.

One optimizer step per *global* batch of B images, built from k = B / b
micro-batches of b images, as the authors' Caffe ``iter_size`` did for
B = 16K and 32K (paper Sec. 6, "The weights update is done after gradients for
the last chunk are computed")::

    zero the grads
    for each of the k micro-batches:          # [iter_size] chunk i of B/k images
        forward (train mode: BN uses this chunk's own mean and variance,
                 and updates its running statistics once per chunk)
        backward (grads += d mean-loss of the chunk / d w)
    grads /= k                                # [iter_size] average over the chunks
    optimizer.step(params, grads)             # Algorithm 1, once per global batch

Without BN (and without dropout) this is exactly one step on the whole batch,
since the mean of the k chunk means is the batch mean. With BN it is not: each
chunk is normalised with its own statistics, as in Caffe.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp, to_device, to_numpy
from lars_ref.functional import softmax_cross_entropy

EVAL_BATCH = 500  # test images per forward pass in evaluate()


class DivergenceError(RuntimeError):
    """The loss became NaN or Inf during training."""


def forward_backward(model, x, y, iter_size: int = 1):
    """Fill ``model``'s grads with the gradient of the mean loss over the global batch.

    Parameters
    ----------
    model : lars_ref.nn.Module
    x : (B, C, H, W) or (B, D) device array, B divisible by ``iter_size``
    y : (B,) int device array
    iter_size : int, k, the number of micro-batches of B / k samples

    Returns
    -------
    loss : 0-d device array, the mean over the k chunks of each chunk's mean loss
        (NaN or Inf when the model diverged: the host reads no value here, so
        :mod:`lars_ref.train` finds it at its logging interval's one gather)
    correct : 0-d device array, how many of the B predictions were right
    """
    B, k = x.shape[0], iter_size
    if B % k:
        raise ValueError(f"forward_backward: batch of {B} samples does not split into "
                         f"iter_size={k} equal micro-batches; x: {tuple(x.shape)}")
    xp, b = get_xp(x), B // k
    model.zero_grad()
    losses, correct = [], xp.zeros((), dtype=xp.int64)
    for i in range(k):
        x_chunk, y_chunk = x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]
        logits = model.forward(x_chunk, train=True)
        loss, dlogits = softmax_cross_entropy(logits, y_chunk, check_values=False)
        model.backward(dlogits)                       # grads += dL_i/dw (accumulate)
        losses.append(loss)
        correct = correct + (logits.argmax(axis=1) == y_chunk).sum()
    for _, grad in model.named_grads():
        grad /= k                                     # [iter_size] mean of the k chunks
    return xp.stack([xp.asarray(loss) for loss in losses]).mean(), correct


def train_step(model, optimizer, x, y, iter_size: int = 1):
    """Accumulate the gradient over ``iter_size`` micro-batches, then step once.

    Returns the device scalars ``(loss, correct)`` of :func:`forward_backward`.
    """
    loss, correct = forward_backward(model, x, y, iter_size)
    optimizer.step(dict(model.named_parameters()), dict(model.named_grads()))
    return loss, correct


def evaluate(model, x, y, batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """Mean loss and top-1 accuracy of ``model`` in evaluation mode (BN running stats).

    Parameters
    ----------
    model : lars_ref.nn.Module, with parameters on the device ``xp``
    x : (N, C, H, W) host array, already normalised; copied to the device per batch
    y : (N,) int host array
    batch_size : images per forward pass

    Returns
    -------
    (loss, accuracy) as Python floats; loss is NaN or Inf when the logits are not
    finite. The sums stay on the device: one device-to-host copy in all.
    """
    xp = get_xp(next(iter(dict(model.named_parameters()).values())))
    dtype = next(iter(dict(model.named_parameters()).values())).dtype
    loss_sum, correct = xp.zeros((), dtype=xp.float64), xp.zeros((), dtype=xp.int64)
    for start in range(0, len(x), batch_size):
        x_batch = to_device(x[start:start + batch_size], xp).astype(dtype, copy=False)
        y_batch = to_device(y[start:start + batch_size], xp)
        logits = model.forward(x_batch, train=False)
        loss, _ = softmax_cross_entropy(logits, y_batch, check_values=False)
        loss_sum = loss_sum + loss * len(y_batch)
        correct = correct + (logits.argmax(axis=1) == y_batch).sum()
    totals = to_numpy(xp.stack([loss_sum, correct.astype(xp.float64)]))  # one transfer
    return float(totals[0]) / len(x), float(totals[1]) / len(x)
