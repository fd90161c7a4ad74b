"""The settings of one training run, as a dataclass that round-trips through JSON.

``lars-ref train --config run.json`` reads a JSON object whose keys are the
field names below; flags given on the command line override it. Every field is
checked by :meth:`TrainConfig.validate`, which raises :class:`ConfigError` with
a message saying what to change.

Schedule (paper Sec. 2-3; Goyal et al. 2017 warm-up; poly decay of power 2)::

    gamma_0 = lr * batch_size / lr_base_batch    (linear scaling, Eq. 2-3; off when
                                                 lr_base_batch is None)
    t < T_w:  gamma_t ramps linearly from warmup_start_lr to gamma_0
    t >= T_w: gamma_t = gamma_0 * (1 - t / T) ** poly_power

with ``T`` the total number of global-batch steps and ``T_w`` the warm-up steps.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from lars_ref.distributed import COMMUNICATORS
from lars_ref.errors import UserError

DTYPES = ("float32", "float64")
INITS = ("auto", "paper", "paper_gain")


class ConfigError(UserError):
    """A user-facing setting is wrong; the message says which and what to do."""


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. Field names are the JSON keys and the flag names."""

    # what to train
    model: str = "alexnet_bn"
    dataset: str = "digits"
    data_dir: str | None = None
    width: float | None = None  # width multiplier of the model (None: its default)
    dropout: float | None = None  # AlexNet drop6/drop7 probability (None: 0.5)
    init: str = "auto"          # AlexNets: "paper" or "paper_gain" (models.alexnet)
    dtype: str = "float32"
    augment: bool = False       # random crop (pad H/8) + flip for 3-channel images
    # optimizer: "sgd", "lars", or a LARS preset name from lars_ref.optim.variants
    optimizer: str = "sgd"
    lr: float = 0.02            # gamma_0, the peak (base) LR at batch_size
    lr_base_batch: int | None = None  # if set, lr is given at this batch, then scaled
    momentum: float = 0.9       # m
    weight_decay: float = 5e-4  # beta (LARS) / lambda (SGD)
    eta: float = 0.001          # LARS trust coefficient
    # schedule (in epochs, or in steps when the *_steps field is set)
    epochs: float | None = 10.0
    steps: int | None = None
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    warmup_start_lr: float = 0.0
    poly_power: float = 2.0
    decay_clock: str = "absolute"  # poly clock: "absolute" (NVCaffe) or "after_warmup"
    # batching
    batch_size: int = 128       # B, the global batch of one optimizer step
    micro_batch: int | None = None  # chunk size; iter_size = B / micro_batch (Caffe)
    # bookkeeping
    seed: int = 0
    backend: str = "numpy"
    out: str = "runs/train"
    log_every: int = 10         # steps between gathers of the logged device scalars
    diag_every: int = 10        # steps between per-layer LARS diagnostics rows
    checkpoint_every: int = 1   # epochs between checkpoints (also written at the end)
    eval_every: int = 1         # epochs between test-set evaluations
    progress: bool = True
    blas_threads: int | None = None  # NumPy BLAS threads while training (None: default)
    # data parallel (docs/distributed.md): B = procs x micro-batches each x micro_batch
    procs: int = 1              # processes; > 1 starts mpiexec (lars-ref train)
    communicator: str = "auto"  # auto, single, mpi, nccl (lars_ref.distributed)

    # ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build a config from a dict, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; "
                              f"valid keys are {', '.join(sorted(known))}")
        values = dict(values)
        if values.get("steps") is not None and "epochs" not in values:
            values["epochs"] = None  # steps alone replaces the default epochs
        return cls(**values)

    @classmethod
    def from_json_file(cls, path: str) -> "TrainConfig":
        """Read a JSON object of settings from ``path``."""
        return cls.from_dict(read_json_object(path))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def iter_size(self) -> int:
        """k, the number of micro-batches per global batch (Caffe ``iter_size``)."""
        return self.batch_size // (self.micro_batch or self.batch_size)

    @property
    def peak_lr(self) -> float:
        """gamma_0 after linear scaling (paper Eq. 2-3): lr * B / base batch."""
        if self.lr_base_batch is None:
            return self.lr
        return self.lr * self.batch_size / self.lr_base_batch

    def validate(self) -> "TrainConfig":
        """Check every setting that does not need the data; return self."""
        _check_positive_int("batch_size", self.batch_size)
        if self.micro_batch is not None:
            _check_positive_int("micro_batch", self.micro_batch)
            if self.batch_size % self.micro_batch:
                raise ConfigError(
                    f"micro_batch {self.micro_batch} does not divide batch_size "
                    f"{self.batch_size}; pick a divisor, e.g. "
                    f"{_largest_divisor_at_most(self.batch_size, self.micro_batch)}")
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("give exactly one of epochs and steps "
                              f"(got epochs={self.epochs}, steps={self.steps})")
        if self.epochs is not None:
            _check_positive_number("epochs", self.epochs)
        if self.steps is not None:
            _check_positive_int("steps", self.steps)
        for name in ("lr", "momentum", "weight_decay", "eta", "warmup_epochs",
                     "warmup_start_lr", "poly_power"):
            _check_non_negative(name, getattr(self, name))
        if self.lr == 0:
            raise ConfigError("lr must be > 0")
        if not self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.lr_base_batch is not None:
            _check_positive_int("lr_base_batch", self.lr_base_batch)
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, "
                              f"got {self.dtype!r}")
        if self.backend not in ("numpy", "cupy", "auto"):
            raise ConfigError("backend must be numpy, cupy or auto, "
                              f"got {self.backend!r}")
        if self.width is not None:
            _check_positive_number("width", self.width)
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, "
                              f"got {self.init!r}")
        if self.decay_clock not in ("absolute", "after_warmup"):
            raise ConfigError("decay_clock must be 'absolute' or 'after_warmup', "
                              f"got {self.decay_clock!r}")
        if self.blas_threads is not None:
            _check_positive_int("blas_threads", self.blas_threads)
        if self.communicator not in COMMUNICATORS:
            raise ConfigError(f"communicator must be one of {', '.join(COMMUNICATORS)}"
                              f", got {self.communicator!r}")
        for name in ("log_every", "diag_every", "checkpoint_every", "eval_every",
                     "procs"):
            _check_positive_int(name, getattr(self, name))
        return self


def read_json_object(path: str) -> dict:
    """Read a JSON object from ``path``; raise :class:`ConfigError` if it is not one."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path!r} is not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path!r} must hold a JSON object, "
                          f"not {type(values).__name__}")
    return values


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_positive_number(name, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _check_non_negative(name, value):
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)
