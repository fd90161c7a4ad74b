"""Run lars_ref's own LARS over a cross-check case: the reference trajectories.

The optimizer is built exactly as the contract says (``docs/architecture.md``,
"Optimizers"): :func:`lars_ref.optim.build_preset` for a named preset, or
:class:`lars_ref.optim.LARS` with explicit :class:`LarsOptions` for the one-option
toggles the checker uses to explain a difference. Each step calls
``opt.step(params, grads)`` and reads ``opt.state["v"][name]`` and
``opt.last_stats[name]["local_lr"]``.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from lars_ref.backend import to_numpy
from lars_ref.crosscheck.cases import Case
from lars_ref.optim import LARS, LarsOptions, build_preset


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """What one optimizer did on one case (all float64, read-only arrays).

    Attributes
    ----------
    weights : tuple of dict
        ``num_steps + 1`` dicts ``{name: w_t}``: the initial weights, then the weights
        after each step.
    buffers : tuple of dict
        ``num_steps`` dicts ``{name: v_{t+1}}``: the momentum buffer after each step
        (its units depend on ``global_lr_in_buffer``: with the LR outside, gamma is
        not in it).
    local_lrs : tuple of dict
        ``num_steps`` dicts ``{name: float}``: lam^l of each step (``last_stats``).
    """

    weights: tuple
    buffers: tuple
    local_lrs: tuple


def _frozen_copy(array) -> np.ndarray:
    """A host float64 copy that cannot be written to (trajectories are cached and shared)."""
    copy = np.array(to_numpy(array), dtype=np.float64)
    copy.flags.writeable = False
    return copy


def iterate_optimizer(optimizer, case: Case):
    """Yield ``(w_{t+1}, v_{t+1}, lam_t)`` dicts for t = 0 .. num_steps - 1.

    Parameters
    ----------
    optimizer : lars_ref optimizer
        A fresh optimizer (step counter 0), built for ``case``.
    case : Case
    """
    params = case.initial_weights()
    for grads in case.gradients():
        optimizer.step(params, grads)
        yield ({name: _frozen_copy(w) for name, w in params.items()},
               {name: _frozen_copy(v) for name, v in optimizer.state["v"].items()},
               {name: float(optimizer.last_stats[name]["local_lr"]) for name in params})


def build_for_case(case: Case, *, preset: str | None = None,
                   options: LarsOptions | None = None) -> LARS:
    """A fresh LARS with the case's m, beta, eta and schedule, as a preset or from options."""
    hyper = dict(momentum=case.momentum, weight_decay=case.weight_decay, eta=case.eta)
    if (preset is None) == (options is None):
        raise ValueError("give exactly one of preset= (a PRESETS name) or options= (LarsOptions)")
    if preset is not None:
        return build_preset(preset, case.schedule, **hyper)
    return LARS(case.schedule, options=options, **hyper)


@functools.lru_cache(maxsize=1024)
def run_case(case: Case, *, preset: str | None = None,
             options: LarsOptions | None = None) -> Trajectory:
    """The whole trajectory of lars_ref's LARS on ``case`` (cached; arrays read-only).

    Parameters
    ----------
    case : Case
    preset : str, optional
        A :data:`lars_ref.optim.PRESETS` name ...
    options : LarsOptions, optional
        ... or explicit options (exactly one of the two).

    Returns
    -------
    Trajectory
    """
    optimizer = build_for_case(case, preset=preset, options=options)
    initial = {name: _frozen_copy(w) for name, w in case.initial_weights().items()}
    weights, buffers, local_lrs = [initial], [], []
    for w_next, v_next, lam in iterate_optimizer(optimizer, case):
        weights.append(w_next)
        buffers.append(v_next)
        local_lrs.append(lam)
    return Trajectory(tuple(weights), tuple(buffers), tuple(local_lrs))
