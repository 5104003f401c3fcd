"""Using a trained model: `dlcli predict` on images, tables, texts and arrays, and `dlcli export`, checked."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, TINY_CONFIG, read_json
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.store.runs import resolve_run
from dlcli.training.train import train

pytestmark = pytest.mark.slow  # five runs trained for the module, exports converted and checked

IMAGE_FOLDER = TINY_CONFIG.replace("name: digits", "name: image_directory\n  path: {path}\n  image_size: [8, 8]\n"
                                   "  color_mode: grayscale")
TABLE = TINY_CONFIG.replace("name: digits", "name: csv\n  path: {path}\n  standardize: true").replace(
    "    - Flatten\n", "")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_folder):
    """Runs of each kind, trained once for the module: digits arrays, an image folder, a table, a text CSV."""
    root = tmp_path_factory.mktemp("predict")
    runs = root / "runs"
    table = root / "digits.csv"
    x, y = _digits_table()
    with table.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f"p{i}" for i in range(64)] + ["label"])
        writer.writerows([*row, label] for row, label in zip(x.tolist(), y.tolist()))

    def run(text: str, name: str, *overrides: str):
        path = root / f"{name}.yaml"
        path.write_text(text)
        return train(load_config(path, [f"name={name}", "training.epochs=3", *overrides]), runs).run

    return {
        "runs": runs, "root": root, "table": table,
        "digits": run(TINY_CONFIG, "digits"),
        "folder": run(IMAGE_FOLDER.replace("{path}", str(digits_folder)), "folder"),
        "table_run": run(TABLE.replace("{path}", str(table)), "table"),
        "text": run((REPO / "configs" / "reviews_csv_multihot.yaml").read_text().replace(
            "data/reviews.csv", str(REPO / "data" / "reviews.csv")), "text"),
        "kfold": run(TINY_CONFIG, "kfold", "training.kfold=2"),
    }


def _digits_table():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.astype(int), digits.target


def predicted(cli, trained, run, *inputs, extra=()):
    result = cli("predict", run.id, *map(str, inputs), "--format", "csv", "--runs-dir", str(trained["runs"]), *extra,
                 runs=False)
    return result, list(csv.DictReader(io.StringIO(result.stdout)))


def evaluated_accuracy(cli, trained, run) -> float:
    assert cli("evaluate", run.id, "--runs-dir", str(trained["runs"]), runs=False).exit_code == 0
    return read_json(run.file("evaluation.json"))["metrics"]["accuracy"]


def test_the_kept_files_let_a_copied_run_predict(trained, tmp_path, cli, digits_folder):
    copy = tmp_path / "elsewhere" / trained["folder"].id
    shutil.copytree(trained["folder"].path, copy)
    result = cli("predict", str(copy), str(digits_folder / "test" / "3"), "--format", "json", runs=False)

    assert {"inputs.json", "preprocessing.keras", "model.keras"} <= {p.name for p in copy.iterdir()}
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == len(list((digits_folder / "test" / "3").iterdir()))
    assert set(rows[0]) == {"input", "prediction", "probability"}


@pytest.mark.parametrize("damage", [
    lambda inputs: {key: value for key, value in inputs.items() if key != "input_shape"},
    lambda inputs: {**inputs, "folds": "two"},
    lambda inputs: {**inputs, "task": None},
], ids=["no input_shape", "folds a word", "task null"])
def test_an_inputs_json_that_breaks_its_model_is_made_again(trained, tmp_path, cli, digits_folder, damage):
    copy = tmp_path / "runs" / trained["digits"].id
    shutil.copytree(trained["digits"].path, copy)
    original = json.loads((copy / "inputs.json").read_text())
    (copy / "inputs.json").write_text(json.dumps(damage(original)))

    result = cli("predict", str(copy), str(digits_folder / "test" / "3"), "--format", "json", runs=False)

    assert result.exit_code == 0, result.output
    assert json.loads((copy / "inputs.json").read_text()) == original  # rebuilt from the run's config and data


def test_an_inputs_json_naming_fewer_classes_than_the_model_gives_is_refused(trained, tmp_path, cli, digits_folder):
    copy = tmp_path / "runs" / trained["digits"].id
    shutil.copytree(trained["digits"].path, copy)
    original = json.loads((copy / "inputs.json").read_text())
    (copy / "inputs.json").write_text(json.dumps({**original, "class_names": ["0", "1"]}))

    result = cli("predict", str(copy), str(digits_folder / "test" / "3"), runs=False)
    (copy / "inputs.json").write_text(json.dumps({**original, "class_names": list("abcdefghij")}))
    renamed = cli("predict", str(copy), str(digits_folder / "test" / "3"), runs=False)
    summary = json.loads((copy / "summary.json").read_text())
    del summary["data"]["classes"]  # a run that recorded no classes: the model's outputs are counted
    (copy / "summary.json").write_text(json.dumps(summary))
    (copy / "inputs.json").write_text(json.dumps({**original, "class_names": ["0", "1"]}))
    counted = cli("predict", str(copy), str(digits_folder / "test" / "3"), runs=False)

    assert result.exit_code == 2 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert f"{copy / 'inputs.json'} names the classes 0, 1, and run {copy.name} was trained on 0, 1, 2" in message
    assert "delete it" in message
    assert renamed.exit_code == 2 and "names the classes a, b, c" in renamed.stderr  # it had answered 'd' for a 3
    assert counted.exit_code == 2 and f"names 2 classes, but run {copy.name}'s model gives 10" in counted.stderr


def test_a_replaced_model_or_an_edited_input_shape_is_one_line_and_a_run_named_preprocessing_predicts(
        trained, tmp_path, cli, digits_folder):
    import keras

    images = str(digits_folder / "test" / "3")
    copies = {}
    for name in ("shape", "replaced", "named"):
        copies[name] = tmp_path / name / trained["digits"].id
        shutil.copytree(trained["digits"].path, copies[name])
    inputs = json.loads((copies["shape"] / "inputs.json").read_text())
    (copies["shape"] / "inputs.json").write_text(json.dumps({**inputs, "input_shape": [8, 8, 3]}))
    shutil.copy(copies["replaced"] / "preprocessing.keras", copies["replaced"] / "model.keras")
    model = keras.saving.load_model(copies["named"] / "model.keras")
    model.name = "preprocessing"  # as a run named `preprocessing` saves it
    model.save(copies["named"] / "model.keras")

    shape = cli("predict", str(copies["shape"]), images, runs=False)
    replaced = cli("predict", str(copies["replaced"]), images, runs=False)
    scored = cli("evaluate", str(copies["replaced"]), runs=False)
    named = cli("predict", str(copies["named"]), images, "--format", "json", runs=False)

    assert shape.exit_code == 2 and "Traceback" not in shape.output
    assert "inputs.json says the model takes inputs of shape [8, 8, 3], but run" in " ".join(shape.stderr.split())
    assert replaced.exit_code == 2 and "its model.keras gives outputs of shape (None, 8, 8, 1)" in replaced.stderr
    assert scored.exit_code == 2 and "model.keras holds no loss or metrics" in " ".join(scored.stderr.split())
    assert named.exit_code == 0, named.output  # Keras had refused two layers named `preprocessing` in one model
    assert len(json.loads(named.stdout)) == len(list((digits_folder / "test" / "3").iterdir()))


def test_evaluate_refuses_a_config_edited_after_training(trained, tmp_path, cli):
    copy = tmp_path / "runs" / trained["digits"].id
    shutil.copytree(trained["digits"].path, copy)
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("normalize: true", "normalize: false"))
    (copy / "evaluation.json").unlink(missing_ok=True)

    result = cli("evaluate", str(copy), runs=False)

    assert result.exit_code == 2, result.output  # it scored the model on pixels it never saw, as its test score
    assert f"run {copy.name}: its config.yaml was edited after training" in " ".join(result.stderr.split())
    assert not (copy / "evaluation.json").exists()
    config.write_text("")
    emptied = cli("evaluate", str(copy), runs=False)
    assert emptied.exit_code == 2 and "Traceback" not in emptied.output  # an AttributeError
    assert f"run {copy.name} is damaged: config.yaml is empty; its folder is left as it is: put its config.yaml back as " \
        "it was" in " ".join(emptied.stderr.split())  # "train its config.yaml again" would fail on the empty file


@pytest.mark.parametrize("kind", ["digits", "folder"])
def test_image_predictions_score_as_evaluate_does(cli, trained, digits_folder, kind):
    result, rows = predicted(cli, trained, trained[kind], digits_folder / "test")

    assert result.exit_code == 0, result.output
    accuracy = np.mean([Path(row["input"]).parent.name == row["prediction"] for row in rows])
    assert len(rows) == 360
    assert accuracy == pytest.approx(evaluated_accuracy(cli, trained, trained[kind]), abs=0.005)


def test_table_and_text_predictions_score_as_evaluate_does(cli, trained, tmp_path):
    for name in ("table_run", "text"):
        run = trained[name]
        config = load_config(run.file("config.yaml"))
        splits = load_dataset(config)
        test = splits.test
        path = tmp_path / f"{name}-test.csv"
        columns = splits.input_columns
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["note", *columns, "truth"])
            for x, label in zip(test.pool.x[test.indices], test.labels):
                values = [x] if name == "text" else x.tolist()
                writer.writerow(["kept", *values, splits.class_names[label]])

        result, rows = predicted(cli, trained, run, path)

        assert result.exit_code == 0, result.output
        assert rows[0]["note"] == "kept" and rows[0]["input"] == f"{path}:1"  # other columns pass through
        accuracy = np.mean([row["truth"] == row["prediction"] for row in rows])
        assert accuracy == pytest.approx(evaluated_accuracy(cli, trained, run), abs=0.005), name


def test_evaluate_and_predict_choose_the_same_class_for_every_example_of_a_logit_unit(cli, trained, tmp_path):
    """One unit without a sigmoid, trained `from_logits`: its boundary is a logit of 0, for both."""
    config = tmp_path / "logit.yaml"
    config.write_text(TABLE.replace("{path}", str(trained["table"])).replace(
        "  standardize: true", "  standardize: true\n  classes: [3, 8]").replace(
        "    - Dense: {units: 10, activation: softmax}", "    - Dense: {units: 1}").replace(
        "loss: sparse_categorical_crossentropy", "loss: {name: binary_crossentropy, from_logits: true}").replace(
        "metrics: [accuracy]", "metrics: []"))
    run = train(load_config(config, ["name=logit", "training.epochs=1", "optimizer.learning_rate=0.001"]),
                trained["runs"]).run
    splits = load_dataset(load_config(run.file("config.yaml")))
    test = splits.test
    path = tmp_path / "logit-test.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*splits.input_columns, "truth"])
        writer.writerows([*x.tolist(), splits.class_names[label]] for x, label in zip(test.pool.x[test.indices], test.labels))

    result, rows = predicted(cli, trained, run, path)
    assert cli("evaluate", run.id, "--runs-dir", str(trained["runs"]), runs=False).exit_code == 0

    assert result.exit_code == 0, result.output
    names = splits.class_names
    from_predict = np.zeros((2, 2), int)
    for row in rows:
        from_predict[names.index(row["truth"]), names.index(row["prediction"])] += 1
    matrix = read_json(run.file("evaluation.json"))["confusion_matrix"]
    assert from_predict.tolist() == matrix
    assert 0 < sum(row["prediction"] == names[1] for row in rows) < len(rows)  # both classes chosen: a real boundary


def test_arrays_top_k_and_an_unreadable_image(cli, trained, digits_folder, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(digits_folder / "test" / "7", folder)
    (folder / "broken.png").write_bytes(b"not a picture")
    (folder / "cut.bmp").write_bytes(b"BM" + bytes(10))  # damaged, not of a kind TensorFlow misreads: skipped as the others
    (folder / "moved.png").symlink_to(tmp_path / "elsewhere.png")  # a broken link: named, not passed by
    pixels = np.stack([np.asarray(Image.open(p)) for p in sorted((digits_folder / "test" / "7").iterdir())])
    np.save(tmp_path / "sevens.npy", pixels[..., None])

    images, image_rows = predicted(cli, trained, trained["digits"], folder, extra=("--top", "3"))
    arrays, array_rows = predicted(cli, trained, trained["digits"], tmp_path / "sevens.npy")

    assert images.exit_code == 1 and "3 input(s) could not be read as images" in images.stderr
    assert "broken.png" in images.stderr and "moved.png" in images.stderr and "cut.bmp" in images.stderr
    assert len(image_rows) == len(pixels)  # the others are still predicted
    assert [name for name, _ in json.loads(image_rows[0]["top"])][0] == image_rows[0]["prediction"]
    assert len(json.loads(image_rows[0]["top"])) == 3  # JSON: a class name with a space in it stays whole
    assert arrays.exit_code == 0, arrays.output
    assert [r["prediction"] for r in array_rows] == [r["prediction"] for r in image_rows]
    alone, _ = predicted(cli, trained, trained["digits"], folder / "broken.png")
    assert alone.exit_code == 2 and "1 input(s) could not be read as images (damaged, or not a BMP" in alone.stderr


def test_an_output_never_destroys_an_input_or_an_older_output(cli, trained, tmp_path):
    run, table = trained["table_run"], tmp_path / "inputs.csv"
    table.write_text("\n".join(trained["table"].read_text().splitlines()[:4]) + "\n")
    kept = table.read_text()
    args = ("--runs-dir", str(trained["runs"]))

    onto_input = cli("predict", run.id, str(table), "--format", "csv", "--output", str(table), *args, runs=False)
    assert onto_input.exit_code == 2 and "is the input" in onto_input.stderr, onto_input.output
    assert len(onto_input.stderr.strip().splitlines()) == 1 and table.read_text() == kept
    history = run.path / "history.csv"
    run_file = history.read_text()
    onto_run = cli("predict", run.id, str(table), "--format", "csv", "--output", str(history), *args, runs=False)
    assert onto_run.exit_code == 2 and "is in the run folder" in onto_run.stderr, onto_run.output
    assert history.read_text() == run_file
    trained_on = trained["table"].read_text()  # the table the run trained on: no input here, a .csv as predictions are
    onto_data = cli("predict", run.id, str(table), "--output", str(trained["table"]), *args, runs=False)
    assert onto_data.exit_code == 2 and f"--output {trained['table']} is run {run.id}'s training data (dataset.path " \
        in onto_data.stderr, onto_data.output
    assert trained["table"].read_text() == trained_on

    earlier = tmp_path / "earlier.csv"
    earlier.write_text("the previous answers\n")
    broken = tmp_path / "broken.csv"
    broken.write_text("p0,p1\n1,2\n")  # the columns the model needs are missing
    failed = cli("predict", run.id, str(broken), "--output", str(earlier), *args, runs=False)
    assert failed.exit_code == 2 and earlier.read_text() == "the previous answers\n", failed.output
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left

    holes = tmp_path / "holes.csv"
    lines = table.read_text().splitlines()
    holes.write_text("\n".join([lines[0], lines[1], ",".join([""] + lines[2].split(",")[1:]), lines[3]]) + "\n")
    missing = cli("predict", run.id, str(holes), *args, runs=False)
    assert missing.exit_code == 2 and "column 'p0' has no finite value on line 3" in missing.stderr, missing.output

    nowhere = cli("predict", run.id, str(table), "--output", str(tmp_path / "missing" / "out.csv"), *args, runs=False)
    assert nowhere.exit_code == 2 and "missing/out.csv: its folder" in nowhere.stderr, nowhere.output
    assert "missing does not exist; make it first" in nowhere.stderr
    assert len(nowhere.stderr.strip().splitlines()) == 1
    folder = cli("predict", run.id, str(table), "--output", str(tmp_path), *args, runs=False)
    assert folder.exit_code == 2 and f"error: --output {tmp_path}: is a folder; give the name of a file" in folder.stderr
    assert len(folder.stderr.strip().splitlines()) == 1
    config = tmp_path / "config.yaml"
    config.write_text("name: mine\n")
    own = [trained["runs"] / "index.sqlite", trained["runs"] / "sweeps" / "20260101-000000-s" / "study.journal"]
    for path, says in ((config, "exists and is no file of predictions (.csv, .json, .txt"),
                       *((path, "is among the runs folder's own files") for path in own)):
        refused = cli("predict", run.id, str(table), "--format", "csv", "--output", str(path), *args, runs=False)
        assert refused.exit_code == 2 and says in refused.stderr, refused.output
    assert config.read_text() == "name: mine\n"
    under_a_file = cli("predict", run.id, str(table), "--output", str(table / "out.csv"), *args, runs=False)
    assert under_a_file.stderr.strip() == (
        f"error: --output {table / 'out.csv'}: {table} is a file, not a folder; give another path")

    # the format as the file's name says it, unless --format says otherwise: then refused
    for suffix in ("csv", "json"):
        named = cli("predict", run.id, str(table), "--output", str(tmp_path / f"answers.{suffix}"), *args, runs=False)
        assert named.exit_code == 0, named.output
    assert [row["prediction"] for row in csv.DictReader((tmp_path / "answers.csv").open())] == ["0", "1", "2"]
    assert len(json.loads((tmp_path / "answers.json").read_text())) == 3
    mismatch = cli("predict", run.id, str(table), "--format", "table", "--output", str(tmp_path / "t.csv"), *args,
                   runs=False)
    assert mismatch.exit_code == 2 and "--format table with --output" in mismatch.stderr
    assert "give --format csv" in mismatch.stderr and not (tmp_path / "t.csv").exists()


def test_images_given_one_by_one_are_read_as_one_folder_is_and_none_of_them_is_overwritten(cli, trained, digits_folder,
                                                                                          tmp_path):
    folder = tmp_path / "sevens"
    shutil.copytree(digits_folder / "test" / "7", folder)
    images = sorted(folder.iterdir())
    (folder / "broken.png").write_bytes(b"not a picture")
    given = [images[0], folder / "broken.png", *images[1:]]  # a shell's glob: read through one pipeline
    kept = images[0].read_bytes()
    args = ("--runs-dir", str(trained["runs"]))

    one_by_one, rows = predicted(cli, trained, trained["digits"], *given)
    _, folder_rows = predicted(cli, trained, trained["digits"], folder)
    onto_image = cli("predict", trained["digits"].id, str(folder), "--format", "csv", "--output", str(images[0]), *args,
                     runs=False)
    unnamed = folder / "sev\udcffen.png"  # a byte that is not UTF-8 in the file's name
    shutil.copy(images[1], unnamed)
    not_utf8 = cli("predict", trained["digits"].id, str(folder), *args, runs=False)

    assert one_by_one.exit_code == 1 and "1 input(s) could not be read as images" in one_by_one.stderr
    assert "broken.png" in one_by_one.stderr
    assert [row["input"] for row in rows] == [str(image) for image in images]
    assert [row["prediction"] for row in rows] == [row["prediction"] for row in folder_rows]
    assert onto_image.exit_code == 2 and f"--output {images[0]} is the input {images[0]}" in onto_image.stderr
    assert images[0].read_bytes() == kept  # an image of an input folder: it had been overwritten with the answers
    assert not_utf8.exit_code == 2, not_utf8.output
    assert "sev\\xffen.png has a name that is not UTF-8 text, which TensorFlow cannot open" in not_utf8.stderr


def test_csv_inputs_of_one_name_are_told_apart_and_each_keeps_its_own_columns(cli, trained, tmp_path):
    lines = trained["table"].read_text().splitlines()
    plain, noted = tmp_path / "a" / "x.csv", tmp_path / "b" / "x.csv"
    plain.parent.mkdir()
    noted.parent.mkdir()
    plain.write_text("\n".join(lines[:2]) + "\n")
    noted.write_text("\n".join([lines[0] + ",note", lines[1] + ",mine"]) + "\n")

    result, rows = predicted(cli, trained, trained["table_run"], plain, noted)

    assert result.exit_code == 0, result.output
    assert [row["input"] for row in rows] == [f"{plain}:1", f"{noted}:1"]  # both had been `x.csv:1`
    assert [row["note"] for row in rows] == ["", "mine"]  # the second file's column had been dropped


def test_k_fold_runs_predict_with_the_mean_of_their_folds_or_one(cli, trained, digits_folder):
    mean, mean_rows = predicted(cli, trained, trained["kfold"], digits_folder / "test" / "1")
    one, one_rows = predicted(cli, trained, trained["kfold"], digits_folder / "test" / "1", extra=("--fold", "2"))
    bad, _ = predicted(cli, trained, trained["kfold"], digits_folder / "test" / "1", extra=("--fold", "3"))

    assert mean.exit_code == one.exit_code == 0
    assert [r["probability"] for r in mean_rows] != [r["probability"] for r in one_rows]
    assert bad.exit_code == 2 and "--fold 3: run" in bad.stderr and "has folds 1 to 2" in bad.stderr


def test_bad_inputs_are_one_line_each(cli, trained, tmp_path, digits_folder):
    no_column = tmp_path / "no-column.csv"
    no_column.write_text("words,label\nhello,1\n")
    wrong_shape = tmp_path / "wrong.npy"
    np.save(wrong_shape, np.zeros((2, 5, 5, 1)))
    not_numpy = tmp_path / "words.npy"
    not_numpy.write_text("not an array")
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 8, 8, 1), "float32"))
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("text,label\nfine,1\ngood, bad and great,1\n")
    unborn = trained["runs"] / "20990101-000000-unborn"
    shutil.copytree(trained["digits"].path, unborn)
    (unborn / "model.keras").unlink()
    info = json.loads((unborn / "run.json").read_text())
    (unborn / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    header = ",".join(f"p{i}" for i in range(64))
    header_only = tmp_path / "header-only.csv"
    header_only.write_text(header + "\n")
    a_word = tmp_path / "a-word.csv"
    a_word.write_text(header + "\n" + "\n".join(",".join(["1"] * 63 + [cell]) for cell in ("2", "3", "x", "4")) + "\n")
    after_blanks = tmp_path / "after-blanks.csv"  # blank lines are no rows: the line is the file's, not the row's
    after_blanks.write_text(header + "\n\n\n" + "\n".join(",".join(["1"] * 63 + [cell]) for cell in ("2", "x")) + "\n")
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(header.replace(",", ";") + "\n" + ";".join(["1"] * 64) + "\n")
    with_tiff = tmp_path / "with-tiff"
    shutil.copytree(digits_folder / "test" / "1", with_tiff)
    (with_tiff / "scan.TIF").write_bytes(b"II*\x00")
    named_twice = tmp_path / "named-twice.csv"
    named_twice.write_text(header + ",p0\n" + ",".join(["1"] * 65) + "\n")
    with_palette = tmp_path / "with-palette"
    shutil.copytree(digits_folder / "test" / "1", with_palette)
    Image.open(next(with_palette.iterdir())).convert("RGB").convert("P").save(with_palette / "drawn.bmp")
    nothing = tmp_path / "nothing.npz"
    np.savez(nothing)
    with_nan = tmp_path / "with-nan.npy"
    features = np.zeros((3, 64), "float32")
    features[1, 5], features[2, 0] = np.nan, np.inf
    np.save(with_nan, features)
    swapped = trained["runs"] / "20990101-000000-swapped"
    shutil.copytree(trained["digits"].path, swapped)
    shutil.copy(trained["text"].file("model.keras"), swapped / "model.keras")
    robbed = trained["runs"] / "20990101-000000-robbed"
    shutil.copytree(trained["digits"].path, robbed)
    (robbed / "model.keras").unlink()
    cases = [
        (trained["text"], no_column, ["no column 'text'", "the file has words, label"]),
        (trained["digits"], wrong_shape, ["arrays of shape (2, 5, 5, 1)", "takes (N, 8, 8, 1)"]),
        (trained["digits"], empty, ["arrays of shape (0, 8, 8, 1) hold no example"]),
        (trained["digits"], not_numpy, ["words.npy: not a NumPy .npy file; write arrays with numpy.save"]),
        (trained["text"], unquoted, ["unquoted.csv, line 3: 3 fields where the header has 2 (text, label)",
                                     "put quotes around a value that holds a comma"]),
        (trained["digits"], no_column, ["takes image files (or arrays of their pixels), not a CSV"]),
        (trained["table_run"], header_only, ["header-only.csv: a header (p0, p1,", "and no rows: nothing to predict"]),
        (trained["table_run"], a_word, ["a-word.csv: column 'p63' holds 'x' on line 4, not a number"]),
        (trained["table_run"], after_blanks, ["after-blanks.csv: column 'p63' holds 'x' on line 5, not a number"]),
        (trained["table_run"], semicolons, ["is one column holding ';': the file is separated by ';', and dlcli reads commas"]),
        (trained["table_run"], named_twice, ["named-twice.csv: the header names column 'p0' twice (columns 1 and 65)"]),
        (trained["digits"], nothing, ["nothing.npz: holds no array; give the inputs as an array named 'x'"]),
        (trained["table_run"], with_nan, ["with-nan.npy[1] holds nan (2 examples of this batch with a value that",
                                          "predict needs every value: fill or remove them"]),
        (resolve_run(trained["runs"], unborn.name), digits_folder / "test" / "1",
         ["has no model.keras: it stopped before its first epoch ended"]),
        (resolve_run(trained["runs"], robbed.name), digits_folder / "test" / "1",
         ["has no model.keras, though it completed: it was moved or deleted"]),
        (trained["digits"], tmp_path / "nothing-here.png", ["no such file or folder"]),
        (trained["digits"], with_tiff, ["scan.TIF is a picture dlcli cannot read (it reads .bmp, .gif",
                                        "convert them, or move them out of the folder"]),
        (trained["digits"], with_palette, ["drawn.bmp is a BMP whose palette is not the grey levels 0-255 in order",
                                           "save it as PNG: remove or replace it, then predict again"]),
        (resolve_run(trained["runs"], swapped.name), digits_folder / "test" / "1",
         ["its model.keras does not take the inputs as prepared now", "was the model or its preprocessing.keras replaced",
          "by another run's?"]),
    ]
    bad_far_down = tmp_path / "bad-far-down.csv"  # past the first batch: nothing printed before the error
    bad_far_down.write_text(header + "\n" + "\n".join(",".join(["inf" if row == 400 else "1"] * 64) for row in range(600)) + "\n")
    cases.append((trained["table_run"], bad_far_down, ["bad-far-down.csv", "line 402"]))
    for run, path, fragments in cases:
        result, rows = predicted(cli, trained, run, path)
        message = " ".join(result.stderr.split())
        assert result.exit_code == 2 and not rows, (path, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, message
        assert all(fragment in message for fragment in fragments), message
    evaluated = cli("evaluate", swapped.name, "--runs-dir", str(trained["runs"]), runs=False)
    assert evaluated.exit_code == 2 and "its model.keras does not take the inputs as prepared now" in evaluated.stderr
    unknown = cli("predict", trained["digits"].id, str(digits_folder), "--format", "xml",
                  "--runs-dir", str(trained["runs"]), runs=False)
    assert unknown.exit_code == 2 and "'xml' is not one of 'table', 'json', 'csv'" in unknown.stderr


@pytest.mark.parametrize("export_format", ["saved_model", "onnx", "tflite"])
def test_exports_agree_with_predict_when_run_without_dlcli(cli, trained, digits_folder, tmp_path, export_format):
    run = trained["folder"]
    output = tmp_path / f"model.{export_format}"
    result = cli("export", run.id, "--format", export_format, "--output", str(output),
                 "--runs-dir", str(trained["runs"]), runs=False)
    _, rows = predicted(cli, trained, run, digits_folder / "test")

    assert result.exit_code == 0, result.output
    assert "the largest difference from the Keras model is" in result.stdout
    sidecar = json.loads(Path(f"{output}.json").read_text())
    assert sidecar["input"]["dtype"] == "uint8" and sidecar["class_names"] == [str(d) for d in range(10)]
    files = [Path(row["input"]) for row in rows]
    pixels = np.stack([np.asarray(Image.open(f).convert("L").resize((8, 8)))[..., None] for f in files])
    if export_format == "saved_model":
        loaded = tf.saved_model.load(str(output))
        outputs = loaded.serve(tf.constant(pixels)).numpy()
    elif export_format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        outputs = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    else:
        interpreter = tf.lite.Interpreter(str(output))
        source = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(source, pixels.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, pixels)
        interpreter.invoke()
        outputs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    agree = np.mean([str(int(np.argmax(o))) == row["prediction"] for o, row in zip(outputs, rows)])
    assert agree >= 0.99


def test_a_standardized_table_exports_to_onnx_and_an_earlier_run_s_normalization_is_refused(cli, trained, tmp_path):
    import keras

    run = trained["table_run"]
    exported = cli("export", run.id, "--format", "onnx", "--output", str(tmp_path / "table.onnx"),
                   "--runs-dir", str(trained["runs"]), runs=False)
    assert exported.exit_code == 0, exported.output  # the statistics stay constants inside the graph
    assert "the largest difference from the Keras model is" in exported.stdout

    earlier = tmp_path / "copies" / run.id  # the same run, its preprocessing as an earlier dlcli saved it
    shutil.copytree(run.path, earlier)
    preprocessing = keras.models.load_model(earlier / "preprocessing.keras")
    raw = keras.Input(preprocessing.input_shape[1:], name="raw")
    statistics = keras.layers.Normalization(mean=np.zeros(64), variance=np.ones(64), name="standardization")  # as before
    keras.Model(raw, statistics(raw)).save(earlier / "preprocessing.keras")
    output = tmp_path / "new" / "earlier.onnx"
    refused = cli("export", str(earlier), "--format", "onnx", "--output", str(output),
                  "--runs-dir", str(trained["runs"]), runs=False)
    assert refused.exit_code == 2 and "tf2onnx cannot convert" in refused.stderr
    assert "export it as saved_model or tflite" in refused.stderr and not (tmp_path / "new").exists()


def test_evaluate_refuses_data_whose_labels_name_other_classes_and_keeps_the_evaluation(cli, trained, tmp_path):
    run = trained["table_run"]
    copy = tmp_path / "copies" / run.id
    shutil.copytree(run.path, copy)
    relabelled = tmp_path / "relabelled.csv"
    lines = trained["table"].read_text().splitlines()
    relabelled.write_text("\n".join([lines[0], *(line[:-2] + ",three" if line.endswith(",3") else line
                                                  for line in lines[1:])]) + "\n")
    config = (copy / "config.yaml").read_text().replace(str(trained["table"]), str(relabelled))
    (copy / "config.yaml").write_text(config)
    (copy / "evaluation.json").write_text("{}")  # an earlier evaluation: kept

    result = cli("evaluate", str(copy), "--runs-dir", str(trained["runs"]), runs=False)

    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "the labels now name the classes 0, 1, 2, 4, 5, 6, 7, 8, 9, three, and its model was trained on 0, 1, 2, 3" \
        in result.stderr
    assert (copy / "evaluation.json").read_text() == "{}"


def test_an_export_that_disagrees_is_removed_and_a_missing_converter_is_named(cli, trained, tmp_path, monkeypatch):
    import importlib.util

    from dlcli.use import exporting

    honest = exporting.RUNTIMES["tflite"]
    monkeypatch.setitem(exporting.RUNTIMES, "tflite", lambda path: (lambda x: honest(path)(x) + 0.01))
    output = tmp_path / "model.tflite"
    result = cli("export", trained["digits"].id, "--format", "tflite", "--output", str(output),
                 "--runs-dir", str(trained["runs"]), runs=False)

    assert result.exit_code == 1
    assert "differs from its Keras model by 0.01" in " ".join(result.stderr.split()) and "it was removed" in result.stderr
    assert not output.exists() and not Path(f"{output}.json").exists()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real_find_spec(name))
    missing = cli("export", trained["digits"].id, "--format", "onnx", "--runs-dir", str(trained["runs"]), runs=False)
    assert missing.exit_code == 2 and "needs tf2onnx: pip install 'dlcli[export]'" in missing.stderr
    text_onnx = cli("export", trained["text"].id, "--format", "tflite", "--runs-dir", str(trained["runs"]), runs=False)
    assert text_onnx.exit_code == 2 and "exports only as a SavedModel" in text_onnx.stderr
    notes = tmp_path / "kept.tflite.json"
    notes.write_text("the user's own notes")
    refused = {
        # what the artifact writes beside it
        str(tmp_path / "kept.tflite"): f"{notes} exists; remove it or give another --output",
        str(tmp_path): f"--output {tmp_path}: a folder; name the artifact to write in it, e.g. {tmp_path / 'model.tflite'}",
        str(tmp_path / "model.onnx"): "a .onnx name for a tflite export",
        str(tmp_path / "t.json"): f".json names the description written beside the artifact ({tmp_path / 't'}.tflite.json)",
    }
    (tmp_path / "earlier_saved_model").mkdir()
    (tmp_path / "earlier_saved_model" / "saved_model.pb").write_bytes(b"")
    again = cli("export", trained["digits"].id, "--output", str(tmp_path / "earlier_saved_model"),
                "--runs-dir", str(trained["runs"]), runs=False)
    assert again.exit_code == 2 and "a SavedModel exists there; remove it or give another --output" in again.stderr
    for output, message in refused.items():
        result = cli("export", trained["digits"].id, "--format", "tflite", "--output", output,
                     "--runs-dir", str(trained["runs"]), runs=False)
        assert result.exit_code == 2 and message in result.stderr, (output, result.output)
    assert notes.read_text() == "the user's own notes"


def test_an_export_that_cannot_be_written_leaves_nothing_and_says_where(cli, trained, tmp_path, monkeypatch):
    import keras

    def fills_the_disk(model, path, **_):
        Path(path).write_bytes(b"half")  # what TensorFlow had written when the disk filled
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device [Op:SaveV2]")

    monkeypatch.setattr(keras.Model, "export", fills_the_disk)
    output = tmp_path / "made" / "model.tflite"
    full = cli("export", trained["digits"].id, "--format", "tflite", "--output", str(output),
               "--runs-dir", str(trained["runs"]), runs=False)
    (tmp_path / "notes.txt").write_text("not a folder")
    under_a_file = cli("export", trained["digits"].id, "--output", str(tmp_path / "notes.txt" / "model"),
                       "--runs-dir", str(trained["runs"]), runs=False)

    assert full.exit_code == 2 and full.stderr.strip() == (
        f"error: {output}: the tflite export could not be written (No space left on device); nothing of it was kept: "
        "free some space, or give another --output"), full.output  # a traceback
    assert not (tmp_path / "made").exists()  # nor the folder it made: a second try is not refused
    assert under_a_file.exit_code == 2 and "notes.txt is a file, not a folder; give another path" in under_a_file.stderr


@pytest.mark.slow
def test_a_pretrained_base_run_predicts_and_exports(cli, trained, few_digits_folder, tmp_path):
    text = TINY_CONFIG.replace("name: digits", f"name: image_directory\n  path: {few_digits_folder}\n  image_size: [32, 32]")
    text = text.replace("model:\n  layers:", "model:\n  base: {application: MobileNetV2, weights: none, precompute: true}"
                        "\n  layers:").replace("    - Flatten\n", "    - GlobalAveragePooling2D\n")
    config = tmp_path / "base.yaml"
    config.write_text(text)
    run = train(load_config(config, ["training.epochs=1", "dataset.classes=['0', '1']", "name=based",
                                     "model.layers.2.Dense.units=2"]),
                trained["runs"]).run

    result, rows = predicted(cli, trained, run, few_digits_folder / "test" / "1")
    exported = cli("export", run.id, "--format", "saved_model", "--output", str(tmp_path / "based"),
                   "--runs-dir", str(trained["runs"]), runs=False)

    assert result.exit_code == 0, result.output
    assert len(rows) == 12 and {row["prediction"] for row in rows} <= {"0", "1"}
    assert exported.exit_code == 0, exported.output
    assert "mobilenet_v2_preprocessing" in json.loads(Path(f"{tmp_path / 'based'}.json").read_text())["preprocessing_inside"]


def test_regression_rows_and_csv_columns_that_look_like_answers(cli, trained, tmp_path):
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    table = tmp_path / "diabetes.csv"
    with table.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*data.feature_names, "label"])
        writer.writerows([*row, target] for row, target in zip(data.data.tolist(), data.target.tolist()))
    text = TABLE.replace("{path}", str(table)).replace("units: 10, activation: softmax", "units: 1").replace(
        "sparse_categorical_crossentropy", "mse").replace("metrics: [accuracy]", "metrics: [mae]")
    config = tmp_path / "regression.yaml"
    config.write_text(text.replace("name: csv", "name: csv\n  task: regression"))
    run = train(load_config(config, ["training.epochs=2", "name=regression"]), trained["runs"]).run
    inputs = tmp_path / "inputs.csv"
    with table.open() as source, inputs.open("w") as target:
        lines = source.read().splitlines()[:6]
        target.write("\n".join(line + (",prediction" if n == 0 else ",was-here") for n, line in enumerate(lines)) + "\n")

    result, rows = predicted(cli, trained, run, inputs)
    as_json = cli("predict", run.id, str(inputs), "--format", "json", "--runs-dir", str(trained["runs"]), runs=False)

    assert result.exit_code == 0, result.output
    assert len(rows) == 5 and "probability" not in rows[0]
    assert all(row["prediction"] != "was-here" for row in rows)  # the model's answer, not the file's column
    assert float(rows[0]["prediction"]) == json.loads(as_json.stdout)[0]["prediction"]  # csv keeps full precision
    ranked = cli("predict", run.id, str(inputs), "--top", "2", "--runs-dir", str(trained["runs"]), runs=False)
    assert ranked.exit_code == 2 and "--top 2: run" in ranked.stderr and "not classes to rank" in ranked.stderr


def test_a_run_on_arrays_without_column_names_asks_for_arrays_not_a_csv(cli, trained, tmp_path):
    generator = np.random.default_rng(0)
    x, y = generator.normal(size=(60, 5)).astype("float32"), generator.integers(0, 2, 60)
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    config = tmp_path / "arrays.yaml"
    config.write_text(TINY_CONFIG.replace("name: digits", f"name: npz\n  path: {arrays}").replace("units: 10", "units: 2"))
    run = train(load_config(config, ["training.epochs=1", "name=arrays"]), trained["runs"]).run
    table = tmp_path / "rows.csv"
    table.write_text("a,b,c,d,e\n1,2,3,4,5\n")

    result = cli("predict", run.id, str(table), "--runs-dir", str(trained["runs"]), runs=False)

    assert result.exit_code == 2 and "takes .npy/.npz arrays of shape (N, 5), not a CSV" in result.stderr
