"""NumPy arrays -> tf.data pipelines for `fit` and `evaluate`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_pipeline(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None,
    cache: bool = True, prefetch: bool = True,
) -> tf.data.Dataset:
    """Batches of (x, y), reshuffled every epoch from `shuffle_seed` when one is given.

    `cache` keeps the sliced tensors after the first epoch; `prefetch` prepares the next
    batches while the current ones train.
    """
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset
