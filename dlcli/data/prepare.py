"""From a loaded dataset to train/validation/test splits: class selection, split, encoding.

Everything fitted to data (text vocabularies, standardization statistics) is fitted on
the training split alone, so no validation or test information leaks into training.
Examples stay as their source gives them; the fitted `Encoding` is applied per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dlcli.choices import InputKind, Task
from dlcli.data.cache import available_memory
from dlcli.data.examples import ArrayPool, Encoding, NamedInput, NamedOutput, Pool, Split, Splits, TablePool
from dlcli.data.split import split_indices
from dlcli.errors import DataUnavailable, counted

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig


@dataclass
class RawDataset:
    """A dataset as its source gives it: a fixed train/test split, labels 0..K-1 (or values)."""

    train: Pool
    test: Pool
    class_names: list[str]  # empty for regression
    value_range: float | None = None  # largest raw pixel value, for `normalize`
    validation: Pool | None = None  # a validation set of the source's own (image folders)
    texts: bool = False  # x holds raw strings, vectorized by TextVectorization
    input_columns: list[str] = field(default_factory=list)  # a table's: the text column, or the feature columns
    split_names: tuple[str, str] = ("train", "test")  # as the source names them, in its errors
    output_classes: dict[str, list[str]] = field(default_factory=dict)  # a TablePool's: each output's classes
    named_columns: dict[str, list[str]] = field(default_factory=dict)  # a TablePool's: each input's columns


def checked(raw: RawDataset, where: str) -> RawDataset:
    """What every source hands on, checked once where it enters: inputs and labels of one length,
    at least one example in each split and one feature in each example, inputs of one shape in
    every split, finite values, class labels within the classes. `where` names the source (its
    file, or the dataset); the splits are named as the source names them (`raw.split_names`)."""
    pools = [(raw.split_names[0], raw.train), (raw.split_names[1], raw.test)]
    if raw.validation is not None:
        pools.append(("validation", raw.validation))
    shapes = {}
    for name, pool in pools:
        if len(pool) == 0:
            raise DataUnavailable(f"{where}: the {name} split has no examples; every split needs at least one")
        if isinstance(pool, TablePool):
            shapes[name] = tuple((input_name, x.shape[1:]) for input_name, x in pool.inputs.items())
            for input_name, x in pool.inputs.items():
                _finite(x, f"{where}: the {name} input '{input_name}'", [])
            for output_name, y in pool.targets.items():
                _finite(y, f"{where}: the {name} output '{output_name}'", [])
            continue
        if not isinstance(pool, ArrayPool):
            shapes[name] = tuple(pool.shape)
            continue
        if len(pool.x) != len(pool.labels):
            raise DataUnavailable(
                f"{where}: the {name} split has {len(pool.x)} inputs and {len(pool.labels)} labels; give one label "
                "per input"
            )
        shapes[name] = pool.example_shape
        if pool.x.dtype != object and int(np.prod(pool.example_shape)) == 0:
            raise DataUnavailable(f"{where}: the {name} inputs have no features (each is of shape {pool.example_shape})")
        _finite(pool.x, f"{where}: the {name} inputs", raw.input_columns)
        _finite(pool.labels, f"{where}: the {name} labels", [])
        if raw.class_names and pool.labels.dtype.kind in "iu" and len(pool.labels):
            low, high = int(pool.labels.min()), int(pool.labels.max())
            if low < 0 or high >= len(raw.class_names):
                raise DataUnavailable(
                    f"{where}: the {name} labels run from {low} to {high}; with {len(raw.class_names)} classes they "
                    f"must be 0..{len(raw.class_names) - 1}"
                )
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise DataUnavailable(f"{where}: the splits' inputs differ in shape ({described}); every split needs the same")
    return raw


def non_finite(values: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The rows of `values` (each flattened) that hold NaN or an infinity, and the first such
    row's first bad position; None when every value is finite or the values are not numbers."""
    if values.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(values.reshape(len(values), -1))
    rows = np.flatnonzero(bad.any(axis=1))
    return (rows, int(np.flatnonzero(bad[rows[0]])[0])) if len(rows) else None


def _finite(values: np.ndarray, what: str, columns: list[str]) -> None:
    """Refuse NaN and infinities, naming the first row (and column, for a table) that holds one."""
    found = non_finite(values)
    if found is None:
        return
    rows, column = found
    named = f", column '{columns[column]}'" if len(columns) > column and values.ndim == 2 else ""
    raise DataUnavailable(
        f"{what} hold NaN or infinite values in {counted(len(rows), 'row')} (first: row {rows[0]}{named}, "
        f"{values.reshape(len(values), -1)[rows[0], column]}); fill or remove them"
    )


def _select_classes(raw: RawDataset, config: ExperimentConfig) -> tuple[RawDataset, dict[str, int]]:
    """Keep the classes listed in `dataset.classes`, relabelled 0..K-1 in the order given."""
    wanted = config.dataset.classes
    if not wanted:
        return raw, {}
    indices: list[int] = []
    for position, entry in enumerate(wanted):
        if isinstance(entry, int) and 0 <= entry < len(raw.class_names):
            index = entry
        elif isinstance(entry, str) and entry in raw.class_names:
            index = raw.class_names.index(entry)
        else:
            raise config.error(
                ("dataset", "classes", position),
                f"{config.dataset.name} has no class {entry!r}; its classes are "
                f"0..{len(raw.class_names) - 1} ({', '.join(raw.class_names)})",
            )
        if index in indices:
            raise config.error(("dataset", "classes", position), f"class {entry!r} is listed twice")
        indices.append(index)
    relabel = np.full(len(raw.class_names), -1)
    relabel[indices] = np.arange(len(indices))

    def keep(pool: Pool | None) -> Pool | None:
        if pool is None:
            return None
        chosen = np.flatnonzero(np.isin(pool.labels, indices))
        return pool.subset(chosen, relabel[pool.labels[chosen]])

    selected = RawDataset(
        keep(raw.train), keep(raw.test), [raw.class_names[i] for i in indices],
        raw.value_range, keep(raw.validation), raw.texts, raw.input_columns,
    )
    return selected, {raw.class_names[i]: label for label, i in enumerate(indices)}


def _text_encoding(options, texts: np.ndarray) -> tuple[Encoding, tuple[int, ...]]:
    """A TextVectorization adapted on the training texts, and the shape of what it gives.
    `options`: the dataset's, or a named input's (num_words, encoding, sequence_length)."""
    import keras

    sequence = options.encoding == "sequence"

    def vectorizer(length: int | None, vocabulary=None):
        return keras.layers.TextVectorization(
            max_tokens=options.num_words, output_mode="int" if sequence else options.encoding,
            output_sequence_length=length, vocabulary=vocabulary,
        )

    adapted = vectorizer(options.sequence_length)
    adapted.adapt(texts, batch_size=256)
    length = options.sequence_length
    if sequence and length is None:
        # Batches are vectorized one at a time, so a fixed length is needed: the longest training text.
        length = max(
            int(keras.ops.max(keras.ops.count_nonzero(adapted(texts[start:start + 1024]), axis=1)))
            for start in range(0, len(texts), 1024)
        ) or 1
        adapted = vectorizer(length, adapted.get_vocabulary())
    shape = (length,) if sequence else (adapted.vocabulary_size(),)
    described = f"TextVectorization({options.encoding}, {adapted.vocabulary_size()} tokens)"
    vocabulary_size = adapted.vocabulary_size() if sequence else None
    return Encoding("int32" if sequence else "float32", vectorizer=adapted, vocabulary_size=vocabulary_size,
                    describe=described), shape


def _fit_encoding(raw: RawDataset, config: ExperimentConfig, train: Split) -> tuple[Encoding, tuple[int, ...]]:
    """The encoding of the examples, fitted on the `train` split only, and the input shape it gives."""
    options = config.dataset
    if raw.texts:
        return _text_encoding(config.dataset, train.pool.x[train.indices])
    shape = train.pool.example_shape
    if options.encoding == "sequence":  # word indices from keras.datasets, below num_words
        return Encoding("int32", vocabulary_size=options.num_words), shape
    if options.standardize:
        return _standardized(train.pool.x[train.indices]), shape
    if options.normalize and raw.value_range:
        return Encoding(scale=float(raw.value_range), describe=f"divided by {raw.value_range:g}"), shape
    return Encoding(), shape


def _standardized(x: np.ndarray) -> Encoding:
    mean, std = x.mean(axis=0, dtype="float64"), x.std(axis=0, dtype="float64")
    std[std == 0] = 1.0  # a constant feature stays constant instead of dividing by zero
    return Encoding(mean=mean.astype("float32"), std=std.astype("float32"), describe="standardized")


def _categorical_encoding(spec, cells: np.ndarray) -> tuple[Encoding, tuple[int, ...]]:
    """A StringLookup over the training rows' `column=value` tokens: one-hot per column (a row's
    tokens, one of each column, as one multi-hot vector), or each column's value as an index
    (0: a value not seen in training)."""
    import keras

    one_hot = spec.encoding == "one_hot"
    lookup = keras.layers.StringLookup(output_mode="multi_hot" if one_hot else "int")
    lookup.adapt(cells.reshape(-1))
    size = lookup.vocabulary_size()
    shape = (size,) if one_hot else (cells.shape[1],)
    described = f"StringLookup({spec.encoding}, {size} values)"
    return Encoding("float32" if one_hot else "int32", vectorizer=lookup,
                    vocabulary_size=None if one_hot else size, describe=described), shape


def _named_inputs(config: ExperimentConfig, raw: RawDataset, train: Split) -> dict[str, NamedInput]:
    """Each of `dataset.inputs` with its encoding, fitted on the `train` split only."""
    named = {}
    pool = train.pool
    for name, spec in config.dataset.inputs.items():
        x = pool.inputs[name][train.indices]
        if spec.kind == InputKind.text:
            encoding, shape = _text_encoding(spec, x)
        elif spec.kind == InputKind.categorical:
            encoding, shape = _categorical_encoding(spec, x)
        else:
            encoding, shape = (_standardized(x) if spec.standardize else Encoding()), x.shape[1:]
        named[name] = NamedInput(spec.kind, raw.named_columns[name], encoding, tuple(shape))
    return named


def _with_noise_features(raw: RawDataset, config: ExperimentConfig) -> RawDataset:
    """`dataset.noise_features`: every split's examples flattened, then `count` features appended:
    uniform noise over the values the data takes (seeded), or zeros."""
    spec = config.dataset.noise_features
    if spec is None:
        return raw
    pools = [raw.train, raw.test, *([raw.validation] if raw.validation is not None else [])]
    if raw.texts or not all(isinstance(pool, ArrayPool) for pool in pools):
        raise config.error(
            ("dataset", "noise_features"),
            f"{config.dataset.name} is read {'as texts' if raw.texts else 'from files'}: noise features are "
            "appended to examples held as arrays (mnist_5k, digits, npz, csv features)",
        )
    examples = sum(len(pool) for pool in pools)
    width = int(np.prod(raw.train.example_shape)) + spec.count
    needed = examples * width * max(raw.train.x.dtype.itemsize, 8)  # the noise is drawn as 64-bit numbers
    available = available_memory()
    if needed > available:
        raise config.error(
            ("dataset", "noise_features", "count"),
            f"{spec.count:,} noise features on {examples:,} examples take {needed / 1e9:,.1f} GB of memory, and "
            f"{available / 1e9:,.1f} GB are available: append fewer",
        )
    rng = np.random.default_rng(config.seed)
    low, high = raw.train.x.min(), raw.train.x.max()  # the training examples' range: nothing of the test split

    def widened(pool: ArrayPool) -> ArrayPool:
        x = pool.x.reshape(len(pool), -1)
        shape = (len(pool), spec.count)
        if spec.kind == "zeros":
            extra = np.zeros(shape, x.dtype)
        elif np.issubdtype(x.dtype, np.integer):
            extra = rng.integers(low, high, size=shape, endpoint=True).astype(x.dtype)
        else:
            extra = rng.uniform(low, high, size=shape).astype(x.dtype)
        return ArrayPool(np.concatenate([x, extra], axis=1), pool.labels, pool.rows)

    return RawDataset(
        widened(raw.train), widened(raw.test), raw.class_names, raw.value_range,
        widened(raw.validation) if raw.validation is not None else None, raw.texts, raw.input_columns,
    )


def _with_shuffled_labels(train: Split, config: ExperimentConfig) -> Split:
    """`dataset.shuffle_labels`: the training examples' labels in a seeded random order."""
    if not config.dataset.shuffle_labels:
        return train
    shuffled = np.random.default_rng(config.seed).permutation(train.labels)
    return Split.whole(train.pool.subset(train.indices, shuffled))


def _finish(raw: RawDataset, config: ExperimentConfig, mapping: dict[str, int], train: Split, validation: Split) -> Splits:
    if config.dataset.named:
        inputs = _named_inputs(config, raw, train)
        outputs = {
            name: NamedOutput(spec.label_column or name, raw.output_classes[name], spec.labels == "one_hot")
            for name, spec in config.dataset.outputs.items()
        }
        described = "; ".join(f"{name}: {spec.encoding.describe}" for name, spec in inputs.items())
        return Splits(
            train, validation, Split.whole(raw.test), [], (), Encoding(describe=described),
            input_columns=raw.input_columns, inputs=inputs, outputs=outputs,
        )
    train = _with_shuffled_labels(train, config)
    encoding, input_shape = _fit_encoding(raw, config, train)
    return Splits(
        train, validation, Split.whole(raw.test), raw.class_names, input_shape, encoding,
        one_hot=config.task == Task.classification and config.dataset.labels == "one_hot",
        class_mapping=mapping, value_range=raw.value_range, input_columns=raw.input_columns,
    )


def strata(config: ExperimentConfig, pool: Pool) -> np.ndarray | None:
    """The labels a split keeps in proportion (a classifier's; a named table's first output's), or None."""
    if config.dataset.named:
        first = next(iter(config.dataset.outputs.values()))
        return pool.labels if first.task == Task.classification else None
    return pool.labels if config.task == Task.classification else None


def _classes_selected(raw: RawDataset, config: ExperimentConfig) -> tuple[RawDataset, dict[str, int]]:
    if config.task == Task.classification:
        return _select_classes(raw, config)
    return raw, {}


def prepare(raw: RawDataset, config: ExperimentConfig) -> Splits:
    """Select classes, make the seeded validation split (stratified for classes), fit the encoding."""
    raw, mapping = _classes_selected(raw, config)
    raw = _with_noise_features(raw, config)
    if not config.validates:  # all the training data, a validation folder's too
        pool = raw.train if raw.validation is None else raw.train.concatenate(raw.validation)
        return _finish(raw, config, mapping, Split.whole(pool), Split(pool, np.empty(0, dtype=np.int64)))
    if raw.validation is not None:
        return _finish(raw, config, mapping, Split.whole(raw.train), Split.whole(raw.validation))
    if len(raw.train) < 2:  # the data's size, not the split's: said of the dataset, whose key may be a default
        test_split = getattr(config.dataset, "test_split", None)  # a file's own test split took the rest
        smaller = f", or a smaller dataset.test_split (now {test_split})" if test_split else ""
        raise config.error(("dataset",), f"{counted(len(raw.train), 'training example')} (after the test split) cannot "
                           f"be split into training and validation; use a larger dataset{smaller}")
    try:
        kept, held = split_indices(
            len(raw.train), config.dataset.validation_split, config.seed, strata(config, raw.train),
        )
    except ValueError as error:
        raise config.error(("dataset", "validation_split"), str(error)) from None
    return _finish(raw, config, mapping, Split(raw.train, kept), Split(raw.train, held))


def _check_folds(config: ExperimentConfig, pool) -> None:
    """K folds need K examples, and of every class K for stratified folds: say so before scikit-learn does."""
    k = config.training.kfold
    if len(pool) < k:
        raise config.error(
            ("training", "kfold"), f"{k} folds need at least {k} training examples; the data has {len(pool)}"
        )
    if strata(config, pool) is not None:
        counts = np.bincount(pool.labels, minlength=1)
        present = counts[counts > 0]
        if present.max() < k:
            raise config.error(
                ("training", "kfold"),
                f"{k} folds need {k} examples of a class; the largest class has {present.max()}: use at most "
                f"{int(present.max())} folds",
            )


def prepare_folds(raw: RawDataset, config: ExperimentConfig) -> list[Splits]:
    """`training.kfold` K splits of the training data, each fold validating on a distinct K-th."""
    from sklearn.model_selection import KFold, StratifiedKFold

    raw, mapping = _classes_selected(raw, config)
    raw = _with_noise_features(raw, config)
    pool = raw.train if raw.validation is None else raw.train.concatenate(raw.validation)
    _check_folds(config, pool)
    splitter_class = StratifiedKFold if strata(config, pool) is not None else KFold
    splitter = splitter_class(n_splits=config.training.kfold, shuffle=True, random_state=config.seed)
    return [
        _finish(raw, config, mapping, Split(pool, train), Split(pool, val))
        for train, val in splitter.split(np.zeros(len(pool)), pool.labels)
    ]
