"""Optimizers: Algorithm 1 as code, SGD and LARS over named tensors, and LARS's variants.

* :mod:`~lars_ref.optim.algorithm1`: the paper's box, lines L4..L6 (``lars_step``).
* :mod:`~lars_ref.optim.base`: the named-tensor step loop and the L2 norm.
* :mod:`~lars_ref.optim.lars`, :mod:`~lars_ref.optim.sgd`: the optimizer classes
  (and `build_preset`, a LARS that follows a named preset).
* :mod:`~lars_ref.optim.schedules`: L3 (poly decay), warm-up, linear scaling.
* :mod:`~lars_ref.optim.variants`: the 21 switches, the engine and the presets.

Contract (``docs/architecture.md``, "Optimizers"): ``opt.step(params, grads)`` on
``{dotted_name: array}`` dicts, weights written in place, a 0-based step counter
``t``, a schedule ``t -> gamma_t``, ``opt.state["v"][name]``,
``state_dict()`` / ``load_state_dict()`` and ``opt.last_stats[name]``.

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from lars_ref.optim.algorithm1 import lars_step, local_lr
from lars_ref.optim.base import NamedTensorOptimizer, l2_norm
from lars_ref.optim.lars import LARS, build_preset
from lars_ref.optim.schedules import (ConstantSchedule, WarmupPolySchedule, epochs_to_steps,
                                      linear_scaling, linear_warmup, poly_decay, steps_per_epoch)
from lars_ref.optim.sgd import SGD, sgd_step
from lars_ref.optim.variants import (PAPER, PAPER_V3_AS_PRINTED, PRESETS, LarsOptions, Preset,
                                     get_preset, option_names, variant_step)

__all__ = [
    "lars_step", "local_lr", "NamedTensorOptimizer", "l2_norm", "LARS", "SGD", "sgd_step",
    "ConstantSchedule", "WarmupPolySchedule", "linear_scaling", "linear_warmup", "poly_decay",
    "steps_per_epoch", "epochs_to_steps",
    "LarsOptions", "PAPER", "PAPER_V3_AS_PRINTED", "option_names", "variant_step",
    "PRESETS", "Preset", "build_preset", "get_preset",
]
