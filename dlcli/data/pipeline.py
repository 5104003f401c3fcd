"""Splits -> tf.data streams for `fit`, `evaluate` and `predict`.

A training stream visits its examples in an order that is a pure function of the seed
and the epoch number (`EpochOrder`), whatever the source, so an epoch resumed after an
interruption sees exactly the batches it would have seen. Examples are read per batch:
array rows gathered, image files decoded and resized in parallel, then encoded
(`Encoding`) — pixels become float32 only a batch at a time.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dlcli.data.examples import ArrayPool, Encoding, FilePool, Split, Splits


class EpochOrder:
    """The shuffled order of each epoch, from `(seed, epoch)` alone; `epoch` is set by `EpochClock`."""

    def __init__(self, seed: int, epoch: int = 0):
        self.seed = seed
        self.epoch = epoch

    def permutation(self, size: int) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(size)


def decode_image(path: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """An image file -> uint8 pixels of `shape`, resized as keras.utils.image_dataset_from_directory does."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=shape[2], expand_animations=False)
    resized = tf.image.resize(image, shape[:2])  # bilinear, as Keras's loader
    pixels = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return tf.ensure_shape(pixels, shape)


def decode_raw(path: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """A file of the disk cache -> its uint8 pixels."""
    return tf.reshape(tf.io.decode_raw(tf.io.read_file(path), tf.uint8), shape)


def decoder(pool: FilePool):
    decode = decode_image if pool.encoding == "image" else decode_raw
    return lambda path: decode(path, pool.shape)


def encode(encoding: Encoding, x: tf.Tensor) -> tf.Tensor:
    """A batch of raw examples -> the model's input, as `encoding` was fitted."""
    if encoding.vectorizer is not None:
        x = encoding.vectorizer(x)
    x = tf.cast(x, encoding.dtype)
    if encoding.mean is not None:
        return (x - encoding.mean) / encoding.std
    if encoding.scale != 1.0:
        return x / encoding.scale
    return x


def _labels(splits: Splits, labels: tf.Tensor) -> tf.Tensor:
    if not splits.class_names:
        return tf.cast(labels, tf.float32)
    if splits.one_hot:
        return tf.one_hot(labels, splits.num_classes, dtype=tf.float32)
    return tf.cast(labels, tf.int32)


def _index_batches(split: Split, batch_size: int, order: EpochOrder | None) -> tf.data.Dataset:
    """Batches of indices into the split's pool: in the split's order, or shuffled by `order`."""
    indices = split.indices
    if order is None:
        dataset = tf.data.Dataset.from_tensor_slices(indices.astype("int64"))
    else:
        # Read when each epoch's iterator starts, after EpochClock has set the epoch.
        dataset = tf.data.Dataset.from_generator(
            lambda: (indices[order.permutation(len(indices))],),
            output_signature=tf.TensorSpec([len(indices)], tf.int64),
        ).unbatch()
    return dataset.batch(batch_size)


def _read(split: Split, batches: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Index batches -> (raw examples, labels) batches."""
    pool = split.pool
    labels = tf.constant(pool.labels)
    if isinstance(pool, ArrayPool):
        x = pool.x
        # Rows are gathered in NumPy: a large pool is never copied into a TensorFlow constant.
        dtype = tf.string if x.dtype == object else tf.as_dtype(x.dtype)

        def gather(indices):
            rows = tf.numpy_function(lambda chosen: x[chosen], [indices], dtype, stateful=False)
            rows = tf.ensure_shape(rows, (None, *x.shape[1:]))
            return rows, tf.gather(labels, indices)

        return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    paths = tf.constant(pool.paths.astype(str))
    decode = decoder(pool)
    examples = batches.unbatch().map(
        lambda index: (decode(tf.gather(paths, index)), tf.gather(labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return examples.batch(batch_size)  # the same batches: only an epoch's last one is short


def stream(
    splits: Splits, name: str, batch_size: int, order: EpochOrder | None = None, prefetch: bool = True,
) -> tf.data.Dataset:
    """Batches of (model input, label) of split `name`: shuffled per epoch by `order`, else in order."""
    split = splits.split(name)
    raw = _read(split, _index_batches(split, batch_size, order), batch_size)
    dataset = raw.map(lambda x, y: (encode(splits.encoding, x), _labels(splits, y)), num_parallel_calls=tf.data.AUTOTUNE)
    # Known to Keras, an epoch ends on its last batch instead of on running out of data (with a warning).
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-len(split) // batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def raw_examples(pool: FilePool) -> tf.data.Dataset:
    """(index, uint8 pixels) of every file of `pool`, decoded in parallel; undecodable files are left out."""
    decode = decoder(pool)
    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(pool)), pool.paths.astype(str)))
    dataset = dataset.map(lambda index, path: (index, decode(path)), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.ignore_errors().batch(64).prefetch(2)
