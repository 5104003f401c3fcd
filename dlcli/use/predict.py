"""`dlcli predict`: a run's model on new inputs — image files and folders, CSV tables, NumPy arrays.

Inputs are read a batch at a time (images decoded in parallel by tf.data), so memory does
not grow with their number; each batch goes through `inference_model`, which holds the
preprocessing the run was trained with. One row per input.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from dlcli.build.inference import class_names, class_probabilities, inference_model
from dlcli.choices import InputKind, Task
from dlcli.data.examples import IMAGE_EXTENSIONS, FilePool
from dlcli.data.files import (
    categorical_cells,
    check_csv_header,
    misread_bmps,
    name_not_utf8,
    not_numbers,
    reading_csv,
    record_line,
    refuse_image_files,
    refuse_other_pictures,
    text_cells,
)
from dlcli.data.pipeline import raw_examples
from dlcli.data.prepare import non_finite
from dlcli.errors import DlcliError, counted, listed
from dlcli.store.runs import RunFolder

ARRAY_SUFFIXES = {".npy", ".npz"}


@dataclass
class Prediction:
    """Rows for `inputs`, produced by `rows()`; `failed` names the inputs that could not be read."""

    run: RunFolder
    inputs: list[Path]
    top: int | None = None
    batch_size: int = 256
    fold: int | None = None
    failed: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._listed: dict[Path, list[Path]] = {}
        self._arrays: dict[Path, np.ndarray] = {}
        self._passed: list[str] = []  # the CSV inputs' own columns, every file's: each row has them all
        self.model, self.info = inference_model(self.run, self.fold)
        classified = self.info.class_names or any(spec.class_names for spec in self.info.table_outputs.values())
        if self.top is not None and not classified:
            raise DlcliError(f"--top {self.top}: run {self.run.id} predicts a value (a regression), not classes to rank")
        self._infer = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True, autograph=False)
        for path in self.inputs:
            if not path.exists():
                raise DlcliError(f"{path}: no such file or folder")
            if path.is_file() and path.suffix.lower() not in {*IMAGE_EXTENSIONS, ".csv", *ARRAY_SUFFIXES}:
                raise DlcliError(
                    f"{path}: dlcli predicts on image files ({', '.join(sorted(IMAGE_EXTENSIONS))}), "
                    "folders of them, .csv tables and .npy/.npz arrays"
                )
        for path in self.inputs:  # every input checked before the first row is written
            if _is_image_source(path):
                if self.info.kind != "image":
                    self._refuse(path, "images")
                if path.is_dir():
                    refuse_other_pictures(path)
                if not self._images(path):
                    raise DlcliError(f"{path}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in it")
                # a BMP TensorFlow misreads decodes without an error: its header is read first (a damaged
                # file is named with the others that cannot be read, once the rest are predicted). By name:
                # opening every file to look costs 0.3 s on 20,000 (training reads every header anyway)
                bmps = [image for image in self._images(path) if image.suffix.lower() == ".bmp"]
                refuse_image_files(misread_bmps(bmps), then="predict again")
                unnamed = [(image, why) for image in self._images(path) if (why := name_not_utf8(image))]
                refuse_image_files(unnamed, then="predict again")
            elif path.suffix.lower() == ".csv":
                found = self._csv_columns(path)
                self._passed = list(dict.fromkeys([*self._passed, *(c for c in found if c not in self.info.columns)]))
                for _ in self._csv_batches(path):  # every cell, read once more while predicting: a row printed
                    pass  # to stdout cannot be taken back when a cell further down is bad
            else:
                self._array(path)

    def count(self) -> int | None:
        """How many inputs there are, when that is known without reading them (not for CSV)."""
        total = 0
        for path in self.inputs:
            if path.suffix.lower() == ".csv":
                return None
            array = None if _is_image_source(path) else self._array(path)
            total += len(self._images(path)) if array is None else len(
                next(iter(array.values())) if isinstance(array, dict) else array)
        return total

    def files(self) -> list[Path]:
        """Every file the prediction reads: the inputs, a folder's image files in its place."""
        return [file for path in self.inputs for file in (self._images(path) if _is_image_source(path) else [path])]

    def rows(self, advance: Callable[[int], None] = lambda n: None) -> Iterator[dict[str, Any]]:
        # image inputs side by side (a shell's glob of photos) go through one pipeline: one each took 65 ms
        for images, group in itertools.groupby(self.inputs, key=_is_image_source):
            for source in ([list(group)] if images else group):
                if images:
                    batches = self._image_batches([file for path in source for file in self._images(path)])
                elif source.suffix.lower() == ".csv":
                    batches = self._csv_batches(source)
                else:
                    batches = self._array_batches(source)
                yield from self._answered(batches, advance)

    def _answered(self, batches, advance: Callable[[int], None]) -> Iterator[dict[str, Any]]:
        """A row for each input of `batches` ((labels, model inputs, columns passed through) each)."""
        for labels, x, extra in batches:
            if self.info.kind == "table":
                given = self._infer({name: tf.convert_to_tensor(values) for name, values in x.items()})
                answers = self._table_answers({name: np.asarray(values) for name, values in given.items()})
            else:
                answers = self._described(np.asarray(self._infer(tf.convert_to_tensor(x))))
            yield from (  # a table's own columns first (a CSV's header is the first row's: every file's columns in
                # each row, empty where its file has none); one named like an answer (its true label) kept as NAME_given
                {**{f"{key}_given" if key in answer or key == "input" else key: value
                    for key, value in {**dict.fromkeys(self._passed), **passed}.items()},
                 "input": label, **answer}
                for label, answer, passed in zip(labels, answers, extra)
            )
            advance(len(labels))

    # --- the answer for one input ---------------------------------------------------------

    def _table_answers(self, outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """A batch's answers for each named output: its columns named `OUTPUT` (and `OUTPUT_probability`, `OUTPUT_top`)."""
        rows: list[dict[str, Any]] = [{} for _ in next(iter(outputs.values()))]
        for name, output in self.info.table_outputs.items():
            described = self._described(outputs[name], output.class_names or None)
            for row, answer in zip(rows, described):  # prediction -> OUTPUT, probability -> OUTPUT_probability
                row.update({name if key == "prediction" else f"{name}_{key}": value for key, value in answer.items()})
        return rows

    def _described(self, outputs: np.ndarray, names: list[str] | None = None) -> list[dict[str, Any]]:
        """A batch's answers, worked out for the whole batch at once (`names`: a named output's classes)."""
        if (self.info.task != Task.classification and names is None) or (self.info.kind == "table" and not names):
            return [{"prediction": value[0] if len(value) == 1 else value} for value in outputs.tolist()]
        probabilities = class_probabilities(outputs)
        names = names or class_names(self.info, probabilities.shape[1])
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, : self.top or 1]
        chosen = np.take_along_axis(probabilities, order, axis=1).tolist()
        answers = []
        for classes, values in zip(order.tolist(), chosen):
            answer = {"prediction": names[classes[0]], "probability": values[0]}
            if self.top:
                answer["top"] = [[names[c], v] for c, v in zip(classes, values)]
            answers.append(answer)
        return answers

    # --- images ---------------------------------------------------------------------------

    def _refuse(self, path: Path, given: str) -> None:
        table = ("an .npz of one array per input" if self.info.table_format == "npz" else "a CSV of its input columns")
        shape = ", ".join(map(str, self.info.input_shape))
        # a dataset of arrays without column names (boston_housing, an .npz) reads no CSV
        array = "a CSV of its feature columns, or arrays" if self.info.columns else f".npy/.npz arrays of shape (N, {shape})"
        takes = {"image": "image files (or arrays of their pixels)", "text": "a CSV with its text column",
                 "array": array, "table": table}[self.info.kind]
        columns = f" ({listed(self.info.columns)})" if self.info.columns else ""
        raise DlcliError(f"{path}: run {self.run.id} takes {takes}{columns}, not {given}")

    def _images(self, path: Path) -> list[Path]:
        """The image files of `path`, listed once (checking, counting and reading all need them)."""
        if path not in self._listed:
            self._listed[path] = [path] if path.is_file() else sorted(
                # a broken link too: it fails to read and is named with the other unreadable files
                p for p in path.rglob("*") if not p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        return self._listed[path]

    def _image_batches(self, files: list[Path]):
        shape = tuple(self.info.input_shape)
        pool = FilePool(np.array([str(f) for f in files]), np.zeros(len(files), "int64"), shape)
        expected = 0
        for indices, pixels in raw_examples(pool, self.batch_size):
            indices = indices.numpy().tolist()
            read = set(indices)
            self.failed.extend(str(files[i]) for i in range(expected, indices[-1] + 1) if i not in read)
            expected = indices[-1] + 1
            yield [str(files[i]) for i in indices], pixels, [{}] * len(indices)
        self.failed.extend(str(f) for f in files[expected:])

    # --- tables -----------------------------------------------------------------------------

    def _csv_columns(self, path: Path) -> list[str]:
        """A CSV is for a run trained on a table, and must hold the columns it read."""
        import pandas as pd

        columns = self.info.columns
        if self.info.kind == "image" or not columns or self.info.table_format == "npz":
            self._refuse(path, "a CSV")
        check_csv_header(path, DlcliError, columns)  # once a file: its chunks are read as they come
        with reading_csv(path, fail=DlcliError):
            head = pd.read_csv(path, nrows=1, index_col=False)
        found = [str(c) for c in head.columns]
        missing = [c for c in columns if c not in found]
        if missing:
            raise DlcliError(
                f"{path}: no column {', '.join(repr(c) for c in missing)}; run {self.run.id} reads "
                f"{listed(columns)}; the file has {listed(found)}"
            )
        if head.empty:
            raise DlcliError(f"{path}: a header ({listed(found)}) and no rows: nothing to predict")
        return found

    def _csv_batches(self, path: Path):
        import pandas as pd

        columns = self.info.columns
        with reading_csv(path, fail=DlcliError):
            chunks = pd.read_csv(path, chunksize=self.batch_size, index_col=False)
        for number in itertools.count():
            with reading_csv(path, fail=DlcliError):  # each chunk read inside, never the yield: its filter is global
                chunk = next(chunks, None)
            if chunk is None:
                return
            first = number * self.batch_size
            labels = [f"{path}:{first + i + 1}" for i in range(len(chunk))]  # as given, as an image is: two x.csv told apart
            passed = chunk.drop(columns=columns).to_dict("records")
            if self.info.kind == "table":
                x = {name: _table_input(path, chunk, spec, first) for name, spec in self.info.table_inputs.items()}
            elif self.info.kind == "text":
                x = text_cells(chunk, columns[0])
            else:
                x = _numbers(path, chunk, columns, first)
            yield labels, x, passed

    # --- arrays -----------------------------------------------------------------------------

    def _array(self, path: Path) -> np.ndarray:
        """The inputs of an array file, read and checked once (a .npy stays memory-mapped)."""
        if path not in self._arrays:
            self._arrays[path] = self._read_array(path)
        return self._arrays[path]

    def _read_array(self, path: Path) -> np.ndarray | dict[str, np.ndarray]:
        if self.info.kind == "table":
            return self._read_named_arrays(path)
        if self.info.kind == "text":
            self._refuse(path, "arrays")
        _refuse_other_than_numpy(path)
        try:
            if path.suffix.lower() == ".npy":
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                with np.load(path, allow_pickle=False) as archive:
                    keys = list(archive.keys())
                    key = "x" if "x" in keys else keys[0] if len(keys) == 1 else None
                    if key is None:
                        held = f"holds {', '.join(keys)}" if keys else "holds no array"
                        raise DlcliError(f"{path}: {held}; give the inputs as an array named 'x' (numpy.savez(path, x=...))")
                    array = archive[key]
        except (ValueError, OSError, EOFError) as error:  # not an array file, or arrays of Python objects
            raise DlcliError(f"cannot read {path} as NumPy arrays: {str(error).splitlines()[0]}") from None
        shape = tuple(self.info.input_shape)
        if tuple(array.shape) == shape:
            array = array[None]
        if tuple(array.shape[1:]) != shape:
            raise DlcliError(
                f"{path}: arrays of shape {tuple(array.shape)}; run {self.run.id} takes (N, {', '.join(map(str, shape))})"
                " or one example of shape " + str(shape)
            )
        if not np.issubdtype(array.dtype, np.number):
            raise DlcliError(f"{path}: holds {array.dtype} values; the model takes numbers")
        if not len(array):
            raise DlcliError(f"{path}: arrays of shape {tuple(array.shape)} hold no example; give at least one")
        if self.info.kind == "image" and (not np.issubdtype(array.dtype, np.integer) or array.size and (
                array.min() < 0 or array.max() > 255)):
            raise DlcliError(
                f"{path}: an image run takes pixels as integers 0-255 (as in an image file); these are "
                f"{array.dtype} from {array.min():g} to {array.max():g}"
            )
        return array

    def _read_named_arrays(self, path: Path) -> dict[str, np.ndarray]:
        """An .npz of one array per named input (of numbers), named as the run's inputs."""
        inputs = self.info.table_inputs
        if path.suffix.lower() != ".npz" or any(spec.kind != InputKind.features for spec in inputs.values()):
            self._refuse(path, "arrays" if path.suffix.lower() == ".npz" else "a .npy array")
        _refuse_other_than_numpy(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in inputs if name in archive}
                missing = [name for name in inputs if name not in arrays]
                if missing:
                    raise DlcliError(f"{path}: no array {', '.join(missing)}; run {self.run.id} takes one array per "
                                     f"input: {', '.join(inputs)} (it has {', '.join(archive.keys())})")
        except (ValueError, OSError, EOFError) as error:
            raise DlcliError(f"cannot read {path} as NumPy arrays: {str(error).splitlines()[0]}") from None
        for name, array in arrays.items():
            shape = tuple(inputs[name].shape)
            if tuple(array.shape[1:]) != shape or not np.issubdtype(array.dtype, np.number):
                raise DlcliError(f"{path}: {name} is {array.dtype} of shape {tuple(array.shape)}; run {self.run.id} "
                                 f"takes numbers of shape (N, {', '.join(map(str, shape))})")
        if len({len(array) for array in arrays.values()}) > 1:
            raise DlcliError(f"{path}: the arrays differ in length; give each input the same examples")
        if not any(len(array) for array in arrays.values()):
            raise DlcliError(f"{path}: the arrays hold no example; give at least one")
        return arrays

    def _array_batches(self, path: Path):
        array = self._array(path)
        if isinstance(array, dict):  # a table's named inputs
            total = len(next(iter(array.values())))
            for start in range(0, total, self.batch_size):
                x = {name: np.asarray(values[start:start + self.batch_size], "float32") for name, values in array.items()}
                for name, values in x.items():
                    _refuse_non_finite(f"{path}: {name}", values, start)
                count = len(next(iter(x.values())))
                yield [f"{path}[{i}]" for i in range(start, start + count)], x, [{}] * count
            return
        dtype = "uint8" if self.info.kind == "image" else "float32"  # an image's pixels: 0-255
        for start in range(0, len(array), self.batch_size):
            x = np.asarray(array[start:start + self.batch_size]).astype(dtype)
            _refuse_non_finite(str(path), x, start)
            yield [f"{path}[{i}]" for i in range(start, start + len(x))], x, [{}] * len(x)


def _is_image_source(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS


def _refuse_other_than_numpy(path: Path) -> None:
    """A file named .npy or .npz that NumPy did not write: np.load would try it as a pickle and say so."""
    import zipfile

    try:
        with open(path, "rb") as file:
            start = file.read(len(np.lib.format.MAGIC_PREFIX))
    except OSError:
        return  # np.load names the problem
    written = zipfile.is_zipfile(path) if path.suffix.lower() == ".npz" else start == np.lib.format.MAGIC_PREFIX
    if not written:
        raise DlcliError(f"{path}: not a NumPy {path.suffix.lower()} file; write arrays with numpy.save (.npy) or "
                         "numpy.savez (.npz)")


def _refuse_non_finite(where: str, x: np.ndarray, start: int) -> None:
    """An array's example with a NaN or an infinity, named by its index: a model answers nothing
    sensible for it (a CSV's empty cell is refused the same way)."""
    found = non_finite(x)
    if found is not None:
        rows, position = found
        value = x[rows[0]].reshape(-1)[position]
        raise DlcliError(
            f"{where}[{start + int(rows[0])}] holds {value} ({counted(len(rows), 'example')} of this batch with a value "
            f"that is not finite); predict needs every value: fill or remove {'it' if len(rows) == 1 else 'them'}"
        )


def _refuse_missing(path: Path, x: np.ndarray, columns: list[str], first_row: int) -> None:
    """A model answers nothing sensible for an example with an empty or infinite feature: name the first."""
    found = non_finite(x)
    if found is not None:
        rows, column = found
        raise DlcliError(
            f"{path}: column '{columns[column]}' has no finite value on line {record_line(path, first_row + int(rows[0]))} "
            f"({counted(len(rows), 'row')} of this batch without one); predict needs every feature: fill or remove "
            f"{'it' if len(rows) == 1 else 'them'}"
        )


def _table_input(path: Path, chunk, spec, first_row: int) -> np.ndarray:
    """One named input of a CSV batch, as training read it (files.py): a text column's strings,
    feature columns' numbers, categorical cells as `column=value`."""
    columns = spec.columns
    if spec.kind == InputKind.text:
        return text_cells(chunk, columns[0])
    if spec.kind == InputKind.categorical:
        return categorical_cells(chunk, columns)
    return _numbers(path, chunk, columns, first_row)


def _numbers(path: Path, chunk, columns: list[str], first_row: int) -> np.ndarray:
    """A CSV batch's feature columns as float32, every cell a finite number, or one line naming the first that is not."""
    for column in columns:
        words = not_numbers(chunk[column])
        if len(words):
            line = record_line(path, first_row + int(chunk.index.get_loc(words.index[0])))
            raise DlcliError(
                f"{path}: column '{column}' holds {words.iloc[0]!r} on line {line}, not a number; predict reads "
                "numbers there, as training did: fix or remove that row"
            )
    x = chunk[columns].to_numpy(dtype="float32")
    _refuse_missing(path, x, columns, first_row)
    return x
