"""From a loaded dataset to train/validation/test arrays: class selection, split, scaling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig


@dataclass
class RawDataset:
    """A dataset as its source gives it: a fixed train/test split, labels 0..K-1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    value_range: float | None = None  # largest raw feature value, for `normalize`


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

    def describe(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "train": len(self.x_train),
            "validation": len(self.x_val),
            "test": len(self.x_test),
            "classes": self.class_names,
            "class_mapping": self.class_mapping,
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

    def keep(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.isin(y, indices)
        return x[mask], relabel[y[mask]]

    x_train, y_train = keep(raw.x_train, raw.y_train)
    x_test, y_test = keep(raw.x_test, raw.y_test)
    selected = RawDataset(
        x_train, y_train, x_test, y_test, [raw.class_names[i] for i in indices], raw.value_range
    )
    return selected, {raw.class_names[i]: label for label, i in enumerate(indices)}


def prepare(raw: RawDataset, config: ExperimentConfig) -> Splits:
    """Select classes, make the seeded stratified validation split, scale and encode."""
    from sklearn.model_selection import train_test_split

    raw, mapping = _select_classes(raw, config)
    options = config.dataset
    x_train, x_val, y_train, y_val = train_test_split(
        raw.x_train,
        raw.y_train,
        test_size=options.validation_split,
        stratify=raw.y_train,
        random_state=config.seed,
    )
    scale = raw.value_range if options.normalize and raw.value_range else 1.0

    def features(x: np.ndarray) -> np.ndarray:
        return (x / scale).astype("float32")

    def labels(y: np.ndarray) -> np.ndarray:
        y = y.astype("int32")
        if options.labels == "one_hot":
            return np.eye(len(raw.class_names), dtype="float32")[y]
        return y

    return Splits(
        features(x_train), labels(y_train),
        features(x_val), labels(y_val),
        features(raw.x_test), labels(raw.y_test),
        raw.class_names, mapping,
    )
