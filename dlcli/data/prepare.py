"""From a loaded dataset to train/validation/test arrays: class selection, split, encoding.

Everything fitted to data (text vocabularies, standardization statistics) is fitted on
the training split alone, so no validation or test information leaks into training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dlcli.data.split import split_arrays

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig


@dataclass
class RawDataset:
    """A dataset as its source gives it: a fixed train/test split, labels 0..K-1 (or values)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]  # empty for regression
    value_range: float | None = None  # largest raw pixel value, for `normalize`
    x_val: np.ndarray | None = None  # a validation set of the source's own (image folders)
    y_val: np.ndarray | None = None
    texts: bool = False  # x holds raw strings, vectorized by TextVectorization


@dataclass
class Splits:
    """What training and evaluation consume."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    class_mapping: dict[str, int] = field(default_factory=dict)  # source class -> label

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the 'test' or 'validation' split."""
        return (self.x_test, self.y_test) if split == "test" else (self.x_val, self.y_val)

    def fingerprint(self, split: str) -> str:
        """A hash of the `split` ('validation' or 'test') arrays: the same samples, in the same order."""
        digest = hashlib.sha256()
        for array in self.arrays(split):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "train": len(self.x_train),
            "validation": len(self.x_val),
            "test": len(self.x_test),
            "classes": self.class_names,
            "class_mapping": self.class_mapping,
            "fingerprints": {split: self.fingerprint(split) for split in ("validation", "test")},
        }


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

    def keep(x: np.ndarray | None, y: np.ndarray | None):
        if x is None:
            return None, None
        mask = np.isin(y, indices)
        return x[mask], relabel[y[mask]]

    x_train, y_train = keep(raw.x_train, raw.y_train)
    x_test, y_test = keep(raw.x_test, raw.y_test)
    x_val, y_val = keep(raw.x_val, raw.y_val)
    selected = RawDataset(
        x_train, y_train, x_test, y_test, [raw.class_names[i] for i in indices],
        raw.value_range, x_val, y_val, raw.texts,
    )
    return selected, {raw.class_names[i]: label for label, i in enumerate(indices)}


def _fit_features(raw: RawDataset, config: ExperimentConfig, x_train: np.ndarray):
    """A function that encodes features, fitted on `x_train` only."""
    options = config.dataset
    if raw.texts:
        import keras

        vectorizer = keras.layers.TextVectorization(
            max_tokens=options.num_words,
            output_mode="int" if options.encoding == "sequence" else options.encoding,
            output_sequence_length=options.sequence_length,
        )
        vectorizer.adapt(x_train, batch_size=256)
        dtype = "int32" if options.encoding == "sequence" else "float32"
        return lambda x: keras.ops.convert_to_numpy(vectorizer(x)).astype(dtype)
    scale = raw.value_range if options.normalize and raw.value_range else 1.0
    if options.standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # a constant feature stays constant instead of dividing by zero
        return lambda x: ((x - mean) / std).astype("float32")
    return lambda x: (x / scale).astype("float32")


def _finish(
    raw: RawDataset, config: ExperimentConfig, mapping: dict[str, int],
    train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
) -> Splits:
    encode = _fit_features(raw, config, train[0])
    classification = config.task == "classification"

    def labels(y: np.ndarray) -> np.ndarray:
        if not classification:
            return y.astype("float32")
        y = y.astype("int32")
        if config.dataset.labels == "one_hot":
            return np.eye(len(raw.class_names), dtype="float32")[y]
        return y

    return Splits(
        encode(train[0]), labels(train[1]),
        encode(val[0]), labels(val[1]),
        encode(raw.x_test), labels(raw.y_test),
        raw.class_names, mapping,
    )


def _classes_selected(raw: RawDataset, config: ExperimentConfig) -> tuple[RawDataset, dict[str, int]]:
    if config.task == "classification":
        return _select_classes(raw, config)
    return raw, {}


def prepare(raw: RawDataset, config: ExperimentConfig) -> Splits:
    """Select classes, make the seeded validation split (stratified for classes), encode."""
    raw, mapping = _classes_selected(raw, config)
    if raw.x_val is not None:
        return _finish(raw, config, mapping, (raw.x_train, raw.y_train), (raw.x_val, raw.y_val))
    try:
        x_train, x_val, y_train, y_val = split_arrays(
            raw.x_train, raw.y_train, config.dataset.validation_split, config.seed,
            stratify=config.task == "classification",
        )
    except ValueError as error:
        raise config.error(("dataset", "validation_split"), f"{error}; use a larger dataset") from None
    return _finish(raw, config, mapping, (x_train, y_train), (x_val, y_val))


def prepare_folds(raw: RawDataset, config: ExperimentConfig) -> list[Splits]:
    """`training.kfold` K splits of the training data, each fold validating on a distinct K-th."""
    from sklearn.model_selection import KFold, StratifiedKFold

    raw, mapping = _classes_selected(raw, config)
    x, y = raw.x_train, raw.y_train
    if raw.x_val is not None:
        x, y = np.concatenate([x, raw.x_val]), np.concatenate([y, raw.y_val])
    splitter_class = StratifiedKFold if config.task == "classification" else KFold
    splitter = splitter_class(n_splits=config.training.kfold, shuffle=True, random_state=config.seed)
    return [
        _finish(raw, config, mapping, (x[train], y[train]), (x[val], y[val]))
        for train, val in splitter.split(x, y)
    ]
