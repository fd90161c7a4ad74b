"""The settings of one training run, as a dataclass that round-trips through JSON.

Every field is written once, here: its name (the JSON key and, with dashes, the
flag of ``lars-ref train``), its type, its default and its help text (the field's
``metadata``). :mod:`lars_ref.train_command` builds the flags from these fields,
so a setting cannot exist in one place and be missing in the other.
``lars-ref train --config run.json`` reads a JSON object with the same keys;
flags given on the command line override it. :meth:`TrainConfig.validate`
checks every field and raises :class:`ConfigError` saying what to change.

Schedule (paper Sec. 2-3; Goyal et al. 2017 warm-up; Algorithm 1 L3 poly decay)::

    gamma_0 = linear_scaling(lr, batch_size, lr_base_batch)  (Eq. 2-3; off when
                                                             lr_base_batch is None)
    t < T_w:  gamma_t ramps linearly from warmup_start_lr to gamma_0
    t >= T_w: gamma_t = gamma_0 * (1 - t / T) ** poly_power       (absolute clock)

with ``T`` the total number of global-batch steps and ``T_w`` the warm-up steps
(``docs/schedules.md``: why the LR steps down at ``T_w`` on the absolute clock,
and why the ramp does not start at 0).

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from lars_ref.backend import BACKEND_NAMES
from lars_ref.checks import (check_choice, check_eta, check_lr, check_momentum,
                             check_weight_decay)
from lars_ref.distributed import COMMUNICATORS
from lars_ref.errors import UserError
from lars_ref.models import ALEXNET_INITS
from lars_ref.optim.schedules import DECAY_CLOCKS, linear_scaling

DTYPES = ("float32", "float64")
INITS = ("auto", *ALEXNET_INITS)  # auto: the model's choice for its input size


class ConfigError(UserError):
    """A user-facing setting is wrong; the message says which and what to do."""


def setting(default, help: str, choices: tuple | None = None):
    """A dataclass field carrying its flag's help text (and choices) in ``metadata``."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. Field names are the JSON keys and the flag names."""

    # what to train
    model: str = setting("alexnet_bn", "alexnet, alexnet_bn, resnet20, resnet<depth>")
    dataset: str = setting("digits", "digits (built in), mnist, fashion_mnist, "
                                     "cifar10, cifar10_jpg, image_folder")
    data_dir: str | None = setting(None, "folder that holds the datasets "
                                         "(default: $LARS_REF_DATA)")
    width: float | None = setting(
        None, "multiplier of the paper's layer widths (AlexNet 96-256-384-384-256 and "
              "4096-4096, ResNet 16-32-64): 0.5 builds half of each. auto: 1 at the "
              "paper's input size and for ResNets, 1/16 for AlexNets on small images. "
              "A fraction such as 1/16 is accepted (default: auto)")
    dropout: float | None = setting(None, "AlexNet drop6/drop7 probability "
                                          "(default: the paper's 0.5)")
    init: str = setting(
        "auto", "AlexNet weight init. paper: the authors' Gaussian stds verbatim; "
                "paper_gain: those stds scaled to the paper network's "
                "std*sqrt(fan_in); he: sqrt(2/fan_in) up to fc7, so that plain SGD "
                "trains the small AlexNet with LRN; auto: paper at the paper's size, "
                "for small inputs he (alexnet) or paper_gain (alexnet_bn)", INITS)
    dtype: str = setting("float32", "floating-point type of weights and images", DTYPES)
    augment: bool = setting(False, "random crops (pad H/8) and flips (colour images)")
    # optimizer
    optimizer: str = setting(
        "sgd", "sgd; lars (Algorithm 1 with the authors' lam = 1 where ||w|| or ||g|| "
               "is 0); paper_iclr (the box read literally: such tensors never move); "
               "or any LARS preset (see `lars-ref crosscheck --help`)")
    lr: float = setting(0.02, "peak learning rate gamma_0 at --batch-size")
    lr_base_batch: int | None = setting(
        None, "scale --lr linearly (paper Eq. 2-3): gamma_0 = lr * batch-size / "
              "lr-base-batch")
    momentum: float = setting(0.9, "momentum m")
    weight_decay: float = setting(5e-4, "weight decay beta")
    eta: float = setting(0.001, "LARS trust coefficient eta")
    # schedule (in epochs, or in steps when the *_steps field is set)
    epochs: float | None = setting(10.0, "length of training in epochs")
    steps: int | None = setting(None, "length of training in optimizer steps "
                                      "(replaces --epochs)")
    warmup_epochs: float = setting(0.0, "linear warm-up length in epochs")
    warmup_steps: int | None = setting(None, "linear warm-up length in steps "
                                             "(replaces --warmup-epochs)")
    warmup_start_lr: float | None = setting(
        None, "LR of step 0 when there is a warm-up; default: gamma_0/(T_w+1), one "
              "rung of an even ramp, so that step 0 already trains (0 wastes it)")
    poly_power: float = setting(2.0, "power p of the poly decay (1 - t/T)^p, "
                                     "Algorithm 1 L3")
    decay_clock: str = setting(
        "absolute", "absolute: the decay counts t from 0 as the authors' NVCaffe did, "
                    "so the LR steps down at the end of warm-up (to gamma_0 "
                    "(1-T_w/T)^p); "
                    "after_warmup: the decay starts at T_w, no step", DECAY_CLOCKS)
    # batching
    batch_size: int = setting(128, "global batch B of one optimizer step")
    micro_batch: int | None = setting(
        None, "size of the chunks that build B (Caffe iter_size = B / micro-batch)")
    # bookkeeping
    seed: int = setting(0, "seed of the init, the data order and the augmentation")
    backend: str = setting("numpy", "array backend; cupy runs on a GPU", BACKEND_NAMES)
    out: str = setting("runs/train", "output folder: metrics, config.json, checkpoint")
    log_every: int = setting(10, "steps between gathers of the logged loss")
    diag_every: int = setting(10, "steps between per-layer LARS diagnostics rows")
    checkpoint_every: int = setting(1, "epochs between checkpoints (one is also "
                                       "written at the end and on Ctrl-C)")
    checkpoint_every_steps: int | None = setting(
        None, "also write a checkpoint every this many steps")
    checkpoint_every_minutes: float | None = setting(
        None, "also write a checkpoint when this many minutes passed since the last")
    eval_every: int = setting(1, "epochs between test-set evaluations")
    progress: bool = setting(True, "a progress bar when stderr is a terminal")
    console: bool = setting(True, "one line per epoch (loss, accuracies, LR, seconds) "
                                  "and a note on the LARS zero-norm rule on stdout")
    blas_threads: int | None = setting(
        None, "CPU threads of a NumPy step: above 1, the convolutions, batch norm and "
              "ReLU run on that many Python threads with BLAS on one each (1 is "
              "fastest on a busy machine; default: BLAS's own threads)")
    # data parallel (docs/distributed.md): B = procs x micro-batches each x micro_batch
    procs: int = setting(1, "processes of a data-parallel run; more than 1 starts "
                            "mpiexec (docs/distributed.md)")
    communicator: str = setting(
        "auto", "how the processes talk: mpi (mpi4py), nccl (GPUs), single; auto: "
                "single without a launcher, nccl for cupy, else mpi", COMMUNICATORS)

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
        return linear_scaling(self.lr, self.batch_size, self.lr_base_batch)

    def validate(self) -> "TrainConfig":
        """Check every setting that does not need the data; return self."""
        self._check_batching()
        self._check_length()
        self._check_hyperparameters()
        self._check_choices()
        self._check_bookkeeping()
        return self

    def _check_batching(self) -> None:
        _check_positive_int("batch_size", self.batch_size)
        if self.micro_batch is None:
            return
        _check_positive_int("micro_batch", self.micro_batch)
        if self.batch_size % self.micro_batch:
            raise ConfigError(
                f"--micro-batch {self.micro_batch} does not divide --batch-size "
                f"{self.batch_size}; pick a divisor, e.g. "
                f"{_largest_divisor_at_most(self.batch_size, self.micro_batch)}")

    def _check_length(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("give exactly one of --epochs and --steps "
                              f"(got epochs={self.epochs}, steps={self.steps})")
        if self.epochs is not None:
            _check_positive_number("epochs", self.epochs)
        if self.steps is not None:
            _check_positive_int("steps", self.steps)
        if self.warmup_steps is not None and (
                not isinstance(self.warmup_steps, int) or self.warmup_steps < 0):
            raise ConfigError(f"--warmup-steps must be an integer >= 0, got "
                              f"{self.warmup_steps!r}")

    def _check_hyperparameters(self) -> None:
        for name in ("lr", "momentum", "weight_decay", "eta", "warmup_epochs",
                     "poly_power", "warmup_start_lr"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name))
        check_lr(self.lr, "--lr", positive=True, error=ConfigError)
        if self.warmup_start_lr is not None:
            check_lr(self.warmup_start_lr, "--warmup-start-lr", error=ConfigError)
        check_momentum(self.momentum, "--momentum", error=ConfigError)
        check_weight_decay(self.weight_decay, "--weight-decay", error=ConfigError)
        check_eta(self.eta, "--eta", error=ConfigError)
        _check_non_negative("warmup_epochs", self.warmup_epochs)
        _check_positive_number("poly_power", self.poly_power)
        if self.lr_base_batch is not None:
            _check_positive_int("lr_base_batch", self.lr_base_batch)
        if self.width is not None:
            _check_positive_number("width", self.width)
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")

    def _check_choices(self) -> None:
        for field in dataclasses.fields(self):
            if field.metadata.get("choices"):
                check_choice(getattr(self, field.name), field.metadata["choices"],
                             flag_name(field.name), error=ConfigError)

    def _check_bookkeeping(self) -> None:
        for name in ("log_every", "diag_every", "checkpoint_every", "eval_every",
                     "procs"):
            _check_positive_int(name, getattr(self, name))
        for name in ("blas_threads", "checkpoint_every_steps"):
            if getattr(self, name) is not None:
                _check_positive_int(name, getattr(self, name))
        if self.checkpoint_every_minutes is not None:
            _check_positive_number("checkpoint_every_minutes",
                                   self.checkpoint_every_minutes)
        if not isinstance(self.out, str) or not self.out:
            raise ConfigError(f"--out must name a folder, got {self.out!r}")


def flag_name(field_name: str) -> str:
    """The command-line flag of a setting: ``data_dir`` -> ``--data-dir``."""
    return "--" + field_name.replace("_", "-")


def read_json_object(path: str) -> dict:
    """Read a JSON object from ``path``; raise :class:`ConfigError` if it is not one."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config file {path!r} is not valid JSON ({err})") from None
    except OSError as err:
        raise ConfigError(f"cannot read --config file {path!r}: "
                          f"{err.strerror}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config file {path!r} must hold a JSON object, "
                          f"not {type(values).__name__}")
    return values


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{flag_name(name)} must be a positive integer, "
                          f"got {value!r}")


def _check_positive_number(name, value):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"{flag_name(name)} must be a positive number, got {value!r}")


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{flag_name(name)} must be a number, got {value!r}")


def _check_non_negative(name, value):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ConfigError(f"{flag_name(name)} must be a finite number >= 0, "
                          f"got {value!r}")


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)
