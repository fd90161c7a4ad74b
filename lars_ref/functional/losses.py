"""Softmax cross-entropy loss, mean over the batch, with its gradient."""
from __future__ import annotations

from lars_ref.backend import get_xp, to_numpy
from lars_ref.functional.errors import ShapeError, require_ndim


def _check_loss_args(xp, logits, labels, check_values: bool) -> None:
    op = "softmax_cross_entropy"
    require_ndim(op, "logits", logits, (2,), "(N, K)")
    N, K = logits.shape
    if N == 0 or K == 0:
        raise ShapeError(f"{op}: logits must be non-empty, got shape "
                         f"{tuple(logits.shape)}")
    if tuple(labels.shape) != (N,):
        raise ShapeError(f"{op}: labels must have shape (N,) = ({N},), got "
                         f"{tuple(labels.shape)}; logits: {tuple(logits.shape)}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{op}: labels must be integer class indices, got dtype "
                         f"{labels.dtype}")
    if not check_values:
        return
    flags = xp.stack([((labels < 0) | (labels >= K)).any(), ~xp.isfinite(logits).all()])
    labels_bad, logits_bad = to_numpy(flags)   # the one device-to-host copy per call
    if not (labels_bad or logits_bad):
        return
    if labels_bad:
        low, high = to_numpy(xp.stack([labels.min(), labels.max()]))
        raise ValueError(f"{op}: labels must lie in [0, {K}) for {K} classes; got "
                         f"values from {low} to {high}")
    raise ValueError(f"{op}: logits contain NaN or Inf (shape {tuple(logits.shape)}); "
                     "the model diverged or its input is bad")


def softmax_cross_entropy(logits, labels, *, check_values: bool = True):
    """Mean cross-entropy of softmax(logits) against integer labels, and dL/dlogits.

    ``L = -(1/N) sum_n log softmax(logits_n)[labels_n]``, computed with the
    log-sum-exp shift ``logits - max`` so that no exp overflows.

    Parameters
    ----------
    logits : array, shape (N, K), float
    labels : int array, shape (N,), values in [0, K)
    check_values : bool
        Check the label range and that the logits are finite: one device-to-host
        copy (a GPU synchronisation). The training step passes False and finds a
        NaN loss at its logging interval instead (``lars_ref/train.py``).

    Returns
    -------
    loss : scalar of logits' dtype (a 0-d array on CuPy, kept on the device;
        ``float(loss)`` to log)
    dlogits : array, shape (N, K): ``(softmax(logits) - onehot(labels)) / N``

    Raises
    ------
    ShapeError for wrong shapes; ValueError for non-integer labels, and (with
    ``check_values``) for out-of-range labels and NaN/Inf logits.
    """
    xp = get_xp(logits, labels)
    _check_loss_args(xp, logits, labels, check_values)
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(N)
    loss = -log_probs[rows, labels].mean()
    dlogits = xp.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= N
    return loss, dlogits
