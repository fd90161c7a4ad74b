"""The cross-check cases: small, fixed inputs chosen so that every LARS variant shows.

A case is a set of named tensors (initial weights), a sequence of gradients (one
dict per step, drawn from a seeded ``numpy.random.Generator``, never computed
from the weights, so a foreign optimizer sees exactly the same inputs), the
hyperparameters (m, beta, eta) and a global LR schedule ``t -> gamma_t``.

What each ingredient exposes (``docs/crosscheck.md`` has the full table):

================  ========================================================================
tensor            why it is there
================  ========================================================================
``conv.w``        4-D, weights ~0.5, gradients ~1: the plain case; its gradient is 0 at
                  step ``ZERO_GRAD_STEP`` (zero-norm rules: lam = eta/beta, 1, 0 or skip)
``fc.w``          2-D, weights ~1, *tiny* gradients ~1e-4: lam is large (eps, the [0, 50]
                  clamp, the ``||g|| + beta||w||`` vs ``||g + beta w||`` denominators)
``fc.b``          1-D, zero-initialised bias: the paper freezes it (lam = 0), others use 1
``bn.gamma``      1-D, initialised to ones: excluded by rank / name in some presets
``head.w``        2-D, small weights, *large* gradients ~20: the element-wise clamp at 10
================  ========================================================================

The cases cross beta = 0 / beta > 0 with a constant LR / warm-up + poly decay, all
with momentum (the LR-inside vs LR-outside difference needs a changing gamma and a
buffer), plus one case without momentum (isolates the trust ratio).

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lars_ref.optim.schedules import ConstantSchedule, WarmupPolySchedule

ZERO_GRAD_STEP = 2  # the step at which conv.w gets a zero gradient


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a case.

    Attributes
    ----------
    name : str
        Dotted name, as a lars_ref model names its parameters.
    shape : tuple of int
    init : {"normal", "zeros", "ones"}
        Initial weights: ``weight_scale * N(0, 1)``, all zeros, or all ones.
    weight_scale, grad_scale : float
        Standard deviations of the initial weights ("normal") and of the gradients.
    """

    name: str
    shape: tuple
    init: str
    weight_scale: float
    grad_scale: float


@dataclasses.dataclass(frozen=True)
class Case:
    """One reference case: tensors, hyperparameters, schedule and gradient events.

    Attributes
    ----------
    name, description : str
    tensors : tuple of TensorSpec
    momentum, weight_decay, eta : float
        m, beta and eta of Algorithm 1.
    schedule : callable
        ``t -> gamma_t`` (a :mod:`lars_ref.optim.schedules` object).
    num_steps : int
        Number of optimizer steps (the schedule is also evaluated at ``num_steps``,
        for the v3 reading ``gamma_{t+1}``).
    seed : int
        Seed of the ``numpy.random.Generator`` that draws weights and gradients.
    zero_grads : tuple of (str, int)
        ``(tensor, step)`` pairs whose gradient is exactly zero.
    """

    name: str
    description: str
    tensors: tuple
    momentum: float
    weight_decay: float
    eta: float
    schedule: object
    num_steps: int
    seed: int
    zero_grads: tuple = ()

    @property
    def tensor_names(self) -> tuple:
        """The tensor names, in the case's fixed order."""
        return tuple(spec.name for spec in self.tensors)

    def gamma(self, t: int) -> float:
        """The global LR ``gamma_t`` of step ``t`` (Algorithm 1 line L3)."""
        return float(self.schedule(int(t)))

    def gammas(self) -> np.ndarray:
        """``gamma_t`` for t = 0 .. num_steps (one more than the steps, for gamma_{t+1})."""
        return np.array([self.gamma(t) for t in range(self.num_steps + 1)])

    def initial_weights(self) -> dict:
        """Return ``{name: w_0}``, float64 arrays of each tensor's shape (fresh copies)."""
        return {name: w.copy() for name, w in _draw(self)[0].items()}

    def gradients(self) -> list:
        """Return ``[{name: g_t}]`` for t = 0 .. num_steps - 1, float64, fresh copies."""
        return [{name: g.copy() for name, g in step.items()} for step in _draw(self)[1]]

    def hyperparameters(self) -> dict:
        """m, beta, eta and the step count as a JSON-ready dict."""
        return {"momentum": self.momentum, "weight_decay": self.weight_decay,
                "eta": self.eta, "num_steps": self.num_steps, "seed": self.seed}


def _draw(case: Case):
    """Draw the initial weights, then the gradients step by step, from one Generator."""
    rng = np.random.default_rng(case.seed)
    weights = {}
    for spec in case.tensors:
        normal = rng.standard_normal(spec.shape)          # drawn for every spec: stable stream
        fills = {"normal": spec.weight_scale * normal, "zeros": np.zeros(spec.shape),
                 "ones": np.ones(spec.shape)}
        if spec.init not in fills:
            raise ValueError(f"tensor {spec.name!r}: unknown init {spec.init!r}; "
                             f"choose one of {sorted(fills)}")
        weights[spec.name] = fills[spec.init]
    zero = set(case.zero_grads)
    gradients = []
    for t in range(case.num_steps):
        step = {}
        for spec in case.tensors:
            g = spec.grad_scale * rng.standard_normal(spec.shape)
            step[spec.name] = np.zeros(spec.shape) if (spec.name, t) in zero else g
        gradients.append(step)
    return weights, gradients


def schedule_description(schedule) -> dict:
    """The schedule as JSON: its class, its fields and its formula in words."""
    fields = dataclasses.asdict(schedule) if dataclasses.is_dataclass(schedule) else {}
    if isinstance(schedule, ConstantSchedule):
        formula = f"gamma_t = {schedule.lr!r}"
    elif isinstance(schedule, WarmupPolySchedule):
        formula = _warmup_poly_formula(schedule)
    else:
        formula = f"gamma_t = {schedule!r}(t)"
    return {"kind": type(schedule).__name__, "params": fields, "formula": formula}


def _warmup_poly_formula(s: WarmupPolySchedule) -> str:
    """Spell out a :class:`WarmupPolySchedule` (linear warm-up, then Algorithm 1 L3)."""
    T, T_w, p = s.total_steps, s.warmup_steps, s.power
    ramp = (f"gamma_t = {s.warmup_start_lr!r} + ({s.gamma_0!r} - {s.warmup_start_lr!r}) "
            f"* t / {T_w} for t < {T_w}; ") if T_w else ""
    if s.decay_clock == "absolute" or T_w == 0:
        decay = f"gamma_t = {s.gamma_0!r} * (1 - min(t, {T}) / {T})^{p!r}"
    else:
        decay = f"gamma_t = {s.gamma_0!r} * (1 - min(t - {T_w}, {T - T_w}) / {T - T_w})^{p!r}"
    return ramp + decay + (f" for t >= {T_w}" if T_w else "")


TENSORS = (
    TensorSpec("conv.w", (4, 3, 3, 3), "normal", weight_scale=0.5, grad_scale=1.0),
    TensorSpec("fc.w", (6, 5), "normal", weight_scale=1.0, grad_scale=1e-4),
    TensorSpec("fc.b", (5,), "zeros", weight_scale=0.0, grad_scale=0.1),
    TensorSpec("bn.gamma", (4,), "ones", weight_scale=0.0, grad_scale=0.1),
    TensorSpec("head.w", (5, 3), "normal", weight_scale=0.1, grad_scale=20.0),
)
"""The tensors shared by every case (small: 180 numbers in all)."""

NUM_STEPS = 6
GAMMA_0 = 2.0
ETA = 0.02
WEIGHT_DECAY = 0.01
MOMENTUM = 0.9
WARMUP_POLY = WarmupPolySchedule(GAMMA_0, total_steps=NUM_STEPS, warmup_steps=2,
                                 warmup_start_lr=0.5, power=2.0)


def _case(name, description, *, weight_decay, schedule, momentum=MOMENTUM, seed):
    return Case(name=name, description=description, tensors=TENSORS, momentum=momentum,
                weight_decay=weight_decay, eta=ETA, schedule=schedule, num_steps=NUM_STEPS,
                seed=seed, zero_grads=(("conv.w", ZERO_GRAD_STEP),))


CASES = (
    _case("constant_wd", "constant LR, weight decay > 0, momentum",
          weight_decay=WEIGHT_DECAY, schedule=ConstantSchedule(GAMMA_0), seed=101),
    _case("warmup_poly_wd", "warm-up + poly(2) decay, weight decay > 0, momentum",
          weight_decay=WEIGHT_DECAY, schedule=WARMUP_POLY, seed=102),
    _case("warmup_poly_no_wd", "warm-up + poly(2) decay, weight decay 0, momentum",
          weight_decay=0.0, schedule=WARMUP_POLY, seed=103),
    _case("constant_no_wd_no_momentum", "constant LR, no weight decay, no momentum",
          weight_decay=0.0, schedule=ConstantSchedule(GAMMA_0), momentum=0.0, seed=104),
)
"""Every reference case, in the order the checker replays them."""


def get_case(name: str) -> Case:
    """Return the case called ``name``; unknown names raise ValueError listing the valid ones."""
    for case in CASES:
        if case.name == name:
            return case
    raise ValueError(f"unknown case {name!r}; cases are {', '.join(c.name for c in CASES)}")
