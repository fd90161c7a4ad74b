"""LARS: Algorithm 1 of You, Gitman, Ginsburg (2017), one statement per line.

Paper: arXiv:1708.03888v3, Algorithm 1 "SGD with LARS" (labels P, I, L1..L7 of
``docs/algorithm1.md``); Eq. (6) for the local LR; the [ICLR] 2018 text and the
authors' NVCaffe code for eta in L4 and gamma_t in L5 (the defaults here).

Symbols (the paper's): ``gamma_t`` global LR of step t, ``m`` momentum, ``beta``
weight decay, ``eta`` trust coefficient, ``lam`` the local LR lambda^l (``lambda``
is reserved in Python), ``v`` momentum buffer, ``w`` weights, ``g`` gradient.
Careful: LARS's beta is *weight decay* and gamma the *learning rate*; the
BatchNorm gamma/beta (scale/shift) are unrelated and live in the model.

Everything data-dependent stays on the device: the norms and lam are 0-d arrays,
zero-norm rules use ``xp.where``, and no value is read back to the host. Every
``if`` below tests an option or a hyperparameter (host values), never an array.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp
from lars_ref.optim.base import (NamedTensorOptimizer, check_eta, check_lr, check_momentum,
                                 check_tensors, check_weight_decay, l2_norm)
from lars_ref.optim.options import PAPER, LarsOptions, option_names, tensor_rules


def safe_divide(numerator, denominator):
    """``numerator / denominator`` where ``denominator > 0``, else 0 (0-d device values, >= 0).

    The same as ``xp.where(denominator > 0, numerator / denominator, 0)``, written with
    the 0/1 masks ``denominator == 0`` and ``denominator > 0`` so that NumPy scalars stay
    scalars (``np.where`` turns them into arrays, 5x slower per tensor) and no division
    by zero is ever evaluated. No branch, no host read.
    """
    is_positive = denominator > 0
    return numerator / (denominator + (denominator == 0)) * is_positive


def local_lr(w, g, *, eta, weight_decay, lr=1.0, momentum=0.0, options: LarsOptions = PAPER,
             norms=None):
    """Algorithm 1 line L4, the local LR: ``lam = eta*||w|| / (||g|| + beta*||w||)`` (Eq. 6).

    Parameters
    ----------
    w, g : array, same shape and dtype
        Weights ``w_t^l`` and gradient ``g_t^l`` of one tensor ("layer").
    eta, weight_decay : float
        Trust coefficient eta and weight decay beta.
    lr : float
        The global LR used in L5 (read only by ``trust_ratio_clip``).
    momentum : float
        m (read only by ``scale_by_one_minus_momentum``).
    options : LarsOptions
    norms : (0-d, 0-d), optional
        ``(||w||, ||g||)`` if the caller has them already; computed otherwise.

    Returns
    -------
    lam : 0-d array of ``w.dtype``, finite and >= 0
    skipped : 0-d bool array, or False
        True where ``zero_norm_rule="skip"`` fired (then L5 drops weight decay too).
    """
    xp, o = get_xp(w, g), options
    beta, gamma = weight_decay, lr
    w_norm, g_norm = norms if norms is not None else (l2_norm(w), l2_norm(g))
    if o.trust_denominator == "decayed_grad_norm":     # DEVIATION: ||g + beta w|| (optax)
        grad_term, decay_term = l2_norm(g + beta * w), 0.0
    elif o.trust_denominator == "grad_norm":           # DEVIATION(trust_denominator): ||g||
        grad_term, decay_term = g_norm, 0.0
    else:                                              # paper: ||g|| + beta ||w||
        grad_term, decay_term = g_norm, beta * w_norm
    eta_l = eta if o.eta_in_local_lr else 1.0          # DEVIATION: v3 prints no eta in L4
    denominator = grad_term + decay_term + o.eps       # DEVIATION(eps) when eps > 0
    # [L4] lambda^l <- eta * ||w_t^l|| / (||g_t^l|| + beta * ||w_t^l||)   (0 where 0/0 or x/0)
    lam = safe_divide(eta_l * w_norm, denominator)
    if o.scale_by_one_minus_momentum:                  # DEVIATION: NVCaffe 2018's (1 - m)
        lam = (1.0 - momentum) * lam
    lam = _ratio_one_rules(lam, w_norm, grad_term, denominator, o)
    if o.trust_ratio_clip:                             # DEVIATION: apex LARC clip=True
        lam = xp.minimum(lam / gamma, 1) if gamma > 0 else xp.where(lam > 0, 1, lam)
    if o.trust_ratio_max is not None:                  # DEVIATION: NUS-HPC clamp to [0, 50]
        lam = xp.clip(lam, 0, o.trust_ratio_max)
    if o.zero_norm_rule != "skip":
        return lam, False
    skipped = (w_norm == 0) | (g_norm == 0)            # DEVIATION(skip): apex LARC, Bolts
    return xp.where(skipped, 1, lam), skipped


def _ratio_one_rules(lam, w_norm, grad_term, denominator, o: LarsOptions):
    """The "lam = 1" fallbacks of ``zero_norm_rule`` (applied before any clipping, as timm)."""
    xp = get_xp(lam)
    if o.zero_norm_rule == "ratio_one":                # torchlars, timm, optax, TF, NVCaffe
        return xp.where((w_norm == 0) | (grad_term == 0), 1, lam)
    if o.zero_norm_rule == "ratio_one_on_zero_denominator":   # pytorch-optimizer
        return xp.where((w_norm == 0) | (denominator == 0), 1, lam)
    return lam                                         # "paper" and "skip"


def lars_step(w, g, v, *, lr, momentum, weight_decay, eta, options: LarsOptions = PAPER,
              lr_next=None, lr_prev=None, first_step=False, adapt=True, norms=None):
    """One LARS update of one tensor: Algorithm 1, lines L2..L6 (pure; inputs untouched).

    Parameters
    ----------
    w, g, v : array, one shape, one floating dtype
        Weights ``w_t^l``, gradient ``g_t^l``, momentum buffer ``v_t^l`` (zeros at t=0).
    lr : float
        ``gamma_t``, the global LR of this step (L3; the caller evaluates the schedule).
    momentum, weight_decay, eta : float
        m in [0, 1), beta >= 0, eta > 0.
    options : LarsOptions
        Departures from the paper (default: none). See ``docs/algorithm1.md``.
    lr_next : float, optional
        ``gamma_{t+1}``; required by ``gamma_index="t+1"`` (v3 as printed).
    lr_prev : float, optional
        The L5 LR of the previous step; read by ``momentum_correction`` (MXNet).
    first_step : bool
        True at t = 0; read by ``buffer_starts_as_copy`` (PyTorch convention).
    adapt : bool
        False for a tensor excluded from layer adaptation: lam = 1 (plain SGD step).
    norms : (0-d, 0-d), optional
        ``(||w||, ||g||)`` if already computed (the LARS class reuses its statistics).

    Returns
    -------
    w_next, v_next : array, the shape and dtype of ``w``
        ``w_{t+1}^l`` and ``v_{t+1}^l``.
    local_lr : 0-d array
        ``lam`` (lambda^l) of this step.

    Notes
    -----
    With the defaults, for ``u = g + beta*w``:
    ``lam = eta*||w||/(||g|| + beta*||w||)``, ``v_next = m*v + gamma_t*lam*u``,
    ``w_next = w - v_next``.
    """
    o = options
    _check_step_arguments(w, g, v, lr, lr_next, momentum, weight_decay, eta, o)
    m, beta = momentum, weight_decay
    # [L2] g_t^l <- grad L(w_t^l): given by the caller (the model's backward pass)
    # [L3] gamma_t <- gamma_0 * (1 - t/T)^2: given by the caller (lr = schedule(t))
    gamma_t = lr
    gamma = lr_next if o.gamma_index == "t+1" else gamma_t     # DEVIATION(gamma_index): v3
    # [L4] lambda^l <- eta * ||w_t^l|| / (||g_t^l|| + beta * ||w_t^l||)
    if adapt:
        lam, skipped = local_lr(w, g, eta=eta, weight_decay=beta, lr=gamma, momentum=m,
                                options=o, norms=norms)
    else:                                                      # DEVIATION(exclusions)
        lam, skipped = get_xp(w).ones((), dtype=w.dtype), False
    # [L5] v_{t+1}^l <- m * v_t^l + gamma_t * lambda^l * (g_t^l + beta * w_t^l)
    u = decayed_gradient(w, g, beta, skipped, o)               # g_t^l + beta * w_t^l
    if _momentum_as_printed(o):
        v_next = m * v + gamma * lam * u
    else:                                                      # DEVIATION(LR outside, ...)
        v_next = _momentum_variants(v, u, m, gamma, lam, lr_prev, first_step, o)
    # [L6] w_{t+1}^l <- w_t^l - v_{t+1}^l
    if _step_as_printed(o):
        w_next = w - v_next
    else:                                                      # DEVIATION(nesterov, ...)
        w_next = w - _step_variants(v_next, u, m, gamma, lam, o)
    return w_next, v_next, lam


def decayed_gradient(w, g, beta, skipped=False, options: LarsOptions = PAPER):
    """The direction of L5, ``u = g + beta*w`` (array of the shape of ``w``)."""
    o, xp = options, get_xp(w, g)
    beta_u = beta if o.add_weight_decay_to_update else 0.0    # DEVIATION: tf.contrib adds none
    if beta_u == 0.0:
        u = g
    elif o.zero_norm_rule == "skip":                          # DEVIATION(skip): wd lost too
        u = g + xp.where(skipped, 0, beta_u).astype(w.dtype) * w
    else:
        u = g + beta_u * w
    if o.grad_clamp is not None:                              # DEVIATION: NUS-HPC clamp +-10
        u = xp.clip(u, -o.grad_clamp, o.grad_clamp)
    return u


def _momentum_as_printed(o: LarsOptions) -> bool:
    return (o.global_lr_in_buffer and o.local_lr_in_buffer and o.dampening == 0.0
            and not o.momentum_correction and not o.buffer_starts_as_copy)


def _step_as_printed(o: LarsOptions) -> bool:
    return o.global_lr_in_buffer and o.local_lr_in_buffer and not o.nesterov


def _increment(u, gamma, lam, o: LarsOptions):
    """What L5 adds to the buffer: ``gamma*lam*u``, minus the factors the options move out."""
    inside = ((gamma if o.global_lr_in_buffer else 1.0)          # PyTorch: gamma outside
              * (lam if o.local_lr_in_buffer else 1.0))          # tf.contrib: lam outside
    return inside * u


def _momentum_variants(v, u, m, gamma, lam, lr_prev, first_step, o: LarsOptions):
    """[L5] ``v_{t+1} = m*v_t + increment`` with the momentum DEVIATIONs of the options."""
    increment = _increment(u, gamma, lam, o)
    if m == 0.0 or (first_step and o.buffer_starts_as_copy):   # PyTorch: buf = clone(d_p)
        return increment
    m_t = m
    if o.momentum_correction and lr_prev:           # MXNet: m' = m * gamma_t / gamma_{t-1}
        m_t = m * gamma / lr_prev
    return m_t * v + (1.0 - o.dampening) * increment


def _step_variants(v_next, u, m, gamma, lam, o: LarsOptions):
    """[L6] what is subtracted from w, with the nesterov / LR-outside DEVIATIONs."""
    step = m * v_next + _increment(u, gamma, lam, o) if o.nesterov else v_next
    outside = ((1.0 if o.global_lr_in_buffer else gamma)
               * (1.0 if o.local_lr_in_buffer else lam))
    return outside * step


def _check_step_arguments(w, g, v, lr, lr_next, momentum, weight_decay, eta, o) -> None:
    check_tensors("w", w, g, v)
    check_lr(lr, "lr (gamma_t)")
    if o.gamma_index == "t+1":
        if lr_next is None:
            raise ValueError("gamma_index='t+1' (v3 as printed) needs lr_next = gamma_{t+1}")
        check_lr(lr_next, "lr_next (gamma_{t+1})")
    check_momentum(momentum)
    check_weight_decay(weight_decay)
    check_eta(eta)


class LARS(NamedTensorOptimizer):
    """SGD with LARS (Algorithm 1) over named tensors; each tensor is one "layer".

    Parameters
    ----------
    lr : float or callable
        gamma_0 as a constant (> 0), or a schedule ``t -> gamma_t`` (0-based step),
        e.g. :class:`lars_ref.optim.schedules.WarmupPolySchedule`.
    momentum, weight_decay, eta : float
        m, beta, eta. Defaults: the paper's AlexNet settings (0.9, 5e-4, 0.001).
    options : LarsOptions, optional
        Departures from the paper; ``**option_overrides`` change single fields.
    record_stats : bool
        Fill ``last_stats`` (``w_norm``, ``g_norm``, ``local_lr``, ``update_norm``).

    Examples
    --------
    >>> import numpy as np
    >>> params = {"fc.w": np.ones((2, 2)), "fc.b": np.zeros(2)}
    >>> grads = {"fc.w": np.full((2, 2), 0.5), "fc.b": np.ones(2)}
    >>> opt = LARS(lr=1.0, momentum=0.9, weight_decay=0.0, eta=0.1)
    >>> opt.step(params, grads)     # lam = 0.1 * 2 / 1 = 0.2; fc.b has ||w|| = 0: frozen
    >>> float(params["fc.w"][0, 0]), float(params["fc.b"][0]), opt.t
    (0.9, 0.0, 1)
    """

    def __init__(self, lr, *, momentum: float = 0.9, weight_decay: float = 5e-4,
                 eta: float = 0.001, options: LarsOptions | None = None,
                 record_stats: bool = True, **option_overrides):
        super().__init__(lr, record_stats=record_stats)
        check_momentum(momentum)
        check_weight_decay(weight_decay)
        check_eta(eta)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.eta = float(eta)
        self.options = (options or PAPER).replace(**option_overrides)
        self._rules = {}                                      # name -> (adapt, beta), cached

    def _begin_step(self):
        """Evaluate the schedule once per step, on the host: gamma_t (and neighbours)."""
        t, o = self.t, self.options
        offset = 1 if o.gamma_index == "t+1" else 0          # the L5 LR is gamma_{t+offset}
        self._lrs = {"lr": self.lr_at(t),
                     "lr_next": self.lr_at(t + 1) if offset else None,
                     "lr_prev": (self.lr_at(t - 1 + offset)
                                 if (o.momentum_correction and t > 0) else None)}

    def _update_tensor(self, name, w, g, v, norms):
        if name not in self._rules:
            self._rules[name] = tensor_rules(name, w.ndim, self.weight_decay, self.options)
        adapt, beta = self._rules[name]
        return lars_step(w, g, v, momentum=self.momentum, weight_decay=beta, eta=self.eta,
                         options=self.options, first_step=(self.t == 0), adapt=adapt,
                         norms=norms, **self._lrs)

    def __repr__(self):
        return (f"LARS(m={self.momentum}, beta={self.weight_decay}, eta={self.eta}, "
                f"deviations={self.options.deviations()})")


__all__ = ["LARS", "LarsOptions", "PAPER", "lars_step", "local_lr", "decayed_gradient",
           "safe_divide", "option_names"]
