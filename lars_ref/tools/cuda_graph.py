"""Prove that a step makes no host synchronisation: capture it into a CUDA graph.

While a CUDA stream is being captured (``Stream.begin_capture``), a device-to-host
copy or a synchronisation is illegal and makes the capture fail. So a step that
captures cleanly reads nothing back to the host. Needs CuPy and a GPU; used by
``lars-ref bench-optim --backend cupy`` and ``lars-ref gpu-check`` (``docs/gpu.md``).
"""
from __future__ import annotations


def capture_step(step, xp) -> str:
    """Run ``step()`` once (warm-up), then capture a second call into a CUDA graph.

    Returns "ok" if the capture succeeded, else "failed: <error>".
    """
    step()                                    # warm the memory pool and kernel cache
    xp.cuda.get_current_stream().synchronize()
    stream = xp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            step()
        except Exception as err:                  # the sync raised during capture
            _end_quietly(stream)
            return f"failed: {type(err).__name__}: {err}"
        try:
            stream.end_capture()
        except Exception as err:                  # capture invalidated by a sync
            return f"failed: {type(err).__name__}: {err}"
    return "ok"


def _end_quietly(stream) -> None:
    try:
        stream.end_capture()
    except Exception:                             # already invalid: nothing to end
        pass


def optimizer_capture(opt, params: dict, grads: dict, xp) -> str:
    """:func:`capture_step` of ``opt.step(params, grads)`` on device arrays."""
    return capture_step(lambda: opt.step(params, grads), xp)
