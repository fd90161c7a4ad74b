"""Plain-text report of a :class:`~lars_ref.crosscheck.checker.CheckReport`.

Steps are 0-based (the ``t`` of Algorithm 1: step 0 is the first update). Line
labels (L4, L5, L6) are those of ``docs/algorithm1.md``.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

from lars_ref.crosscheck.cases import CASES
from lars_ref.crosscheck.checker import PAPER_PRESET, CheckReport, Fit, compare_weights
from lars_ref.crosscheck.reference import run_case
from lars_ref.crosscheck.toggles import describe_option
from lars_ref.optim.variants import PRESETS


def option_shows(option: str, value, cases=CASES, tol: float = 1e-9):
    """Where ``option = value`` alone changes Algorithm 1: ``(case, step, tensor)`` or None.

    Compares ``paper_iclr`` with ``paper_iclr`` changed in that one option, on ``cases``.
    """
    paper = PRESETS[PAPER_PRESET].options
    toggled = paper.replace(**{option: value})
    best = None
    for index, case in enumerate(cases):
        comparison = compare_weights(case.name, run_case(case, options=toggled).weights,
                                     run_case(case, options=paper).weights)
        t = comparison.first_divergence(tol)
        if t is not None and (best is None or (t, index) < best[0]):
            best = ((t, index), (case.name, t, comparison.tensors[t]))
    return None if best is None else best[1]


def _where(divergence) -> str:
    """``"case 'constant_wd', step 0, tensor 'fc.b'"`` (plus the deviation when known)."""
    if divergence is None:
        return "nowhere on these cases"
    case, step, tensor = divergence[:3]
    text = f"case {case!r}, step {step}, tensor {tensor!r}"
    return text + (f" (deviation {divergence[3]:.1e})" if len(divergence) > 3 else "")


def _paper_lines(preset: str, cases, tol: float) -> list:
    """How a preset differs from Algorithm 1, one line per option, with where it shows."""
    deviations = PRESETS[preset].options.deviations()
    if not deviations:
        return [f"  '{preset}' is Algorithm 1 itself ([ICLR] form, no departures)."]
    lines = [f"  How '{preset}' differs from Algorithm 1 ({PAPER_PRESET}), one option at a time:"]
    for option, value in deviations.items():
        shows = option_shows(option, value, cases, tol)
        where = ("no effect on these cases" if shows is None
                 else f"alone, shows from {_where(shows)}")
        lines.append(f"   - {describe_option(option, value)}  [{where}]")
    return lines


def _step_table(fit: Fit, tol: float) -> list:
    """Per case and step, the largest deviation from ``fit`` and where it departs first."""
    lines = [f"Largest deviation per case and step from '{fit.label}':"]
    for c in fit.comparisons:
        cells = " ".join(f"{dev:8.1e}" for dev in c.devs)
        first = c.first_divergence(tol)
        note = "" if first is None else f"   departs at step {first}, {c.tensors[first]!r}"
        lines.append(f"  {c.case:28s} {cells}{note}")
    return lines


def _ranking_lines(report: CheckReport, limit: int) -> list:
    lines = ["Ranking (closest first; agreeing steps = leading steps within tol, all cases):"]
    total = sum(len(c.devs) for c in report.ranking[0].comparisons)
    for rank, fit in enumerate(report.ranking[:limit], start=1):
        verdict = "MATCH" if fit.matches(report.tol) else \
            f"first departs at {_where(fit.first_divergence(report.tol))}"
        lines.append(f"  {rank:2d}. {fit.label:18s} max dev {fit.max_dev:8.1e}  agreeing steps "
                     f"{fit.agreement(report.tol):2d}/{total}  {verdict}")
    return lines


def _verdict_lines(report: CheckReport, cases) -> list:
    tol = report.tol
    if report.matches:
        best = report.ranking[0]
        preset = PRESETS[best.preset]
        lines = [f"MATCHES preset '{best.preset}' to {best.max_dev:.1e}  ({preset.source})",
                 f"  {preset.description}"]
        if len(report.matches) > 1:
            others = ", ".join(repr(name) for name in report.matches[1:])
            lines.append(f"  equally matched (indistinguishable on these cases): {others}")
        lines += _paper_lines(best.preset, cases, tol)
        return lines
    best = report.ranking[0]
    lines = [f"NO PRESET MATCHES. Closest: '{best.label}' (max dev {best.max_dev:.1e}); it "
             f"first departs at {_where(best.first_divergence(tol))}."]
    if report.explanations:
        lines.append("Explained by ONE option change of a preset:")
        for fit in report.explanations:
            base = next(f for f in report.ranking if f.preset == fit.preset)
            lines.append(f"  - '{fit.preset}' with {fit.toggle.describe()}  [option "
                         f"{fit.toggle.option}={fit.toggle.value!r}; matches to "
                         f"{fit.max_dev:.1e}; yours leaves '{fit.preset}' from "
                         f"{_where(base.first_divergence(tol))}]")
    else:
        lines.append("No single option change of any preset reproduces it: more than one "
                     "thing differs, or something no option models. Start from the closest "
                     "preset and the first step where it departs.")
    return lines


def format_report(report: CheckReport, *, ranking_limit: int = 6, cases=CASES) -> str:
    """The whole report as text (see the module docstring for the conventions)."""
    header = [f"Which LARS is mine? adapter {report.adapter!r}",
              f"{len(report.cases)} cases, steps 0-based, float64. Deviation = relative "
              f"difference of each step's update dw_t = w_(t+1) - w_t; match <= {report.tol:.0e}."]
    if report.error is not None:
        return "\n".join(header + [f"ADAPTER ERROR: {report.error}"]) + "\n"
    lines = header + [""] + _verdict_lines(report, cases)
    if report.paper is not None and PAPER_PRESET not in report.matches \
            and report.ranking[0].preset != PAPER_PRESET:
        lines.append(f"Yours first departs from Algorithm 1 ({PAPER_PRESET}) at "
                     f"{_where(report.paper.first_divergence(report.tol))}.")
    lines += [""] + _step_table(report.ranking[0], report.tol)
    lines += [""] + _ranking_lines(report, ranking_limit)
    return "\n".join(lines) + "\n"
