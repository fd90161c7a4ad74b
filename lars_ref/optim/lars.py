"""The LARS optimizer over named tensors: Algorithm 1, or one of its variants.

With the paper's options (the default) every tensor is updated by
:func:`lars_ref.optim.algorithm1.lars_step`, the box as code; with the authors'
zero-norm rule (``zero_norm_rule="ratio_one"``, preset ``nvcaffe_2017``) by the same
function with ``authors_guard=True``. Any other option goes through the variant
engine, :func:`lars_ref.optim.variants.engine.variant_step`.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

from lars_ref.checks import check_eta, check_momentum, check_weight_decay
from lars_ref.optim.algorithm1 import lars_step
from lars_ref.optim.base import NamedTensorOptimizer
from lars_ref.optim.variants.engine import variant_step
from lars_ref.optim.variants.options import PAPER, LarsOptions, resolve_exclusions
from lars_ref.optim.variants.presets import get_preset

ALGORITHM1_DEVIATIONS = ({}, {"zero_norm_rule": "ratio_one"})
"""Options that :mod:`algorithm1` computes itself: the box, and the authors' code."""


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
    >>> opt.step(params, grads)  # lam = 0.1 * 2 / 1 = 0.2; fc.b has ||w|| = 0: frozen
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
        self.follows_algorithm1 = self.options.deviations() in ALGORITHM1_DEVIATIONS
        self._exclusions = {}                         # name -> (adapt, beta), cached

    def _begin_step(self):
        """Evaluate the schedule once per step: gamma_t (and a neighbour)."""
        t, options = self.t, self.options
        offset = 1 if options.gamma_index == "t+1" else 0   # L5 uses gamma_{t+offset}
        self._lrs = {"lr": self.lr_at(t),
                     "lr_next": self.lr_at(t + 1) if offset else None,
                     "lr_prev": (self.lr_at(t - 1 + offset)
                                 if (options.momentum_correction and t > 0) else None)}

    def _update_tensor(self, name, w, g, v, norms):
        if self.follows_algorithm1:
            return lars_step(w, g, v, gamma_t=self._lrs["lr"], m=self.momentum,
                             beta=self.weight_decay, eta=self.eta, norms=norms,
                             authors_guard=self.options.zero_norm_rule == "ratio_one")
        if name not in self._exclusions:
            self._exclusions[name] = resolve_exclusions(name, w.ndim, self.weight_decay,
                                                        self.options)
        adapt, beta = self._exclusions[name]
        return variant_step(w, g, v, momentum=self.momentum, weight_decay=beta,
                            eta=self.eta, options=self.options, adapt=adapt,
                            first_step=(self.t == 0), norms=norms, checked=False,
                            **self._lrs)

    def __repr__(self):
        return (f"LARS(m={self.momentum}, beta={self.weight_decay}, eta={self.eta}, "
                f"deviations={self.options.deviations()})")


def build_preset(name: str, lr, *, momentum: float = 0.9, weight_decay: float = 5e-4,
                 eta: float = 0.001, **overrides) -> LARS:
    """A :class:`LARS` optimizer that follows preset ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`.
    lr : float or callable
        Constant global LR or a schedule ``t -> gamma_t``.
    momentum, weight_decay, eta : float
        m, beta, eta (default: the paper's AlexNet settings, for every preset).
    **overrides
        LARS option fields (see :class:`LarsOptions`) that replace the preset's, and
        ``record_stats``.

    Examples
    --------
    >>> opt = build_preset("optax", 0.1, momentum=0.9, weight_decay=1e-4, eta=0.001)
    >>> opt.options.trust_denominator
    'decayed_grad_norm'
    """
    record_stats = overrides.pop("record_stats", True)
    options = get_preset(name).options.replace(**overrides)
    return LARS(lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                options=options, record_stats=record_stats)


__all__ = ["LARS", "ALGORITHM1_DEVIATIONS", "build_preset"]
