"""What SGD and LARS share: the L2 norm, the tensor checks and the named-tensor step loop.

The optimizer contract (``docs/architecture.md``, "Optimizers"): ``opt.step(params,
grads)`` on two dicts ``{dotted_name: array}`` writes the new weights in place and
advances the 0-based step counter ``t``; ``opt.state["v"][name]`` holds the momentum
buffers; ``state_dict()`` / ``load_state_dict()`` hold the buffers as host arrays
and ``t``; ``opt.last_stats[name]`` holds device 0-d arrays ``w_norm``, ``g_norm``,
``local_lr``, ``update_norm`` of the last step (gathered to the host by
:mod:`lars_ref.diagnostics`, once per logging interval).

Introduced in ``notebooks/02_lars_algorithm1.ipynb``.
"""
from __future__ import annotations

import numpy as np

from lars_ref.backend import get_xp, to_device, to_numpy
from lars_ref.checks import check_lr
from lars_ref.optim.schedules import as_schedule


def l2_norm(x):
    """``||x||_2`` of the whole tensor (all axes), as a 0-d device value; no host transfer.

    Parameters
    ----------
    x : array, any shape

    Returns
    -------
    0-d array (or NumPy scalar) of ``x.dtype``.
    """
    xp = get_xp(x)
    return xp.sqrt(xp.vdot(x, x))


# --- the tensor contract (shapes and dtypes; hyperparameters: lars_ref.checks) ---------
def check_tensors(name: str, w, g, v=None) -> None:
    """w, g (and the buffer v) must share one shape and one floating dtype."""
    if w.shape != g.shape:
        raise ValueError(f"tensor {name!r}: weight and gradient shapes differ: "
                         f"w {tuple(w.shape)} vs g {tuple(g.shape)}")
    if v is not None and v.shape != w.shape:
        raise ValueError(f"tensor {name!r}: momentum buffer shape {tuple(v.shape)} "
                         f"differs from weight shape {tuple(w.shape)}")
    if w.dtype.kind != "f" or g.dtype != w.dtype:
        raise ValueError(f"tensor {name!r}: w and g must share one floating dtype, "
                         f"got w {w.dtype} and g {g.dtype}")


# --- the loop over named tensors ------------------------------------------------------
class NamedTensorOptimizer:
    """Base of :class:`SGD` and :class:`LARS`: loops over ``{name: array}`` per the contract.

    Subclasses implement ``_update_tensor(name, w, g, v, norms) -> (w_next, v_next,
    local_lr)``. With ``record_stats``, ``last_stats[name]`` holds ``w_norm = ||w_t||``,
    ``g_norm = ||g_t||``, ``local_lr`` (lambda^l; 1 for SGD) and ``update_norm =
    ||w_{t+1} - w_t||``, all device 0-d values.

    Parameters
    ----------
    lr : float or callable
        A constant global LR (> 0) or a schedule ``t -> gamma_t`` (0-based step).
    record_stats : bool
        Fill ``last_stats`` each step (three extra norms per tensor, no host transfer).
    """

    def __init__(self, lr, *, record_stats: bool = True):
        if not callable(lr):
            check_lr(float(lr), positive=True)
        self.schedule = as_schedule(lr)
        self.t = 0
        self.state = {"v": {}}
        self.last_stats = {}
        self.record_stats = record_stats

    def lr_at(self, t: int) -> float:
        """The global LR ``gamma_t`` of step ``t`` from the schedule, as a host float."""
        gamma = float(self.schedule(t))
        check_lr(gamma, f"schedule({t})")
        return gamma

    def step(self, params: dict, grads: dict) -> None:
        """One update of every named tensor: ``w[...] = w_next`` in place, then ``t += 1``."""
        if set(params) != set(grads):
            missing = sorted(set(params) ^ set(grads))
            raise ValueError(f"params and grads must have the same names; differing: {missing}")
        buffers = self.state["v"]
        self._begin_step()
        for name, w in params.items():
            g = grads[name]
            check_tensors(name, w, g)
            v = self._buffer(name, w)
            norms = (l2_norm(w), l2_norm(g)) if self.record_stats else None
            w_next, v_next, local_lr = self._update_tensor(name, w, g, v, norms)
            if self.record_stats:
                self.last_stats[name] = {"w_norm": norms[0], "g_norm": norms[1],
                                         "local_lr": local_lr,
                                         "update_norm": l2_norm(w_next - w)}
            w[...] = w_next
            buffers[name] = v_next
        self.t += 1

    def _buffer(self, name: str, w):
        """The momentum buffer of ``name`` on the device of ``w``: zeros at first (v_0 = 0)."""
        v = self.state["v"].get(name)
        if v is None:
            return get_xp(w).zeros_like(w)
        if get_xp(v) is not get_xp(w):                     # after load_state_dict
            v = to_device(v, get_xp(w))
        return v

    def _begin_step(self) -> None:
        """Host-side work done once per step (e.g. evaluating the schedule)."""

    def _update_tensor(self, name, w, g, v, norms):
        """Return ``(w_next, v_next, local_lr)`` for one tensor; never mutate the inputs.

        ``norms`` is ``(||w||, ||g||)`` when statistics are recorded (else None), so
        that an optimizer which needs them (LARS) does not compute them twice.
        """
        raise NotImplementedError

    def state_dict(self) -> dict:
        """``{"t": int, "v": {name: host array}}`` (a copy; device buffers are gathered)."""
        return {"t": int(self.t),
                "v": {name: np.array(to_numpy(v)) for name, v in self.state["v"].items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``t`` and the buffers (host arrays; moved to the weights' device lazily)."""
        if "t" not in state or "v" not in state:
            raise ValueError(f"optimizer state must have keys 't' and 'v', got {sorted(state)}")
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"optimizer state has a negative step t={t}")
        self.t = t
        self.state["v"] = {name: np.array(to_numpy(v))
                           for name, v in state["v"].items()}
