"""Several inputs and outputs: the book's customer-support model (configs/tickets.yaml) on the
generated ticket table, its checks, its training and everything downstream of it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import read_json, run_folders
from dlcli.data.tickets import DEPARTMENTS, NUM_TAGS, write_tickets

REPO = Path(__file__).resolve().parents[2]
TICKETS_CONFIG = (REPO / "configs" / "tickets.yaml").read_text()


@pytest.fixture(scope="module")
def small_table(tmp_path_factory) -> Path:
    return write_tickets(tmp_path_factory.mktemp("tickets"), rows=300)


@pytest.fixture
def tickets(write_config, small_table):
    """tickets(path=small table, epochs=1) -> configs/tickets.yaml on that table."""

    def write(path: Path = small_table, epochs: int = 1) -> Path:
        text = TICKETS_CONFIG.replace("data/tickets.csv", str(path)).replace("epochs: 10", f"epochs: {epochs}")
        return write_config(text)

    return write


def books_ticket_model(vocabulary_size: int = 10000, num_tags: int = NUM_TAGS, num_departments: int = 4):
    """The book's functional-API code (chapter 7), as printed."""
    title = keras.Input(shape=(vocabulary_size,), name="title")
    text_body = keras.Input(shape=(vocabulary_size,), name="text_body")
    tags = keras.Input(shape=(num_tags,), name="tags")
    features = keras.layers.Concatenate()([title, text_body, tags])
    features = keras.layers.Dense(64, activation="relu")(features)
    priority = keras.layers.Dense(1, activation="sigmoid", name="priority")(features)
    department = keras.layers.Dense(num_departments, activation="softmax", name="department")(features)
    return keras.Model(inputs=[title, text_body, tags], outputs=[priority, department])


def test_the_books_ticket_model_builds_from_the_config_with_its_parameter_count(cli, tickets, tmp_path):
    table = write_tickets(tmp_path / "full")  # the default size: 10,000 distinct words in the training titles

    result = cli("check", str(tickets(table)), "--format", "json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["parameters"] == books_ticket_model().count_params() == 1_286_789
    assert report["data"]["inputs"]["tags"]["shape"] == [NUM_TAGS]
    assert report["data"]["outputs"]["department"]["classes"] == sorted(DEPARTMENTS)


def test_the_ticket_model_trains_evaluates_and_predicts_per_output(cli, tickets, small_table, runs_dir):
    result = cli("train", str(tickets(epochs=2)), "--set", "model.outputs=[department, priority]")

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    history = list(csv.DictReader((folder / "history.csv").open()))
    assert {"loss", "val_loss", "val_priority_loss", "val_department_loss", "val_department_accuracy",
            "val_priority_mean_absolute_error"} <= set(history[0])
    summary = read_json(folder / "summary.json")
    assert summary["data"]["outputs"]["priority"] == {"column": "priority"}

    evaluated = cli("evaluate", folder.name, "--format", "json")
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = json.loads(evaluated.stdout)
    assert {"loss", "priority_loss", "department_accuracy"} <= set(evaluation["metrics"])
    assert list(evaluation["outputs"]) == ["department"]  # a confusion matrix for the classification output only
    matrix = np.array(evaluation["outputs"]["department"]["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == evaluation["samples"]

    listed = cli("runs", "--where", "best.val_department_accuracy>=0", "--where", "loss.department=categorical_crossentropy",
                 "--where", "loss.department.name=categorical_crossentropy", "--format", "json")
    assert [run["id"] for run in json.loads(listed.stdout)] == [folder.name]
    compared = json.loads(cli("compare", folder.name, "--format", "json").stdout)
    assert {"best val_department_accuracy", "best val_priority_loss"} <= set(compared["runs"][0])

    rows = list(csv.DictReader(small_table.open()))[:5]
    new = small_table.parent / "new.csv"
    with new.open("w", newline="") as file:
        writer = csv.DictWriter(file, [c for c in rows[0] if c != "department"] + ["ticket"])
        writer.writeheader()
        for number, row in enumerate(rows):
            writer.writerow({**{k: v for k, v in row.items() if k != "department"}, "ticket": number})
    predicted = cli("predict", folder.name, str(new), "--format", "csv")
    assert predicted.exit_code == 0, predicted.output
    answers = list(csv.DictReader(io.StringIO(predicted.stdout)))
    assert [answer["ticket"] for answer in answers] == ["0", "1", "2", "3", "4"]
    # each output under its own name, whatever the order of model.outputs
    assert all(0 <= float(answer["priority"]) <= 1 and answer["department"] in DEPARTMENTS for answer in answers)
    assert all(0.25 <= float(answer["department_probability"]) <= 1 for answer in answers)
    assert [float(a["priority_given"]) for a in answers] == [float(row["priority"]) for row in rows]  # the true labels
    refused = cli("predict", folder.name, str(new), "--fold", "2")
    assert refused.exit_code == 2 and "is not a k-fold run" in refused.stderr


@pytest.mark.slow
def test_the_ticket_model_exports_as_saved_model_and_onnx_verified(cli, tickets, runs_dir):
    assert cli("train", str(tickets())).exit_code == 0
    (folder,) = run_folders(runs_dir)

    for export_format, raw in (("saved_model", True), ("onnx", False)):
        result = cli("export", folder.name, "--format", export_format)

        assert result.exit_code == 0, result.output
        assert "the same prediction for 100.0%" in result.output
        artifact = next((folder / "export").glob(f"model*{'.onnx' if export_format == 'onnx' else '_saved_model'}"))
        described = read_json(Path(f"{artifact}.json"))
        assert described["preprocessing_inside"] is raw  # ONNX takes no strings: the encoded inputs
        assert list(described["outputs"]) == ["priority", "department"]


CATEGORIES = """\
name: plans
seed: 0
dataset:
  name: csv
  path: {path}
  inputs:
    plan: {{categorical_columns: [plan, region], encoding: {encoding}}}
    usage: {{feature_columns: [hours]}}
  outputs:
    churn: {{label_column: churned}}
model:
  layers:
    - {first}
    - Concatenate: {{inputs: [{plan_layer}, usage]}}
    - Dense: {{units: 2, activation: softmax, name: churn}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {{epochs: 1, batch_size: 16, monitor: val_accuracy}}
"""


@pytest.mark.parametrize("encoding, first, plan_layer", [
    ("one_hot", "Dense: {units: 4, inputs: plan, name: plan_features}", "plan_features"),
    ("integer", "Embedding: {output_dim: 3, inputs: plan, name: plan_embedded}", "flat"),  # input_dim: the input's
])
def test_categorical_columns_are_encoded_as_fitted_on_training_and_predicted_from_raw_values(
        cli, write_config, tmp_path, runs_dir, encoding, first, plan_layer):
    rng = np.random.default_rng(0)
    table = tmp_path / "plans.csv"
    with table.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["plan", "region", "hours", "churned"])
        for _ in range(120):
            plan = rng.choice(["basic", "pro", "team"])
            writer.writerow([plan, rng.choice(["eu", "us"]), f"{rng.random() * 10:.2f}", "yes" if plan == "basic" else "no"])
    text = CATEGORIES.format(path=table, encoding=encoding, first=first, plan_layer=plan_layer)
    if encoding == "integer":  # an Embedding's (columns, dimensions) flattened before the merge
        text = text.replace("    - Concatenate", "    - Flatten: {name: flat}\n    - Concatenate")
        text = text.replace(", name: churn}", "}")  # one output: the last layer gives it, named or not
    config = write_config(text)

    checked = cli("check", str(config), "--format", "json")
    assert checked.exit_code == 0, checked.output
    plan = json.loads(checked.stdout)["data"]["inputs"]["plan"]
    assert plan["columns"] == ["plan", "region"]
    # one_hot: the 3 plans and 2 regions seen in training, and the unknown value; integer: an index per column
    assert plan["shape"] == ([6] if encoding == "one_hot" else [2])

    assert cli("train", str(config)).exit_code == 0
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "summary.json")["best"]["val_accuracy"] >= 0
    new = tmp_path / "new.csv"
    new.write_text("plan,region,hours\nbasic,eu,1.0\nnever-seen,mars,2.0\n")
    predicted = cli("predict", folder.name, str(new), "--format", "csv")
    assert predicted.exit_code == 0, predicted.output
    answers = list(csv.DictReader(io.StringIO(predicted.stdout)))
    assert [answer["churn"] in ("no", "yes") for answer in answers] == [True, True]


@pytest.mark.slow
def test_a_killed_ticket_run_resumes_to_the_same_numbers_and_sweeps_rank_an_output(cli, tickets, runs_dir, tmp_path):
    import os
    import subprocess
    import sys

    config = tickets(epochs=3)
    killed = subprocess.run([sys.executable, "-m", "dlcli", "train", str(config), "--runs-dir", str(runs_dir)],
                            env={**os.environ, "DLCLI_KILL_AT": "commit.history:2"}, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    (folder,) = run_folders(runs_dir)
    assert cli("train", "--resume", folder.name).exit_code == 0
    assert cli("train", str(config), "--runs-dir", str(tmp_path / "straight"), runs=False).exit_code == 0
    (straight,) = run_folders(tmp_path / "straight")

    def history(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "history.csv").open())]

    assert history(folder) == history(straight)

    swept = cli("sweep", str(tickets()), "--grid", "loss_weights.department=0.5,2.0", "--set",
                "training.monitor=val_department_accuracy", "--runs-dir", str(tmp_path / "swept"), runs=False)
    assert swept.exit_code == 0, swept.output
    trials = [read_json(run / "summary.json") for run in run_folders(tmp_path / "swept") if run.name != "sweeps"]
    assert len(trials) == 2 and all("val_department_accuracy" in trial["best"] for trial in trials)


ARRAYS = """\
name: digits-two-ways
dataset:
  name: npz
  path: {path}
  inputs:
    image: {{standardize: false}}
    ink: {{}}
  outputs:
    digit: {{}}
    darkness: {{task: regression}}
model:
  layers:
    - Flatten: {{inputs: image, name: pixels}}
    - Concatenate: {{inputs: [pixels, ink]}}
    - Dense: {{units: 16, activation: relu, name: hidden}}
    - Dense: {{units: 10, activation: softmax, name: digit, inputs: hidden}}
    - Dense: {{units: 1, name: darkness, inputs: hidden}}
loss: {{digit: sparse_categorical_crossentropy, darkness: mse}}
metrics: {{digit: [accuracy]}}
training: {{epochs: 1}}
"""


def test_an_npz_of_named_arrays_trains_and_predicts(cli, write_config, tmp_path, runs_dir):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32") / 16
    ink = (images > 0.5).sum(axis=(1, 2), keepdims=False)[:, None].astype("float32")
    darkness = images.mean(axis=(1, 2))
    arrays = {}
    for split, part in (("train", slice(0, 1400)), ("test", slice(1400, None))):
        arrays |= {f"image_{split}": images[part], f"ink_{split}": ink[part], f"digit_{split}": digits.target[part],
                   f"darkness_{split}": darkness[part]}
    np.savez(tmp_path / "digits.npz", **arrays)
    config = write_config(ARRAYS.format(path=tmp_path / "digits.npz"))

    result = cli("train", str(config))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    assert {"val_digit_accuracy", "val_darkness_loss"} <= set(read_json(folder / "summary.json")["best"])
    np.savez(tmp_path / "new.npz", image=images[:3], ink=ink[:3])
    predicted = cli("predict", folder.name, str(tmp_path / "new.npz"), "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    answers = json.loads(predicted.stdout)
    assert len(answers) == 3 and {"digit", "digit_probability", "darkness"} <= set(answers[0])

    assert cli("evaluate", folder.name).exit_code == 0  # its resolved config.yaml reads back

    for name, changed, message in (
        ("partial", {"ink_test": None}, "has no array ink_test for input 'ink'"),
        ("nan", {"darkness_train": np.r_[np.nan, darkness[1:1400]]}, "output 'darkness' hold NaN or infinite values"),
        ("one-class", {"digit_train": np.zeros(1400, int), "digit_test": np.zeros(397, int)}, "hold one class ('0')"),
    ):
        np.savez(tmp_path / f"{name}.npz", **{k: v for k, v in {**arrays, **changed}.items() if v is not None})
        refused = cli("check", str(write_config(ARRAYS.format(path=tmp_path / f"{name}.npz"))))
        assert refused.exit_code == 2 and message in refused.stderr, refused.stderr


KINDS = """\
name: kinds
dataset:
  name: csv
  path: {path}
  inputs:
    x: {{feature_columns: [a, b]}}
  outputs:
    kind: {{label_column: kind}}
    size: {{label_column: size, task: regression}}
model:
  layers:
    - Dense: {{units: 4, activation: relu, name: hidden}}
    - Dense: {{units: 2, activation: softmax, name: kind, inputs: hidden}}
    - Dense: {{units: 1, name: size, inputs: hidden}}
loss: {{kind: sparse_categorical_crossentropy, size: mse}}
"""


def test_the_data_checks_look_at_each_classification_output(cli, write_config, tmp_path):
    rows = ["a,b,kind,size"] + [f"{i},{i * 3 % 11},{'rare' if i % 12 == 0 else 'common'},{i / 10}" for i in range(120)]
    rows.append(rows[3].replace("common", "rare"))  # the same inputs again, with another label
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")

    result = cli("check", str(write_config(KINDS.format(path=tmp_path / "table.csv"))), "--format", "json")

    assert result.exit_code == 0, result.output
    messages = [finding["message"] for finding in json.loads(result.stdout)["data_checks"]]
    assert any(m.startswith("output 'kind': the training classes are imbalanced") for m in messages), messages
    assert any(m.startswith("output 'kind': 1 input appears with different labels") for m in messages), messages


def test_loss_weights_weigh_the_total_loss_as_keras_does(cli, tickets, runs_dir):
    from dlcli.config import load_config
    from dlcli.data import load_dataset
    from dlcli.data.pipeline import stream

    config = tickets()
    result = cli("train", str(config), "--set", "loss_weights={priority: 3.0, department: 0.25}")

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    last = list(csv.DictReader((folder / "history.csv").open()))[-1]
    total = 3.0 * float(last["val_priority_loss"]) + 0.25 * float(last["val_department_loss"])
    assert float(last["val_loss"]) == pytest.approx(total, rel=1e-5)
    # the same weights on the same model and data in plain Keras give the same total
    trained = keras.saving.load_model(folder / "model.keras", compile=False)
    plain = keras.Model(trained.inputs, trained.outputs)
    plain.compile(loss={"priority": "mean_squared_error", "department": "categorical_crossentropy"},
                  loss_weights={"priority": 3.0, "department": 0.25})
    validation = stream(load_dataset(load_config(config)), "validation", 64)
    assert plain.evaluate(validation, verbose=0, return_dict=True)["loss"] == pytest.approx(float(last["val_loss"]),
                                                                                         rel=1e-5)


@pytest.mark.parametrize("overrides, message", [
    (["loss={priority: mse}"], "--set loss={priority: mse}: loss: output 'department' has no loss"),
    (["loss_weights={dept: 2.0}"], "loss_weights.dept: 'dept' is not one of the model's outputs (priority, department)"),
    (["model.outputs=[priority, dept]"], "model.outputs.1: 'dept' is not one of the dataset's outputs"),
    (["dataset.inputs.title.text_column=heading"], "dataset.inputs.title.text_column: 'heading' is not a column of"),
    (["dataset.inputs.tags.feature_columns=[tag_*, priority]"],
     "dataset.outputs.priority.label_column: column 'priority' is read by input 'tags' too"),
    (["model.layers.3.Dense.units=3"],
     "model.layers.3.Dense.units: output 'department' has 3 units but output 'department' (column 'department') "
     "has 4 classes"),
    (["dataset.outputs.department.labels=sparse"],
     "loss.department: categorical_crossentropy takes one-hot labels: set `labels: one_hot` for output 'department'"),
    (["loss.priority=categorical_crossentropy"],
     "loss.priority: categorical_crossentropy is a classification loss; output 'priority' (column 'priority') is a "
     "regression task"),
    (["dataset.inputs.extra={feature_columns: [tag_0]}"], "dataset.inputs.extra: no layer reads input 'extra'"),
    (["model.layers.2.Dense.name=prio"], "model.outputs.0: no layer is named 'priority'"),
    (["dataset.outputs={my-output: {label_column: priority}}"], "'my-output' cannot name an input or output"),
    (["dataset.inputs.title.feature_columns=[tag_0]"], "dataset.inputs.title: give one of text_column, feature_columns"),
    (["dataset.label_column=department"], "dataset.label_column: with `dataset.inputs` and `outputs`, label_column is an "
     "output's own key"),
    (["dataset.inputs.tags.encoding=multi_hot"], "encoding 'multi_hot' does not fit feature_columns"),
    (["dataset.inputs.tags.feature_columns=[nothing_*]"], "dataset.inputs.tags.feature_columns.0: no column of"),
    (["training.kfold=3"], "training.kfold: does not combine with named inputs and outputs"),
    (["dataset.inputs.tags={encoding: one_hot}"], "encoding 'one_hot' does not fit numbers"),
    (["dataset.inputs.tags.num_words=10"], "num_words goes with text_column, not with feature_columns"),
    (["dataset.inputs.title.sequence_length=20"], "sequence_length goes with `encoding: sequence`, not multi_hot: "
     "remove it, or set `encoding: sequence`"),
    (["dataset.inputs.tags.sequence_length=20"], "not numbers: remove it: only a text input's tokens have one"),
    (["model.layers.0={Dense: {units: 3}}"], "model.layers.0.Dense: reads no input: add `inputs: [...]` naming some of"),
    (["model.layers.1.Dense.name=title"], "the name 'title' is input 'title''s"),
    (["loss_weights={priority: 0, department: 0}"], "loss_weights: every weight is 0"),
    (["loss.department={name: categorical_crossentropy, axis: 5}"],
     "loss.department: the first training step fails on this data"),
    (["dataset.inputs.title.encoding=sequence"],
     "model.layers.0.Concatenate: Concatenate reads input 'title', token indices (TextVectorization(sequence"),
    (["dataset.outputs.val={label_column: priority}"], "'val' would be confused with Keras's own history columns"),
    (["metrics=[accuracy]"], "metrics: the model has 2 outputs: give the metrics per output"),
    (["metrics={priority: [mae, accuracy], department: [accuracy]}"],
     "metrics.priority.1: accuracy counts right classes; output 'priority' (column 'priority') is a regression task"),
    (["model.layers.2.Dense.activation=softmax"],
     "model.layers.2.Dense.activation: a softmax over one unit is always 1.0, whatever the input: a regression"),
    (["dataset.outputs.department.labels=sparse", "loss.department=sparse_categorical_crossentropy",
      "metrics.department=[precision]"],
     "metrics.department.0: precision cannot score labels of shape (N,) against outputs of shape (N, 4)"),
    (["dataset.outputs.department.labels=sparse", "loss.department=sparse_categorical_crossentropy",
      "metrics.department=[precision]"], "set `dataset.outputs.department.labels: one_hot`"),
])
def test_every_error_about_inputs_and_outputs_is_one_line_that_names_it(cli, tickets, overrides, message):
    args = [arg for override in overrides for arg in ("--set", override)]

    result = cli("check", str(tickets()), *args)

    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
