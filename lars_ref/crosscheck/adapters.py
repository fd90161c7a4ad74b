"""Adapters: lars_ref's own LARS, optax, pytorch-optimizer and any PyTorch optimizer.

Each adapter follows the protocol of :mod:`lars_ref.crosscheck.replay`
(``reset(case, init_params)`` and ``step(grads, t, gamma_t) -> params``). torch,
jax and optax are imported lazily, inside ``reset``, so lars_ref itself works
without them.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import inspect

import numpy as np

from lars_ref.crosscheck.reference import build_for_case
from lars_ref.optim.variants import get_preset

ETA_NAMES = ("trust_coefficient", "trust_coeff", "trust_coef", "eta", "eeta")
"""Keyword names foreign LARS constructors use for the trust coefficient eta."""


class LarsRefAdapter:
    """lars_ref's :class:`~lars_ref.optim.LARS` configured as a preset (plus overrides).

    Parameters
    ----------
    preset : str
        A :data:`lars_ref.optim.PRESETS` name.
    **overrides
        LARS option fields replacing the preset's (e.g. ``eps=1e-7``).
    """

    def __init__(self, preset: str, **overrides):
        self.preset, self.overrides = preset, overrides
        self.name = f"lars_ref:{preset}" + "".join(f",{k}={v!r}" for k, v in overrides.items())

    def reset(self, case, init_params):
        options = None
        if self.overrides:
            options = get_preset(self.preset).options.replace(**self.overrides)
        preset = None if options is not None else self.preset
        self.optimizer = build_for_case(case, preset=preset, options=options)
        self.params = init_params

    def step(self, grads, t, gamma_t):
        self.optimizer.step(self.params, grads)   # the contract: weights updated in place
        return self.params


class TorchAdapter:
    """A PyTorch optimizer class run on float64 CPU tensors, the LR set every step.

    Parameters
    ----------
    optimizer_class : type
        A ``torch.optim.Optimizer`` subclass, e.g. ``pytorch_optimizer.LARS``.
    hyper_names : dict, optional
        Constructor keyword for each case hyperparameter ``{"momentum": ...,
        "weight_decay": ..., "eta": ...}``; ``None`` drops one. By default
        ``momentum`` and ``weight_decay`` map to themselves when the constructor has
        them, and eta to the first of :data:`ETA_NAMES` it has.
    **fixed_kwargs
        Passed to the constructor unchanged (e.g. ``dampening=0``).

    Notes
    -----
    Before step t every param group's ``lr`` is set to ``gamma_t`` (the PyTorch way
    to follow a schedule), and ``p.grad`` to the case's gradient.
    """

    def __init__(self, optimizer_class, hyper_names: dict | None = None, name=None,
                 **fixed_kwargs):
        self.optimizer_class, self.fixed_kwargs = optimizer_class, fixed_kwargs
        self.hyper_names = hyper_names or default_hyper_names(optimizer_class)
        self.name = name or f"torch:{optimizer_class.__module__}.{optimizer_class.__name__}"

    def reset(self, case, init_params):
        import torch
        self.torch = torch
        self.params = {name: torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
                       for name, w in init_params.items()}
        kwargs = {"lr": case.gamma(0), **self.fixed_kwargs}
        for hyper, keyword in self.hyper_names.items():
            if keyword is not None:
                kwargs[keyword] = getattr(case, hyper)
        self.optimizer = self.optimizer_class(list(self.params.values()), **kwargs)

    def step(self, grads, t, gamma_t):
        for name, p in self.params.items():
            p.grad = self.torch.tensor(grads[name], dtype=self.torch.float64)
        for group in self.optimizer.param_groups:
            group["lr"] = gamma_t
        self.optimizer.step()
        return {name: p.detach().numpy().copy() for name, p in self.params.items()}


def default_hyper_names(optimizer_class) -> dict:
    """Map momentum, weight_decay and eta to the constructor's keyword names."""
    accepted = set(inspect.signature(optimizer_class.__init__).parameters)
    names = {hyper: hyper if hyper in accepted else None for hyper in ("momentum", "weight_decay")}
    names["eta"] = next((n for n in ETA_NAMES if n in accepted), None)
    return names



def pytorch_optimizer_adapter(**kwargs) -> TorchAdapter:
    """pytorch-optimizer's ``LARS`` (kozistr), dampening 0, no Nesterov, per-tensor path."""
    from pytorch_optimizer import LARS
    defaults = dict(dampening=0.0, nesterov=False)
    return TorchAdapter(LARS, name="pytorch_optimizer.LARS", **{**defaults, **kwargs})


class OptaxAdapter:
    """``optax.lars`` in float64 (``jax_enable_x64``), the case's schedule as its LR.

    Parameters
    ----------
    **kwargs
        Extra ``optax.lars`` arguments (e.g. ``nesterov=True``); eps defaults to 0.

    Notes
    -----
    ``reset`` turns on JAX's process-wide ``jax_enable_x64`` flag (float64 arrays);
    optax evaluates the schedule at its own step count, which starts at 0.
    """

    name = "optax.lars"

    def __init__(self, **kwargs):
        self.kwargs = {"eps": 0.0, **kwargs}
        self.one_step = None

    def reset(self, case, init_params):
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import optax
        self.jnp = jnp
        if self.one_step is None:     # compiled once, reused for every case (same shapes)
            solver = optax.inject_hyperparams(optax.lars)(
                learning_rate=1.0, weight_decay=0.0, trust_coefficient=1.0, momentum=0.0,
                **self.kwargs)
            self.solver = solver

            def one_step(params, state, grads):
                updates, state = solver.update(grads, state, params)
                return optax.apply_updates(params, updates), state

            self.one_step = jax.jit(one_step)
        self.params = {name: jnp.asarray(w, dtype=jnp.float64) for name, w in init_params.items()}
        self.state = self.solver.init(self.params)
        for key, value in (("weight_decay", case.weight_decay), ("trust_coefficient", case.eta),
                           ("momentum", case.momentum)):
            self.state.hyperparams[key] = jnp.asarray(value, dtype=jnp.float64)

    def step(self, grads, t, gamma_t):
        jnp = self.jnp
        self.state.hyperparams["learning_rate"] = jnp.asarray(gamma_t, dtype=jnp.float64)
        grads = {name: jnp.asarray(g, dtype=jnp.float64) for name, g in grads.items()}
        self.params, self.state = self.one_step(self.params, self.state, grads)
        return {name: np.asarray(w) for name, w in self.params.items()}
