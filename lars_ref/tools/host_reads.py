"""Count the device-to-host copies of an optimizer step on the strict device double.

A LARS step must read no device value back to the host: on a GPU every such read
is a copy plus a synchronisation. :func:`count_host_reads` runs the step on
:mod:`lars_ref.tools.strict_device` arrays, where an implicit read (``float()``,
``bool()``, ``.item()``, ``np.asarray``, ...) raises :class:`HostReadError` and an
explicit :func:`lars_ref.backend.to_numpy` is logged. Expected: ``[]``.

Used by ``lars-ref bench-optim`` (``lars_ref/tools/bench_optim.py``) and the tests
of ``tests/test_host_transfers.py``; see ``docs/gpu.md``.
"""
from __future__ import annotations

from lars_ref.backend import to_device
from lars_ref.tools import strict_device
from lars_ref.tools.strict_device import HostReadError

__all__ = ["count_host_reads", "HostReadError"]


def count_host_reads(opt, params: dict, grads: dict, steps: int = 2) -> list:
    """Run ``steps`` steps of ``opt`` on strict device copies of ``params``/``grads``.

    Returns the explicit device-to-host copies made (one string each; expect ``[]``).
    An implicit host read raises :class:`HostReadError` naming the operation.
    """
    xp = strict_device.xp
    params = {name: to_device(w, xp) for name, w in params.items()}
    grads = {name: to_device(g, xp) for name, g in grads.items()}
    copies = []
    for _ in range(steps):
        _, made = strict_device.count_transfers(opt.step, params, grads)
        copies += made
    return copies
