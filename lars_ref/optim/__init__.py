"""Optimizers: SGD (paper and PyTorch forms), LARS (Algorithm 1) and its public variants.

Contract (``docs/architecture.md``, "Optimizers"): ``opt.step(params, grads)`` on
``{dotted_name: array}`` dicts, weights written in place, a 0-based step counter
``t``, a schedule ``t -> gamma_t``, ``opt.state["v"][name]``,
``state_dict()`` / ``load_state_dict()`` and ``opt.last_stats[name]``.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from lars_ref.optim.base import NamedTensorOptimizer, l2_norm
from lars_ref.optim.lars import LARS, lars_step, local_lr
from lars_ref.optim.options import PAPER, PAPER_V3_AS_PRINTED, LarsOptions, option_names
from lars_ref.optim.schedules import (ConstantSchedule, WarmupPolySchedule, epochs_to_steps,
                                      linear_scaling, linear_warmup, poly_decay, steps_per_epoch)
from lars_ref.optim.sgd import SGD, sgd_step
from lars_ref.optim.variants import PRESETS, Preset, build_preset, get_preset

__all__ = [
    "NamedTensorOptimizer", "l2_norm",
    "LARS", "lars_step", "local_lr", "LarsOptions", "PAPER", "PAPER_V3_AS_PRINTED", "option_names",
    "SGD", "sgd_step",
    "ConstantSchedule", "WarmupPolySchedule", "linear_scaling", "linear_warmup", "poly_decay",
    "steps_per_epoch", "epochs_to_steps",
    "PRESETS", "Preset", "build_preset", "get_preset",
]
