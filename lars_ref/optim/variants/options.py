"""The 21 switches of the variant engine: every known departure from Algorithm 1.

The defaults are the paper as the authors ran it ([ICLR] text and their NVCaffe
code): eta in line L4, gamma_t in line L5, no epsilon, no zero-norm fallback, no
clipping, no exclusions, the global LR inside the momentum buffer. Every other
value is a ``DEVIATION`` documented in ``docs/algorithm1.md`` (what it means) and
``docs/variants.md`` (which public implementation uses it). With the defaults the
engine (:mod:`lars_ref.optim.variants.engine`) computes exactly what
:mod:`lars_ref.optim.algorithm1` computes, bit for bit (``tests/test_algorithm1.py``).

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses
import math
import re

from lars_ref.checks import check_choice, check_dampening

GAMMA_INDICES = ("t", "t+1")
TRUST_DENOMINATORS = ("grad_norm_plus_decay", "decayed_grad_norm", "grad_norm")
ZERO_NORM_RULES = ("paper", "ratio_one", "skip", "ratio_one_on_zero_denominator")


@dataclasses.dataclass(frozen=True)
class LarsOptions:
    """Switches that turn Algorithm 1 into each public LARS (all default to the paper).

    Attributes
    ----------
    eta_in_local_lr : bool
        L4 ``lam = eta*||w||/(...)`` (True: [ICLR], authors' code) or without eta
        (False: arXiv v3 as printed; eta then appears nowhere).
    gamma_index : {"t", "t+1"}
        Which global LR line L5 uses: ``gamma_t`` ([ICLR], authors' code) or
        ``gamma_{t+1}`` (v3 as printed; the schedule is evaluated at t+1).
    trust_denominator : {"grad_norm_plus_decay", "decayed_grad_norm", "grad_norm"}
        L4's denominator: ``||g|| + beta*||w||`` (paper), ``||g + beta*w||``
        (optax, TF Model Garden, SimCLR, Barlow Twins) or ``||g||`` (NVCaffe 2018).
    eps : float
        Added to L4's denominator (apex, timm, torchlars: 1e-8). Paper: 0.
    zero_norm_rule : {"paper", "ratio_one", "skip", "ratio_one_on_zero_denominator"}
        What lam is when a norm is zero, see ``docs/algorithm1.md``. "paper": the
        formula as printed (``||w|| = 0`` gives lam = 0, which freezes the tensor
        forever; a zero denominator gives lam = 0). "ratio_one": lam = 1 when ``||w||``
        or the gradient norm of the denominator is 0 (torchlars, timm, optax, TF,
        NVCaffe). "skip": lam = 1 *and no weight decay* when ``||w||`` or ``||g||``
        is 0 (apex LARC, Lightning Bolts). "ratio_one_on_zero_denominator": lam = 1
        when ``||w|| = 0`` or the whole denominator is 0 (pytorch-optimizer).
    trust_ratio_clip : bool
        apex LARC ``clip=True`` / timm ``trust_clip``: ``lam <- min(lam/gamma, 1)``,
        so the effective per-tensor rate is ``min(gamma, lam)``.
    trust_ratio_max : float or None
        Clamp lam to ``[0, trust_ratio_max]`` (NUS-HPC lab: 50).
    scale_by_one_minus_momentum : bool
        NVCaffe 2018: ``lam <- (1 - m) * lam`` (its commit says eta "should be
        multiplied by 10").
    adapt_only_with_weight_decay : bool
        timm / Lightning Bolts gate: a tensor whose weight decay is 0 is not adapted
        (lam = 1), so with ``weight_decay=0`` the optimizer is plain SGD.
    exclude_from_adaptation, exclude_from_weight_decay : tuple of str
        Regular expressions, ``re.search``-ed in the dotted parameter name; a match
        gets lam = 1 (plain momentum SGD) or beta = 0 (TF Model Garden, SimCLR).
    exclude_1d_from_adaptation, exclude_1d_from_weight_decay : bool
        The same by rank: tensors with ``ndim <= 1`` (biases, BN gamma/beta), as
        Barlow Twins / DINO filters, pytorch-optimizer and the MLPerf skip lists do.
    add_weight_decay_to_update : bool
        L5 uses ``g + beta*w`` (paper). False: L5 uses ``g`` alone and beta only
        enters L4 (tf.contrib, which expects the L2 term in the loss).
    global_lr_in_buffer : bool
        L5 ``v <- m v + gamma*lam*u; w <- w - v`` (True, paper) or the PyTorch-SGD
        form ``v <- m v + lam*u; w <- w - gamma*v`` (False). Equal for constant gamma.
    local_lr_in_buffer : bool
        False: ``v <- m v + u`` and the current lam multiplies the whole buffer in
        L6 (tf.contrib, NUS-HPC lab).
    dampening : float
        ``v <- m v + (1 - dampening) * increment`` (PyTorch SGD); ignored when m = 0.
    buffer_starts_as_copy : bool
        PyTorch convention: the first step sets ``v = increment`` (no dampening);
        with dampening 0 this is the paper's ``v_0 = 0``.
    nesterov : bool
        L6 uses ``m * v_{t+1} + increment`` instead of ``v_{t+1}``.
    momentum_correction : bool
        NVIDIA MXNet: L5 uses ``m * gamma_t / gamma_{t-1}`` as momentum, which makes
        the LR-inside form equal to the LR-outside form.
    grad_clamp : float or None
        Clamp ``g + beta*w`` element-wise to ``[-grad_clamp, grad_clamp]`` before L5
        (NUS-HPC lab: 10).
    """

    eta_in_local_lr: bool = True
    gamma_index: str = "t"
    trust_denominator: str = "grad_norm_plus_decay"
    eps: float = 0.0
    zero_norm_rule: str = "paper"
    trust_ratio_clip: bool = False
    trust_ratio_max: float | None = None
    scale_by_one_minus_momentum: bool = False
    adapt_only_with_weight_decay: bool = False
    exclude_from_adaptation: tuple = ()
    exclude_from_weight_decay: tuple = ()
    exclude_1d_from_adaptation: bool = False
    exclude_1d_from_weight_decay: bool = False
    add_weight_decay_to_update: bool = True
    global_lr_in_buffer: bool = True
    local_lr_in_buffer: bool = True
    dampening: float = 0.0
    buffer_starts_as_copy: bool = False
    nesterov: bool = False
    momentum_correction: bool = False
    grad_clamp: float | None = None

    def __post_init__(self):
        check_choice(self.gamma_index, GAMMA_INDICES, "gamma_index")
        check_choice(self.trust_denominator, TRUST_DENOMINATORS, "trust_denominator")
        check_choice(self.zero_norm_rule, ZERO_NORM_RULES, "zero_norm_rule")
        if not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got eps={self.eps}")
        check_dampening(self.dampening)
        for name in ("trust_ratio_max", "grad_clamp"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {name}={value}")
        for name in ("exclude_from_adaptation", "exclude_from_weight_decay"):
            patterns = getattr(self, name)
            if isinstance(patterns, str):
                raise ValueError(f"{name} must be a tuple of patterns, "
                                 f"got the string {patterns!r}")
            object.__setattr__(self, name, tuple(patterns))
            for pattern in patterns:
                re.compile(pattern)
        if self.nesterov and self.dampening != 0:
            raise ValueError(f"nesterov needs dampening=0, got dampening={self.dampening}")

    def replace(self, **changes) -> "LarsOptions":
        """A copy with some fields changed; an unknown name raises ValueError listing all."""
        unknown = sorted(set(changes) - set(option_names()))
        if unknown:
            raise ValueError(f"unknown LARS option(s) {', '.join(unknown)}; "
                             f"valid options are {', '.join(option_names())}")
        return dataclasses.replace(self, **changes)

    def deviations(self) -> dict:
        """The fields that differ from the paper defaults, ``{name: value}``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


def option_names() -> tuple:
    """The names of every LARS option, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(LarsOptions))


def resolve_exclusions(name: str, ndim: int, weight_decay: float, options: LarsOptions):
    """Apply the name/rank exclusions to one tensor: ``(adapt, beta)``.

    ``adapt`` is False when the tensor is excluded from layer adaptation (lam = 1);
    ``beta`` is 0.0 when it is excluded from weight decay, else ``weight_decay``.
    Decided on the host from the name and rank only, never from array values.
    """
    no_decay = (any(re.search(pattern, name) for pattern in options.exclude_from_weight_decay)
                or (options.exclude_1d_from_weight_decay and ndim <= 1))
    beta = 0.0 if no_decay else float(weight_decay)
    no_adapt = (any(re.search(pattern, name) for pattern in options.exclude_from_adaptation)
                or (options.exclude_1d_from_adaptation and ndim <= 1)
                or (options.adapt_only_with_weight_decay and beta == 0.0))
    return (not no_adapt), beta


PAPER = LarsOptions()
"""Algorithm 1 as the authors ran it ([ICLR] text, NVCaffe 2017): the default."""
PAPER_V3_AS_PRINTED = LarsOptions(eta_in_local_lr=False, gamma_index="t+1")
"""Algorithm 1 exactly as printed in arXiv v3: no eta in L4, gamma_{t+1} in L5."""
