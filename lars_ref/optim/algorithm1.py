"""Algorithm 1 of You, Gitman, Ginsburg (2017), "SGD with LARS", as code.

Hold this file next to the box (``docs/algorithm1.md``; its versions are in
``docs/paper_notes.md``). Each statement of :func:`lars_step` carries its line::

    P   Parameters: base LR γ0, momentum m, weight decay β, LARS coefficient η, steps T
    I   Init: t = 0, v = 0. Init weight w_0^l for each layer l   (the optimizer, model)
    L1  while t < T for each layer l do               (the optimizer's loop: base.py)
    L2      g_t^l ← ∇L(w_t^l)                         (the model's backward pass)
    L3      γ_t ← γ0 (1 − t/T)^2                      (the schedule, gives gamma_t)
    L4      λ^l ← η ||w_t^l|| / (||g_t^l|| + β ||w_t^l||)
    L5      v_{t+1}^l ← m v_t^l + γ_t λ^l (g_t^l + β w_t^l)
    L6      w_{t+1}^l ← w_t^l − v_{t+1}^l
    L7  end while

This is the rule the authors ran (the [ICLR] text and their NVCaffe code): η in L4
and γ_t in L5, where arXiv v3 prints no η and γ_{t+1}. The box has no rule for a
zero norm. Read literally, L4 gives λ = 0 when ||w|| = 0 (a zero-initialised tensor
never moves), and :func:`safe_divide` returns 0 where the denominator is 0, so no NaN
can appear. ``authors_guard=True`` is the authors' code instead: λ = 1 unless both
norms are > 0. SGD with momentum, the paper's baseline (Table 1), is this update
with λ = 1: ``eta=None``.

Symbols: ``lam`` is λ^l (``lambda`` is a Python keyword). Everything stays on the
device: the norms and λ are 0-d arrays, no value is read back to the host, and no
``if`` tests an array. Every variant of this rule is in :mod:`lars_ref.optim.variants`.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp
from lars_ref.optim.base import l2_norm


def lars_step(w, g, v, *, gamma_t, m, beta, eta, authors_guard=False, norms=None):
    """One step of Algorithm 1 for one tensor ("layer" l); pure, inputs untouched.

    ``w, g, v``: weights, gradient, momentum buffer (one shape, one floating dtype).
    ``gamma_t, m, beta, eta``: host floats; ``eta=None`` gives λ = 1 (momentum SGD).
    ``norms``: ``(||w||, ||g||)`` if the caller has them.
    Returns ``(w_{t+1}, v_{t+1}, λ)``.
    """
    # [L4] λ^l ← η ||w_t^l|| / (||g_t^l|| + β ||w_t^l||)
    lam = 1.0 if eta is None else local_lr(w, g, beta, eta, authors_guard, norms)
    # [L5] v_{t+1}^l ← m v_t^l + γ_t λ^l (g_t^l + β w_t^l)
    v_next = m * v + gamma_t * lam * (g + beta * w)
    # [L6] w_{t+1}^l ← w_t^l − v_{t+1}^l
    w_next = w - v_next
    return w_next, v_next, lam


def local_lr(w, g, beta, eta, authors_guard=False, norms=None):
    """Line L4 (Eq. 6) as a 0-d array; ``authors_guard``: λ = 1 where a norm is 0."""
    w_norm, g_norm = norms if norms is not None else (l2_norm(w), l2_norm(g))
    lam = safe_divide(eta * w_norm, g_norm + beta * w_norm)
    if authors_guard:                     # NVCaffe 2017: λ = 1 unless both norms > 0
        lam = get_xp(lam).where((w_norm == 0) | (g_norm == 0), 1, lam)
    return lam


def safe_divide(numerator, denominator):
    """``numerator / denominator`` where ``denominator > 0``, else 0 (0-d, no branch).

    The same as ``xp.where(denominator > 0, numerator / denominator, 0)``, written with
    0/1 masks so that NumPy scalars stay scalars (``np.where`` makes arrays, 5x slower
    per tensor) and no division by zero is ever evaluated.
    """
    is_positive = denominator > 0
    return numerator / (denominator + (denominator == 0)) * is_positive


__all__ = ["lars_step", "local_lr", "safe_divide"]
