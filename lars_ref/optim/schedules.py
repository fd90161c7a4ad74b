"""Global learning-rate schedules: pure functions of the 0-based step ``t``.

Paper: You, Gitman, Ginsburg (2017), arXiv:1708.03888v3, Algorithm 1 line L3
(``gamma_t = gamma_0 * (1 - t/T)^2``), Sec. 2 (linear scaling, Eq. 2-3) and the
warm-up of Goyal et al. (2017) used in every LARS run (Table 3: 2 or 5 epochs).

Symbols: ``gamma_0`` the base (peak) LR, ``gamma_t`` the global LR of step ``t``,
``T`` the number of steps of the whole run. A schedule is any callable
``t -> gamma_t``; the optimizers evaluate it on the host (a Python float), so it
never touches device memory.

Where the decay clock starts after warm-up (``WarmupPolySchedule.decay_clock``):

* ``"absolute"`` (default, the authors' NVCaffe solvers): ``gamma_0 (1 - t/T)^p``
  with the absolute step ``t``, so the LR steps down a little at the end of the
  ramp (from ``gamma_0`` to ``gamma_0 (1 - T_w/T)^p``).
* ``"after_warmup"``: ``gamma_0 (1 - (t - T_w)/(T - T_w))^p``, continuous at
  ``T_w`` (the "switch to the regular policy" reading of Goyal et al.).

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

import dataclasses
import math

from lars_ref.checks import check_choice, check_lr

DECAY_CLOCKS = ("absolute", "after_warmup")


# --- validation --------------------------------------------------------------------
def _check_step(t) -> None:
    if isinstance(t, bool) or not isinstance(t, (int,)) and not float(t).is_integer():
        raise ValueError(f"step t must be an integer, got t={t!r}")
    if t < 0:
        raise ValueError(f"step t must be >= 0 (0-based), got t={t}")


def _check_total_steps(T) -> None:
    if isinstance(T, bool) or int(T) != T or T <= 0:
        raise ValueError(f"number of steps T must be a positive integer, got T={T!r}")


def _check_warmup_steps(warmup_steps, T=None) -> None:
    if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, "
                         f"got warmup_steps={warmup_steps!r}")
    if T is not None and warmup_steps > T:
        raise ValueError(f"warm-up longer than the run: warmup_steps={warmup_steps} > T={T}")


# --- the pieces --------------------------------------------------------------------
def linear_scaling(base_lr: float, batch_size: int, base_batch_size: int) -> float:
    """Linear scaling rule (Krizhevsky 2014; paper Sec. 2, Eq. 2-3): ``lr * B / B_0``.

    "When you increase the batch B by k, you should also increase LR by k."

    Examples
    --------
    The AlexNet baseline LR 0.02 at B = 512, scaled to B = 8192 (the paper's
    tables show that this is *not* what worked best: Table 1a used 0.03):

    >>> linear_scaling(0.02, 8192, 512)
    0.32
    """
    check_lr(base_lr, "base_lr")
    for name, value in (("batch_size", batch_size), ("base_batch_size", base_batch_size)):
        if isinstance(value, bool) or int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return base_lr * batch_size / base_batch_size


def linear_warmup(t: int, start_lr: float, target_lr: float, warmup_steps: int) -> float:
    """Linear warm-up (Goyal et al. 2017): ``start + (target - start) * t / T_w`` for t < T_w.

    Returns ``target_lr`` for ``t >= warmup_steps`` (and always when warmup_steps is 0).

    Examples
    --------
    Paper footnote 2 (AlexNet without LARS, Table 1a): "LR starts from 0.001 and is
    linearly increased to the target LR during 2.5 epochs". With B = 4096 on
    ImageNet (1,281,167 images) 2.5 epochs are 782 steps; halfway through:

    >>> round(linear_warmup(391, 0.001, 0.05, 782), 6)
    0.0255
    """
    _check_step(t)
    check_lr(start_lr, "start_lr")
    check_lr(target_lr, "target_lr")
    _check_warmup_steps(warmup_steps)
    if t >= warmup_steps:
        return float(target_lr)
    return start_lr + (target_lr - start_lr) * t / warmup_steps


def poly_decay(t: int, gamma_0: float, T: int, power: float = 2.0) -> float:
    """Polynomial decay, Algorithm 1 line L3: ``gamma_t = gamma_0 * (1 - t/T)^power``.

    ``t >= T`` gives 0 (the run is over). ``power=2`` is the paper's "poly(2)".

    Examples
    --------
    AlexNet-BN with LARS at B = 8K (Table 3b): gamma_0 = 14, T = 100 epochs of
    157 steps = 15,700; a quarter of the way through the LR is 14 * 0.75^2:

    >>> poly_decay(3925, 14.0, 15700)
    7.875
    """
    _check_step(t)
    check_lr(gamma_0, "gamma_0")
    _check_total_steps(T)
    if not math.isfinite(power) or power <= 0:
        raise ValueError(f"power must be > 0, got power={power}")
    return gamma_0 * (1.0 - min(t, T) / T) ** power


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_last: bool = False) -> int:
    """Optimizer steps in one pass over ``num_examples`` at global batch ``batch_size``.

    >>> steps_per_epoch(1_281_167, 8192)     # ImageNet at B = 8K
    157
    """
    for name, value in (("num_examples", num_examples), ("batch_size", batch_size)):
        if isinstance(value, bool) or int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return num_examples // batch_size if drop_last else -(-num_examples // batch_size)


def epochs_to_steps(epochs: float, num_examples: int, batch_size: int, *,
                    drop_last: bool = False) -> int:
    """Round ``epochs`` (may be fractional, e.g. the paper's 2.5) to a whole number of steps.

    >>> epochs_to_steps(2.5, 1_281_167, 4096)   # footnote 2's warm-up at B = 4K
    782
    """
    if not math.isfinite(epochs) or epochs < 0:
        raise ValueError(f"epochs must be a finite number >= 0, got epochs={epochs}")
    return int(round(epochs * steps_per_epoch(num_examples, batch_size, drop_last=drop_last)))


# --- callable schedules --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ConstantSchedule:
    """``gamma_t = lr`` for every t: what a plain float LR means to the optimizers."""

    lr: float

    def __post_init__(self):
        check_lr(self.lr, "lr")

    def __call__(self, t: int) -> float:
        _check_step(t)
        return float(self.lr)


@dataclasses.dataclass(frozen=True)
class WarmupPolySchedule:
    """Linear warm-up for ``warmup_steps``, then poly decay to 0 at ``total_steps``.

    Parameters
    ----------
    gamma_0 : float
        Base (peak) LR, reached at the end of warm-up.
    total_steps : int
        ``T``, the number of steps of the whole run (warm-up included).
    warmup_steps : int
        ``T_w``; 0 gives Algorithm 1's plain poly decay (L3).
    warmup_start_lr : float
        LR at t = 0 (footnote 2: 0.001; NVCaffe LARS solvers: ``rampup_lr: 1``).
    power : float
        Polynomial power (the paper's poly(2)).
    decay_clock : {"absolute", "after_warmup"}
        Where the decay's clock starts, see the module docstring.

    Examples
    --------
    A toy run: T = 10, 2 warm-up steps from 0.1 to gamma_0 = 1.

    >>> s = WarmupPolySchedule(1.0, total_steps=10, warmup_steps=2, warmup_start_lr=0.1)
    >>> [round(s(t), 4) for t in (0, 1, 2, 5, 10)]
    [0.1, 0.55, 0.64, 0.25, 0.0]
    >>> s2 = dataclasses.replace(s, decay_clock="after_warmup")
    >>> [round(s2(t), 4) for t in (0, 1, 2, 6, 10)]
    [0.1, 0.55, 1.0, 0.25, 0.0]
    """

    gamma_0: float
    total_steps: int
    warmup_steps: int = 0
    warmup_start_lr: float = 0.0
    power: float = 2.0
    decay_clock: str = "absolute"

    def __post_init__(self):
        check_lr(self.gamma_0, "gamma_0")
        check_lr(self.warmup_start_lr, "warmup_start_lr")
        _check_total_steps(self.total_steps)
        _check_warmup_steps(self.warmup_steps, self.total_steps)
        if not math.isfinite(self.power) or self.power <= 0:
            raise ValueError(f"power must be > 0, got power={self.power}")
        check_choice(self.decay_clock, DECAY_CLOCKS, "decay_clock")

    def __call__(self, t: int) -> float:
        """Return ``gamma_t`` (a Python float) for the 0-based step ``t``."""
        T, T_w = self.total_steps, self.warmup_steps
        if t < T_w:
            return linear_warmup(t, self.warmup_start_lr, self.gamma_0, T_w)
        if self.decay_clock == "absolute":                       # NVCaffe: absolute iteration
            return poly_decay(t, self.gamma_0, T, self.power)
        if T == T_w:                                             # warm-up fills the run
            return 0.0 if t >= T else float(self.gamma_0)
        return poly_decay(t - T_w, self.gamma_0, T - T_w, self.power)


def as_schedule(lr):
    """Return ``lr`` if it is a callable schedule, else a :class:`ConstantSchedule`."""
    if callable(lr):
        return lr
    return ConstantSchedule(float(lr))
