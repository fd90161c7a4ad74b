"""The "which LARS is mine?" checker: replay the cases, rank the presets, explain.

How a foreign trajectory is compared with a reference one. The weights move by a
few percent per step, so comparing weights would hide a difference in the
*update* under the (unchanged) bulk of the weights. The checker compares the
update of each step, ``dw_t = w_{t+1} - w_t``, tensor by tensor::

    dev_t(tensor) = max|dw_t(foreign) - dw_t(reference)| / max(max|dw_t(foreign)|, max|dw_t(reference)|)

(0 when both updates are exactly 0). It lies in [0, 2]: about 1e-15 is float64
rounding, 1 means "a completely different update" (e.g. a frozen tensor against a
moving one). A case's deviation at step t is the largest over its tensors. A rule
*matches* when every step of every case is within ``tol`` (default 1e-9; the
smallest real difference the cases expose, eps = 1e-8 in a denominator, reaches
1.9e-5, while foreign float64 code agrees to about 1e-14).

Explaining: when no preset matches, each preset (the paper's Algorithm 1 first)
is changed in ONE option at a time (:mod:`lars_ref.crosscheck.toggles`) and the
changes that reproduce the foreign trajectory are reported, with the Algorithm 1
line they touch and the first step where the foreign rule leaves the preset.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from lars_ref.crosscheck.cases import CASES
from lars_ref.crosscheck.reference import build_for_case, iterate_optimizer, run_case
from lars_ref.crosscheck.replay import AdapterError, adapter_name, as_adapter, replay
from lars_ref.crosscheck.toggles import Toggle, single_toggles
from lars_ref.optim.variants import PRESETS

MATCH_TOLERANCE = 1e-9
PAPER_PRESET = "paper_iclr"   # Algorithm 1 as the authors ran it: the base of explanations

EQUIVALENT_PRESETS = (("optax", "tf_model_garden"),)
"""Presets no case can tell apart: their options are identical (TF Model Garden's
classic-momentum LARS is optax's rule: ``||g + beta w||``, no eps, lam = 1 on a zero
norm, LR inside). Every other preset differs from every other one on the cases."""


def equivalence_class(preset: str) -> set:
    """The presets indistinguishable from ``preset`` (itself included)."""
    for group in EQUIVALENT_PRESETS:
        if preset in group:
            return set(group)
    return {preset}


def update_deviation(before_a: dict, after_a: dict, before_b: dict, after_b: dict):
    """Largest relative update difference over the tensors: ``(dev, tensor name)``.

    Parameters
    ----------
    before_a, after_a, before_b, after_b : dict[str, ndarray]
        Weights of rule a and rule b before and after one step (same names/shapes).
    """
    worst, worst_name = 0.0, None
    for name in before_a:
        update_a = after_a[name] - before_a[name]
        update_b = after_b[name] - before_b[name]
        scale = max(np.abs(update_a).max(initial=0.0), np.abs(update_b).max(initial=0.0))
        diff = np.abs(update_a - update_b).max(initial=0.0)
        dev = 0.0 if scale == 0.0 else float(diff / scale)
        if worst_name is None or dev > worst:
            worst, worst_name = dev, name
    return worst, worst_name


@dataclasses.dataclass(frozen=True)
class CaseComparison:
    """Per-step deviations of one rule from another on one case.

    Attributes
    ----------
    case : str
    devs : tuple of float
        ``dev_t`` for t = 0 .. num_steps - 1.
    tensors : tuple of str
        The tensor with the largest deviation at each step.
    """

    case: str
    devs: tuple
    tensors: tuple

    def first_divergence(self, tol: float):
        """The first step ``t`` with ``dev_t > tol``, or None."""
        return next((t for t, dev in enumerate(self.devs) if dev > tol), None)


def compare_weights(case_name: str, weights_a, weights_b) -> CaseComparison:
    """Compare two weight sequences (``num_steps + 1`` dicts each) step by step."""
    devs, tensors = [], []
    for t in range(len(weights_a) - 1):
        dev, name = update_deviation(weights_a[t], weights_a[t + 1], weights_b[t], weights_b[t + 1])
        devs.append(dev)
        tensors.append(name)
    return CaseComparison(case_name, tuple(devs), tuple(tensors))


@dataclasses.dataclass(frozen=True)
class Fit:
    """How well one lars_ref rule (a preset, maybe with one toggle) fits the foreign one.

    Attributes
    ----------
    preset : str
        The preset name.
    toggle : Toggle or None
        The one option changed in the preset, if any.
    comparisons : tuple of CaseComparison
    """

    preset: str
    toggle: Toggle | None
    comparisons: tuple

    @property
    def label(self) -> str:
        """``"optax"`` or ``"paper_iclr + trust_denominator='decayed_grad_norm'"``."""
        if self.toggle is None:
            return self.preset
        return f"{self.preset} + {self.toggle.option}={self.toggle.value!r}"

    @property
    def max_dev(self) -> float:
        """The largest deviation over every case and step."""
        return max(max(c.devs, default=0.0) for c in self.comparisons)

    def matches(self, tol: float) -> bool:
        """True when every step of every case is within ``tol``."""
        return self.max_dev <= tol

    def first_divergence(self, tol: float):
        """``(case, step, tensor, dev)`` of the earliest divergence (step, then case order)."""
        found = [(c.first_divergence(tol), i, c) for i, c in enumerate(self.comparisons)]
        found = [(t, i, c) for t, i, c in found if t is not None]
        if not found:
            return None
        t, _, c = min(found, key=lambda item: (item[0], item[1]))
        return c.case, t, c.tensors[t], c.devs[t]

    def agreement(self, tol: float) -> int:
        """How many leading steps agree, summed over the cases (a closeness score)."""
        total = 0
        for c in self.comparisons:
            first = c.first_divergence(tol)
            total += len(c.devs) if first is None else first
        return total


def fit_preset(foreign: dict, preset: str, cases, toggle: Toggle | None = None) -> Fit:
    """Compare the foreign weights (``{case name: weights}``) with a preset (maybe toggled)."""
    comparisons = []
    for case in cases:
        if toggle is None:
            reference = run_case(case, preset=preset)
        else:
            reference = run_case(case, options=toggle.options)
        comparisons.append(compare_weights(case.name, foreign[case.name], reference.weights))
    return Fit(preset, toggle, tuple(comparisons))


def streams_match(foreign: dict, options, cases, tol: float) -> bool:
    """True when lars_ref with ``options`` stays within ``tol`` everywhere (stops early)."""
    for case in cases:
        weights = foreign[case.name]
        before = weights[0]
        for t, (after, _, _) in enumerate(iterate_optimizer(build_for_case(case, options=options),
                                                            case)):
            dev, _ = update_deviation(weights[t], weights[t + 1], before, after)
            if dev > tol:
                return False
            before = after
    return True


def toggle_explanations(foreign: dict, presets, cases, tol: float) -> list:
    """Every (preset, one option change) that reproduces the foreign trajectory.

    Each distinct option set is replayed once (stopping at its first mismatch); when
    it matches, every preset that reaches it by one change is listed, in ``presets``
    order (e.g. "optax with the paper's zero-norm rule" is also "the paper with the
    optax denominator": both readings are reported).
    """
    preset_options = {PRESETS[name].options for name in PRESETS}
    verdicts, fits = {}, []
    for preset in presets:
        for toggle in single_toggles(PRESETS[preset].options):
            if toggle.options in preset_options:
                continue            # a preset itself: already ranked
            if toggle.options not in verdicts:
                verdicts[toggle.options] = streams_match(foreign, toggle.options, cases, tol)
            if verdicts[toggle.options]:
                fits.append(fit_preset(foreign, preset, cases, toggle))
    return fits


@dataclasses.dataclass
class CheckReport:
    """The checker's findings; :func:`lars_ref.crosscheck.report.format_report` prints it.

    Attributes
    ----------
    adapter : str
        The adapter's name.
    tol : float
    cases : tuple of str
    ranking : list of Fit
        Every preset, best first (matches, then most agreeing steps, then max deviation).
    matches : list of str
        The presets within ``tol`` everywhere.
    explanations : list of Fit
        One-option changes of a preset that match (only searched when no preset does).
    paper : Fit or None
        The fit of Algorithm 1 (``paper_iclr``), for "differs from the paper at ...".
    error : str or None
        Set, and everything else empty, when the adapter failed (AdapterError message).
    """

    adapter: str
    tol: float
    cases: tuple
    ranking: list = dataclasses.field(default_factory=list)
    matches: list = dataclasses.field(default_factory=list)
    explanations: list = dataclasses.field(default_factory=list)
    paper: Fit | None = None
    error: str | None = None

    @property
    def best(self) -> Fit | None:
        """The best-ranked preset fit."""
        return self.ranking[0] if self.ranking else None


def check(adapter, *, presets=None, cases=CASES, tol: float = MATCH_TOLERANCE,
          explain: bool = True) -> CheckReport:
    """Replay every case through ``adapter`` and identify its LARS variant.

    Parameters
    ----------
    adapter : adapter
        See :mod:`lars_ref.crosscheck.replay` for the protocol.
    presets : iterable of str, optional
        Candidate presets (default: all of :data:`lars_ref.optim.PRESETS`).
    cases : iterable of Case
    tol : float
        Largest update deviation that still counts as a match.
    explain : bool
        Search one-option changes of every preset when no preset matches.

    Returns
    -------
    CheckReport
        With ``error`` set (and nothing raised) when the adapter is broken.
    """
    presets, cases = list(PRESETS if presets is None else presets), tuple(cases)
    report = CheckReport(adapter_name(adapter), tol, tuple(c.name for c in cases))
    try:
        adapter = as_adapter(adapter)
        foreign = {case.name: replay(adapter, case) for case in cases}
    except AdapterError as err:
        report.error = f"adapter {report.adapter!r}: {err}"
        return report
    fits = [fit_preset(foreign, name, cases) for name in presets]
    report.ranking = sorted(fits, key=lambda f: (not f.matches(tol), -f.agreement(tol), f.max_dev))
    report.matches = [f.preset for f in report.ranking if f.matches(tol)]
    report.paper = next((f for f in fits if f.preset == PAPER_PRESET), None)
    if explain and not report.matches:
        base_order = [fit.preset for fit in report.ranking]      # closest preset first
        report.explanations = toggle_explanations(foreign, base_order, cases, tol)
    return report
