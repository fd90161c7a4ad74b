"""Turn a :class:`~lars_ref.config.TrainConfig` into the objects of a run.

Data (normalised with the training split's statistics), the model, the global
LR schedule (linear scaling, warm-up, poly decay) and the optimizer. Every
mistake in the settings surfaces here as a :class:`~lars_ref.config.ConfigError`
naming the flag, before any training starts; :func:`check_names` finds unknown
names before the data is loaded.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from typing import NamedTuple

import numpy as np

from lars_ref.checkpoint import describe_arrays
from lars_ref.config import ConfigError, TrainConfig
from lars_ref.data import (BatchIterator, DataError, Dataset, channel_stats,
                           dataset_names, eval_transform, load_dataset, train_transform)
from lars_ref.functional.conv_rows import set_conv_workers
from lars_ref.models import MODELS, build_model
from lars_ref.nn import skip_input_grad
from lars_ref.optim import (PRESETS, SGD, WarmupPolySchedule, build_preset,
                            epochs_to_steps)

# Settings that must match for --resume (the others may change, e.g. --epochs).
RESUME_KEYS = ("model", "dataset", "width", "dropout", "dtype", "optimizer",
               "batch_size", "seed", "augment")
# --optimizer lars: Algorithm 1 with the authors' zero-norm rule (NVCaffe: lam = 1
# where ||w|| or ||g|| is 0); the box read literally is the preset "paper_iclr".
LARS_PRESET = "nvcaffe_2017"
LARS_RULE = ("lars: Algorithm 1 with the authors' rule lam = 1 where ||w|| or ||g|| is "
             "0 (NVCaffe), so zero-initialised tensors (BN shifts, biases) train; "
             "--optimizer paper_iclr reads the box literally (they never move)")


@contextlib.contextmanager
def user_input(what: str):
    """Re-raise a ValueError of a library constructor as a ConfigError on ``what``."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{what}: {err}") from None


class Schedule(NamedTuple):
    """The global LR schedule of a run and the step counts it was built from."""
    gamma: WarmupPolySchedule  # t -> gamma_t
    total_steps: int           # T
    warmup_steps: int          # T_w
    steps_per_epoch: int       # floor(N_train / B): only full global batches


def check_names(config: TrainConfig, *, model_given: bool = False) -> None:
    """Reject an unknown model, dataset, optimizer or init, or a --data-dir that is
    a file, before any data is loaded (a name typo costs no loading time)."""
    if not model_given and config.model not in MODELS \
            and not re.fullmatch(r"resnet\d+", config.model):
        raise ConfigError(f"unknown model {config.model!r} (--model); choose one of "
                          f"{', '.join(MODELS)} or resnet<depth>, e.g. resnet20")
    if config.dataset not in dataset_names():
        raise ConfigError(f"unknown dataset {config.dataset!r} (--dataset); choose one "
                          f"of {', '.join(dataset_names())}")
    if config.optimizer not in ("sgd", "lars", *PRESETS):
        raise ConfigError(f"unknown optimizer {config.optimizer!r} (--optimizer); "
                          f"choose sgd, lars, or a LARS preset: {', '.join(PRESETS)}")
    if config.init != "auto" and config.model not in ("alexnet", "alexnet_bn"):
        raise ConfigError(f"--init {config.init} is defined for alexnet and "
                          f"alexnet_bn, not {config.model!r}; use --init auto")
    if (config.data_dir and os.path.isfile(os.path.expanduser(config.data_dir))
            and config.dataset != "image_folder"):
        raise ConfigError(f"--data-dir {config.data_dir} is a file; give the folder "
                          "that holds the datasets (e.g. the one with mnist/ in it)")


def load_data(config: TrainConfig, dataset: Dataset | None = None) -> Dataset:
    """Load ``config.dataset`` (unless given) and check the batch size against it."""
    if dataset is None:
        try:
            dataset = load_dataset(config.dataset, config.data_dir)
        except DataError as err:
            raise ConfigError(_name_the_flags(str(err))) from None
    num_train = len(dataset.x_train)
    if config.batch_size > num_train:
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the "
                          f"{num_train} training images of {config.dataset}; use at "
                          f"most {num_train}")
    return dataset


def _name_the_flags(message: str) -> str:
    """The data loaders speak of ``data_dir=``; on the command line it is --data-dir."""
    message = re.sub(r"\bdata_dir=\.\.\.", "--data-dir DIR", message)
    message = re.sub(r"\bdata_dir=", "--data-dir ", message)
    return re.sub(r"\bdata_dir\b", "--data-dir", message)


def make_batches(config: TrainConfig, dataset: Dataset):
    """The training batch iterator and the normalised test split.

    Returns
    -------
    batches : BatchIterator, global batches ``(B, C, H, W) float32`` (drop_last)
    x_test : (N_test, C, H, W) float32, normalised with the training statistics
    """
    mean, std = channel_stats(dataset.x_train)
    channels, height = dataset.x_train.shape[1:3]
    if config.augment:  # crops of pad H/8 (4 on 32x32); flips only for colour images
        transform = train_transform(mean, std, pad=max(1, height // 8),
                                    flip=channels == 3)
    else:
        transform = eval_transform(mean, std)
    batches = BatchIterator(dataset.x_train, dataset.y_train, config.batch_size,
                            seed=config.seed, shuffle=True, drop_last=True,
                            transform=transform)
    return batches, eval_transform(mean, std)(dataset.x_test)


def make_model(config: TrainConfig, dataset: Dataset, xp):
    """Build ``config.model`` for the dataset's image shape and classes, on ``xp``.

    ``config.init`` is the AlexNets' weight init (see :func:`lars_ref.models.alexnet`);
    other models have one init and accept only "auto".
    """
    options = {} if config.dropout is None else {"dropout": config.dropout}
    if config.model in ("alexnet", "alexnet_bn"):
        options["init"] = config.init
    with user_input(f"model {config.model!r}"):
        model = build_model(config.model, num_classes=len(dataset.classes),
                            in_shape=dataset.x_train.shape[1:], width=config.width,
                            seed=config.seed, dtype=np.dtype(config.dtype), xp=xp,
                            **options)
    skip_input_grad(model)  # training never reads dL/d(images)
    return model


def make_schedule(config: TrainConfig, num_train: int) -> Schedule:
    """Warm-up + poly decay, with the lengths in steps of the global batch B.

    ``gamma_0 = config.peak_lr`` (linear scaling from ``lr_base_batch``, paper
    Eq. 2-3); ``T`` from ``steps`` or ``round(epochs * floor(N / B))``.
    """
    B = config.batch_size
    steps_per_epoch = num_train // B
    with user_input("schedule"):
        if config.steps is not None:
            total = config.steps
        else:
            total = epochs_to_steps(config.epochs, num_train, B, drop_last=True)
        if config.warmup_steps is not None:
            warmup = config.warmup_steps
        else:
            warmup = epochs_to_steps(config.warmup_epochs, num_train, B, drop_last=True)
        if total < 1:
            raise ConfigError(f"--epochs {config.epochs} of {steps_per_epoch} steps "
                              "is no step at all; train longer")
        if warmup > total:
            raise ConfigError(f"warm-up longer than the run: {warmup} warm-up steps "
                              f"(--warmup-epochs/--warmup-steps) > {total} steps "
                              "(--epochs/--steps); shorten the warm-up or train longer")
        gamma = WarmupPolySchedule(config.peak_lr, total_steps=total,
                                   warmup_steps=warmup,
                                   warmup_start_lr=warmup_start_lr(config, warmup),
                                   power=config.poly_power,
                                   decay_clock=config.decay_clock)
    return Schedule(gamma, total, warmup, steps_per_epoch)


def warmup_start_lr(config: TrainConfig, warmup_steps: int) -> float:
    """LR of step 0: the given one, or gamma_0/(T_w+1), so the ramp climbs in T_w+1
    equal rungs, gamma_t = gamma_0 (t+1)/(T_w+1), and step 0 already trains."""
    if config.warmup_start_lr is not None:
        return config.warmup_start_lr
    return config.peak_lr / (warmup_steps + 1)


def make_optimizer(config: TrainConfig, schedule):
    """SGD (paper form, Table 1), LARS (Algorithm 1, authors' zero-norm rule) or a
    LARS preset (``paper_iclr``: the box read literally)."""
    name = config.optimizer
    hyper = dict(momentum=config.momentum, weight_decay=config.weight_decay)
    with user_input(f"--optimizer {name}"):
        if name == "sgd":
            return SGD(schedule, **hyper)
        return build_preset(LARS_PRESET if name == "lars" else name, schedule,
                            eta=config.eta, **hyper)


def describe_optimizer(config: TrainConfig) -> str:
    """One line on the rule in force where a norm is zero (printed once per run)."""
    if config.optimizer == "sgd":
        return "sgd: momentum SGD in the paper's form (lam = 1 for every tensor)"
    if config.optimizer == "lars":
        return LARS_RULE
    return f"{config.optimizer}: {PRESETS[config.optimizer].description}"


def lr_of_line_5(optimizer, t: int) -> float:
    """The global LR that L5 used at step t: gamma_t, or gamma_{t+1} under the v3 box
    as printed (``gamma_index="t+1"``)."""
    options = getattr(optimizer, "options", None)
    offset = 1 if getattr(options, "gamma_index", "t") == "t+1" else 0
    return float(optimizer.schedule(t + offset))


def run_description(config: TrainConfig, model) -> dict:
    """What a checkpoint must agree on to be resumed (see RESUME_KEYS)."""
    description = {key: getattr(config, key) for key in RESUME_KEYS}
    arrays = dict(model.named_parameters()) | dict(model.named_buffers())  # no copy
    description["arrays"] = describe_arrays(arrays)
    return description


def use_given_model(model, config: TrainConfig, xp):
    """Check a user-built model's dtype against the config; move it to ``xp``."""
    dtypes = {str(w.dtype) for _, w in model.named_parameters()}
    if dtypes != {config.dtype}:
        raise ConfigError(f"the given model has {', '.join(sorted(dtypes))} parameters "
                          f"but config.dtype is {config.dtype!r}")
    return model.to(xp)


@contextlib.contextmanager
def progress_bar(config: TrainConfig, total: int, initial: int):
    """A tqdm bar on stderr when it is a terminal and ``config.progress`` is on."""
    from tqdm import tqdm

    enabled = config.progress and sys.stderr.isatty()
    bar = tqdm(total=total, initial=initial, disable=not enabled, unit="step",
               desc=f"{config.model} {config.optimizer} B={config.batch_size}",
               leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


class StopRequest:
    """Set by SIGINT/SIGTERM while training; the loop stops after the current step."""

    signal_name: str | None = None


@contextlib.contextmanager
def stop_signals():
    """Inside the block, SIGINT (Ctrl-C) and SIGTERM ask the training loop to stop
    after the current step (it then writes a checkpoint); a second one stops at once."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # signal handlers can only be set in the main thread
        return

    def ask_to_stop(signum, frame):
        if request.signal_name is not None:
            raise KeyboardInterrupt
        request.signal_name = signal.Signals(signum).name

    previous = {sig: signal.signal(sig, ask_to_stop)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def blas_threads(count: int | None):
    """Run the block on ``count`` threads (None: no change).

    One thread: NumPy's BLAS on one. More: the NumPy convolutions (and channels-last
    batch norm and ReLU) split their work over ``count`` Python threads with the
    BLAS on one thread each (:func:`lars_ref.functional.conv_rows.set_conv_workers`):
    BLAS's own threads synchronise on every small GEMM, and on a busy CPU run up to
    ten times slower (docs/performance.md).
    """
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    set_conv_workers(count)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        set_conv_workers(1)
