"""Pools of examples, and splits drawn from them: what the data layer hands to training.

A pool holds a dataset's examples in one of two forms: arrays in memory in their compact
dtype (uint8 pixels, raw strings, small tables), or a list of files decoded on the fly
(image files, or the raw pixels of the disk cache). A split is a pool and the indices of
its examples, so a training and a validation split drawn from one folder share one
cache. Nothing here imports TensorFlow: `dlcli.data.pipeline` turns splits into streams.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlcli.choices import InputKind


@dataclass(frozen=True, eq=False)
class ArrayPool:
    """Examples held in memory: `x[i]` and its label `labels[i]`; `rows[i]` numbers it as its source
    does (a CSV's line, the index in x_train), so that a finding about it can point at it."""

    x: np.ndarray
    labels: np.ndarray
    rows: np.ndarray | None = None  # None: numbered 0..N-1, as the source gave them

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def row_numbers(self) -> np.ndarray:
        return self.rows if self.rows is not None else np.arange(len(self))

    def subset(self, indices: np.ndarray, labels: np.ndarray | None = None) -> ArrayPool:
        return ArrayPool(self.x[indices], self.labels[indices] if labels is None else labels, self.row_numbers[indices])

    def concatenate(self, other: ArrayPool) -> ArrayPool:
        return ArrayPool(np.concatenate([self.x, other.x]), np.concatenate([self.labels, other.labels]),
                         np.concatenate([self.row_numbers, other.row_numbers]))

    def update_digest(self, digest, indices: np.ndarray) -> None:
        _update_with_rows(digest, self.x, indices)


def _update_with_rows(digest, x: np.ndarray, indices: np.ndarray) -> None:
    digest.update(str(x.shape[1:]).encode())
    if x.dtype == object:
        for text in x[indices]:
            digest.update(str(text).encode())
    else:
        digest.update(np.ascontiguousarray(x[indices]).tobytes())


@dataclass(frozen=True, eq=False)
class TablePool:
    """A table's examples as named inputs and named targets (`dataset.inputs`, `dataset.outputs`):
    each input an array of its own, as its columns hold it (the strings of a text column, the
    numbers of feature columns, the `column=value` strings of categorical ones); each target the
    classes (0..K-1) or the values of its column. `labels` is the first output's: the split of a
    classification output is stratified by it."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labels(self) -> np.ndarray:
        return next(iter(self.targets.values()))

    @property
    def row_numbers(self) -> np.ndarray:
        return self.rows if self.rows is not None else np.arange(len(self))

    def subset(self, indices: np.ndarray, labels: np.ndarray | None = None) -> TablePool:
        targets = {name: values[indices] for name, values in self.targets.items()}
        if labels is not None:
            targets[next(iter(targets))] = labels
        return TablePool({name: x[indices] for name, x in self.inputs.items()}, targets, self.row_numbers[indices])

    def concatenate(self, other: TablePool) -> TablePool:
        return TablePool(
            {name: np.concatenate([x, other.inputs[name]]) for name, x in self.inputs.items()},
            {name: np.concatenate([y, other.targets[name]]) for name, y in self.targets.items()},
            np.concatenate([self.row_numbers, other.row_numbers]),
        )

    def update_digest(self, digest, indices: np.ndarray) -> None:
        for name, x in self.inputs.items():
            digest.update(name.encode())
            _update_with_rows(digest, x, indices)
        for name, y in self.targets.items():
            digest.update(name.encode() + np.ascontiguousarray(y[indices]).tobytes())


# The formats tf.io.decode_image reads, by extension, as keras.utils.image_dataset_from_directory lists them.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Pictures in formats TensorFlow does not decode: in a folder dlcli reads, not to be passed by in silence
OTHER_PICTURES = (".tif", ".tiff", ".webp", ".heic", ".heif", ".avif", ".jfif")


@dataclass(frozen=True, eq=False)
class FilePool:
    """Examples stored one per file, decoded as they are read.

    `encoding` is "image" (a JPEG, PNG, BMP or GIF, resized to `shape[:2]` with
    `shape[2]` channels) or "raw" (the uint8 pixels of the disk cache, already that shape).
    """

    paths: np.ndarray  # of str
    labels: np.ndarray
    shape: tuple[int, int, int]
    encoding: str = "image"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def decoded_bytes(self) -> int:
        return len(self) * int(np.prod(self.shape))

    def subset(self, indices: np.ndarray, labels: np.ndarray | None = None) -> FilePool:
        chosen = self.labels[indices] if labels is None else labels
        return FilePool(self.paths[indices], chosen, self.shape, self.encoding)

    def concatenate(self, other: FilePool) -> FilePool:
        return FilePool(
            np.concatenate([self.paths, other.paths]), np.concatenate([self.labels, other.labels]),
            self.shape, self.encoding,
        )

    def update_digest(self, digest, indices: np.ndarray) -> None:
        digest.update(str(self.shape).encode())
        for path in self.paths[indices]:
            # The file's class folder, name and size: the same images after the folder is moved or copied.
            digest.update(f"{Path(path).parent.name}/{Path(path).name}:{os.path.getsize(path)}\0".encode())


Pool = ArrayPool | FilePool | TablePool


@dataclass(frozen=True, eq=False)
class Split:
    """The examples `indices` of `pool`, in this order."""

    pool: Pool
    indices: np.ndarray

    @classmethod
    def whole(cls, pool: Pool) -> Split:
        return cls(pool, np.arange(len(pool)))

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.pool.labels[self.indices]


@dataclass(frozen=True)
class Encoding:
    """How a batch of raw examples becomes the model's input, fitted on the training split.

    Applied per batch in the input pipeline (`dlcli.data.pipeline.encode`), so pixels stay
    uint8 in memory and become float32 only a batch at a time.
    """

    dtype: str = "float32"
    scale: float = 1.0  # divide by it: normalization to [0, 1]
    mean: np.ndarray | None = None  # standardization, statistics of the training split
    std: np.ndarray | None = None
    vectorizer: object | None = None  # a keras TextVectorization, adapted on the training texts
    vocabulary_size: int | None = None  # sequences of token indices: how many distinct indices (Embedding's input_dim)
    describe: str = "as stored"


@dataclass(frozen=True)
class NamedInput:
    """One of a table's named inputs: its columns, its encoding (fitted on the training split)
    and the shape of one encoded example."""

    kind: InputKind
    columns: list[str]
    encoding: Encoding
    shape: tuple[int, ...]


@dataclass(frozen=True)
class NamedOutput:
    """One of a table's named outputs: its column and its classes (none: a regression)."""

    column: str
    class_names: list[str]
    one_hot: bool = False

    def describe(self) -> dict:
        return {"column": self.column, "classes": self.class_names} if self.class_names else {"column": self.column}


# Recorded beside the fingerprints: fingerprints of another version are not compared.
FINGERPRINT_VERSION = 2


@dataclass
class Splits:
    """What training, evaluation and checking consume: three splits and how to read them."""

    train: Split
    validation: Split
    test: Split
    class_names: list[str]  # empty for regression
    input_shape: tuple[int, ...]
    encoding: Encoding
    one_hot: bool = False  # labels become one-hot vectors (else integers, or values for regression)
    class_mapping: dict[str, int] = field(default_factory=dict)  # source class -> label
    value_range: float | None = None  # an image's largest raw value (255 for 8-bit pixels; digits: 16)
    input_columns: list[str] = field(default_factory=list)  # a table's input columns, in order
    checks: list = field(default_factory=list)  # what dlcli.data.checks found: its Findings
    dropped: dict[str, int] = field(default_factory=dict)  # `dataset.leaks: drop`: examples removed per split
    # A table of named inputs and outputs (a TablePool): each by name, in the model's order
    inputs: dict[str, NamedInput] = field(default_factory=dict)
    outputs: dict[str, NamedOutput] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        """The 'train', 'validation' or 'test' split."""
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def class_counts(self) -> dict[str, list[int]]:
        """Examples per class in each split, from the labels alone (nothing is decoded)."""
        if not self.class_names:
            return {}
        return {
            name: np.bincount(self.split(name).labels, minlength=self.num_classes).tolist()
            for name in ("train", "validation", "test")
        }

    def fingerprint(self, split: str) -> str:
        """A hash of a split's examples, labels and encoding: the same samples, in the same order."""
        chosen = self.split(split)
        digest = hashlib.sha256()
        digest.update(self.encoding.describe.encode())
        chosen.pool.update_digest(digest, chosen.indices)
        digest.update(np.ascontiguousarray(chosen.labels).tobytes())
        return digest.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
            "classes": self.class_names,
            "class_mapping": self.class_mapping,
            "encoding": self.encoding.describe,
            "fingerprints": {split: self.fingerprint(split) for split in ("validation", "test")},
            "fingerprint_version": FINGERPRINT_VERSION,
            **({"inputs": {
                name: {"columns": spec.columns, "shape": list(spec.shape), "encoding": spec.encoding.describe}
                for name, spec in self.inputs.items()
            }} if self.inputs else {}),
            **({"outputs": {name: spec.describe() for name, spec in self.outputs.items()}} if self.outputs else {}),
            "checks": [finding.as_dict() for finding in self.checks],
            **({"dropped": self.dropped} if self.dropped else {}),
        }
