"""README's demo section: a mean and a spread over seeds, and claims that hold for it.

The numbers come from ``lars-ref demo --seed S`` (too slow for the suite); this
test checks that the table is complete and consistent (mean, sd, range of the
seed columns), names the library versions it was measured with, and that every
claim printed under it is true of the table.
"""
import re
import statistics
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def demo_section() -> str:
    text = README.read_text()
    return text[text.index("## What the demo shows"):text.index("## The `lars-ref`")]


def demo_table() -> dict:
    """{row label: per-seed top-1 array}, checking mean, sd and range on the way."""
    lines = [line for line in demo_section().splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    seeds = [i for i, name in enumerate(header) if name.startswith("seed ")]
    assert len(seeds) >= 3, "the demo must be reported over at least 3 seeds"
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        label = f"{cells[0]} {cells[1]}"
        values = [float(cells[i]) for i in seeds]
        mean, sd, spread = (cells[header.index(n)] for n in ("mean", "sd", "range"))
        assert abs(statistics.mean(values) - float(mean)) <= 0.051, label
        assert abs(statistics.stdev(values) - float(sd)) <= 0.051, label
        assert spread == f"{min(values):.1f}-{max(values):.1f}", label
        table[label] = np.array(values)
    return table


def test_demo_is_a_mean_and_spread_over_seeds_with_versions():
    section = demo_section()
    assert re.search(r"numpy \d+\.\d+\.\d+", section)
    assert re.search(r"OpenBLAS \d+\.\d+\.\d+", section)
    assert len(demo_table()) == 5


def test_readme_claims_hold_for_every_seed_of_the_table():
    t = demo_table()
    sgd_32, linear, half = t["SGD 32"], t["SGD, linear scaling 512"], \
        t["SGD, half of linear 512"]
    lars_32, lars_512 = t["LARS 32"], t["LARS 512"]
    section = " ".join(demo_section().split())
    gap = sgd_32 - linear                                     # claim 1
    assert np.all(gap > 0)
    assert f"{gap.min():.1f} to {gap.max():.1f} points below batch 32" in section
    assert f"({gap.mean():.1f} on average)" in section
    win = lars_512 - linear                                   # claim 2
    assert np.all(win > 0)
    assert f"by {win.min():.1f} to {win.max():.1f} points" in section
    steadier = f"sd {lars_512.std(ddof=1):.1f} points against {linear.std(ddof=1):.1f}"
    assert lars_512.std(ddof=1) < linear.std(ddof=1) / 5 and steadier in section
    tuned = lars_512 - half                                   # claim 3
    assert f"{tuned.mean():.1f} points below LARS at 512 on average" in section
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    assert f"loses to LARS on {words[int((tuned > 0).sum())]} seeds" in section
    worst = int(np.argmin(tuned))
    assert f"beats it by {-tuned[worst]:.1f} points" in section
    assert f"on seed {worst}" in section
    small = lars_32 - lars_512                                # claim 4
    assert np.all(small > 0)
    assert f"{small.min():.1f} to {small.max():.1f} points below LARS at batch 32" \
        in section


def test_readme_states_the_memory_a_run_needs_and_when_it_was_measured():
    text = " ".join(README.read_text().split())
    match = re.search(r"\*\*Memory\.\*\* Measured on (\d{4}-\d{2}-\d{2}).*?ResNet-20 on "
                      r"CIFAR-10 at batch 128 needs about ([\d.]+) GiB", text)
    assert match, "README must say what ResNet-20 / CIFAR-10 at batch 128 needs"
    assert 0.1 < float(match.group(2)) < 64
    assert "lars-ref demo` needs about" in text
