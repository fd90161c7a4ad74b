"""The training loop: global batches from micro-batches, evaluation, metrics, resume.

:func:`train` runs one :class:`~lars_ref.config.TrainConfig`. Per optimizer step
it copies one global batch to the device and calls
:func:`~lars_ref.train_step.train_step` (k micro-batches, grads averaged, one
update). The loss and accuracy stay on the device until the end of a logging
interval, when they and the layer statistics are gathered in one copy
(:class:`~lars_ref.metrics.RunRecords`).

Device-to-host copies (the documented count, checked on a strict device double by
``tests/test_host_transfers.py``): none in a step and none in the optimizer; one at
the end of each logging interval; at an epoch end one more for the evaluation and,
when a checkpoint is written, one per parameter, buffer and momentum buffer.

Files written in ``config.out``:

* ``steps.{jsonl,csv}``   per step: step t, epoch, lr (the gamma that L5 used),
  loss, train_acc
* ``epochs.{jsonl,csv}``  per epoch: train loss/accuracy, test loss/accuracy
* ``layers.{jsonl,csv}``  every ``diag_every`` steps, per tensor: ||w||, ||g||, their
  ratio, local LR lambda (1 for SGD), ||update||, ||update||/||w||
  (:mod:`lars_ref.diagnostics`; paper Table 2, Fig. 2)
* ``timings.jsonl``       wall-clock seconds (kept out of the files above, so
  that two runs with one seed write byte-identical metrics)
* ``config.json``, ``checkpoint.npz`` (see :mod:`lars_ref.checkpoint`)

Checkpoints are written every ``checkpoint_every`` epochs, every
``checkpoint_every_steps`` steps and/or ``checkpoint_every_minutes`` minutes, at
the end, and when SIGINT (Ctrl-C) or SIGTERM arrives (after the current step).
A NaN/Inf loss stops the run with a message; the last checkpoint, written
before the divergence, stays untouched.

Introduced in ``notebooks/03_linear_scaling_and_warmup.ipynb``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from lars_ref.backend import resolve_backend, to_device
from lars_ref.checkpoint import (CheckpointError, check_compatible, checkpoint_path,
                                 load_checkpoint, save_checkpoint)
from lars_ref.config import TrainConfig
from lars_ref.data import DataError
from lars_ref.data_parallel import DataParallel
from lars_ref.distributed import world
from lars_ref.metrics import RunRecords, console_line, frozen_warning
from lars_ref.run_folder import prepare_run_folder
from lars_ref.train_setup import (blas_threads, check_names, describe_optimizer,
                                  load_data, lr_of_line_5, make_batches, make_model,
                                  make_optimizer, make_schedule, progress_bar,
                                  run_description, stop_signals, use_given_model)
from lars_ref.train_step import DivergenceError, evaluate, forward_backward, train_step

__all__ = ["train", "TrainResult", "DivergenceError", "forward_backward", "train_step",
           "evaluate", "checkpoint_path"]

CHECKPOINT_KEYS = ("run", "config", "step", "model", "optimizer", "data", "rng",
                   "metrics")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns; ``epochs``, ``steps``, ``layers``: metric rows."""

    config: TrainConfig
    out_dir: str
    steps_done: int
    epochs: list
    steps: list
    layers: list
    diverged: bool = False
    message: str = ""          # why the run stopped early ("" when it ran to the end)
    model: object = None       # the trained model (weights on the run's device)
    optimizer: object = None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a checkpoint was written)

    @property
    def final_test_acc(self):
        """Top-1 test accuracy of the last evaluation (None if there was none)."""
        evaluated = [row for row in self.epochs if row["test_acc"] is not None]
        return evaluated[-1]["test_acc"] if evaluated else None

    def summary(self) -> str:
        acc = self.final_test_acc
        acc_text = "n/a" if acc is None else f"{100 * acc:.2f}%"
        return (f"{self.steps_done} steps, final test top-1 {acc_text}; metrics and "
                f"checkpoint in {self.out_dir}")


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = True,
          dataset=None, model=None, stop_at_step: int | None = None,
          communicator=None) -> TrainResult:
    """Train one model as ``config`` says; write metrics and checkpoints to its ``out``.

    Parameters
    ----------
    config : TrainConfig
        Checked with ``validate()``; mistakes raise ConfigError.
    resume : bool
        Continue from ``<out>/checkpoint.npz``; the final weights equal those
        of an uninterrupted run bit for bit (on the CPU).
    overwrite : bool
        Start over even if ``<out>`` holds a checkpoint (False: refuse, as the
        command line does without ``--overwrite``).
    dataset : lars_ref.data.Dataset, optional
        Use these arrays instead of loading ``config.dataset``.
    model : lars_ref.nn.Module, optional
        Train this model (built on the host, with ``config.dtype`` parameters)
        instead of ``build_model(config.model, ...)``; ``config.model`` then only
        names it in the checkpoint. It is moved to ``config.backend``.
    stop_at_step : int, optional
        Stop once ``t`` optimizer steps are done in total, write a checkpoint and
        return (an interruption on purpose); ``resume=True`` continues.
    communicator : optional
        Data parallel across processes (:mod:`lars_ref.distributed`); default:
        the one the launcher (mpiexec, srun) set up, or a single process.

    Returns
    -------
    TrainResult
    """
    config = config.validate()
    check_names(config, model_given=model is not None)       # before loading anything
    comm = communicator or world(config.communicator, config.backend)
    if comm.rank == 0:  # [data parallel] rank 0 alone touches --out
        prepare_run_folder(config.out, resume=resume, overwrite=overwrite)
    run = Run(config, dataset=dataset, model=model, communicator=comm)
    if resume:
        run.restore()
    else:
        run.start_fresh()
    # [data parallel] several ranks: Ctrl-C ends them all at once (launch.py)
    stops = stop_signals() if comm.size == 1 else contextlib.nullcontext()
    with blas_threads(config.blas_threads), stops as stop_request:
        return run.loop(stop_at_step, stop_request)


class Run:
    """The objects of one run and the bookkeeping between steps (see :func:`train`)."""

    def __init__(self, config: TrainConfig, dataset=None, model=None,
                 communicator=None):
        self.config, self.out_dir = config, config.out
        self.xp = resolve_backend(config.backend)
        # [data parallel] one process (default) or one rank of many: docs/distributed.md
        self.parallel = DataParallel(config, communicator)
        data = load_data(config, dataset)
        self.batches, self.x_test = make_batches(config, data)
        self.batches = self.parallel.shard(self.batches)  # this rank's share
        self.y_test = data.y_test
        self.schedule = make_schedule(config, len(data.x_train))
        self.model = make_model(config, data, self.xp) if model is None else \
            use_given_model(model, config, self.xp)
        self.optimizer = make_optimizer(config, self.schedule.gamma)
        self.records = None          # RunRecords, made once the run starts or resumes
        self.checkpoint_step = None  # t of the last checkpoint written or loaded
        self.checkpoint_time = time.perf_counter()
        self.diverged_at = None      # step whose gathered loss was NaN/Inf
        self.current_epoch = 0       # epoch of the batch of the step in progress

    # ------------------------------------------------------------------ start
    def start_fresh(self) -> None:
        self.records = RunRecords(self.out_dir, self.config.diag_every,
                                  self.parallel.metrics_writer(self.out_dir))
        if self.parallel.is_writer:  # [data parallel] rank 0 alone writes files
            open(os.path.join(self.out_dir, "timings.jsonl"), "w").close()
            self._write_config()

    def restore(self) -> None:
        """Load ``<out>/checkpoint.npz`` after checking it belongs to this run."""
        path = checkpoint_path(self.out_dir)
        state = load_checkpoint(path)
        missing = [key for key in CHECKPOINT_KEYS if key not in state]
        if missing:
            raise CheckpointError(f"{path} is not a lars-ref training checkpoint (it "
                                  f"lacks {', '.join(missing)})")
        check_compatible(state["run"], run_description(self.config, self.model), path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        try:
            self.batches.load_state_dict(state["data"])
        except DataError as err:
            raise CheckpointError(f"cannot resume from {path}: {err}") from None
        for name, module in self.model.named_modules():
            if name in state["rng"]:
                module.load_random_state(state["rng"][name])
        self.records = RunRecords(self.out_dir, self.config.diag_every,
                                  self.parallel.metrics_writer(self.out_dir))
        self.records.writer.load_state_dict(state["metrics"])
        self.checkpoint_step = int(state["step"])
        if self.parallel.is_writer:
            self._write_config()

    def _write_config(self) -> None:
        path = os.path.join(self.out_dir, "config.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.config.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")

    # ------------------------------------------------------------------ loop
    def loop(self, stop_at_step=None, stop_request=None) -> TrainResult:
        T = self.schedule.total_steps
        stop = T if stop_at_step is None else min(stop_at_step, T)
        message, diverged, interrupted = "", False, False
        self._started = time.perf_counter()
        self._say(describe_optimizer(self.config))
        # Overflow on the way to a divergence is reported once, as a DivergenceError.
        with progress_bar(self.config, T, self.optimizer.t) as self.bar, \
                np.errstate(over="ignore", invalid="ignore"):
            try:
                while self.optimizer.t < stop and not _stop_asked(stop_request):
                    self._step()
                    self.bar.update(1)
                interrupted = _stop_asked(stop_request) and self.optimizer.t < T
                self._finish()
            except DivergenceError as err:
                message, diverged = self._diverged(err), True
        if interrupted:
            message = (f"stopped by {stop_request.signal_name} after step "
                       f"{self.optimizer.t} of {T}; the checkpoint is written, "
                       "continue with --resume")
        elif not diverged and stop < T:
            message = (f"stopped after step {stop} of {T} as asked; continue with "
                       "resume=True (lars-ref train --resume)")
        records = self.records.rows
        return TrainResult(self.config, self.out_dir, self.optimizer.t,
                           records["epochs"], records["steps"], records["layers"],
                           diverged, message, self.model, self.optimizer, interrupted)

    def _step(self) -> None:
        """One global batch: host -> device, k micro-batches, one update, metrics."""
        t, epoch = self.optimizer.t, self.batches.epoch
        self.current_epoch = epoch
        x_host, y_host = self.batches.next_batch()
        x = to_device(x_host, self.xp).astype(np.dtype(self.config.dtype), copy=False)
        y = to_device(y_host, self.xp)
        loss, correct = self.parallel.train_step(self.model, self.optimizer, x, y)
        self.records.add_step(t, epoch, lr_of_line_5(self.optimizer, t), loss, correct,
                              self.config.batch_size, self.optimizer.last_stats)
        if (t + 1) % self.config.log_every == 0:
            self._flush()
        if self.batches.epoch != epoch:  # that batch was the last of its epoch
            last = self.optimizer.t == self.schedule.total_steps
            self._end_epoch(epoch + 1, final=last)
        elif self._checkpoint_due():
            self._save()

    def _flush(self) -> None:
        """Gather the queued step and layer scalars (one host copy) and write them."""
        flushed = self.records.flush()
        self._warn_frozen(flushed.layers)
        if flushed.first_bad is not None:
            self.diverged_at = flushed.first_bad["step"]
            raise DivergenceError(f"the loss is {flushed.first_bad['loss']}")
        if flushed.steps:
            last = flushed.steps[-1]
            self.bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{last['lr']:.4g}")

    def _end_epoch(self, epochs_done, final: bool = False) -> None:
        """Epoch row (train means, test score), console line, periodic checkpoint."""
        self._flush()
        config, t = self.config, self.optimizer.t
        test_loss = test_acc = None
        if final or epochs_done % config.eval_every == 0:
            test_loss, test_acc = self.parallel.evaluate(self.model, self.x_test,
                                                         self.y_test)
        row = self.records.add_epoch(epochs_done, t, lr_of_line_5(self.optimizer, t - 1),
                                     test_loss, test_acc)
        wall_s = round(time.perf_counter() - self._started, 3)
        self.records.writer.log_timing({"epoch": epochs_done, "step": t, "wall_s": wall_s})
        self._say(console_line(row, self.schedule.total_steps
                               / self.schedule.steps_per_epoch, wall_s))
        periodic = epochs_done % config.checkpoint_every == 0
        if final or periodic or self._checkpoint_due():
            self._save()

    def _finish(self) -> None:
        """At the end of training (or at a stop): last epoch row, checkpoint."""
        t, T = self.optimizer.t, self.schedule.total_steps
        epoch_rows = self.records.rows["epochs"]
        if t == T and not (epoch_rows and epoch_rows[-1]["step"] == T):
            self._end_epoch(round(T / self.schedule.steps_per_epoch, 6), final=True)
        elif self.checkpoint_step != t:
            self._save()

    def _checkpoint_due(self) -> bool:
        """True when --checkpoint-every-steps or --checkpoint-every-minutes says so."""
        every_steps = self.config.checkpoint_every_steps
        minutes = self.config.checkpoint_every_minutes
        if every_steps and self.optimizer.t % every_steps == 0:
            return True
        return bool(minutes) and \
            time.perf_counter() - self.checkpoint_time >= 60 * minutes

    def _save(self) -> None:
        self._flush()  # raises DivergenceError before a bad state is written
        model = self.model
        rngs = {name: module.random_state() for name, module in model.named_modules()
                if hasattr(module, "random_state")}
        state = {"run": run_description(self.config, model),
                 "config": self.config.to_dict(), "step": self.optimizer.t,
                 "model": model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "data": self.batches.state_dict(), "rng": rngs,
                 "metrics": self.records.writer.state_dict()}
        assert tuple(state) == CHECKPOINT_KEYS
        if self.parallel.is_writer:  # every rank holds the same global state
            save_checkpoint(checkpoint_path(self.out_dir), state)
        self.checkpoint_step = self.optimizer.t
        self.checkpoint_time = time.perf_counter()

    def _diverged(self, err: DivergenceError) -> str:
        """Log the failed step as NaN, keep the last checkpoint, return the message."""
        with contextlib.suppress(DivergenceError):
            self._flush()
        t = self.optimizer.t if self.diverged_at is None else self.diverged_at
        lr = lr_of_line_5(self.optimizer, t)
        self.records.writer.write("steps", [{"step": t, "epoch": self.current_epoch, "lr": lr,
                                      "loss": float("nan"), "train_acc": float("nan")}])
        if self.checkpoint_step is None:
            kept = "no checkpoint was written before it"
        else:
            kept = (f"the last good checkpoint (step {self.checkpoint_step}) is kept "
                    f"in {checkpoint_path(self.out_dir)}")
        return (f"training diverged at step {t} (lr {lr:.4g}): {err}; {kept}. Lower "
                "the learning rate, lengthen the warm-up, or use LARS")

    # ------------------------------------------------------------------ console
    def _say(self, line: str) -> None:
        """One line on stdout (above the progress bar) when ``config.console`` is on."""
        if self.config.console and self.parallel.is_writer:
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()  # a log file or a pipe sees each line at once

    def _warn_frozen(self, layer_rows) -> None:
        """Once, at step 0: name the tensors that the zero-norm rule keeps frozen."""
        warning = frozen_warning(layer_rows, self.config.optimizer)
        if warning and self.config.console and self.parallel.is_writer:
            print(f"lars-ref: warning: {warning}", file=sys.stderr, flush=True)


def _stop_asked(stop_request) -> bool:
    return stop_request is not None and stop_request.signal_name is not None
