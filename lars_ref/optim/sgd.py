"""SGD with momentum and weight decay, in the paper's form and in PyTorch's form.

Paper: You, Gitman, Ginsburg (2017), Algorithm 1 with lam = 1 (no LARS), i.e. the
baselines of Table 1: ``v <- m v + gamma_t (g + beta w); w <- w - v``. Both forms are
one call: the paper form to :mod:`lars_ref.optim.algorithm1`, the PyTorch form (and
dampening, Nesterov) to the variant engine, each with lam = 1.

Two forms, selected by ``form``:

* ``"paper"`` (LR inside the buffer, Algorithm 1 L5/L6; Caffe):
  ``v_{t+1} = m v_t + gamma_t (g_t + beta w_t)``, ``w_{t+1} = w_t - v_{t+1}``.
* ``"pytorch"`` (LR outside, ``torch.optim.SGD``):
  ``b_{t+1} = m b_t + (g_t + beta w_t)``, ``w_{t+1} = w_t - gamma_t b_{t+1}``.

Unrolled from zero buffers, with ``u_k = g_k + beta w_k``, the step taken at t is
``sum_k m^(t-k) gamma_k u_k`` (paper) versus ``gamma_t sum_k m^(t-k) u_k``
(PyTorch): equal for a constant gamma, different when gamma changes (warm-up,
decay), because the paper form keeps each past gradient at the LR it was taken
with. Example with m = 0.5, u = 1 at both steps, gamma_0 = 1, gamma_1 = 2:

>>> import numpy as np
>>> w0, g, zero = np.zeros(1), np.ones(1), np.zeros(1)
>>> def two_steps(form):
...     w1, v1, _ = sgd_step(w0, g, zero, lr=1.0, momentum=0.5, weight_decay=0.0, form=form)
...     w2, _, _ = sgd_step(w1, g, v1, lr=2.0, momentum=0.5, weight_decay=0.0, form=form)
...     return float(w1[0] - w2[0])          # the second step's size
>>> two_steps("paper"), two_steps("pytorch")   # 0.5*1*1 + 2*1  vs  2*(0.5*1 + 1)
(2.5, 3.0)

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

from lars_ref.backend import get_xp
from lars_ref.checks import (check_choice, check_dampening, check_lr, check_momentum,
                             check_weight_decay)
from lars_ref.optim.algorithm1 import lars_step
from lars_ref.optim.base import NamedTensorOptimizer, check_tensors
from lars_ref.optim.variants.engine import variant_step
from lars_ref.optim.variants.options import PAPER

SGD_FORMS = ("paper", "pytorch")


def sgd_step(w, g, v, *, lr, momentum, weight_decay, form="paper", dampening=0.0,
             nesterov=False, first_step=False, checked=True):
    """One momentum-SGD update of one tensor (pure; inputs untouched).

    The paper form is Algorithm 1 with lam = 1 (:func:`lars_ref.optim.algorithm1.lars_step`
    with ``eta=None``); the PyTorch form, dampening and Nesterov are the variant engine's
    switches with lam = 1 (``adapt=False``).

    Parameters
    ----------
    w, g, v : array, one shape, one floating dtype
        Weights, gradient, momentum buffer (zeros at t = 0).
    lr : float
        gamma_t, the global LR of this step.
    momentum, weight_decay : float
        m in [0, 1) and beta >= 0.
    form : {"paper", "pytorch"}
        LR inside the buffer (paper) or outside (PyTorch), see the module docstring.
    dampening : float
        PyTorch's ``b <- m b + (1 - dampening) u``; ignored when m = 0.
    nesterov : bool
        Step with ``m * v_{t+1} + increment`` instead of ``v_{t+1}``.
    first_step : bool
        True at t = 0; the PyTorch form then sets the buffer to ``u`` (no dampening).
    checked : bool
        Check the arguments (the :class:`SGD` class checks once and passes False).

    Returns
    -------
    w_next, v_next : array, the shape and dtype of ``w``
    local_lr : 0-d array, always 1 (no layer-wise adaptation)
    """
    if checked:
        check_tensors("w", w, g, v)
        check_lr(lr, "lr (gamma_t)")
        check_sgd_settings(momentum, weight_decay, form, dampening, nesterov)
    if form == "paper" and dampening == 0.0 and not nesterov:
        w_next, v_next, _ = lars_step(w, g, v, gamma_t=lr, m=momentum, beta=weight_decay,
                                      eta=None)
    else:
        options = PAPER.replace(global_lr_in_buffer=(form == "paper"), dampening=dampening,
                                buffer_starts_as_copy=(form == "pytorch"), nesterov=nesterov)
        w_next, v_next, _ = variant_step(w, g, v, lr=lr, momentum=momentum,
                                         weight_decay=weight_decay, eta=1.0, options=options,
                                         first_step=first_step, adapt=False, checked=False)
    return w_next, v_next, get_xp(w).ones((), dtype=w.dtype)


def check_sgd_settings(momentum, weight_decay, form, dampening, nesterov) -> None:
    """The hyperparameters of :class:`SGD` (host values), checked once."""
    check_momentum(momentum)
    check_weight_decay(weight_decay)
    check_choice(form, SGD_FORMS, "form")
    check_dampening(dampening)
    if nesterov and (momentum == 0.0 or dampening != 0.0):
        raise ValueError(f"nesterov needs momentum > 0 and dampening = 0, "
                         f"got momentum={momentum}, dampening={dampening}")


class SGD(NamedTensorOptimizer):
    """Momentum SGD with weight decay over named tensors (the paper's baseline optimizer).

    Parameters
    ----------
    lr : float or callable
        A constant LR (> 0) or a schedule ``t -> gamma_t`` (0-based step).
    momentum, weight_decay : float
        m and beta (paper baselines: 0.9 and 5e-4).
    form : {"paper", "pytorch"}
        LR inside (paper, default) or outside (``torch.optim.SGD``) the buffer.
    dampening, nesterov :
        As in ``torch.optim.SGD``.
    record_stats : bool
        Fill ``last_stats`` (``local_lr`` is 1 for every tensor).

    Examples
    --------
    >>> import numpy as np
    >>> params, grads = {"w": np.ones(3)}, {"w": np.full(3, 2.0)}
    >>> opt = SGD(lr=0.1, momentum=0.9, weight_decay=0.0)
    >>> opt.step(params, grads); opt.step(params, grads)
    >>> round(float(params["w"][0]), 6)            # 1 - 0.2 - (0.9*0.2 + 0.2)
    0.42
    """

    def __init__(self, lr, *, momentum: float = 0.9, weight_decay: float = 5e-4,
                 form: str = "paper", dampening: float = 0.0, nesterov: bool = False,
                 record_stats: bool = True):
        super().__init__(lr, record_stats=record_stats)
        check_sgd_settings(momentum, weight_decay, form, dampening, nesterov)
        self.momentum, self.weight_decay, self.form = float(momentum), float(weight_decay), form
        self.dampening, self.nesterov = float(dampening), bool(nesterov)
        self._gamma_t = None

    def _begin_step(self):
        self._gamma_t = self.lr_at(self.t)

    def _update_tensor(self, name, w, g, v, norms):
        return sgd_step(w, g, v, lr=self._gamma_t, momentum=self.momentum,
                        weight_decay=self.weight_decay, form=self.form,
                        dampening=self.dampening, nesterov=self.nesterov,
                        first_step=(self.t == 0), checked=False)

    def __repr__(self):
        return f"SGD(m={self.momentum}, beta={self.weight_decay}, form={self.form!r})"
