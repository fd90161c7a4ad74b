"""Grids of runs: the settings of each run, grid files, and run folder names.

A *run spec* is a plain dict of settings: any :class:`~lars_ref.config.TrainConfig`
field (``model``, ``dataset``, ``optimizer``, ``batch_size``, ``lr``,
``warmup_epochs``, ``epochs``, ``seed``, ...) plus the sweep's own keys
:data:`SUBSET_KEYS` (train on N training images, test on M test images: the
first ones, or a random draw with ``subset_seed``). A *grid* describes many specs::

    {"model": "alexnet_bn", "dataset": "mnist", "seed": [0, 1, 2],
     "grid": [{"optimizer": "sgd", "batch_size": [16, 512], "lr": 0.02},
              {"optimizer": "lars", "batch_size": 512, "lr": [5, 10]}]}

Top-level keys hold for every block of ``grid`` (a block may override them);
each list is one axis of a cartesian product. Without ``grid`` the top level is
the only block. Grid files are JSON or TOML (same keys).

Introduced in ``docs/results.md``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os

from lars_ref.config import ConfigError, TrainConfig, read_json_object

SUBSET_KEYS = ("train_subset", "test_subset", "subset_seed")  # see worker.subset
RUNNER_KEYS = ("out", "progress")              # set by the runner, never by a grid
BLOCKS_KEY = "grid"
NAME_PARTS = (("model", ""), ("optimizer", ""), ("batch_size", "B"), ("lr", "lr"),
              ("epochs", "e"), ("seed", "s"))  # the readable part of a run's folder


def setting_names() -> tuple[str, ...]:
    """Every key a grid may set: TrainConfig's fields (less the runner's) + subsets."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    return tuple(name for name in fields if name not in RUNNER_KEYS) + SUBSET_KEYS


def expand_grid(grid: dict, where: str = "the grid") -> list[dict]:
    """All run specs of ``grid`` (see the module docstring), in a stable order."""
    if not isinstance(grid, dict):
        raise ConfigError(f"{where} must be an object of settings")
    shared = {k: v for k, v in grid.items() if k != BLOCKS_KEY}
    blocks = grid.get(BLOCKS_KEY, [{}])
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise ConfigError(f"'{BLOCKS_KEY}' in {where} must be a list of objects")
    specs = []
    for block in blocks:
        settings = {**shared, **block}
        _check_keys(settings, where)
        axes = [value if isinstance(value, list) else [value]
                for value in settings.values()]
        for values in itertools.product(*axes):
            specs.append(dict(zip(settings, values)))
    return specs


def _check_keys(settings: dict, where: str) -> None:
    known = setting_names()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid "
                          f"keys are {', '.join(sorted(known))} and '{BLOCKS_KEY}'")


def read_grid_file(path: str) -> dict:
    """Read a grid from a ``.json`` or ``.toml`` file."""
    if path.endswith(".toml"):
        return _read_toml(path)
    if not path.endswith(".json"):
        raise ConfigError(f"grid file {path!r} must end in .json or .toml")
    return read_json_object(path)


def _read_toml(path: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        raise ConfigError("reading a .toml grid needs Python 3.11 or newer; "
                          "write the grid as .json") from None
    if not os.path.isfile(path):
        raise ConfigError(f"grid file {path!r} does not exist")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"grid file {path!r} is not valid TOML ({err})") from None


def train_config(spec: dict, out_dir: str) -> TrainConfig:
    """The TrainConfig of one run: its settings, output in ``out_dir``, no progress bar.

    Runs of a sweep use one BLAS thread each unless the spec says otherwise
    (``--jobs N`` runs N of them side by side).
    """
    settings = {k: v for k, v in spec.items() if k not in SUBSET_KEYS}
    settings.setdefault("blas_threads", 1)
    return TrainConfig.from_dict({**settings, "out": out_dir, "progress": False})


def run_name(spec: dict) -> str:
    """A folder name, readable and unique: the main settings + a hash of all of them."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    parts = [f"{prefix}{spec[key]}" for key, prefix in NAME_PARTS if key in spec]
    return "-".join(parts + [digest[:8]]).replace("/", "_")
