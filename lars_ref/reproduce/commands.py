"""``lars-ref reproduce NAME`` and ``lars-ref sweep FILE``: run a grid, write results.

Both end the same way (:func:`finish`): ``runs.csv`` (one row per run),
``results.csv`` and ``results.md`` (mean and spread over seeds), the figure
(PNG) and ``meta.json`` (command, date, machine, wall time) in ``--out``.

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

from lars_ref.backend import BACKEND_NAMES
from lars_ref.reproduce.experiments import EXPERIMENTS, SIZES, experiment_specs
from lars_ref.reproduce.figures import plot
from lars_ref.reproduce.grid import expand_grid, read_grid_file
from lars_ref.reproduce.results import write_tables
from lars_ref.reproduce.runner import plan_runs, run_sweep
from lars_ref.reproduce.worker import read_json, write_json_atomically

SWEEP_PLOT = {"kind": "curves", "y": "test_acc"}


def register(commands) -> None:
    """Add ``reproduce`` and ``sweep`` to the ``lars-ref`` command tree."""
    reproduce = commands.add_parser(
        "reproduce", help="re-run one of the paper's tables or figures in miniature",
        description=("Train the runs of a named experiment (skipping finished ones,\n"
                     "resuming interrupted ones), then write its result tables and\n"
                     "figure. Experiments: " + ", ".join(EXPERIMENTS) + ".\n"
                     "What each one reproduces: docs/results.md.\n\n"
                     "example:  lars-ref reproduce table3 --size quick --jobs 2"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    reproduce.add_argument("name", help="experiment: " + ", ".join(EXPERIMENTS))
    reproduce.add_argument("--size", default="quick", choices=tuple(SIZES),
                           help="quick: minutes on MNIST; full: CIFAR-10, 3 seeds "
                                "(default: %(default)s)")
    _add_common(reproduce, "lars_ref_out/reproduce/NAME-SIZE")
    reproduce.set_defaults(handler=reproduce_command)
    sweep = commands.add_parser(
        "sweep", help="run your own grid: model x dataset x optimizer x batch x LR ...",
        description=("Run every combination in a JSON or TOML grid file. Keys: the\n"
                     "settings of `lars-ref train --config`, plus train_subset and\n"
                     "test_subset (first N images), and 'grid', a list of blocks,\n"
                     "each a product of its own lists. Every list is an axis.\n\n"
                     'example grid.json: {"model": "alexnet_bn", "dataset": "digits",\n'
                     '    "optimizer": ["sgd", "lars"], "batch_size": [32, 512],\n'
                     '    "lr": 0.5, "epochs": 5, "seed": [0, 1, 2]}\n'
                     "then:  lars-ref sweep grid.json --jobs 2"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("file", help="grid file (.json or .toml)")
    _add_common(sweep, "lars_ref_out/sweep/<file name>")
    sweep.set_defaults(handler=sweep_command)


def _add_common(parser, default_out: str) -> None:
    parser.add_argument("--jobs", type=int, default=1,
                        help="training processes side by side, one BLAS thread each "
                             "(default: %(default)s)")
    parser.add_argument("--out", help=f"output folder (default: {default_out})")
    parser.add_argument("--check", action="store_true",
                        help="check every run (settings, data, model) and print the "
                             "plan; train nothing")
    parser.add_argument("--backend", choices=BACKEND_NAMES,
                        help="array backend of every run; cupy runs on a GPU "
                             "(default: each run's own, numpy)")


def _with_backend(specs: list[dict], backend: str | None) -> list[dict]:
    """``--backend`` overrides every run's (a GPU run gets its own folder)."""
    return specs if backend is None else [{**s, "backend": backend} for s in specs]


def reproduce_command(args) -> int:
    specs = experiment_specs(args.name, args.size)  # unknown name: error, nothing run
    specs = _with_backend(specs, args.backend)
    out = args.out or os.path.join("lars_ref_out", "reproduce",
                                   f"{args.name}-{args.size}")
    experiment = EXPERIMENTS[args.name]
    return run_and_report(specs, out, args.jobs, experiment.plot, experiment.title,
                          {"experiment": args.name, "size": args.size},
                          check_only=args.check)


def sweep_command(args) -> int:
    specs = expand_grid(read_grid_file(args.file), where=f"grid file {args.file}")
    specs = _with_backend(specs, args.backend)
    stem = os.path.splitext(os.path.basename(args.file))[0]
    out = args.out or os.path.join("lars_ref_out", "sweep", stem)
    return run_and_report(specs, out, args.jobs, SWEEP_PLOT, f"sweep {stem}",
                          {"grid_file": args.file}, check_only=args.check)


def run_and_report(specs, out, jobs, plot_spec, title, about, log=print,
                   check_only=False) -> int:
    """Run ``specs`` in ``out``, write tables, figure and meta; 0 if every run ended."""
    started = time.perf_counter()
    try:
        rows = run_sweep(plan_runs(specs, out), jobs=jobs, log=log,
                         check_only=check_only)
    except KeyboardInterrupt:
        print("lars-ref: interrupted; run the same command again to continue "
              "(finished runs are kept, the others resume from their checkpoints)",
              file=sys.stderr)
        return 130
    if check_only:
        return 0
    paths = finish(rows, out, plot_spec, title, about, time.perf_counter() - started)
    log("results: " + ", ".join(paths))
    missing = sum(row["status"] == "missing" for row in rows)
    return 1 if missing else 0


def finish(rows, out, plot_spec, title, about, wall_s) -> list[str]:
    """Tables, figure and meta.json of a finished (or partly finished) sweep."""
    paths = write_tables(rows, out)
    if any(row["status"] == "finished" for row in rows):
        paths.append(plot(rows, plot_spec, os.path.join(out, "figure.png"), title))
    meta_path = os.path.join(out, "meta.json")
    earlier = read_json(meta_path).get("wall_s", 0) if os.path.exists(meta_path) else 0
    meta = {**about, "command": "lars-ref " + " ".join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "machine": machine(),
            "wall_s": round(earlier + wall_s, 1),  # summed over the invocations
            "runs": len(rows),
            "train_s": round(sum(row.get("wall_s") or 0 for row in rows), 1)}
    if all("cpu_s" in row for row in rows):  # CPU time: what a quiet machine would take
        meta["cpu_s"] = round(sum(row["cpu_s"] for row in rows), 1)
    write_json_atomically(meta_path, meta)
    return paths + [meta_path]


def machine() -> str:
    """The machine in words: CPU, cores, Python, NumPy."""
    import numpy
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}")
