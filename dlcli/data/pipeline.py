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

from dlcli.data.examples import ArrayPool, Encoding, FilePool, Split, Splits, TablePool


class EpochOrder:
    """The shuffled order of each epoch, from `(seed, epoch)` alone; `EpochClock` sets the epoch.

    The epoch is kept in a one-entry lookup table that the stream reads in TensorFlow: no
    Python runs per batch (the input threads would wait for the GIL), and unlike a
    variable, a table stays one plain resource under a tf.distribute strategy.
    """

    def __init__(self, seed: int, epoch: int = 0):
        self.seed = seed
        self._key = tf.constant(0, tf.int64)
        self._table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, default_value=0)
        self.epoch = epoch

    @property
    def epoch(self) -> int:
        return int(self._table.lookup(self._key))

    @epoch.setter
    def epoch(self, epoch: int) -> None:
        self._table.insert(self._key, tf.constant(epoch, tf.int64))

    def positions(self, start: tf.Tensor, stop: tf.Tensor, size: int, visit: tf.Tensor | None = None) -> tf.Tensor:
        """Where positions start..stop-1 of an order are in 0..size-1: a seeded bijection.

        The order is the current epoch's, or with `visit` that visit's of a stream that
        goes round the data again and again (`training.steps_per_epoch`).
        """
        round_number = self._table.lookup(self._key) if visit is None else visit
        seed = tf.stack([tf.constant(self.seed, tf.int64), round_number])
        return tf.random.experimental.index_shuffle(tf.range(start, stop), seed, size - 1)


# The input functions hold no Python control flow: tracing them as written skips AutoGraph's
# conversion, a quarter of a second in every training process.
plain = tf.autograph.experimental.do_not_convert


def decode_pixels(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """An image file's bytes -> its uint8 pixels with `channels` channels, as tf.io.decode_image gives
    them. It decodes a GIF only as RGB, and a BMP and a CMYK JPEG (a print's four inks) as RGB or
    RGBA (asked for grey, it fails on every one): those are decoded as RGB, then made grey as
    tf.image.rgb_to_grayscale weighs the colours, or given an opaque alpha (a GIF has none)."""
    def direct():
        return tf.io.decode_image(contents, channels=channels, expand_animations=False)

    if channels == 3:
        return direct()
    gif = tf.equal(tf.strings.substr(contents, 0, 3), b"GIF")
    if channels == 4:
        rgb_only = gif
    else:
        jpeg = tf.equal(tf.strings.substr(contents, 0, 2), b"\xff\xd8")
        four_inks = tf.cond(jpeg, lambda: tf.equal(tf.io.extract_jpeg_shape(contents)[2], 4), lambda: tf.constant(False))
        bmp = tf.equal(tf.strings.substr(contents, 0, 2), b"BM")
        rgb_only = tf.logical_or(tf.logical_or(gif, bmp), four_inks)

    def converted():
        rgb = tf.io.decode_image(contents, channels=3, expand_animations=False)
        if channels == 1:
            return tf.image.rgb_to_grayscale(rgb)
        opaque = tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], axis=0), tf.constant(255, tf.uint8))
        return tf.concat([rgb, opaque], axis=-1)

    return tf.cond(rgb_only, converted, direct)


def decode_image(path: tf.Tensor, shape: tuple[int, int, int]) -> tf.Tensor:
    """An image file -> uint8 pixels of `shape`, resized as keras.utils.image_dataset_from_directory does."""
    image = decode_pixels(tf.io.read_file(path), shape[2])
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


def _labels(class_names: list[str], one_hot: bool, labels: tf.Tensor) -> tf.Tensor:
    if not class_names:
        return tf.cast(labels, tf.float32)
    if one_hot:
        return tf.one_hot(labels, len(class_names), dtype=tf.float32)
    return tf.cast(labels, tf.int32)


def _batch_indices(split: Split, batch_size: int, order: EpochOrder | None, endless: bool = False):
    """A function: batch number -> indices into the split's pool, in order or shuffled by `order`.

    `endless`: batch numbers run on past the split's end, each visit of the data shuffled anew.
    """
    indices, size = tf.constant(split.indices.astype("int64")), len(split)
    batches = -(-size // batch_size)

    def batch(number):
        visit = number // batches if endless else None
        start = (number % batches if endless else number) * batch_size
        stop = tf.minimum(start + batch_size, size)
        positions = tf.range(start, stop) if order is None else order.positions(start, stop, size, visit)
        return tf.gather(indices, positions)

    return batch


def samples_in_batches(size: int, batch_size: int, first: int, count: int) -> int:
    """How many examples batches first..first+count-1 of an endless stream over `size` examples hold."""
    batches = -(-size // batch_size)
    last_batch = size - (batches - 1) * batch_size
    return sum(last_batch if number % batches == batches - 1 else batch_size for number in range(first, first + count))


# A pool larger than this is gathered in NumPy rather than copied into a TensorFlow
# constant, which would hold the decoded-image memory cache twice.
CONSTANT_POOL_BYTES = 64 * 2**20


def _gatherer(x: np.ndarray):
    """A function: a batch of indices -> those rows of `x` (a pool's examples)."""
    if x.nbytes <= CONSTANT_POOL_BYTES:
        rows = tf.constant(x)
        return lambda indices: tf.gather(rows, indices)
    dtype = tf.string if x.dtype == object else tf.as_dtype(x.dtype)

    def gather(indices):
        chosen = tf.numpy_function(lambda picked: x[picked], [indices], dtype, stateful=False)
        return tf.ensure_shape(chosen, (None, *x.shape[1:]))

    return gather


def stream(
    splits: Splits, name: str, batch_size: int, order: EpochOrder | None = None, prefetch: bool = True,
    first_batch: int | None = None,
) -> tf.data.Dataset:
    """Batches of (model input, label) of split `name`: shuffled per epoch by `order`, else in order.

    `first_batch`: an endless stream from that batch on, going round the data (each visit
    shuffled by its number), for epochs of `training.steps_per_epoch` batches; a resumed
    run starts where its epoch starts.
    """
    split = splits.split(name)
    endless = first_batch is not None
    pool, batch = split.pool, _batch_indices(split, batch_size, order, endless)
    labels = tf.constant(pool.labels)
    batches = -(-len(split) // batch_size)
    numbers = tf.data.Dataset.counter(first_batch) if endless else tf.data.Dataset.range(batches)

    def model_ready(examples, indices):
        return encode(splits.encoding, examples), _labels(splits.class_names, splits.one_hot, tf.gather(labels, indices))

    # Few stages, each a function: tf.data instantiates every one each time an epoch starts.
    if isinstance(pool, TablePool):
        read = _table_reader(splits, pool, batch)
        dataset = numbers.map(plain(read))
    elif isinstance(pool, ArrayPool):
        gather = _gatherer(pool.x)

        def read(number):
            indices = batch(number)
            return model_ready(gather(indices), indices)

        dataset = numbers.map(plain(read))
    else:
        paths, decode = tf.constant(pool.paths.astype(str)), decoder(pool)
        examples = numbers.map(plain(batch)).unbatch().map(
            plain(lambda index: (decode(tf.gather(paths, index)), index)), num_parallel_calls=tf.data.AUTOTUNE,
        )
        dataset = examples.batch(batch_size).map(plain(model_ready))  # the same batches: only the last is short
    if not endless:  # known to Keras, an epoch ends on its last batch instead of running out of data (a warning)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def _table_reader(splits: Splits, pool: TablePool, batch):
    """A function: batch number -> ({input: encoded}, {output: labels}) of a table's named inputs and outputs."""
    gathers = {name: _gatherer(pool.inputs[name]) for name in splits.inputs}
    targets = {name: tf.constant(pool.targets[name]) for name in splits.outputs}

    def read(number):
        indices = batch(number)
        inputs = {name: encode(spec.encoding, gathers[name](indices)) for name, spec in splits.inputs.items()}
        labels = {name: _labels(spec.class_names, spec.one_hot, tf.gather(targets[name], indices))
                  for name, spec in splits.outputs.items()}
        return inputs, labels if len(labels) > 1 else next(iter(labels.values()))  # one output: as Keras takes it

    return read


def raw_examples(pool: FilePool, batch_size: int = 64) -> tf.data.Dataset:
    """Batches of (indices, uint8 pixels) of every file of `pool` in order, decoded in parallel;
    undecodable files are left out (their indices are missing)."""
    decode = decoder(pool)
    dataset = tf.data.Dataset.from_tensor_slices((np.arange(len(pool)), pool.paths.astype(str)))
    dataset = dataset.map(plain(lambda index, path: (index, decode(path))), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.ignore_errors().batch(batch_size).prefetch(2)
