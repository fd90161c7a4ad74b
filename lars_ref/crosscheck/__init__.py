"""The cross-check kit: "which LARS is mine?" (docs/crosscheck.md).

* :mod:`~lars_ref.crosscheck.cases`: the small fixed inputs that expose every variant.
* :mod:`~lars_ref.crosscheck.vectors`: reference trajectories of every preset, written
  as byte-deterministic ``.npz`` + ``manifest.json`` (``lars-ref vectors --out DIR``).
* :mod:`~lars_ref.crosscheck.replay`: the adapter protocol a foreign optimizer follows.
* :mod:`~lars_ref.crosscheck.checker`: replays the cases, ranks the presets, and names
  the one option (Algorithm 1 line) that explains a difference.
* :mod:`~lars_ref.crosscheck.adapters`: lars_ref itself, optax, pytorch-optimizer and any
  PyTorch optimizer (torch / jax imported lazily).
* :mod:`~lars_ref.crosscheck.report`: the plain-text report.

Example
-------
>>> from lars_ref.crosscheck import LarsRefAdapter, check
>>> report = check(LarsRefAdapter("timm"))
>>> report.matches
['timm']

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from lars_ref.crosscheck.adapters import (LarsRefAdapter, OptaxAdapter, TorchAdapter,
                                          pytorch_optimizer_adapter)
from lars_ref.crosscheck.cases import CASES, Case, TensorSpec, get_case
from lars_ref.crosscheck.checker import (EQUIVALENT_PRESETS, MATCH_TOLERANCE, CheckReport, Fit,
                                         check)
from lars_ref.crosscheck.replay import AdapterError, replay
from lars_ref.crosscheck.report import format_report
from lars_ref.crosscheck.storage import ReferenceFileError, arrays_sha256
from lars_ref.crosscheck.vectors import ReferenceSet, load_vectors, write_vectors

__all__ = [
    "CASES", "Case", "TensorSpec", "get_case",
    "check", "CheckReport", "Fit", "MATCH_TOLERANCE", "EQUIVALENT_PRESETS", "format_report",
    "AdapterError", "replay",
    "LarsRefAdapter", "OptaxAdapter", "TorchAdapter", "pytorch_optimizer_adapter",
    "write_vectors", "load_vectors", "ReferenceSet", "ReferenceFileError", "arrays_sha256",
]
