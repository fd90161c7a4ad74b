"""One-option changes of a LARS rule, each named by the Algorithm 1 line it touches.

The checker explains a difference by finding the single option that, changed in a
preset (the paper's Algorithm 1 first), reproduces the foreign trajectory. The
candidate values of each option are the paper default, every value a preset uses,
and a few extra classic ones (:data:`EXTRA_VALUES`). Line labels are those of
``docs/algorithm1.md``: L3 the global LR, L4 the local LR lam, L5 the momentum
update, L6 the weight update.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses

from lars_ref.optim.variants import PAPER, PRESETS, LarsOptions, option_names

OPTION_LINES = {
    "eta_in_local_lr": ("L4", "eta in the local LR"),
    "gamma_index": ("L5", "which global LR the momentum update uses"),
    "trust_denominator": ("L4", "denominator of the local LR"),
    "eps": ("L4", "epsilon in the denominator"),
    "zero_norm_rule": ("L4", "local LR of a tensor with a zero norm"),
    "trust_ratio_clip": ("L4", "clipping lam to min(lam/gamma, 1)"),
    "trust_ratio_max": ("L4", "upper clamp of lam"),
    "scale_by_one_minus_momentum": ("L4", "(1 - m) factor in lam"),
    "adapt_only_with_weight_decay": ("L4", "adaptation of tensors without weight decay"),
    "exclude_from_adaptation": ("L4", "tensors excluded from adaptation by name"),
    "exclude_from_weight_decay": ("L4-L5", "tensors excluded from weight decay by name"),
    "exclude_1d_from_adaptation": ("L4", "1-D tensors (biases, BN) excluded from adaptation"),
    "exclude_1d_from_weight_decay": ("L4-L5", "1-D tensors excluded from weight decay"),
    "add_weight_decay_to_update": ("L5", "weight decay beta*w in the update direction"),
    "global_lr_in_buffer": ("L5-L6", "where the global LR gamma sits"),
    "local_lr_in_buffer": ("L5-L6", "where the local LR lam sits"),
    "dampening": ("L5", "momentum dampening"),
    "buffer_starts_as_copy": ("L5", "first momentum buffer = first increment"),
    "nesterov": ("L6", "Nesterov momentum"),
    "momentum_correction": ("L5", "momentum corrected by gamma_t / gamma_{t-1}"),
    "grad_clamp": ("L5", "element-wise clamp of g + beta*w"),
}
"""``option -> (Algorithm 1 line label, what the option is about)``."""

EXTRA_VALUES = {"nesterov": (True,), "eps": (1e-7,)}
"""Values tried although no preset uses them (Nesterov; Keras's silent eps 1e-7)."""

VALUE_PHRASES = {
    ("eta_in_local_lr", False): "no eta (v3 as printed)",
    ("eta_in_local_lr", True): "eta * ||w|| / (...)",
    ("gamma_index", "t+1"): "gamma_{t+1} instead of gamma_t (v3 as printed)",
    ("gamma_index", "t"): "gamma_t",
    ("trust_denominator", "grad_norm_plus_decay"): "||g|| + beta*||w|| (paper)",
    ("trust_denominator", "decayed_grad_norm"): "||g + beta*w|| instead of ||g|| + beta*||w||",
    ("trust_denominator", "grad_norm"): "||g|| alone (beta dropped from the denominator)",
    ("zero_norm_rule", "paper"): "formula as printed: ||w|| = 0 gives lam = 0 (frozen tensor)",
    ("zero_norm_rule", "ratio_one"): "lam = 1 when ||w|| or ||g|| is 0",
    ("zero_norm_rule", "skip"): "lam = 1 and no weight decay when ||w|| or ||g|| is 0",
    ("zero_norm_rule", "ratio_one_on_zero_denominator"):
        "lam = 1 when ||w|| or the whole denominator is 0",
    ("add_weight_decay_to_update", False): "weight decay dropped from the update (u = g)",
    ("add_weight_decay_to_update", True): "u = g + beta*w (paper)",
    ("global_lr_in_buffer", False): "LR outside the buffer: v = m v + lam u; w -= gamma v",
    ("global_lr_in_buffer", True): "LR inside the buffer: v = m v + gamma lam u; w -= v",
    ("local_lr_in_buffer", False): "current lam multiplies the whole buffer",
    ("local_lr_in_buffer", True): "lam inside the buffer (paper)",
    ("adapt_only_with_weight_decay", True): "a tensor whose weight decay is 0 gets lam = 1",
    ("trust_ratio_clip", True): "lam <- min(lam/gamma, 1): effective rate min(gamma, lam)",
    ("scale_by_one_minus_momentum", True): "lam <- (1 - m) * lam",
    ("exclude_1d_from_adaptation", True): "1-D tensors get lam = 1 (plain momentum SGD)",
    ("exclude_1d_from_weight_decay", True): "1-D tensors get beta = 0",
    ("momentum_correction", True): "m' = m * gamma_t / gamma_{t-1} (= the LR outside the buffer)",
    ("buffer_starts_as_copy", True): "the first buffer is a copy of the increment (PyTorch)",
    ("nesterov", True): "w -= m * v_{t+1} + increment",
}

NUMBER_PHRASES = {
    "eps": "eps = {} added to the denominator",
    "trust_ratio_max": "lam clamped to [0, {}]",
    "grad_clamp": "g + beta*w clamped element-wise to [-{0}, {0}]",
    "dampening": "v <- m v + (1 - {}) * increment",
}


@dataclasses.dataclass(frozen=True)
class Toggle:
    """One option of a base rule changed to one value.

    Attributes
    ----------
    option : str
        A :class:`LarsOptions` field name.
    value : object
        Its new value.
    options : LarsOptions
        The base options with that one change.
    """

    option: str
    value: object
    options: LarsOptions

    @property
    def line(self) -> str:
        """The Algorithm 1 line label the option touches (e.g. "L4")."""
        return OPTION_LINES.get(self.option, ("L4-L6", ""))[0]

    def describe(self) -> str:
        """``"L4 (denominator of the local LR): ||g + beta*w|| instead of ..."``."""
        return describe_option(self.option, self.value)


def describe_option(option: str, value) -> str:
    """A one-line human description of ``option = value`` with its line label."""
    line, topic = OPTION_LINES.get(option, ("L4-L6", option))
    if (option, value) in VALUE_PHRASES:
        phrase = VALUE_PHRASES[(option, value)]
    elif option in NUMBER_PHRASES and value not in (None, 0.0):
        phrase = NUMBER_PHRASES[option].format(value)
    elif value is None or value is False or value == 0.0 or value == ():
        phrase = f"none ({option}={value!r}, as the paper)"
    else:
        phrase = f"{option}={value!r}"
    return f"{line} ({topic}): {phrase}"


def candidate_values(option: str) -> list:
    """Every value worth trying for ``option``: paper default, preset values, extras."""
    values = [getattr(PAPER, option)]
    values += [getattr(p.options, option) for p in PRESETS.values()]
    values += list(EXTRA_VALUES.get(option, ()))
    unique = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return unique


def single_toggles(base: LarsOptions) -> list:
    """Every valid one-option change of ``base`` (invalid combinations are skipped)."""
    toggles = []
    for option in option_names():
        for value in candidate_values(option):
            if value == getattr(base, option):
                continue
            try:
                toggles.append(Toggle(option, value, base.replace(**{option: value})))
            except ValueError:       # e.g. nesterov with dampening: not a valid rule
                continue
    return toggles
