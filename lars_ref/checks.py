"""The checks of every hyperparameter, written once (host values, never arrays).

Each check takes the value and the name to show in the message, and raises
``error`` (default :class:`HyperparameterError`, a :class:`lars_ref.errors.UserError`
and so a ``ValueError``) with one line that names the setting and the bad value::

    check_lr(0.0, "lr", positive=True)   # HyperparameterError: lr must be a finite
                                         # learning rate > 0, got lr=0.0

Callers pass their own name (``"--lr"`` on the command line, ``"schedule(12)"``
for a schedule's value) and, where they have a more precise error class, that class
(``error=ConfigError``). The optimizers check once at construction and once per
step when the schedule gives gamma_t, never once per tensor. Ranges are the paper's:
Algorithm 1's P line (gamma_0, m, beta, eta) and PyTorch's SGD (dampening).

Introduced in ``docs/architecture.md`` ("Checks").
"""
from __future__ import annotations

import math

from lars_ref.errors import UserError


class HyperparameterError(UserError):
    """A hyperparameter outside its range (the message names it and the value)."""


def check_lr(value, name: str = "lr", *, positive: bool = False,
             error: type = HyperparameterError) -> None:
    """A learning rate (gamma_0, gamma_t, ...): finite, >= 0 (> 0 if ``positive``)."""
    ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise error(f"{name} must be a finite learning rate {bound}, "
                    f"got {name}={value}")


def check_momentum(value, name: str = "momentum", *,
                   error: type = HyperparameterError) -> None:
    """Momentum m lies in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise error(f"momentum m must be in [0, 1), got {name}={value}")


def check_weight_decay(value, name: str = "weight_decay", *,
                       error: type = HyperparameterError) -> None:
    """Weight decay beta is finite and >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise error(f"weight decay beta must be >= 0, got {name}={value}")


def check_eta(value, name: str = "eta", *,
              error: type = HyperparameterError) -> None:
    """The LARS trust coefficient eta is finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise error(f"trust coefficient eta must be > 0, got {name}={value}")


def check_dampening(value, name: str = "dampening", *,
                    error: type = HyperparameterError) -> None:
    """PyTorch's dampening lies in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise error(f"{name} must be in [0, 1], got {name}={value}")


def check_choice(value, choices, name: str, *,
                 error: type = HyperparameterError) -> None:
    """``value`` is one of ``choices`` (the message lists them)."""
    if value not in choices:
        listed = ", ".join(map(repr, choices))
        raise error(f"{name} must be one of {listed}, got {value!r}")


__all__ = ["HyperparameterError", "check_lr", "check_momentum", "check_weight_decay",
           "check_eta", "check_dampening", "check_choice"]
