"""A seeded, resumable mini-batch iterator over host arrays.

Randomness is *counter-based*: the sample order of epoch ``e`` is a permutation
drawn from ``numpy.random.default_rng([seed, 0, e])``, and the generator handed
to the transform (augmentation) for batch ``k`` of epoch ``e`` is
``default_rng([seed, 1, e, k])``. No random state is carried from batch to
batch, so ``(seed, epoch, position)`` *is* the complete state: a run restored
from :meth:`BatchIterator.state_dict` continues with exactly the batches, and
the augmentations, that the uninterrupted run would have produced.

Introduced in ``docs/architecture.md`` ("Data") and README.md ("Data").
"""
from __future__ import annotations

import numpy as np

from lars_ref.data.errors import DataError

SHUFFLE_STREAM = 0  # first word after the seed: which random stream
AUGMENT_STREAM = 1
CONFIG_KEYS = ("seed", "num_samples", "batch_size", "shuffle", "drop_last")


class BatchIterator:
    """Mini-batches ``(x_batch, y_batch)`` of a dataset split, epoch after epoch.

    Parameters
    ----------
    x : (N, C, H, W) or (N, D) host array, any real dtype
    y : (N,) int labels
    batch_size : B, 1 <= B (and B <= N when ``drop_last``)
    seed : int, selects the shuffles and the augmentation draws
    shuffle : draw a new sample order each epoch (else 0..N-1)
    drop_last : skip the final partial batch of an epoch (else yield it, smaller)
    transform : optional ``f(x_batch, rng) -> x_batch``, e.g.
        :func:`lars_ref.data.augment.train_transform`

    Attributes
    ----------
    epoch : int, the epoch the next batch comes from (0-based)
    position : int, how many samples of that epoch were already yielded

    Each batch is ``x_batch: (b, ...) float32`` and ``y_batch: (b,) int64``, new
    host arrays (without a transform, pixels are converted but not scaled).
    Over one epoch every sample appears exactly once (or once, except the
    ``N mod B`` left over, with ``drop_last``).
    """

    def __init__(self, x, y, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = False, transform=None):
        if len(x) != len(y):
            raise DataError(f"BatchIterator: x {np.shape(x)} and y {np.shape(y)} have "
                            "different numbers of samples")
        if batch_size < 1 or (drop_last and batch_size > len(x)):
            raise DataError(f"BatchIterator: batch_size={batch_size} with {len(x)} "
                            f"samples and drop_last={drop_last} gives no batch")
        self.x, self.y = x, np.asarray(y, dtype=np.int64)
        self.config = dict(seed=int(seed), num_samples=len(x),
                           batch_size=int(batch_size), shuffle=bool(shuffle),
                           drop_last=bool(drop_last))
        self.transform = transform
        self.epoch, self.position = 0, 0
        self._order_epoch, self._order = None, None

    def __len__(self) -> int:
        """Batches per epoch."""
        N, B = self.config["num_samples"], self.config["batch_size"]
        return N // B if self.config["drop_last"] else -(-N // B)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The sample indices of ``epoch`` in the order they are served: (N,) int64."""
        if self._order_epoch != epoch:
            N = self.config["num_samples"]
            rng = np.random.default_rng([self.config["seed"], SHUFFLE_STREAM, epoch])
            self._order = rng.permutation(N) if self.config["shuffle"] else np.arange(N)
            self._order_epoch = epoch
        return self._order

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the next batch and advance; rolls over into the next epoch."""
        B = self.config["batch_size"]
        indices = self.epoch_order(self.epoch)[self.position:self.position + B]
        x_batch = self.x[indices]
        if self.transform is not None:
            batch_index = self.position // B
            rng = np.random.default_rng(
                [self.config["seed"], AUGMENT_STREAM, self.epoch, batch_index])
            x_batch = self.transform(x_batch, rng)
        self.position += len(indices)
        epoch_end = min(len(self) * B, self.config["num_samples"])
        if self.position >= epoch_end:
            self.epoch, self.position = self.epoch + 1, 0
        return np.asarray(x_batch, dtype=np.float32), self.y[indices]

    def __iter__(self):
        """Yield the remaining batches of the current epoch (all, from its start)."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    def state_dict(self) -> dict:
        """Plain ints and bools: the position plus the settings it depends on."""
        return dict(self.config, epoch=self.epoch, position=self.position)

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``; the settings must match this iterator's.

        Raises
        ------
        DataError
            A setting differs (another seed, dataset size, batch size, ...) or
            the position is not the start of a batch of this epoch.
        """
        differ = {k: (state.get(k), self.config[k]) for k in CONFIG_KEYS
                  if state.get(k) != self.config[k]}
        if differ:
            listed = ", ".join(f"{k}={a!r} vs {b!r}" for k, (a, b) in differ.items())
            raise DataError("BatchIterator.load_state_dict: the saved state was made "
                            f"with other settings (saved vs here): {listed}")
        epoch, position = int(state["epoch"]), int(state["position"])
        B = self.config["batch_size"]
        if epoch < 0 or position < 0 or position % B or position >= len(self) * B:
            raise DataError(f"BatchIterator.load_state_dict: epoch={epoch}, "
                            f"position={position} is not the start of a batch "
                            f"(B={B}, {len(self)} batches per epoch)")
        self.epoch, self.position = epoch, position
