"""Helpers shared by several test files: a file snapshot and a tiny training run.

Imported as ``from support import ...`` (pytest puts this folder on ``sys.path``).
"""
import hashlib
import os

from lars_ref.config import TrainConfig


def file_snapshot(folder) -> dict:
    """``{relative path: sha256}`` of every file below ``folder`` (to assert nothing changed)."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = hashlib.sha256(
                    handle.read()).hexdigest()
    return found


def tiny_run_config(out, **changes) -> TrainConfig:
    """15 LARS steps of AlexNet-BN on the digits, 2 micro-batches, frequent logging."""
    settings = dict(model="alexnet_bn", dataset="digits", optimizer="lars", lr=1.0,
                    batch_size=128, micro_batch=64, epochs=None, steps=15,
                    warmup_steps=3, log_every=4, diag_every=3, out=str(out),
                    progress=False, blas_threads=1)
    settings.update(changes)
    return TrainConfig(**settings)
