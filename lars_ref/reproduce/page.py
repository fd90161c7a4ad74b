"""``docs/results.md``: the paper's numbers next to ours, rendered from ``results/``.

For every experiment: the paper's numbers and claim, then for each size the
command, date, machine and wall time (``meta.json``), our table
(``results.csv``), the figure, and the verdict written after looking at them
(``verdict.md``); a size not run yet says so, with its estimated time
(``results/estimate.json``). Before the experiments, :data:`ROUNDING` says why
a single-seed number near divergence does not reproduce.
``python -m lars_ref.reproduce.page`` rewrites the page; a test checks that the
committed page equals :func:`render_page`.

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import json
import os
import sys

from lars_ref.reproduce.experiments import EXPERIMENTS, SIZES
from lars_ref.reproduce.results import markdown_table, read_csv

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_DIR = os.path.join(REPO_ROOT, "results")
PAGE_PATH = os.path.join(REPO_ROOT, "docs", "results.md")
DATASET_WORDS = {"mnist": "MNIST", "cifar10_jpg": "CIFAR-10 (JPEG copy)"}


def size_words(size: str) -> str:
    """The data of a size in words, from :data:`SIZES`."""
    settings = SIZES[size]
    seeds = settings["seed"]
    seeds = seeds if isinstance(seeds, list) else [seeds]
    seeded = settings.get("subset_seed") is not None
    which = "a seeded random draw of" if seeded else "first"
    return (f"{DATASET_WORDS.get(settings['dataset'], settings['dataset'])}, {which} "
            f"{settings['train_subset']} training and {settings['test_subset']} test "
            f"images, {len(seeds)} seed{'s' * (len(seeds) > 1)}")


INTRO = """\
# Results: the paper's experiments in miniature

Each section is one table or figure of the paper (You, Gitman, Ginsburg 2017,
arXiv:1708.03888v3; numbers as printed, ImageNet, 100 epochs), re-run at a scale this
repository can afford: base batch B0 = 16 up to 32 x B0 = 512, small AlexNets
(`alexnet`, `alexnet_bn`) and ResNet-20. `lars-ref reproduce NAME --size SIZE`
re-creates a section's files in `results/NAME-SIZE/` (a killed run continues where
it stopped); `lars-ref sweep FILE` runs a grid of your own. CI runs the quick grid
of `fig3` on the built-in 8x8 digits (`tests/test_reproduce.py`).

This page is generated from the committed files in `results/` by
`python -m lars_ref.reproduce.page`; do not edit it by hand (a test compares them).
Sizes (most experiments; see each table's settings):
**quick** = {quick}; **full** = {full}.
"""

ROUNDING = """\
## Single-seed numbers near divergence

Measured on `fig3`'s quick SGD run at B=512 (MNIST, 4096 training images, LR 0.32,
48 steps), with the code of the earlier quick results: in float32 it ended at
49.5 % test accuracy with the NCHW engine and at 32.9 % with the channels-last
engine the models now run. In float64 both layouts end at 40.0 %, and their losses
agree to 1e-14 at every one of the 48 steps. The two layouts compute the same
function; the 17-point gap is float32 rounding (sums taken in another order)
amplified by a run at the edge of stability. So a single-seed quick number from a
run near divergence can move by tens of points with the engine, the BLAS build or
the machine: read it as one draw (the same run moved again with later engine
versions; see the verdicts of `fig3` and `table1`). Only the mean and spread over
seeds mean something (`lars-ref demo` reports them over seeds, the full setting
runs 3 seeds).

Runs far from divergence move too, by about a point. Two engine changes since the
first full results changed only the order of some float32 sums: commit d26950c
(batch norm's sums of squares by `einsum`, the convolution's three GEMMs of a chunk
as one stacked `matmul`, 2 MiB chunks) and commit e292ca2 (the convolution's weight
gradient formed transposed, and rows of the gathered buffer a multiple of the
stride). `fig3`'s LARS runs at B=512 (CIFAR-10, 10 epochs, 160 steps) ended at
52.00, 52.20 and 51.85 % for seeds 0-2 (52.02 ± 0.18 %) before the first, at 51.20,
51.85 and 52.70 % (51.92 ± 0.75 %) after it, and at 51.35, 52.85 and 53.20 %
(52.47 ± 0.98 %) after the second: each seed moved by up to 1.0 point, the mean by
up to 0.55. Every result on this page was re-run on the engine after the second
(2026-12-05), so runs that two experiments share have the same numbers in both.
"""


def _read(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle) if path.endswith(".json") else handle.read().strip()


def render_page(results_dir: str = RESULTS_DIR) -> str:
    """The whole ``docs/results.md`` from the files in ``results_dir``."""
    estimate = _read(os.path.join(results_dir, "estimate.json")) or {}
    parts = [INTRO.format(**{size: size_words(size) for size in SIZES}),
             _estimate_text(estimate), ROUNDING]
    for name, experiment in EXPERIMENTS.items():
        parts.append(f"## `{name}`: {experiment.title}\n\n"
                     f"**Paper:** {experiment.paper}\n\n"
                     f"**Claim checked:** {experiment.claim}\n")
        for size in SIZES:
            parts.append(_size_section(name, size, results_dir, estimate))
    return "\n".join(parts)


def _estimate_text(estimate: dict) -> str:
    if not estimate:
        return "The full setting has no time estimate yet.\n"
    total = sum(e["seconds"] for e in estimate["experiments"].values())
    return (f"**Full setting, estimated:** {total / 3600:.1f} h for all experiments "
            f"with `--jobs {estimate['jobs']}` on a quiet 2-core machine like this one "
            f"({estimate['basis']}; `python -m lars_ref.reproduce.estimate`). "
            "`--check` validates a full grid against the data without training.\n")


def _size_section(name: str, size: str, results_dir: str, estimate: dict) -> str:
    folder = os.path.join(results_dir, f"{name}-{size}")
    meta = _read(os.path.join(folder, "meta.json"))
    command = f"lars-ref reproduce {name} --size {size} --jobs 2"
    if meta is None:
        guess = estimate.get("experiments", {}).get(name)
        when = "" if guess is None else (
            f" Estimated {guess['runs']} runs, {guess['seconds'] / 60:.0f} min.")
        return (f"### {size}: not yet run\n\nCommand: `{command}`.{when}\n")
    table = markdown_table(read_csv(os.path.join(folder, "results.csv")))
    settings = _read(os.path.join(folder, "results.md")).splitlines()[0]
    verdict = _read(os.path.join(folder, "verdict.md")) or "No verdict written yet."
    figure = f"../results/{name}-{size}/figure.png"
    return (f"### {size} ({size_words(size)})\n\n"
            f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}; "
            f"{meta['runs']} runs, wall time {meta['wall_s']:.0f} s "
            "(summed over its invocations; "
            f"training processes {meta['train_s']:.0f} s{_cpu_text(meta)}).\n\n"
            f"{settings}\n\n{table}\n![{name} {size}]({figure})\n\n"
            f"**Verdict ({size}):** {verdict}\n")


def _cpu_text(meta: dict) -> str:
    return f", CPU {meta['cpu_s']:.0f} s" if "cpu_s" in meta else ""


def main() -> int:
    with open(PAGE_PATH, "w", encoding="utf-8") as handle:
        handle.write(render_page())
    print(f"wrote {PAGE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
