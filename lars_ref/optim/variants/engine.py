"""The variant engine: Algorithm 1 with every switch of :class:`LarsOptions`.

:mod:`lars_ref.optim.algorithm1` is the paper's box; this module is the same three
lines, L4, L5 and L6, with each public implementation's departures from them marked
``# DEVIATION`` (their meaning: ``docs/algorithm1.md``, "Options"; who uses them:
``docs/variants.md``). With the default options (:data:`PAPER`) it computes what
``algorithm1.lars_step`` computes, bit for bit (``tests/test_algorithm1.py``).

Symbols (the paper's): ``gamma`` global LR of L5, ``m`` momentum, ``beta`` weight
decay, ``eta`` trust coefficient, ``lam`` the local LR lambda^l, ``v`` momentum
buffer, ``w`` weights, ``g`` gradient, ``u = g + beta*w`` the decayed gradient.

Everything data-dependent stays on the device: the norms and lam are 0-d arrays,
zero-norm rules use ``xp.where``, and no value is read back to the host. Every
``if`` below tests an option or a hyperparameter (host values), never an array.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp
from lars_ref.checks import check_eta, check_lr, check_momentum, check_weight_decay
from lars_ref.optim.algorithm1 import safe_divide
from lars_ref.optim.base import check_tensors, l2_norm
from lars_ref.optim.variants.options import PAPER, LarsOptions


def variant_local_lr(w, g, *, eta, weight_decay, lr=1.0, momentum=0.0,
                     options: LarsOptions = PAPER, norms=None):
    """Line L4, the local LR ``lam = eta*||w|| / (||g|| + beta*||w||)`` (Eq. 6), with options.

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
    xp, beta, gamma = get_xp(w, g), weight_decay, lr
    w_norm, g_norm = norms if norms is not None else (l2_norm(w), l2_norm(g))
    if options.trust_denominator == "decayed_grad_norm":   # DEVIATION: ||g + beta w|| (optax)
        grad_term, decay_term = l2_norm(g + beta * w), 0.0
    elif options.trust_denominator == "grad_norm":         # DEVIATION(trust_denominator): ||g||
        grad_term, decay_term = g_norm, 0.0
    else:                                                  # paper: ||g|| + beta ||w||
        grad_term, decay_term = g_norm, beta * w_norm
    eta_in_l4 = eta if options.eta_in_local_lr else 1.0   # DEVIATION: v3 prints no eta in L4
    denominator = grad_term + decay_term + options.eps     # DEVIATION(eps) when eps > 0
    # [L4] lambda^l <- eta * ||w_t^l|| / (||g_t^l|| + beta * ||w_t^l||)   (0 where 0/0 or x/0)
    lam = safe_divide(eta_in_l4 * w_norm, denominator)
    if options.scale_by_one_minus_momentum:                # DEVIATION: NVCaffe 2018's (1 - m)
        lam = (1.0 - momentum) * lam
    lam = lam_one_fallbacks(lam, w_norm, grad_term, denominator, options)
    if options.trust_ratio_clip:                           # DEVIATION: apex LARC clip=True
        lam = xp.minimum(lam / gamma, 1) if gamma > 0 else xp.where(lam > 0, 1, lam)
    if options.trust_ratio_max is not None:                # DEVIATION: NUS-HPC clamp [0, 50]
        lam = xp.clip(lam, 0, options.trust_ratio_max)
    if options.zero_norm_rule != "skip":
        return lam, False
    skipped = (w_norm == 0) | (g_norm == 0)                # DEVIATION(skip): apex LARC, Bolts
    return xp.where(skipped, 1, lam), skipped


def lam_one_fallbacks(lam, w_norm, grad_term, denominator, options: LarsOptions):
    """The "lam = 1" cases of ``zero_norm_rule`` (applied before any clipping, as timm)."""
    xp = get_xp(lam)
    if options.zero_norm_rule == "ratio_one":              # torchlars, timm, optax, TF, NVCaffe
        return xp.where((w_norm == 0) | (grad_term == 0), 1, lam)
    if options.zero_norm_rule == "ratio_one_on_zero_denominator":   # pytorch-optimizer
        return xp.where((w_norm == 0) | (denominator == 0), 1, lam)
    return lam                                             # "paper" and "skip"


def variant_step(w, g, v, *, lr, momentum, weight_decay, eta, options: LarsOptions = PAPER,
                 lr_next=None, lr_prev=None, first_step=False, adapt=True, norms=None,
                 checked=True):
    """One LARS update of one tensor under ``options``: lines L4..L6 (pure; inputs untouched).

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
        ``(||w||, ||g||)`` if already computed (the optimizer reuses its statistics).
    checked : bool
        Check the arguments (the optimizer classes check once, at construction and per
        step, and pass False).

    Returns
    -------
    w_next, v_next : array, the shape and dtype of ``w``
        ``w_{t+1}^l`` and ``v_{t+1}^l``.
    local_lr : 0-d array
        ``lam`` (lambda^l) of this step.
    """
    if checked:
        check_variant_arguments(w, g, v, lr, lr_next, momentum, weight_decay, eta, options)
    m, beta = momentum, weight_decay
    gamma = lr_next if options.gamma_index == "t+1" else lr   # DEVIATION(gamma_index): v3
    # [L4] lambda^l <- eta * ||w_t^l|| / (||g_t^l|| + beta * ||w_t^l||)
    if adapt:
        lam, skipped = variant_local_lr(w, g, eta=eta, weight_decay=beta, lr=gamma,
                                        momentum=m, options=options, norms=norms)
    else:                                                     # DEVIATION(exclusions)
        lam, skipped = get_xp(w).ones((), dtype=w.dtype), False
    # [L5] v_{t+1}^l <- m * v_t^l + gamma_t * lambda^l * (g_t^l + beta * w_t^l)
    u = decayed_gradient(w, g, beta, skipped, options)        # g_t^l + beta * w_t^l
    if momentum_line_as_printed(options):
        v_next = m * v + gamma * lam * u
    else:                                                     # DEVIATION(LR outside, ...)
        v_next = momentum_line_variants(v, u, m, gamma, lam, lr_prev, first_step, options)
    # [L6] w_{t+1}^l <- w_t^l - v_{t+1}^l
    if weight_line_as_printed(options):
        w_next = w - v_next
    else:                                                     # DEVIATION(nesterov, ...)
        w_next = w - weight_line_variants(v_next, u, m, gamma, lam, options)
    return w_next, v_next, lam


def decayed_gradient(w, g, beta, skipped=False, options: LarsOptions = PAPER):
    """The direction of L5, ``u = g + beta*w`` (array of the shape of ``w``)."""
    xp = get_xp(w, g)
    beta_in_l5 = beta if options.add_weight_decay_to_update else 0.0   # DEVIATION: tf.contrib
    if beta_in_l5 == 0.0:
        u = g
    elif options.zero_norm_rule == "skip":                    # DEVIATION(skip): wd lost too
        u = g + xp.where(skipped, 0, beta_in_l5).astype(w.dtype) * w
    else:
        u = g + beta_in_l5 * w
    if options.grad_clamp is not None:                        # DEVIATION: NUS-HPC clamp +-10
        u = xp.clip(u, -options.grad_clamp, options.grad_clamp)
    return u


def momentum_line_as_printed(options: LarsOptions) -> bool:
    """True when L5 is ``v <- m v + gamma lam u`` exactly as in the box."""
    return (options.global_lr_in_buffer and options.local_lr_in_buffer
            and options.dampening == 0.0 and not options.momentum_correction
            and not options.buffer_starts_as_copy)


def weight_line_as_printed(options: LarsOptions) -> bool:
    """True when L6 is ``w <- w - v`` exactly as in the box."""
    return options.global_lr_in_buffer and options.local_lr_in_buffer and not options.nesterov


def buffer_increment(u, gamma, lam, options: LarsOptions):
    """What L5 adds to the buffer: ``gamma*lam*u``, minus the factors the options move out."""
    inside = ((gamma if options.global_lr_in_buffer else 1.0)     # PyTorch: gamma outside
              * (lam if options.local_lr_in_buffer else 1.0))     # tf.contrib: lam outside
    return inside * u


def momentum_line_variants(v, u, m, gamma, lam, lr_prev, first_step, options: LarsOptions):
    """[L5] ``v_{t+1} = m*v_t + increment`` with the momentum DEVIATIONs of the options."""
    increment = buffer_increment(u, gamma, lam, options)
    if m == 0.0 or (first_step and options.buffer_starts_as_copy):   # PyTorch: clone(d_p)
        return increment
    corrected_m = m
    if options.momentum_correction and lr_prev:     # MXNet: m' = m * gamma_t / gamma_{t-1}
        corrected_m = m * gamma / lr_prev
    return corrected_m * v + (1.0 - options.dampening) * increment


def weight_line_variants(v_next, u, m, gamma, lam, options: LarsOptions):
    """[L6] what is subtracted from w, with the nesterov / LR-outside DEVIATIONs."""
    step = (m * v_next + buffer_increment(u, gamma, lam, options) if options.nesterov
            else v_next)
    outside = ((1.0 if options.global_lr_in_buffer else gamma)
               * (1.0 if options.local_lr_in_buffer else lam))
    return outside * step


def check_variant_arguments(w, g, v, lr, lr_next, momentum, weight_decay, eta,
                            options: LarsOptions) -> None:
    """Everything :func:`variant_step` needs, checked on the host (once per call)."""
    check_tensors("w", w, g, v)
    check_lr(lr, "lr (gamma_t)")
    if options.gamma_index == "t+1":
        if lr_next is None:
            raise ValueError("gamma_index='t+1' (v3 as printed) needs lr_next = gamma_{t+1}")
        check_lr(lr_next, "lr_next (gamma_{t+1})")
    check_momentum(momentum)
    check_weight_decay(weight_decay)
    check_eta(eta)


__all__ = ["variant_step", "variant_local_lr", "decayed_gradient", "lam_one_fallbacks",
           "check_variant_arguments"]
