"""Dataset sources beyond the bundled digits: folders, tables, arrays, keras.datasets encodings, k-fold."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import TINY_CONFIG, encoded
from dlcli.config import load_config
from dlcli.data import load_dataset, load_folds
from dlcli.data.files import check_image_files
from dlcli.errors import ConfigError, DataUnavailable
from reviews import write_reviews

TABLE_CONFIG = """\
name: table
dataset: {name: csv, path: PATH}
model:
  layers:
    - Dense: {units: 8, activation: relu}
    - Dense: {units: 1, activation: sigmoid}
loss: binary_crossentropy
metrics: [accuracy]
"""


def table_config(write_config, path, *overrides):
    return load_config(write_config(TABLE_CONFIG.replace("PATH", str(path))), list(overrides))


def texts(*rows: str) -> np.ndarray:
    return np.array(rows, dtype=object)


def test_text_vocabulary_comes_from_the_training_split_only(write_config, tmp_path):
    from dlcli.data.examples import ArrayPool
    from dlcli.data.prepare import RawDataset, prepare

    config = table_config(write_config, tmp_path / "unused.csv", "dataset.num_words=100")
    # every training row brings one word of its own: the vocabulary's size tells which rows it saw
    raw = RawDataset(
        ArrayPool(texts(*(f"film w{i}" for i in range(40))), np.arange(40) % 2),
        ArrayPool(texts("zebra quokka", "film"), np.array([0, 1])),
        ["negative", "positive"], texts=True,
    )

    splits = prepare(raw, config)
    x_train, x_val, x_test = (encoded(splits, name)[0] for name in ("train", "validation", "test"))

    assert len(x_train) == 32 and len(x_val) == 8
    assert splits.input_shape == x_train.shape[1:] == (1 + 1 + 32,)  # [UNK], "film", one word per training row
    assert x_test.tolist() == [[1.0] + [0.0] * 33, [0.0, 1.0] + [0.0] * 32]  # unseen -> [UNK]
    assert (x_val[:, 0] == 1).all()  # validation words were never learned


def test_tf_idf_and_count_encodings(write_config, tmp_path):
    path = write_reviews(tmp_path / "reviews.csv", rows=200)

    counts = load_dataset(table_config(write_config, path, "dataset.encoding=count", "dataset.num_words=100"))
    tf_idf = load_dataset(table_config(write_config, path, "dataset.encoding=tf_idf", "dataset.num_words=100"))
    sequences = load_dataset(
        table_config(write_config, path, "dataset.encoding=sequence", "dataset.sequence_length=20")
    )

    count_vectors, tf_idf_vectors = encoded(counts, "train")[0], encoded(tf_idf, "train")[0]
    assert count_vectors.max() > 1 and count_vectors.shape[0] == 128
    assert count_vectors.shape[1] <= 100  # the vocabulary, when smaller than num_words
    assert tf_idf_vectors.dtype == np.float32 and not np.allclose(tf_idf_vectors, np.rint(tf_idf_vectors))
    assert encoded(sequences, "train")[0].shape == (128, 20)
    assert counts.class_names == ["negative", "positive"]


def test_numeric_table_is_standardized_with_training_statistics(write_config, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(50, 10, (300, 3))
    lines = ["a,b,c,price"] + [f"{r[0]},{r[1]},{r[2]},{r.sum()}" for r in x]
    path = tmp_path / "houses.csv"
    path.write_text("\n".join(lines) + "\n")
    config = table_config(write_config, path, "dataset.task=regression", "dataset.label_column=price",
                          "model.layers.1.Dense.activation=linear", "loss=mse")

    splits = load_dataset(config)

    x_train, y_train = encoded(splits, "train")
    assert splits.class_names == [] and y_train.dtype == np.float32
    assert np.allclose(x_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(x_train.std(axis=0), 1, atol=1e-3)
    assert not np.allclose(encoded(splits, "test")[0].mean(axis=0), 0, atol=1e-3)


def test_missing_column_suggests_the_nearest(write_config, tmp_path):
    path = write_reviews(tmp_path / "reviews.csv", rows=20)

    with pytest.raises(ConfigError, match=r"dataset.label_column: 'lable' is not a column .*did you mean 'label'\?"):
        load_dataset(table_config(write_config, path, "dataset.label_column=lable"))


def test_missing_table_file(write_config, tmp_path):
    with pytest.raises(DataUnavailable, match=r"dataset.path: .*nope.csv does not exist"):
        load_dataset(table_config(write_config, tmp_path / "nope.csv"))


def test_regression_refuses_classes(write_config):
    text = TINY_CONFIG.replace("name: digits", "name: boston_housing").replace("  validation_split: 0.2\n", "  classes: [1, 2]\n")

    with pytest.raises(ConfigError, match="'classes' is for classification; boston_housing is a regression task"):
        load_config(write_config(text))


def test_npz_arrays(write_config, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "arrays.npz"
    np.savez(path, x_train=rng.normal(size=(100, 4)), y_train=rng.integers(0, 3, 100),
             x_test=rng.normal(size=(30, 4)), y_test=rng.integers(0, 3, 30))
    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {path}")))

    splits = load_dataset(config)

    assert (len(splits.train), len(splits.validation), len(splits.test)) == (80, 20, 30)
    assert splits.class_names == ["0", "1", "2"]


def test_boston_housing_falls_back_to_the_same_houses_and_split(write_config, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("dlcli.data.keras_datasets.host_reachable", lambda host: False)
    text = TINY_CONFIG.replace("name: digits", "name: boston_housing\n  standardize: false")
    config = load_config(write_config(text), ["training.kfold=4"])

    folds = load_folds(config)

    # Keras's own split (seed 113) of the 506 houses: the book's first training house
    whole_train = np.concatenate([encoded(folds[0], "train")[0], encoded(folds[0], "validation")[0]])
    assert len(whole_train) == 404 and len(folds[0].test) == 102
    assert any(np.isclose(row[0], 1.23247) and row[2] == pytest.approx(8.14) for row in whole_train)


def test_kfold_validation_folds_are_distinct_and_cover_the_training_data(tiny_config):
    folds = load_folds(load_config(tiny_config, ["training.kfold=3"]))

    validation_rows = [{row.tobytes() for row in encoded(fold, "validation")[0]} for fold in folds]
    assert len(folds) == 3
    assert all(not (a & b) for i, a in enumerate(validation_rows) for b in validation_rows[i + 1:])
    everything = {row.tobytes() for name in ("train", "validation") for row in encoded(folds[0], name)[0]}
    assert set().union(*validation_rows) == everything
    assert all(np.array_equal(encoded(fold, "test")[0], encoded(folds[0], "test")[0]) for fold in folds)


@pytest.mark.parametrize("encoding, expected", [
    ("multi_hot", [[0, 1, 0, 1, 0, 0]]), ("count", [[0, 2, 0, 1, 0, 0]]),
])
def test_word_index_encodings(write_config, encoding, expected):
    from dlcli.data.keras_datasets import encode_word_indices

    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: imdb\n  num_words: 6\n  encoding: {encoding}")))
    sequences = np.empty(1, dtype=object)
    sequences[0] = [1, 3, 1]

    assert encode_word_indices(sequences, config).tolist() == expected


def test_word_index_sequences_and_tf_idf(write_config):
    from dlcli.data.keras_datasets import encode_word_indices

    sequences = np.empty(2, dtype=object)
    sequences[0], sequences[1] = [1, 2, 3], [4]
    reuters = "name: reuters\n  encoding: sequence\n  sequence_length: 4"
    padded = load_config(write_config(TINY_CONFIG.replace("name: digits", reuters)))
    tf_idf = load_config(write_config(TINY_CONFIG.replace("name: digits", "name: reuters\n  encoding: tf_idf")))

    assert encode_word_indices(sequences, padded).tolist() == [[0, 1, 2, 3], [0, 0, 0, 4]]
    with pytest.raises(ConfigError, match="dataset.encoding: reuters comes as word indices"):
        encode_word_indices(sequences, tf_idf)


def image_config(write_config, folder, *overrides):
    dataset = f"name: image_directory\n  path: {folder}\n  image_size: [8, 8]\n  color_mode: grayscale"
    text = TINY_CONFIG.replace("name: digits", dataset)
    return load_config(write_config(text), list(overrides))


def test_image_folder_with_train_and_test(write_config, digits_folder):
    splits = load_dataset(image_config(write_config, digits_folder))

    assert splits.input_shape == (8, 8, 1)
    assert len(splits.test) == 360 and len(splits.train) + len(splits.validation) == 1437
    assert splits.class_names == [str(d) for d in range(10)]
    x_train, _ = encoded(splits, "train")
    assert 0 <= x_train.min() and x_train.max() <= 1


def test_image_folder_with_its_own_validation_folder(write_config, digits_folder, tmp_path):
    folder = tmp_path / "three"
    shutil.copytree(digits_folder / "train", folder / "train")
    shutil.copytree(digits_folder / "test", folder / "validation")

    splits = load_dataset(image_config(write_config, folder))

    assert len(splits.validation) == 360  # the folder, not a split of train/
    assert (len(splits.train), len(splits.test)) == (1149, 288)  # no test/: 20% of train/


def test_a_split_folder_without_a_class_and_an_image_beside_the_class_folders_are_named(write_config, digits_folder,
                                                                                       tmp_path):
    folder = tmp_path / "three"
    shutil.copytree(digits_folder / "train", folder / "train")
    shutil.copytree(digits_folder / "test" / "0", folder / "validation" / "0")  # no other class
    with pytest.raises(DataUnavailable, match=r"three/validation has no folder for class '1', which the training images "
                                              r"have; put the class's images in .*three/validation/1"):
        load_dataset(image_config(write_config, folder))  # it said the missing folder 'holds no images'

    shutil.rmtree(folder / "validation")
    shutil.copy(next((folder / "train" / "3").iterdir()), folder / "train" / "stray.png")
    with pytest.raises(DataUnavailable, match=r"train/stray.png: an image beside the class folders, in no class, would "
                                              r"be passed by"):
        load_dataset(image_config(write_config, folder))


def test_single_image_folder_is_split_by_dlcli(write_config, digits_folder):
    splits = load_dataset(image_config(write_config, digits_folder / "test"))

    assert len(splits.test) == 72 and len(splits.train) + len(splits.validation) == 288


def test_image_folder_with_one_class(write_config, digits_folder, tmp_path):
    shutil.copytree(digits_folder / "test" / "3", tmp_path / "one" / "3")

    with pytest.raises(DataUnavailable, match=r"has 1 class folder\(s\): 3; a classifier needs at least 2"):
        load_dataset(image_config(write_config, tmp_path / "one"))


def test_missing_image_folder(write_config, tmp_path):
    with pytest.raises(DataUnavailable, match=r"dataset.path: .*absent does not exist; .*dlcli datasets export digits"):
        load_dataset(image_config(write_config, tmp_path / "absent"))


def test_image_dataset_needs_a_path(write_config):
    text = TINY_CONFIG.replace("name: digits", "name: image_directory")

    with pytest.raises(ConfigError, match="dataset: dataset image_directory needs the option 'path'"):
        load_config(write_config(text))


def test_export_writes_the_image_directory_layout(digits_folder):
    assert sorted(p.name for p in digits_folder.iterdir()) == ["test", "train"]
    assert sorted(p.name for p in (digits_folder / "train").iterdir()) == [str(d) for d in range(10)]
    assert sum(1 for _ in digits_folder.rglob("*.png")) == 1797


def test_export_shows_the_config_line_for_its_folder_as_yaml_reads_it_back(cli, tmp_path):
    import yaml

    folder = tmp_path / "my: set{1}"
    result = cli("datasets", "export", "digits", str(folder), runs=False)

    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split()).split("train on them with `", 1)[1].rstrip("`")
    assert yaml.safe_load(shown) == {"dataset": {"name": "image_directory", "path": str(folder)}}  # it broke the line


def test_export_refuses_a_non_empty_folder_and_non_image_datasets(cli, digits_folder, tmp_path):
    assert cli("datasets", "export", "digits", str(digits_folder), runs=False).exit_code == 2
    result = cli("datasets", "export", "csv", str(tmp_path / "x"), runs=False)
    assert result.exit_code == 2
    assert "cannot export 'csv': exportable are the image datasets mnist_5k, digits" in result.stderr
    assert "and tickets (a generated table)" in result.stderr
    misspelt = cli("datasets", "export", "DIGITS", str(tmp_path / "x"), runs=False)
    assert misspelt.exit_code == 2 and "did you mean 'digits'?" in misspelt.stderr
    (tmp_path / "notes.txt").write_text("mine\n")
    into_file = cli("datasets", "export", "digits", str(tmp_path / "notes.txt"), runs=False)
    assert into_file.exit_code == 2 and "is a file; give a new or empty folder" in into_file.stderr, into_file.output
    (tmp_path / "moved").symlink_to(tmp_path / "gone")
    into_nothing = cli("datasets", "export", "digits", str(tmp_path / "moved" / "x"), runs=False)
    dangling = cli("datasets", "export", "digits", str(tmp_path / "moved"), runs=False)
    under_a_file = cli("datasets", "export", "digits", str(tmp_path / "notes.txt" / "x"), runs=False)
    for result in (dangling, into_nothing):  # mkdir said "File exists"
        assert result.stderr.strip().endswith(f"is a link to {tmp_path / 'gone'}, which does not exist; remove the "
                                              "link or give another path"), result.output
    assert f"{tmp_path / 'moved'} is a link" in into_nothing.stderr
    assert under_a_file.stderr.strip().endswith("notes.txt is a file, not a folder; give another path"), under_a_file.output


def test_datasets_lists_every_dataset_without_importing_tensorflow(tmp_path):
    code = (
        "import sys; from typer.testing import CliRunner; from dlcli.cli import app; "
        "r = CliRunner().invoke(app, ['datasets']); print(r.stdout); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"KERAS_HOME": str(tmp_path), "COLUMNS": "200", "PATH": ""}, check=True)

    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "False"
    for name in ("mnist_5k", "digits", "mnist", "imdb", "boston_housing", "image_directory", "csv", "npz"):
        assert any(f" {name} " in line for line in lines)
    assert any(" mnist " in line and "not cached" in line for line in lines)
    assert any(" boston_housing " in line and "mlxtend" in line for line in lines)


# --- Data that cannot be trained on: one line naming the file, what is wrong and what to do ---------

def _csv(tmp_path, text):
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


BAD_TABLES = [
    # (id, CSV text, the error's type, a fragment of its one line)
    ("label missing in a row", "a,b,label\n1,2,x\n3,4,\n5,6,y\n7,8,x\n", ConfigError,
     r"dataset.label_column: column 'label' of .*table.csv has no value in 1 row \(line 3\): fill or remove it"),
    ("feature missing in a row", "a,b,label\n1,2,x\n3,,y\n5,6,y\n7,8,x\n", ConfigError,
     r"dataset.feature_columns: column 'b' of .*table.csv has no finite value in 1 row \(line 3\): fill or remove it"),
    ("header and no rows", "a,b,label\n", DataUnavailable, r"table.csv has a header \(a, b, label\) and no rows"),
    # a spreadsheet's export where the comma is the decimal mark: "'label' is not a column (columns: a;b;label)"
    ("separated by semicolons", "a;b;label\n0,5;1;x\n3;4;y\n", ConfigError,
     r"dataset.path: .*table.csv: its header \('a;b;label'\) is one column holding ';': the file is separated by ';'"),
    ("separated by tabs", "a\tb\tlabel\n1\t2\tx\n", ConfigError, r"is one column holding '\\t'"),
    # pandas took a first row's extra field as the row's index, and named a later one in its parser's words
    ("a comma in the first row", "a,b,label\n1,2,x,y\n3,4,y\n5,6,y\n", ConfigError,
     r"dataset.path: .*table.csv, line 2: 4 fields where the header has 3 \(a, b, label\); put quotes around a value"),
    ("a wide table without its label column", ",".join(f"c{i}" for i in range(30)) + "\n" + ",".join(["1"] * 30) + "\n",
     ConfigError, r"'label' is not a column of .*table.csv \(columns: c0, c1, .*, c11, \.\.\. and 18 more\)$"),
    # DataFrame.to_csv() with its index: the row number became a feature, the label's on a sorted table
    ("pandas's index", ",a,label\n0,1,x\n1,3,x\n2,5,y\n3,7,y\n", ConfigError,
     r"dataset: column 1 of .*table.csv has no name \('Unnamed: 0' to pandas\): a row number such as DataFrame.to_csv"),
    ("pandas's index saved again", ",Unnamed: 0,a,label\n0,0,1,x\n1,1,3,x\n2,2,5,y\n3,3,7,y\n", ConfigError,
     r"column 1 of .*table.csv has no name \('Unnamed: 0.1' to pandas\): a row number"),
    ("a comma at each line's end", "a,b,label,\n1,2,x,\n3,4,y,\n5,6,y,\n", ConfigError,
     r"column 4 of .*table.csv has no name \('Unnamed: 3' to pandas\) and no values: a comma at the end of each line\?"),
    ("a column named twice", "a,b,b,label\n1,2,9,x\n3,4,9,y\n5,6,9,y\n", ConfigError,
     r"dataset.path: .*table.csv: the header names column 'b' twice \(columns 2 and 3\); give each column its own"),
    ("a comma in a later row", "a,b,label\n1,2,x\n3,4,y\n5,6,y,z\n", ConfigError,
     r"dataset.path: .*table.csv, line 4: 4 fields where the header has 3"),
    # pandas named a record of its own count ("EOF inside string starting at row 3"), not a line
    ("a quote left open", 'a,b,label\n1,2,"x\ny"\n\n3,"4,y\n5,6,y\n', ConfigError,
     r"dataset.path: .*table.csv, line 5: a quote \(\"\) opens a value that never closes, so the rest of the file"),
    # the rest of the file in one field, past the csv module's limit of 128 KiB a field
    ("a quote left open in a long file", 'a,b,label\n1,2,x\n3,"4,y\n' + "".join(f"{n},{n},y\n" for n in range(12000)),
     ConfigError, r"dataset.path: .*table.csv, line 3: a quote \(\"\) opens a value that never closes"),
    ("one class", "a,b,label\n1,2,x\n3,4,x\n5,6,x\n7,8,x\n", ConfigError,
     r"column 'label' of .*table.csv holds one class \('x'\): a classifier needs at least 2"),
    ("infinite feature", "a,b,label\n1,2,x\n3,inf,y\n5,6,y\n7,-inf,x\n", ConfigError,
     r"column 'b' of .*table.csv has no finite value in 2 rows \(lines 3, 5\)"),
    ("only a label column", "label\nx\ny\nx\ny\n", ConfigError,
     r"dataset: .*table.csv has no column besides its label 'label'"),
    ("a word among the numbers", "a,b,label\n1,2,x\n3,4,y\n5,abc,y\n7,8,x\n", ConfigError,
     r"dataset: column 'b' of .*table.csv is not numeric: 'abc' at line 4 \(1 row\); fix those cells"),
]


def test_a_test_split_that_leaves_one_training_example_is_named(write_config, tmp_path):
    rows = "".join(f"{n},{n * 2},{n % 2}\n" for n in range(20))

    with pytest.raises(ConfigError, match=r"1 training example \(after the test split\) cannot be split into training "
                       r"and validation; use a larger dataset, or a smaller dataset.test_split \(now 0.95\)"):
        load_dataset(table_config(write_config, _csv(tmp_path, "a,b,label\n" + rows), "dataset.test_split=0.95"))


def test_columns_without_a_name_are_not_a_column_named_twice(write_config, tmp_path):
    # a spreadsheet's trailing commas: two columns named '' (pandas's "Unnamed: 2", "Unnamed: 3")
    rows = "".join(f"{n},{n % 2},,\n" for n in range(20))

    splits = load_dataset(table_config(write_config, _csv(tmp_path, "a,label,,\n" + rows), "dataset.feature_columns=[a]"))

    assert len(splits.train) + len(splits.validation) + len(splits.test) == 20


@pytest.mark.parametrize("text, error, message", [case[1:] for case in BAD_TABLES], ids=[c[0] for c in BAD_TABLES])
def test_a_table_that_cannot_be_trained_on_says_why(write_config, tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        load_dataset(table_config(write_config, _csv(tmp_path, text)))


def test_a_table_saved_in_another_encoding_names_its_first_line_that_is_not_utf8(write_config, tmp_path):
    table = tmp_path / "table.csv"
    table.write_bytes("a,b,label\n1,2,tea\n3,4,café\n5,6,tea\n".encode("latin-1"))

    with pytest.raises(ConfigError, match=r"dataset.path: .*table.csv, line 3: byte 0xe9 at column 8 is not UTF-8 "
                       r"\(the file was saved in another encoding, such as Latin-1\); save it as UTF-8"):
        load_dataset(table_config(write_config, table))


def test_the_label_among_the_features_and_word_labels_for_a_regression(write_config, tmp_path):
    table = _csv(tmp_path, "a,b,label\n1,2,x\n3,4,y\n5,6,y\n7,8,x\n")

    with pytest.raises(ConfigError, match=r"dataset.text_column: 'label' is the label column: a model given its own"):
        load_dataset(table_config(write_config, table, "dataset.text_column=label"))
    with pytest.raises(ConfigError, match=r"dataset.feature_columns: give text_column or feature_columns, not both"):
        load_dataset(table_config(write_config, table, "dataset.text_column=a", "dataset.feature_columns=[b]"))
    with pytest.raises(ConfigError, match=r"dataset.sequence_length: sequence_length goes with `encoding: sequence`, "
                                          r"not multi_hot: remove it"):
        table_config(write_config, table, "dataset.text_column=a", "dataset.sequence_length=20")

    with pytest.raises(ConfigError, match=r"dataset.feature_columns: 'label' is the label column"):
        load_dataset(table_config(write_config, table, "dataset.feature_columns=[a, label]"))
    with pytest.raises(DataUnavailable, match=r"column 'label' of .*table.csv: a regression learns numbers, and the "
                                              r"labels hold words \('x' and 3 more\)"):
        load_dataset(table_config(write_config, table, "dataset.task=regression"))


def _arrays(**changes):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((20, 4)), "y_train": np.arange(20) % 2,
              "x_test": rng.random((6, 4)), "y_test": np.arange(6) % 2}
    return {**arrays, **changes}


NAN_ROW = np.array([[0.1, np.nan, 0.3, 0.4]])
BAD_ARRAYS = [
    # (id, the arrays changed, a fragment of the one line)
    ("more labels than inputs", {"y_train": np.arange(22) % 2},
     r"the train \(x_train, y_train\) split has 20 inputs and 22 labels"),
    ("test inputs of another width", {"x_test": np.ones((6, 5))},
     r"the splits' inputs differ in shape \(train \(x_train, y_train\) \(4,\), test \(x_test, y_test\) \(5,\)\)"),
    ("an empty test split", {"x_test": np.ones((0, 4)), "y_test": np.zeros(0, int)},
     r"the test \(x_test, y_test\) split has no examples"),
    ("NaN in the inputs", {"x_train": np.concatenate([np.ones((3, 4)), NAN_ROW, np.ones((16, 4))])},
     r"the train \(x_train, y_train\) inputs hold NaN or infinite values in 1 row \(first: row 3"),
    ("infinity in the test inputs", {"x_test": np.full((6, 4), np.inf)},
     r"the test \(x_test, y_test\) inputs hold NaN or infinite values in 6 rows"),
    ("a NaN label", {"y_train": np.where(np.arange(20) == 5, np.nan, np.arange(20) % 2)},
     r"y_train, y_test: 1 label is NaN or infinite \(first: example 5\)"),
    ("one-hot labels", {"y_train": np.eye(2)[np.arange(20) % 2]},
     r"y_train is of shape \(20, 2\); give one label per example \(class indices, not one-hot rows"),
    ("no features", {"x_train": np.ones((20, 0)), "x_test": np.ones((6, 0))},
     r"the train \(x_train, y_train\) inputs have no features"),
]


@pytest.mark.parametrize("changes, message", [case[1:] for case in BAD_ARRAYS], ids=[case[0] for case in BAD_ARRAYS])
def test_arrays_that_cannot_be_trained_on_are_named_where_they_enter(write_config, tmp_path, changes, message):
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays(**changes))
    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {path}").replace(
        "    - Flatten\n", "").replace("units: 10, activation: softmax", "units: 2, activation: softmax")))

    with pytest.raises(DataUnavailable, match=r"data.npz: .*" + message):
        load_dataset(config)


def test_a_column_of_labels_is_one_label_per_example(write_config, tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays(y_train=(np.arange(20) % 2).reshape(20, 1)))
    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {path}")))

    assert len(load_dataset(config).train) > 0


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.float32(3.0)}, r"data.npz: x_train is a single value, not an array of examples"),
])
def test_npz_arrays_that_are_not_examples_or_classes_are_refused(write_config, tmp_path, arrays, message):
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays(**arrays))
    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {path}")))

    with pytest.raises(DataUnavailable, match=message):
        load_dataset(config)


def test_a_dataset_file_missing_or_of_the_other_kind_says_which(write_config, tmp_path):
    table = _csv(tmp_path, "a,label\n1,x\n2,y\n")
    archive = tmp_path / "data.npz"
    np.savez(archive, **_arrays())

    with pytest.raises(DataUnavailable, match=r"dataset.path: .*table.CSV does not exist; did you mean 'table.csv'\?"):
        load_dataset(table_config(write_config, tmp_path / "table.CSV"))
    (tmp_path / "moved.csv").symlink_to(tmp_path / "gone" / "data.csv")  # it had been offered as its own fix
    with pytest.raises(DataUnavailable, match=r"dataset.path: .*moved.csv is a link to .*gone/data.csv, which does not exist$"):
        load_dataset(table_config(write_config, tmp_path / "moved.csv"))
    with pytest.raises(ConfigError, match=r"config.yaml:2: dataset: 1 training example \(after the test split\) cannot be "
                                          r"split into training and validation"):  # not the default validation_split
        load_dataset(table_config(write_config, _csv(tmp_path, "a,label\n1,x\n2,y\n")))
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataUnavailable, match=r"dataset.path: .*pipe.csv is not a plain file \(a pipe or a device\?\)"):
        load_dataset(table_config(write_config, tmp_path / "pipe.csv"))
    with pytest.raises(DataUnavailable, match=r"data.npz is an .npz archive, not what dataset csv reads; for it, set "
                                              r"`dataset.name: npz`"):
        load_dataset(table_config(write_config, archive))
    npz_of_a_csv = TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {table}")
    with pytest.raises(DataUnavailable, match=r"table.csv is not an .npz archive \(numpy.savez\), not what dataset npz "
                                              r"reads; for it, set `dataset.name: csv`"):
        load_dataset(load_config(write_config(npz_of_a_csv)))


def test_npz_of_strings_is_refused_with_the_array_named(write_config, tmp_path):
    path = tmp_path / "words.npz"
    np.savez(path, x_train=np.array([["a", "b"]] * 10), y_train=np.arange(10) % 2,
             x_test=np.array([["a", "b"]] * 4), y_test=np.arange(4) % 2)
    config = load_config(write_config(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {path}")))

    with pytest.raises(DataUnavailable, match=r"words.npz: x_train holds <U1 values; dlcli trains on numbers"):
        load_dataset(config)


def test_k_fold_with_more_folds_than_examples(write_config, tmp_path):
    path = _csv(tmp_path, "a,label\n" + "".join(f"{n},{n % 2}\n" for n in range(8)))
    config = table_config(write_config, path, "training.kfold=7", "dataset.test_split=0.25")

    with pytest.raises(ConfigError, match="training.kfold: 7 folds need at least 7 training examples; the data has 6"):
        load_folds(config)


def test_an_empty_class_folder_and_a_file_that_is_not_an_image(write_config, digits_folder, tmp_path):
    shutil.copytree(digits_folder / "test" / "3", tmp_path / "photos" / "3")
    shutil.copytree(digits_folder / "test" / "5", tmp_path / "photos" / "5")
    (tmp_path / "photos" / "7").mkdir()
    with pytest.raises(DataUnavailable, match=r"photos/7 holds no images .*put the class's images there"):
        load_dataset(image_config(write_config, tmp_path / "photos"))

    (tmp_path / "photos" / "7").rmdir()
    (tmp_path / "photos" / "5" / "notes.png").write_text("not an image")
    with pytest.raises(DataUnavailable, match=r"notes.png is not a JPEG, PNG, BMP or GIF image: remove or replace it"):
        load_dataset(image_config(write_config, tmp_path / "photos"))

    (tmp_path / "photos" / "5" / "notes.png").unlink()
    (tmp_path / "photos" / "5" / "moved.png").symlink_to(tmp_path / "elsewhere.png")  # a link left behind by a move
    with pytest.raises(DataUnavailable, match=r"moved.png is a link to .*elsewhere.png, which does not exist: remove or"):
        load_dataset(image_config(write_config, tmp_path / "photos"))


def _bmp(mode: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype="uint8")
    picture = Image.fromarray(pixels).convert(mode)
    saved = io.BytesIO()
    picture.save(saved, "BMP")
    return saved.getvalue()


def _with_palette(data: bytes, colour) -> bytes:
    """An 8-bit BMP of PIL's (a BITMAPINFOHEADER) with each palette entry i set to colour(i), as B, G, R."""
    data = bytearray(data)
    for i in range(256):
        data[54 + 4 * i:54 + 4 * i + 3] = bytes(colour(i))
    return bytes(data)


def _v5_header(data: bytes) -> bytes:
    """The same 8-bit BMP with a BITMAPV5HEADER (124 bytes, as many editors write): its palette ends at byte 1162."""
    header = bytearray(data[14:54])
    header[0:4] = (124).to_bytes(4, "little")
    body = bytes(header) + bytes(124 - 40) + data[54:]
    return b"BM" + (14 + len(body)).to_bytes(4, "little") + bytes(4) + (14 + 124 + 1024).to_bytes(4, "little") + body


def _os2_header(data: bytes) -> bytes:
    """A 24-bit BMP with the 12-byte BITMAPCOREHEADER of OS/2 instead."""
    width, height = (int.from_bytes(data[at:at + 4], "little") for at in (18, 22))
    core = (12).to_bytes(4, "little") + width.to_bytes(2, "little") + height.to_bytes(2, "little") + bytes((1, 0, 24, 0))
    body = core + data[54:]
    return b"BM" + (14 + len(body)).to_bytes(4, "little") + bytes(4) + (14 + 12).to_bytes(4, "little") + body


def _rle8(data: bytes) -> bytes:
    """An 8-bit BMP of grey levels, its pixels run-length encoded (each row one run of level 7)."""
    runs = b"".join(b"\x07\x07\x00\x00" for _ in range(6)) + b"\x00\x01"  # 7 pixels of 7, end of line; end
    head = bytearray(data[:54 + 1024])
    head[30:34] = (1).to_bytes(4, "little")
    head[2:6] = (len(head) + len(runs)).to_bytes(4, "little")
    return bytes(head) + runs


BMPS = [
    # (id, the file, what dlcli says of it; None: TensorFlow reads it as Pillow does)
    ("24 bits", lambda: _bmp("RGB"), None),
    ("8 bits, grey levels 0-255 (PIL's mode L)", lambda: _bmp("L"), None),
    ("1 bit", lambda: _bmp("1"), "is a BMP of 1 bit a pixel, which TensorFlow does not decode (it reads 8, 24, 32)"),
    ("8 bits, a colour palette", lambda: _bmp("P"), "is a BMP whose palette is not the grey levels 0-255 in order"),
    ("8 bits, grey levels inverted", lambda: _with_palette(_bmp("L"), lambda i: (255 - i,) * 3),
     "is a BMP whose palette is not the grey levels 0-255 in order; TensorFlow ignores a palette"),
    ("8 bits, a V5 header, the palette's last entries red",
     lambda: _v5_header(_with_palette(_bmp("L"), lambda i: (i,) * 3 if i < 200 else (0, 0, 255))),
     "is a BMP whose palette is not the grey levels 0-255 in order"),
    ("an OS/2 header", lambda: _os2_header(_bmp("RGB")), "is a BMP with an OS/2 header, which TensorFlow does not decode"),
    ("run-length encoded", lambda: _rle8(_bmp("L")), "is a compressed BMP, which TensorFlow does not decode"),
    ("2 bytes after its pixels", lambda: _bmp("RGB") + b"\0\0",
     "is a BMP of 200 bytes where its header sets out 198 (cut short, or with bytes after it)"),
]


@pytest.mark.parametrize("made, says", [case[1:] for case in BMPS], ids=[case[0] for case in BMPS])
def test_a_bmp_that_tensorflow_would_not_read_or_would_misread_is_named(tmp_path, made, says):
    from dlcli.data.pipeline import decode_pixels

    path = tmp_path / "picture.bmp"
    path.write_bytes(made())
    as_pillow_reads_it = np.asarray(Image.open(path).convert("RGB"))

    if says is None:
        check_image_files([path])
        assert (decode_pixels(tf.constant(path.read_bytes()), 3).numpy() == as_pillow_reads_it).all()
        return
    with pytest.raises(DataUnavailable, match=re.escape(f"picture.bmp {says}")):
        check_image_files([path])
    try:  # what the file would have met: a failed decode, or other pixels than its own
        decoded = decode_pixels(tf.constant(path.read_bytes()), 3).numpy()
    except tf.errors.InvalidArgumentError:
        return
    assert decoded.shape != as_pillow_reads_it.shape or not (decoded == as_pillow_reads_it).all()


def test_pictures_training_would_pass_by_are_named(write_config, digits_folder, tmp_path):
    photos = tmp_path / "photos"
    for split in ("train", "test"):
        for digit in ("3", "5"):
            shutil.copytree(digits_folder / "test" / digit, photos / split / digit)
    (photos / "train" / "5" / "scan.webp").write_bytes(b"RIFF")  # Keras's loader skips it: the class would lose it
    with pytest.raises(DataUnavailable, match=r"train/5: .*scan.webp is a picture dlcli cannot read \(it reads .bmp"):
        load_dataset(image_config(write_config, photos))

    (photos / "train" / "5" / "scan.webp").unlink()
    shutil.copytree(digits_folder / "test" / "7", photos / "test" / "7")  # scored on a class never trained on
    with pytest.raises(DataUnavailable, match=r"test/7: a class .*train has no folder for, whose images would be passed"):
        load_dataset(image_config(write_config, photos))

    config = image_config(write_config, photos, "dataset.classes=['3', '5']")  # left out by choice
    assert load_dataset(config).class_names == ["3", "5"]
    shutil.copytree(digits_folder / "test" / "7", photos / "train" / "7")
    (photos / "train" / "7" / "scan.webp").write_bytes(b"RIFF")  # in a class left out: neither read nor judged
    (photos / "train" / "8").mkdir()  # nor is an empty class folder that is left out
    assert load_dataset(image_config(write_config, photos, "dataset.classes=[0, '5']")).class_names == ["3", "5"]


def test_labels_that_read_as_a_quantity_bring_the_regression_task_to_mind(cli, write_config, tmp_path):
    prices = "".join(f"{n},{n % 7},{100 + 2.5 * n}\n" for n in range(60))  # 60 prices: 60 "classes" to a classifier
    path = _csv(tmp_path, "a,b,price\n" + prices)
    config = write_config(TABLE_CONFIG.replace("PATH", f"{path}, label_column: price")
                          .replace("activation: sigmoid", "activation: linear").replace("binary_crossentropy", "mse"))

    result = cli("check", str(config))

    assert result.exit_code == 2, result.output
    assert "loss: mse is a regression loss; csv is a classification task" in result.stderr
    assert "or, if its labels are a quantity (100.0, 102.5, 105.0, ...), set `dataset.task: regression`, end in 1 unit and " \
        "use loss: mse" in result.stderr
    # the table's config as written: binary_crossentropy for 60 "classes"
    sixty = cli("check", str(write_config(TABLE_CONFIG.replace("PATH", f"{path}, label_column: price"))))
    assert "binary_crossentropy is for 2 classes; csv has 60" in sixty.stderr and "a quantity" in sixty.stderr
    # class numbers 0..K-1 are how classes are written: no hint
    numbered = _csv(tmp_path, "a,b,label\n" + "".join(f"{n},{n % 7},{n % 25}\n" for n in range(60)))
    counted_classes = cli("check", str(write_config(TABLE_CONFIG.replace("PATH", str(numbered)))))
    assert "binary_crossentropy is for 2 classes; csv has 25" in counted_classes.stderr
    assert "quantity" not in counted_classes.stderr


def test_bad_data_exits_2_on_one_line_and_leaves_no_run(cli, write_config, runs_dir, tmp_path):
    config = write_config(TABLE_CONFIG.replace("PATH", str(_csv(tmp_path, "a,b,label\n1,2,x\n3,4,\n"))))

    result = cli("train", str(config))

    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output and not runs_dir.exists()


def test_noise_features_that_cannot_fit_in_memory_are_refused_before_any_is_drawn(cli, tiny_config):
    result = cli("check", str(tiny_config), "--set", "dataset.noise_features={count: 2000000000}")

    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "dataset.noise_features.count: 2,000,000,000 noise features on 1,797 examples take" in line
    assert "GB are available: append fewer" in line


def test_a_category_is_one_token_whether_pandas_reads_its_column_as_integers_or_floats():
    import pandas as pd

    from dlcli.data.files import categorical_cells

    with_blank = pd.DataFrame({"tier": [1.0, np.nan, 3.0], "plan": ["pro", None, "team"]})  # floats for the blank
    whole = pd.DataFrame({"tier": [1, 3], "plan": ["pro", "team"]})

    assert categorical_cells(with_blank, ["tier", "plan"]).tolist() == [
        ["tier=1", "plan=pro"], ["tier=", "plan="], ["tier=3", "plan=team"]]
    assert categorical_cells(whole, ["tier", "plan"]).tolist() == [["tier=1", "plan=pro"], ["tier=3", "plan=team"]]


def test_a_one_column_header_that_a_run_reads_may_hold_another_separator(tmp_path):
    from dlcli.data.files import check_csv_header

    table = tmp_path / "prices.csv"
    table.write_text("price|eur\n3\n")

    check_csv_header(table, DataUnavailable, ["price|eur"])  # predict's input of a run that reads that column
    with pytest.raises(DataUnavailable, match=r"is one column holding '\|': the file is separated by '\|'"):
        check_csv_header(table)
