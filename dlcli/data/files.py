"""Datasets from the user's own files: image folders, CSV tables, .npz arrays."""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dlcli.choices import InputKind, Task
from dlcli.data.bundled import TEST_SPLIT_SEED, fixed_split
from dlcli.data.catalog import DatasetInfo
from dlcli.data.examples import IMAGE_EXTENSIONS, OTHER_PICTURES, ArrayPool, FilePool, TablePool
from dlcli.data.prepare import RawDataset, non_finite, strata
from dlcli.data.split import split_indices
from dlcli.errors import (
    DataUnavailable,
    broken_link,
    column_named_twice,
    counted,
    cut,
    listed,
    not_utf8_text,
    other_separator,
    path_shown,
    reason_of,
)
from dlcli.keys import KeyPath, did_you_mean

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig

SUBSETS = ("train", "validation", "test")
IMAGE_FOLDER_HELP = (
    "an image dataset is one sub-folder per class, optionally under train/, validation/ and "
    "test/; `dlcli datasets export digits DIR` writes one offline"
)


def _existing_path(config: ExperimentConfig, want_dir: bool) -> Path:
    path = Path(config.dataset.path).expanduser()
    at = config.source.prefix(("dataset", "path"))
    if want_dir and not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataUnavailable(f"{at}dataset.path: {path} {state}; {IMAGE_FOLDER_HELP}")
    if not want_dir and not path.is_file():
        if path.is_dir():
            raise DataUnavailable(f"{at}dataset.path: {path} is a folder; name the file")
        if broken := broken_link(path):
            raise DataUnavailable(f"{at}dataset.path: {path} {broken}")
        if path.exists():
            raise DataUnavailable(f"{at}dataset.path: {path} is not a plain file (a pipe or a device?); name a file")
        near = [p.name for p in path.parent.glob("*") if p.name.lower() == path.name.lower() and p.name != path.name] \
            if path.parent.is_dir() else []
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise DataUnavailable(f"{at}dataset.path: {path} does not exist{hint}")
    archive = zipfile.is_zipfile(path)  # an .npz is a zip archive; a CSV is text
    if archive != (config.dataset.name == "npz"):
        kind = "an .npz archive" if archive else "not an .npz archive (numpy.savez)"
        other = "npz" if archive else "csv"
        raise DataUnavailable(f"{at}dataset.path: {path} is {kind}, not what dataset {config.dataset.name} reads; "
                              f"for it, set `dataset.name: {other}`")
    return path


def _class_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


# The first bytes of each format tf.io.decode_image reads.
IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
BMP_SIGNATURE = IMAGE_SIGNATURES[-1]
BMP_HEADER = 54  # the file header and a BITMAPINFOHEADER
BMP_HEAD_READ = 14 + 124 + 4 * 256  # as far as the end of a palette after the largest header (a BITMAPV5HEADER)
BMP_BITS = (8, 24, 32)  # the bits a pixel tf.io.decode_image reads a BMP of


def name_not_utf8(path: Path) -> str | None:
    """Why TensorFlow cannot open `path` by its name, or None: it takes file names as UTF-8 text."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return "has a name that is not UTF-8 text, which TensorFlow cannot open"
    return None


def _not_an_image(path: Path, channels: int | None = None) -> str | None:
    """Why `path` cannot be an image TensorFlow decodes with `channels`, from its name and first
    bytes; None if it may be one."""
    if unnamed := name_not_utf8(path):
        return unnamed
    if broken := broken_link(path):
        return broken
    try:
        with open(path, "rb") as file:
            head = file.read(BMP_HEAD_READ)  # a BMP's palette too
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return "is empty"
    if not head.startswith(IMAGE_SIGNATURES):
        return "is not a JPEG, PNG, BMP or GIF image"
    if head.startswith(BMP_SIGNATURE):
        return _bmp_kind_problem(head) or (
            "is a BMP cut short (no whole header)" if len(head) < BMP_HEADER else _bmp_size_problem(head, path.stat().st_size)
        )
    if channels == 4 and head.startswith(IMAGE_SIGNATURES[0]):
        return "is a JPEG, which has no alpha channel for `color_mode: rgba`: use rgb"
    return None


def _bmp_kind_problem(header: bytes) -> str | None:
    """Why TensorFlow would not decode a BMP of this kind as the picture it is, from its first
    BMP_HEAD_READ bytes; None when it would, or when too few bytes tell. tf.io.decode_image reads a
    BITMAPINFOHEADER or a later one, uncompressed, of 8, 24 or 32 bits a pixel, and 8 bits as grey
    levels whatever the file's palette says they are."""
    if len(header) < 18:
        return None
    header_size = int.from_bytes(header[14:18], "little")
    if header_size < 40:
        return "is a BMP with an OS/2 header, which TensorFlow does not decode: save it as PNG"
    if len(header) < BMP_HEADER:
        return None
    bits = int.from_bytes(header[28:30], "little")
    if bits not in BMP_BITS:
        return (f"is a BMP of {bits} bit{'s' if bits != 1 else ''} a pixel, which TensorFlow does not decode "
                f"(it reads {', '.join(map(str, BMP_BITS))}): save it as PNG")
    compression = int.from_bytes(header[30:34], "little")
    if compression not in (0, 3) or (compression == 3 and bits != 32):  # none, or a 32-bit pixel's bit fields
        return "is a compressed BMP, which TensorFlow does not decode: save it as PNG"
    if bits == 8:
        palette_start = 14 + header_size
        colours = int.from_bytes(header[46:50], "little") or 256
        palette = header[palette_start:palette_start + 4 * colours]
        if any(palette[4 * i:4 * i + 3] != bytes((i, i, i)) for i in range(len(palette) // 4)):
            return ("is a BMP whose palette is not the grey levels 0-255 in order; TensorFlow ignores a palette and "
                    "reads each pixel's number in it as its grey level: save it as PNG")
    return None


def _bmp_size_problem(header: bytes, size: int) -> str | None:
    """A BMP whose size is not what its header sets out: tf.io.decode_image refuses a byte more or less."""
    pixels_at = int.from_bytes(header[10:14], "little")
    width, height = (abs(int.from_bytes(header[at:at + 4], "little", signed=True)) for at in (18, 22))
    row = (int.from_bytes(header[28:30], "little") * width + 31) // 32 * 4
    expected = pixels_at + row * height
    if size != expected:
        return f"is a BMP of {size:,} bytes where its header sets out {expected:,} (cut short, or with bytes after it)"
    return None


def misread_bmps(paths) -> list[tuple[Path, str]]:
    """The BMPs among `paths` (by their first bytes) that TensorFlow would not decode or would misread
    for their kind, with why (`_bmp_kind_problem`)."""
    found = []
    for path in map(Path, paths):
        try:
            with open(path, "rb") as file:
                head = file.read(BMP_HEAD_READ)
        except OSError:
            continue  # named with the other files that cannot be read
        if head.startswith(BMP_SIGNATURE) and (reason := _bmp_kind_problem(head)):
            found.append((path, reason))
    return found


def check_image_files(paths, channels: int | None = None, then: str = "train again") -> None:
    """Stop on the files that cannot be images, naming them (a cheap look at each file's header)."""
    refuse_image_files([(path, reason) for path in paths if (reason := _not_an_image(Path(path), channels)) is not None],
                       then)


def refuse_image_files(bad: list[tuple[Path, str]], then: str) -> None:
    """Raise DataUnavailable naming up to 3 of the (file, why) in `bad`, if any."""
    if bad:
        listed = "; ".join(f"{path_shown(path)} {reason}" for path, reason in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise DataUnavailable(f"{listed}{more}: remove or replace it, then {then}")


def refuse_other_pictures(folder: Path, files: list[Path] | None = None) -> None:
    """Refuse a folder of images holding pictures in formats TensorFlow does not decode (`files`: its
    files, when already listed): Keras passes them by, and a class would lose them without a word."""
    listed_files = folder.rglob("*") if files is None else files
    others = sorted(p for p in listed_files if p.suffix.lower() in OTHER_PICTURES and p.is_file())
    if others:
        what = f" and {len(others) - 1} more are pictures" if len(others) > 1 else " is a picture"
        raise DataUnavailable(f"{folder}: {others[0]}{what} dlcli cannot read (it reads "
                              f"{', '.join(sorted(IMAGE_EXTENSIONS))}): convert them, or move them out of the folder")


def _list_images(
    folder: Path, class_names: list[str], channels: int, chosen: set[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(paths, labels) of the images in `folder/<class>/`, recursively, in a fixed order. Only the
    `chosen` classes (`dataset.classes`), when given, are judged; the others are listed all the same
    (prepare leaves them out), so that the split drawn from the whole folder stays the same."""
    paths: list[str] = []
    labels: list[int] = []
    judged: list[str] = []
    for label, name in enumerate(class_names):
        class_folder = folder / name
        files = list(class_folder.rglob("*")) if class_folder.is_dir() else []
        # a broken link too: said, not skipped
        found = sorted(str(path) for path in files if path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir())
        if chosen is None or name in chosen:
            refuse_other_pictures(class_folder, files)
            if not class_folder.is_dir():  # a split's folder without this class: not a folder without images
                raise DataUnavailable(
                    f"{folder} has no folder for class '{name}', which the training images have; put the class's "
                    f"images in {class_folder}, or leave the class out with `dataset.classes`"
                )
            if not found:
                raise DataUnavailable(
                    f"{class_folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); put the class's images "
                    f"there, or leave the class out with `dataset.classes`"
                )
            judged += found
        paths += found
        labels += [label] * len(found)
    check_image_files(judged, channels)
    return np.array(paths, dtype=object), np.array(labels, dtype="int64")


def load_image_directory(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    """`path/<class>/*` (split here) or `path/{train,validation,test}/<class>/*`, as lists of files.

    Nothing is decoded here: the files are read, decoded and resized as training streams
    them (`dlcli.data.pipeline`), or once into the cache (`dlcli.data.cache`).
    """
    root = _existing_path(config, want_dir=True)
    subsets = {name: root / name for name in SUBSETS if (root / name).is_dir()}
    train_folder = subsets.get("train", root)
    class_names = _class_folders(train_folder)
    if len(class_names) < 2:
        raise DataUnavailable(
            f"{train_folder} has {len(class_names)} class folder(s){': ' + class_names[0] if class_names else ''}; "
            f"a classifier needs at least 2 — {IMAGE_FOLDER_HELP}"
        )
    channels = {"grayscale": 1, "rgb": 3, "rgba": 4}[config.dataset.color_mode]
    shape = (*config.dataset.image_size, channels)

    wanted = config.dataset.classes
    # as dataset.classes names them: a class's folder name, or its index among them (prepare._select_classes)
    chosen = None if not wanted else {
        class_names[entry] if isinstance(entry, int) and 0 <= entry < len(class_names) else str(entry) for entry in wanted
    }

    for folder in sorted({train_folder, *subsets.values()}):  # an image beside the class folders belongs to no class
        loose = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir())
        if loose:
            more = f" and {len(loose) - 1} more" if len(loose) > 1 else ""
            raise DataUnavailable(f"{folder / loose[0]}{more}: an image beside the class folders, in no class, would be "
                                  "passed by; move it into its class's folder, or out of the dataset")

    def pool(folder: Path) -> FilePool:
        unknown = [name for name in _class_folders(folder) if name not in class_names]
        if unknown and chosen is None:  # with `classes`, the classes left out are chosen
            raise DataUnavailable(
                f"{folder / unknown[0]}: a class {train_folder} has no folder for, whose images would be passed by; "
                f"add its training images as {train_folder / unknown[0]}, or move it out of {folder}"
            )
        return FilePool(*_list_images(folder, class_names, channels, chosen), shape)

    train = pool(train_folder)
    if "test" in subsets:
        raw = RawDataset(train, pool(subsets["test"]), class_names, 255.0)
    else:
        raw = fixed_split(train, config.dataset.test_split, value_range=255.0, class_names=class_names)
    if "validation" in subsets:
        raw.validation = pool(subsets["validation"])
    return raw


def _column(config: ExperimentConfig, key: KeyPath, name: str, columns: list[str], path: Path) -> str:
    if name not in columns:
        raise config.error(
            key,
            f"'{name}' is not a column of {path}{did_you_mean(name, columns)} (columns: {listed(columns)})",
        )
    return name


def not_numbers(cells):
    """The cells of a CSV column (a pandas Series) that are words, not numbers: the empty ones are missing values."""
    import pandas as pd

    return cells[pd.to_numeric(cells, errors="coerce").isna() & cells.notna()]


def _labels(values: np.ndarray, task: str, what: str, task_key: str = "dataset.task") -> tuple[np.ndarray, list[str]]:
    """Class indices and names (sorted) for classification; float values for regression."""
    if values.ndim != 1:
        raise DataUnavailable(
            f"{what}: the labels are of shape {values.shape}; give one label per example (class indices, "
            "not one-hot rows: np.argmax(y, axis=1))"
        )
    if task == Task.regression:
        try:
            return values.astype("float32"), []
        except ValueError:
            words = [value for value in values if not is_number(value)]
            raise DataUnavailable(
                f"{what}: a regression learns numbers, and the labels hold words ({words[0]!r} and "
                f"{len(words) - 1} more); for classes, set `{task_key}: classification`"
            ) from None
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        rows = np.flatnonzero(~np.isfinite(values))
        raise DataUnavailable(
            f"{what}: {counted(len(rows), 'label')} {'is' if len(rows) == 1 else 'are'} NaN or infinite (first: example "
            f"{rows[0]}); a class needs a label: fill or remove them"
        )
    names, indices = np.unique(values, return_inverse=True)
    return indices.astype("int64"), [str(name) for name in names]


def is_number(value) -> bool:
    """Whether `value` (a cell, a class's name) reads as a number."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _no_missing_values(config: ExperimentConfig, key: KeyPath, table, column: str, path: Path) -> None:
    """Every cell of `column` holds a value, and a finite one where the column holds numbers."""
    values = table[column]
    missing = values.isna().to_numpy().copy()  # pandas may hand out its own, read-only
    found = non_finite(values.to_numpy())
    if found is not None:
        missing[found[0]] = True
    missing = table.index[missing]
    if len(missing):
        lines = ", ".join(map(str, record_lines(path, list(missing[:5])).values())) + (" ..." if len(missing) > 5 else "")
        value = "finite value" if found is not None else "value"  # a number, or any text
        raise config.error(
            key,
            f"column '{column}' of {path} has no {value} in {counted(len(missing), 'row')} "
            f"({'line' if len(missing) == 1 else 'lines'} {lines}): fill or remove {'it' if len(missing) == 1 else 'them'}",
        )


@contextmanager
def reading_csv(path: Path, fail: Callable[[str], Exception] = DataUnavailable) -> Iterator[None]:
    """Around pandas reading `path` with index_col=False: a row with more fields than the header
    (pandas would otherwise take the extra first field as the row's index, or drop the extras)
    or any other parse error raises fail(what is wrong, with the line and what to do)."""
    import warnings

    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            yield
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise fail(_csv_problem(path, error)) from None


def record_lines(path: Path, records: list[int]) -> dict[int, int]:
    """The line of `path` on which each of its data rows `records` starts, counted from 0 as pandas
    counts rows: blank lines (or of spaces only) are no rows, and a quoted cell's line breaks stay
    inside its row. One pass over the file, for as many rows as asked."""
    import csv

    wanted, found = set(records), {}
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        ended, rows = 0, -2  # the header is row -1
        for row in reader:
            start, ended = ended + 1, reader.line_num
            if "".join(row).strip() or len(row) > 1:
                rows += 1
                if rows in wanted:
                    found[rows] = start
                    if len(found) == len(wanted):
                        break
    return {record: found.get(record, record + 2) for record in records}  # not found (changed since): as if unbroken


def record_line(path: Path, record: int) -> int:
    """The line of `path` on which its data row `record` starts (`record_lines`)."""
    return record_lines(path, [record])[record]


def check_csv_header(
    path: Path, fail: Callable[[str], Exception] = DataUnavailable, columns: list[str] | None = None,
) -> None:
    """Before a CSV is read, its header: one naming a column twice, or one column holding another
    separator (`f0;f1;label`), raises fail(what to do). pandas would read the first column under its
    name and the second as `name.1`, or the whole line as one column, so a table would be read with
    the wrong columns. `columns`: the ones a run reads, one of which may hold such a character.
    Once a file, not in `reading_csv`, which wraps each chunk."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            header = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # pandas says what is wrong with it
    if (separator := other_separator(header)) and header[0] not in (columns or ()):
        raise fail(f"{path}: its header ({cut(repr(header[0]), 80)}) is one column holding {separator!r}: the file is "
                   f"separated by {separator!r}, and dlcli reads commas; save it with commas as separators")
    if problem := column_named_twice(header):
        raise fail(f"{path}: {problem}")


def _csv_problem(path: Path, error: Exception) -> str:
    """The first row with more fields than the header, found by the csv module (pandas's parser says
    it in its own words, or not at all; a row with fewer is read with empty cells), else pandas's reason."""
    import csv

    if isinstance(error, UnicodeDecodeError):
        return not_utf8_text(path, error)
    # pandas's C parser counts the records (the header is 0), not the lines, of a quote left open
    unclosed = re.search(r"EOF inside string starting at row (\d+)", str(error))
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = csv.reader(file)
            header = next(rows, [])
            # a blank line too is a record to pandas's tokenizer; the one left open is named before it is
            # read (the rest of the file in one field is past csv's field size limit)
            for record in itertools.count(1):
                if unclosed and record == int(unclosed[1]):
                    return (
                        f"{path}, line {rows.line_num + 1}: a quote (\") opens a value that never closes, so the "
                        "rest of the file would be one value; close it, or remove it"
                    )
                row = next(rows, None)
                if row is None:
                    break
                if len(row) > len(header):
                    return (
                        f"{path}, line {rows.line_num}: {len(row)} fields where the header has {len(header)} "
                        f"({', '.join(header)}); put quotes around a value that holds a comma"
                    )
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    return f"cannot read {path} as CSV: {reason_of(error)}"


# How pandas names a column whose header is empty (and keeps naming it when the file is saved again)
UNNAMED = re.compile(r"Unnamed: \d+(\.\d+)?")  # 'Unnamed: 0.1' when a column is named 'Unnamed: 0' already


def load_csv(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    """A label column plus either one text column or numeric feature columns."""
    import pandas as pd

    path = _existing_path(config, want_dir=False)
    options = config.dataset
    def fail(problem: str) -> Exception:
        return config.error(("dataset", "path"), problem)

    check_csv_header(path, fail)
    with reading_csv(path, fail=fail):
        table = pd.read_csv(path, index_col=False)
    columns = [str(c) for c in table.columns]
    if table.empty:
        raise DataUnavailable(f"{path} has a header ({listed(columns)}) and no rows: add the examples")
    if options.named:
        return _named_table(config, table, columns, path)
    label = _column(config, ("dataset", "label_column"), options.label_column, columns, path)
    _no_missing_values(config, ("dataset", "label_column"), table, label, path)
    others = [c for c in columns if c != label]
    text_column = options.text_column
    if text_column is None and options.feature_columns is None:
        textual = [c for c in others if not pd.api.types.is_numeric_dtype(table[c])]
        text_column = textual[0] if len(textual) == 1 and len(others) == 1 else None
    if options.text_column is not None and options.feature_columns is not None:
        raise config.error(
            ("dataset", "feature_columns"),
            "give text_column or feature_columns, not both: a table whose text and numbers are both read takes "
            "named inputs (`dataset.inputs`, one per kind)",
        )
    if text_column is not None:
        _column(config, ("dataset", "text_column"), text_column, columns, path)
        if text_column == label:
            raise config.error(
                ("dataset", "text_column"),
                f"'{label}' is the label column: a model given its own answer as its text learns nothing; "
                "name the column that holds the text",
            )
        x = text_cells(table, text_column)
    else:
        features = options.feature_columns or others
        if label in features:
            raise config.error(
                ("dataset", "feature_columns"),
                f"'{label}' is the label column: a model given its own answer as a feature learns nothing; "
                "leave it out of feature_columns",
            )
        if not features:
            raise config.error(
                ("dataset",),
                f"{path} has no column besides its label '{label}': add the feature columns the model reads",
            )
        unnamed = [name for name in features if options.feature_columns is None and UNNAMED.fullmatch(name)]
        if unnamed:
            where = f"column {columns.index(unnamed[0]) + 1} of {path} has no name ('{unnamed[0]}' to pandas)"
            why = (
                " and no values: a comma at the end of each line? remove it" if table[unnamed[0]].isna().all() else
                ": a row number such as DataFrame.to_csv() writes unless index=False? a row's place is no feature, and "
                "in a sorted file it gives the label away; save the table without it"
            )
            raise config.error(("dataset",), f"{where}{why}, or list the features in `feature_columns`")
        for name in features:
            _column(config, ("dataset", "feature_columns"), name, columns, path)
            if not pd.api.types.is_numeric_dtype(table[name]):
                words = not_numbers(table[name])
                first = f": {words.iloc[0]!r} at line {record_line(path, words.index[0])}" if len(words) else ""
                raise config.error(
                    ("dataset", "feature_columns") if options.feature_columns else ("dataset",),
                    f"column '{name}' of {path} is not numeric{first} ({counted(len(words), 'row')}); "
                    "fix those cells, name a text column with `text_column`, or list the numeric ones in "
                    "`feature_columns`",
                )
        for name in features:
            _no_missing_values(config, ("dataset", "feature_columns"), table, name, path)
        x = table[features].to_numpy(dtype="float32")
    y, class_names = _labels(table[label].to_numpy(), config.task, f"column '{label}' of {path}")
    if config.task == Task.classification and len(class_names) < 2:
        raise config.error(
            ("dataset", "label_column"),
            f"column '{label}' of {path} holds one class ({class_names[0]!r}): a classifier needs at least 2",
        )
    table_pool = ArrayPool(x, y, rows=table.index.to_numpy() + 2)  # each example by its line in the file
    if config.task == Task.regression:
        try:
            train, test = split_indices(len(x), options.test_split, TEST_SPLIT_SEED)
        except ValueError as error:
            raise DataUnavailable(f"{path}: too few rows for a test split: {error}") from None
        raw = RawDataset(table_pool.subset(train), table_pool.subset(test), [])
    else:
        raw = fixed_split(table_pool, options.test_split, value_range=None, class_names=class_names)
    raw.texts = text_column is not None
    raw.input_columns = [text_column] if text_column is not None else list(features)
    return raw


def _matched_columns(config: ExperimentConfig, key: KeyPath, patterns: list[str], columns: list[str], path: Path) -> list[str]:
    """The columns that `patterns` name, in the table's order: a name, or a pattern such as tag_*."""
    from fnmatch import fnmatchcase

    chosen: list[str] = []
    for index, pattern in enumerate(patterns):
        if any(mark in pattern for mark in "*?["):
            matched = [column for column in columns if fnmatchcase(column, pattern)]
            if not matched:
                raise config.error((*key, index), f"no column of {path} matches '{pattern}' (columns: {listed(columns)})")
        else:
            matched = [_column(config, (*key, index), pattern, columns, path)]
        chosen += [column for column in matched if column not in chosen]
    return chosen


def text_cells(frame, column: str) -> np.ndarray:
    """A text column's cells as strings (an empty cell: ""), as training and predict read them."""
    return frame[column].fillna("").astype(str).to_numpy(dtype=object)


def _category(value) -> str:
    """One cell as its category's name: a whole number the same whether pandas read its column as
    integers or, for a blank cell somewhere, as floats (3 and 3.0 are one category); a blank ""."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def categorical_cells(frame, columns: list[str]) -> np.ndarray:
    """Categorical columns as tokens `column=value`, one per cell (rows × columns): one vocabulary
    for all the columns, in which each column's values are tokens of their own."""
    cells = [[f"{column}={_category(value)}" for value in frame[column].tolist()] for column in columns]
    return np.array(cells, dtype=object).T.reshape(len(frame), len(columns))


def _input_array(config: ExperimentConfig, name: str, table, columns: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    """Input `name` of `dataset.inputs` as its columns hold it, and those columns."""
    import pandas as pd

    spec = config.dataset.inputs[name]
    key = ("dataset", "inputs", name)
    if not (spec.text_column or spec.feature_columns or spec.categorical_columns):
        raise config.error(key, f"input '{name}' names no columns: give text_column, feature_columns or categorical_columns")
    if spec.kind == InputKind.text:
        column = _column(config, (*key, "text_column"), spec.text_column, columns, path)
        return text_cells(table, column), [column]
    if spec.kind == InputKind.features:
        listed = _matched_columns(config, (*key, "feature_columns"), spec.feature_columns, columns, path)
        for column in listed:
            if not pd.api.types.is_numeric_dtype(table[column]):
                raise config.error(
                    (*key, "feature_columns"),
                    f"column '{column}' of {path} is not numeric: read it as `text_column` or `categorical_columns` "
                    "of an input",
                )
            _no_missing_values(config, (*key, "feature_columns"), table, column, path)
        return table[listed].to_numpy(dtype="float32"), listed
    listed = _matched_columns(config, (*key, "categorical_columns"), spec.categorical_columns, columns, path)
    return categorical_cells(table, listed), listed


def _named_table(config: ExperimentConfig, table, columns: list[str], path: Path) -> RawDataset:
    """A table read as `dataset.inputs` and `dataset.outputs` say: named inputs, named targets."""
    options = config.dataset
    inputs, read_by, named_columns = {}, {}, {}
    for name in options.inputs:
        inputs[name], listed = _input_array(config, name, table, columns, path)
        named_columns[name] = listed
        for column in listed:
            read_by.setdefault(column, name)
    targets, classes = {}, {}
    for name, spec in options.outputs.items():
        key = ("dataset", "outputs", name, "label_column")
        if spec.label_column is None:
            raise config.error(key[:-1], f"output '{name}' names no column: give its label_column")
        column = _column(config, key, spec.label_column, columns, path)
        if column in read_by:
            raise config.error(
                key, f"column '{column}' is read by input '{read_by[column]}' too: a model given its own answer learns "
                "nothing; leave it out of the input",
            )
        _no_missing_values(config, key, table, column, path)
        targets[name], classes[name] = _labels(table[column].to_numpy(), spec.task, f"column '{column}' of {path}",
                                               f"dataset.outputs.{name}.task")
        if spec.task == Task.classification and len(classes[name]) < 2:
            raise config.error(
                key, f"column '{column}' of {path} holds one class ({classes[name][0]!r}): a classifier needs at least 2"
            )
    pool = TablePool(inputs, targets, rows=table.index.to_numpy() + 2)
    try:
        train, test = split_indices(len(pool), options.test_split, TEST_SPLIT_SEED, strata(config, pool))
    except ValueError as error:
        raise DataUnavailable(f"{path}: too few rows for a test split: {error}") from None
    return RawDataset(pool.subset(train), pool.subset(test), [], input_columns=list(read_by), output_classes=classes,
                      named_columns=named_columns)


def _named_arrays(config: ExperimentConfig, arrays: dict[str, np.ndarray], held: list[str], path: Path) -> RawDataset:
    """An .npz read as `dataset.inputs` and `outputs` say: arrays NAME_train and NAME_test of each."""
    options = config.dataset
    splits: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for kind, names in (("inputs", options.inputs), ("outputs", options.outputs)):
        for name, spec in names.items():
            key = ("dataset", kind, name)
            named = [k for k in ("text_column", "feature_columns", "categorical_columns", "label_column")
                     if getattr(spec, k, None)]
            if named:
                raise config.error((*key, named[0]), f"an .npz's {kind[:-1]} is its arrays {name}_train and {name}_test: "
                                   f"remove {named[0]}")
            for split in splits:
                if f"{name}_{split}" not in arrays:
                    raise DataUnavailable(f"{path} has no array {name}_{split} for {kind[:-1]} '{name}' (it has "
                                          f"{', '.join(held)})")
                splits[split][name] = arrays[f"{name}_{split}"]
    for split, named in splits.items():
        lengths = {f"{name}_{split}": len(array) for name, array in named.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{key} {count}" for key, count in lengths.items())
            raise DataUnavailable(f"{path}: the {split} arrays differ in length ({listed}); give each the same examples")
    for name in options.inputs:
        for split in splits:
            if splits[split][name].dtype.kind not in "biuf":
                raise DataUnavailable(f"{path}: {name}_{split} holds {splits[split][name].dtype} values; an .npz input "
                                      "holds numbers")
            splits[split][name] = splits[split][name].astype("float32")
    targets, classes = {"train": {}, "test": {}}, {}
    for name, spec in options.outputs.items():
        for split in splits:
            values = splits[split][name]
            if values.ndim != 1 and values.shape[1:] != (1,):
                raise DataUnavailable(f"{path}: {name}_{split} is of shape {values.shape}; give one label per example "
                                      "(class indices, not one-hot rows)")
            splits[split][name] = values.reshape(len(values))
        values = np.concatenate([splits["train"][name], splits["test"][name]])
        labels, classes[name] = _labels(values, spec.task, f"{path}: {name}_train, {name}_test",
                                        f"dataset.outputs.{name}.task")
        if spec.task == Task.classification and len(classes[name]) < 2:
            raise DataUnavailable(f"{path}: {name}_train and {name}_test hold one class ({classes[name][0]!r}): a "
                                  "classifier needs at least 2")
        count = len(splits["train"][name])
        targets["train"][name], targets["test"][name] = labels[:count], labels[count:]
    pools = [TablePool({name: splits[split][name] for name in options.inputs}, targets[split]) for split in splits]
    return RawDataset(*pools, [], output_classes=classes, named_columns={name: [name] for name in options.inputs},
                      split_names=("train (NAME_train arrays)", "test (NAME_test arrays)"))


def _npz_arrays(path: Path, wanted: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays `wanted` that the .npz holds (only those are read), and the names of all it holds."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays, held = {name: archive[name] for name in wanted if name in archive}, list(archive)
    except (OSError, ValueError) as error:
        raise DataUnavailable(f"cannot read {path} as .npz: {error}") from error
    single = next((name for name, array in arrays.items() if array.ndim == 0), None)
    if single is not None:
        raise DataUnavailable(f"{path}: {single} is a single value, not an array of examples; save one row per example")
    return arrays, held


def load_npz(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    path = _existing_path(config, want_dir=False)
    options = config.dataset
    names = [*options.inputs, *options.outputs] if options.named else ["x", "y"]
    arrays, held = _npz_arrays(path, [f"{name}_{split}" for name in names for split in ("train", "test")])
    if options.named:
        return _named_arrays(config, arrays, held, path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DataUnavailable(f"{path} lacks the arrays {', '.join(missing)} (has {', '.join(held)})")
    x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    for name, array in (("x_train", x_train), ("x_test", x_test), ("y_train", y_train), ("y_test", y_test)):
        numbers = array.dtype.kind in "biuf" or (name.startswith("y") and array.dtype.kind == "U")
        if not numbers:
            raise DataUnavailable(
                f"{path}: {name} holds {array.dtype} values; dlcli trains on numbers: convert them "
                "(for text, use a CSV with `text_column`)"
            )
    for name, array in (("y_train", y_train), ("y_test", y_test)):
        if array.ndim != 1 and array.shape[1:] != (1,):  # a column of labels is one label per example too
            raise DataUnavailable(
                f"{path}: {name} is of shape {array.shape}; give one label per example (class indices, not "
                "one-hot rows: np.argmax(y, axis=1))"
            )
    y_train, y_test = y_train.reshape(len(y_train)), y_test.reshape(len(y_test))
    y_all, class_names = _labels(np.concatenate([y_train, y_test]), config.task, f"{path}: y_train, y_test")
    pixels = x_train.dtype == np.uint8
    compact = (lambda x: x) if pixels else (lambda x: x.astype("float32"))  # uint8 stays uint8 until a batch is read
    return RawDataset(
        ArrayPool(compact(x_train), y_all[: len(y_train)]), ArrayPool(compact(x_test), y_all[len(y_train):]),
        class_names, value_range=255.0 if pixels else None,
        split_names=("train (x_train, y_train)", "test (x_test, y_test)"),
    )
