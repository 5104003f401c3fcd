"""`dlcli verdict` on runs and on history files, and `training.overfitting.stop`, live and resumed."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import fake_run, read_json, run_folders, summary_with
from dlcli.cli import app

# Random features and random labels: nothing to learn but the training set, so the validation
# loss turns up within a few epochs while the training loss falls.
MEMORIZE = """\
name: memorize
seed: 0
dataset: {{name: npz, path: {path}, validation_split: 0.3}}
model:
  layers:
    - Dense: {{units: 64, activation: relu}}
    - Dense: {{units: 2, activation: softmax}}
optimizer: {{name: adam, learning_rate: 0.01}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {{epochs: 20, batch_size: 32, tensorboard: false{extra}}}
"""


@pytest.fixture(scope="module")
def noise_table(tmp_path_factory):
    generator = np.random.default_rng(0)
    x, y = generator.normal(size=(400, 20)).astype("float32"), generator.integers(0, 2, 400)
    path = tmp_path_factory.mktemp("noise") / "noise.npz"
    np.savez(path, x_train=x[:300], y_train=y[:300], x_test=x[300:], y_test=y[300:])
    return path


def memorize_config(tmp_path, noise_table, extra=""):
    path = tmp_path / "memorize.yaml"
    path.write_text(textwrap.dedent(MEMORIZE.format(path=noise_table, extra=extra)))
    return path


def as_keras_csv_logger(history_csv, target):
    """The same history as Keras's CSVLogger writes it: epochs from 0, metric keys sorted."""
    with open(history_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    keys = sorted(key for key in rows[0] if key not in ("epoch", "seconds"))
    with open(target, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", *keys])
        for row in rows:
            writer.writerow([int(row["epoch"]) - 1, *(row[key] for key in keys)])


def as_keras_history(history_csv, folder):
    """The same history as a plain Keras user saves `History.history`: with json.dump, and with
    pandas's DataFrame.to_csv (its index, from 0, an unnamed first column)."""
    import pandas as pd

    history = pd.read_csv(history_csv).drop(columns=["epoch", "seconds"])
    (folder / "history.json").write_text(json.dumps(history.to_dict(orient="list")))
    history.to_csv(folder / "pandas.csv")
    return folder / "history.json", folder / "pandas.csv"


def verdict_json(cli, *args):
    result = cli("verdict", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_verdict_gives_the_epochs_the_live_run_printed_from_the_run_its_history_and_a_keras_log(
    cli, runs_dir, tmp_path, noise_table
):
    trained = cli("train", str(memorize_config(tmp_path, noise_table)))
    assert trained.exit_code == 0, trained.output
    (folder,) = run_folders(runs_dir)
    live = read_json(folder / "summary.json")["overfitting"]
    assert live["warned_at_epoch"] is not None and f"⚠ overfitting since epoch {live['onset_epoch']}" in trained.output
    keras_log = tmp_path / "keras.csv"
    as_keras_csv_logger(folder / "history.csv", keras_log)

    saved_by_keras_users = as_keras_history(folder / "history.csv", tmp_path)
    references = (folder.name, str(folder / "history.csv"), str(keras_log), *map(str, saved_by_keras_users))

    judged = [verdict_json(cli, reference)[0] for reference in references]

    for verdict in judged:
        assert verdict["overfitting"] is True and verdict["monitor"] == "val_loss" and verdict["direction"] == "min"
        assert (verdict["warned_at_epoch"], verdict["onset_epoch"]) == (live["warned_at_epoch"], live["onset_epoch"])
        assert verdict["message"] == live["message"]
    table = cli("verdict", "latest", str(keras_log))
    assert table.exit_code == 0 and table.output.count(f"the warning at epoch {live['warned_at_epoch']}") == 2


@pytest.mark.parametrize("rows, args, says", [
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5}\n" for e in range(10)), ["--monitor", "val_auc"],
     "no 'val_auc' column (has epoch, loss, val_loss); choose one with --monitor"),
    ("epoch,val_loss\n" + "".join(f"{e},0.5\n" for e in range(10)), [], "no 'loss' column"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5}\n" for e in range(10)), ["--monitor", "val_los"],
     "no 'val_los' column (has epoch, loss, val_loss); did you mean 'val_loss'?; choose one with --monitor"),
    ("epoch,loss,val_loss\n" + "".join(f"{e % 8},{1 / (e + 1)},{0.5}\n" for e in range(12)), [],
     "line 10: epoch 0 after epoch 7; a history holds each epoch once, in order"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5}\n" for e in range(12) if e != 4), [],
     "line 6: epoch 5 after epoch 3, epoch 4 missing; a history holds every epoch (give the whole log)"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5}\n" for e in range(12) if e not in (4, 5, 6)), [],
     "line 6: epoch 7 after epoch 3, epochs 4-6 missing"),
    ("epoch,loss,val_loss\n1e30,1,1\n2e30,1,1\n", [],  # a gap of 1e30 epochs is named, never listed
     "line 3: epoch 2000000000000000039769249677312 after epoch 1000000000000000019884624838656, epochs "
     "1000000000000000019884624838657-2000000000000000039769249677311 missing"),
    ("epoch,loss,val_loss\n0,1.0,0.5\n1,0.9,0.6\n", [], "2 epochs with both val_loss and loss; a verdict needs at least 5"),
    ("epoch,loss,val_loss\n", [], "a header and no epochs"),
    ("epoch,loss,val_accuracy\n" + "".join(f"{e},{1 / (e + 1)},0.5\n" for e in range(6)), ["--monitor", "val_accuracy"],
     "6 epochs with both val_accuracy and loss; a verdict needs at least 7"),  # only a loss is judged from 5
    ("epoch,loss,val_loss\n0,1.0,0.5\n", [], "1 epoch with both val_loss and loss"),
    ("epoch,loss,val_loss\n0,1.0,oops\n", [], "line 2: val_loss is 'oops', not a number"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},0.5\n" for e in range(10)) + "10,0.09", [],  # cut short
     "line 12 has fewer fields than the header (a file cut short, or edited?): mend or remove that line"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},0.5\n" for e in range(10)) + "10,0.09,0.5,0.4\n", [],
     "line 12 has more fields than the header"),
    ("epoch,loss,val_loss\n0,1.0,0.5,\n1,0.9,0.6,\n", [],  # a separator ending each line is no field
     "2 epochs with both val_loss and loss; a verdict needs at least 5"),
    ("epoch,loss,val_loss,\n0,1.0,0.5\n1,0.9,0.6\n", [],  # nor one ending the header alone
     "2 epochs with both val_loss and loss; a verdict needs at least 5"),
    ("epoch,loss,val_loss\nNA,1.0,0.5\n", [], "line 2: epoch is 'NA', not a whole number"),
    ("epoch,loss,val_loss\n" + "".join(f"{e - 3},{1 / (e + 1)},0.5\n" for e in range(10)), [],
     "line 2: epoch is '-3'; a history counts its epochs from 0 (Keras's CSVLogger) or 1 (dlcli's history.csv)"),
    ("fold,epoch,loss,val_loss\n" + "".join(f"0,{e + 1},{1 / (e + 1)},0.5\n" for e in range(10)), [],
     "line 2: fold is '0'; a history counts its folds from 1"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},NA,0.5\n" for e in range(10)), [],
     "0 epochs with both val_loss and loss; a verdict needs at least 5"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},1,{0.5 if e < 3 else 'inf'}\n" for e in range(10)), [],
     "3 epochs with both val_loss and loss; a verdict needs at least 5; epochs 4-10 left out: val_loss or loss is not "
     "a finite number there (a diverged run?)"),  # why so few is said
    ("epoch,loss,val_loss\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", "epoch"],
     "--monitor epoch: epoch is logged beside the metrics and measures no model: watch a validation metric, such as "
     "val_loss"),  # not 'watch val_epoch'

    ("epoch,loss,val_accuracy\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", "val_accuracy", "--mode", "min"],
     "--mode min: a higher val_accuracy is better (by its name); leave --mode out, or give --mode max"),
    ("epoch,loss,accuracy\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", "accuracy"],
     "--monitor accuracy: overfitting shows on the validation data, not the training data's accuracy"),
    ("epoch,loss,val_loss\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", "valloss"],
     "no 'valloss' column (has epoch, loss, val_loss); did you mean 'val_loss'?"),  # not 'watch val_valloss'
    ("epoch,loss,val_loss\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", ""],
     "--monitor: give the validation metric to watch, e.g. --monitor val_loss"),  # not 'watch val_'
    ("epoch,loss,val_thing\n" + "".join(f"{e},1,0.5\n" for e in range(10)), ["--monitor", "val_thing"],
     "cannot tell whether a higher 'val_thing' is better: give --mode min or --mode max"),
    # a comma is a decimal mark in a file separated by semicolons only: in a tab-separated one 1,234 may be a thousand
    ("epoch\tloss\tval_loss\n" + "".join(f"{e}\t1,234\t0.5\n" for e in range(10)), [], "line 2: loss is '1,234', not a number"),
    # csv.DictReader keeps the last copy: a flat second val_loss hid the first one's overfit
    ("epoch,loss,val_loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.3 + 0.1 * e},0.1\n" for e in range(10)), [],
     "the header names column 'val_loss' twice (columns 3 and 4); give each column its own name"),
])
def test_a_history_verdict_cannot_judge_is_one_line_and_exit_2(cli, tmp_path, rows, args, says):
    path = tmp_path / "log.csv"
    path.write_text(rows)

    result = cli("verdict", str(path), *args)

    assert result.exit_code == 2
    assert says in result.output and len(result.output.strip().splitlines()) == 1


def test_epochs_that_are_no_number_are_named_spaces_after_commas_are_read_and_a_plain_folder_is_refused(cli, tmp_path):
    values = [1.0, 0.6, 0.4, 0.35, 0.5, 0.7, "inf", 1.1, 1.3, 1.5, "nan"]
    log = tmp_path / "log.csv"
    log.write_text("epoch, loss, val_loss\n" + "".join(f"{e}, {0.5 ** e}, {v}\n" for e, v in enumerate(values, start=1)))

    table = cli("verdict", str(log))
    (found,) = json.loads(cli("verdict", str(log), "--format", "json").stdout)
    folder = cli("verdict", str(tmp_path))

    assert table.exit_code == 0, table.output
    assert "epochs 7, 11 left out: val_loss or loss is not a finite number there (a diverged run?)" in table.output
    assert found["left_out_epochs"] == [7, 11] and found["warned_at_epoch"] == 8
    # the epochs left, 1.0 ... 1.1, have second differences equal but for rounding: their noise is no floor
    assert found["evidence"]["noise"] > 0.01
    assert folder.exit_code == 2 and f"{tmp_path}: a folder, and no run folder (it has no run.json)" in folder.stderr


def test_a_log_saved_with_decimal_commas_is_read_as_the_same_numbers(cli, tmp_path):
    values = [(0.5 ** e, 0.3 + abs(e - 4) * 0.05) for e in range(12)]
    (tmp_path / "point.csv").write_text("epoch,loss,val_loss\n" + "".join(f"{e},{a},{b}\n" for e, (a, b) in enumerate(values)))
    (tmp_path / "comma.csv").write_text("epoch;loss;val_loss\n" + "".join(
        f"{e};{str(a).replace('.', ',')};{str(b).replace('.', ',')}\n" for e, (a, b) in enumerate(values)))

    point, comma = (verdict_json(cli, str(tmp_path / name))[0] for name in ("point.csv", "comma.csv"))

    assert point["warned_at_epoch"] is not None
    assert {**comma, "source": None} == {**point, "source": None}


@pytest.mark.parametrize("document, says", [
    ('{"loss": [1, 0.5', "not a JSON file (Expecting"),
    ("[1, 2]", "not Keras's History.history (a mapping of each metric to a list of its values per epoch"),
    ('{"loss": [1, 0.9, 0.8], "val_loss": [1, 0.9]}', "val_loss has 2 values and loss 3; History.history has one"),
    ('{"loss": [1, 0.9, 0.8], "val_loss": [1, "high", 0.9]}', 'val_loss[1] (epoch 2) is "high", not a number'),
    ('{"loss": [' + "9" * 5000 + '], "val_loss": [1]}', "holds a number too long to read (Exceeds the limit"),
    ("[" * 100_000 + "]" * 100_000, "nested too deep to be Keras's History.history"),  # a RecursionError
    ('{"loss": [1, 0.9], "val_loss": [1, 0.9], "loss": [1, 0.9, 0.8]}',
     "the key 'loss' is given twice in one object; History.history names each metric once"),  # was "lengths differ"
])
def test_a_keras_history_json_that_cannot_be_read_is_one_line(cli, tmp_path, document, says):
    path = tmp_path / "history.json"
    path.write_text(document)

    result = cli("verdict", str(path))

    assert result.exit_code == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_run_without_a_history_says_its_history_is_missing_or_empty(cli, runs_dir):
    run = fake_run(runs_dir, "20260101-100000-blank", summary=summary_with(0.3, 0.9))

    missing = cli("verdict", run.name)
    (run / "history.csv").write_text("")
    empty = cli("verdict", run.name)

    assert missing.exit_code == 2 and missing.stderr.startswith(  # "a header and no epochs" before
        f"error: run {run.name}: its history.csv is missing: no epoch to judge"), missing.output
    assert empty.exit_code == 2 and f"run {run.name}: its history.csv is empty" in empty.stderr


def test_a_k_fold_history_stopped_early_in_a_fold_keeps_the_verdicts_of_the_folds_before(cli, tmp_path):
    path = tmp_path / "folds.csv"
    path.write_text("fold,epoch,loss,val_loss\n" + "".join(f"1,{e},{1 / e},0.5\n" for e in range(1, 21))
                    + "".join(f"2,{e},{1 / e},0.5\n" for e in range(1, 4)))

    result = cli("verdict", str(path), "--format", "json")

    assert result.exit_code == 1, result.output  # a partial result; fold 1's verdict was lost with fold 2's error
    assert [judged["fold"] for judged in json.loads(result.stdout)] == [1]
    assert result.stderr.strip() == (f"error: {path} (fold 2): 3 epochs with both val_loss and loss; a verdict needs at "
                                     "least 5 (1 fold has no verdict)")


def test_a_metric_known_by_its_name_alone_is_ranked_as_keras_ranks_it():
    import inspect

    import keras

    from dlcli.curves.histories import named_direction

    declared = {}
    for _, metric_class in inspect.getmembers(keras.metrics, inspect.isclass):
        try:
            metric = metric_class()
        except (TypeError, ValueError):  # one that needs arguments: its name is a default's or the user's
            continue
        if getattr(metric, "_direction", None) in ("up", "down"):
            declared[metric.name] = "max" if metric._direction == "up" else "min"

    assert len(declared) >= 25  # 30 in Keras 3.15
    assert {name: named_direction(name) for name in declared} == declared  # cosine_similarity was "cannot tell"


def test_a_history_given_through_a_pipe_is_read(tmp_path):
    log = "epoch,loss,val_loss\n" + "".join(f"{epoch},{1 / (epoch + 1)},0.5\n" for epoch in range(8))

    piped = subprocess.run([sys.executable, "-m", "dlcli", "verdict", "/dev/stdin"], input=log, capture_output=True,
                           text=True)  # not seekable: it was taken for a run and refused as "a file, not a run folder"

    assert piped.returncode == 0 and piped.stdout.startswith("/dev/stdin: 8 epochs of val_loss (min)"), piped.stderr


def test_the_runs_folder_s_index_and_sweeps_are_passed_by_among_runs_and_a_binary_file_is_said_to_be_one(
        cli, runs_dir, tmp_path):
    run = fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))
    (run / "history.csv").write_text("epoch,loss,val_loss\n" + "".join(f"{e},{1 / e},0.5\n" for e in range(1, 9)))
    (runs_dir / "sweeps").mkdir()
    assert cli("runs").exit_code == 0  # makes index.sqlite
    binary = tmp_path / "model.csv"
    binary.write_bytes(bytes(range(256)) * 4)

    globbed = cli("verdict", *(str(path) for path in sorted(runs_dir.iterdir())))  # what `dlcli verdict runs/*` gives
    alone, blob = cli("verdict", str(runs_dir / "index.sqlite")), cli("verdict", str(binary))

    assert globbed.exit_code == 0 and globbed.stderr == "" and f"run {run.name}: 8 epochs" in globbed.stdout, globbed.output
    assert alone.exit_code == 2 and "index.sqlite: the runs folder's index, not a history" in alone.stderr
    assert blob.exit_code == 2 and "model.csv is a binary file (a model, a database, an archive?)" in blob.stderr \
        and "save it as UTF-8" not in blob.stderr
    wide = tmp_path / "excel.csv"
    wide.write_text("epoch,loss,val_loss\n1,0.5,0.5\n", encoding="utf-16")  # Excel's "Unicode Text": NUL bytes too
    utf16 = cli("verdict", str(wide))
    assert utf16.exit_code == 2 and "excel.csv is UTF-16 text; save it as UTF-8" in utf16.stderr


def test_a_json_history_through_a_pipe_a_device_and_a_reference_longer_than_a_path(tmp_path, runs_dir):
    log = json.dumps({"loss": [1 / epoch for epoch in range(1, 9)], "val_loss": [0.5] * 7 + [math.nan]})
    verdict = [sys.executable, "-m", "dlcli", "verdict", "--runs-dir", str(runs_dir)]

    piped = subprocess.run([*verdict, "/dev/stdin"], input=log, capture_output=True, text=True)  # read as a CSV before
    device = subprocess.run([*verdict, "/dev/zero"], capture_output=True, text=True, timeout=60)  # read without end
    long = subprocess.run([*verdict, "x" * 3000], capture_output=True, text=True)  # "File name too long", echoed whole

    assert piped.returncode == 0 and "/dev/stdin: 8 epochs of val_loss" in piped.stdout, piped.stderr
    assert "epoch 8 left out" in " ".join(piped.stdout.split())  # json.dump's NaN: not -inf
    assert device.returncode == 2 and device.stderr.startswith("error: /dev/zero: a device, not a file"), device.stderr
    assert long.returncode == 2 and len(long.stderr) < 400 and "Traceback" not in long.stderr, long.stderr


def test_a_json_integer_beyond_a_float_s_range_is_an_infinite_value_left_out(cli, tmp_path):
    path = tmp_path / "history.json"
    path.write_text('{"loss": [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "val_loss": [1, 0.9, 0.8, 0.7, 0.6, 0.5, 1' + "0" * 400 + "]}")

    result = cli("verdict", str(path))

    assert result.exit_code == 0, result.output  # an OverflowError from float()
    assert "epoch 7 left out: val_loss or loss is not a finite number there" in " ".join(result.stdout.split())


def test_values_near_a_float_s_limit_are_judged_without_numpy_s_warnings(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("epoch,loss,val_loss\n" + "".join(f"{epoch},{1 - epoch / 10},{(-1) ** epoch * 1e308}\n"
                                                      for epoch in range(8)))

    result = subprocess.run([sys.executable, "-m", "dlcli", "verdict", str(path)], capture_output=True, text=True)

    assert result.returncode == 0 and result.stderr == ""  # four lines of "RuntimeWarning: overflow" before


def test_a_history_that_is_not_utf8_is_named_at_its_line_and_byte(cli, tmp_path, runs_dir):
    log, document = tmp_path / "log.csv", tmp_path / "history.json"
    log.write_bytes(b"epoch,loss,val_loss\n1,0.5,0.4\n2,0.4,\xff0.3\n")
    document.write_bytes(b'{"loss": [1, \xff2]}')
    run = fake_run(runs_dir, "20260101-100000-latin", summary=summary_with(0.3, 0.9))
    (run / "history.csv").write_bytes(log.read_bytes())

    results = [cli("verdict", str(path)) for path in (log, document)] + [cli("verdict", run.name)]

    assert [result.exit_code for result in results] == [2, 2, 2]
    assert results[0].stderr.strip() == (f"error: not a CSV file of UTF-8 text: {log}, line 3: byte 0xff at column 7 is "
                                         "not UTF-8 (the file was saved in another encoding, such as Latin-1); save it as UTF-8")
    assert f"not a JSON file of UTF-8 text: {document}, line 1: byte 0xff at column 14 is not UTF-8" in results[1].stderr
    assert ("run 20260101-100000-latin: history.csv is damaged (line 3: byte 0xff at column 7 is not UTF-8"
            in " ".join(results[2].stderr.split()))


def test_a_run_whose_config_is_lost_points_to_its_history(cli, runs_dir):
    run = fake_run(runs_dir, "20260101-100000-lost", summary=summary_with(0.3, 0.9))
    (run / "history.csv").write_text("epoch,loss,val_loss\n" + "".join(f"{e},{1 / e},0.5\n" for e in range(1, 11)))
    (run / "config.yaml").unlink()

    lost = cli("verdict", run.name)
    history = cli("verdict", str(run / "history.csv"))

    assert lost.exit_code == 2 and " ".join(lost.stderr.split()).endswith(
        f"judge its history with the default settings instead: dlcli verdict {run / 'history.csv'}"), lost.output
    assert history.exit_code == 0, history.output  # the way it points to works


def test_a_keras_history_json_with_a_vector_metric_is_judged_on_its_loss(cli, tmp_path):
    history = {"loss": [1 / (e + 1) for e in range(12)], "val_loss": [0.5 + 0.01 * e for e in range(12)],
               "f1_score": [[0.5, 0.6]] * 12}  # F1Score(average=None), saved with .tolist()
    (tmp_path / "history.json").write_text(json.dumps(history))

    (verdict,) = verdict_json(cli, str(tmp_path / "history.json"))

    assert verdict["epochs"] == 12 and verdict["overfitting"] is True


def test_a_history_without_epochs_is_one_epoch_a_row_and_one_without_loss_either_is_refused(cli, tmp_path):
    rows = "".join(f"{1 / (e + 1)},{0.5 + 0.01 * e}\n" for e in range(12))
    (tmp_path / "index_false.csv").write_text("loss,val_loss\n" + rows)  # DataFrame.to_csv(index=False)
    (tmp_path / "table.csv").write_text("price,rooms\n1,2\n")

    (verdict,) = verdict_json(cli, str(tmp_path / "index_false.csv"))
    refused = cli("verdict", str(tmp_path / "table.csv"))

    assert verdict["epochs"] == 12 and verdict["warned_at_epoch"] is not None
    assert refused.exit_code == 2 and "no 'epoch' or 'loss' column (has price, rooms)" in refused.stderr


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_a_spreadsheet_s_byte_order_mark_windows_line_ends_and_csvlogger_s_separators_are_read(cli, tmp_path, separator):
    path = tmp_path / "log.csv"
    rows = "".join(separator.join(map(str, (e, 1 / (e + 1), 0.5 + 0.01 * e))) + "\r\n" for e in range(12))
    path.write_bytes(("\ufeff" + separator.join(("epoch", "loss", "val_loss")) + "\r\n" + rows).encode("utf-8"))

    (verdict,) = verdict_json(cli, str(path))

    assert verdict["epochs"] == 12 and verdict["overfitting"] is True


def test_several_histories_are_each_judged_and_those_that_cannot_be_are_one_line_each(cli, tmp_path):
    rising = "epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5 + 0.01 * e}\n" for e in range(12))
    (tmp_path / "good.csv").write_text(rising)
    (tmp_path / "short.csv").write_text("epoch,loss,val_loss\n0,1.0,0.5\n1,0.9,0.6\n")
    # a vector metric (F1Score(average=None)) and a note: text in columns the verdict does not read
    (tmp_path / "vector.csv").write_text("epoch,f1_score,loss,note,val_loss\n" + "".join(
        f'{e},"[0.5, 0.6]",{1 / (e + 1)},fine,{0.5 + 0.01 * e}\n' for e in range(12)))

    mixed = cli("verdict", str(tmp_path / "good.csv"), str(tmp_path / "short.csv"), str(tmp_path / "vector.csv"))
    as_json = cli("verdict", str(tmp_path / "short.csv"), str(tmp_path / "good.csv"), "--format", "json")
    none = cli("verdict", str(tmp_path / "short.csv"), str(tmp_path / "missing.csv"))

    assert mixed.exit_code == 1 and mixed.stdout.count("the warning at epoch") == 2
    assert mixed.stderr.strip() == (f"error: {tmp_path / 'short.csv'}: 2 epochs with both val_loss and loss; a "
                                    "verdict needs at least 5 (1 of 3 histories has no verdict)")
    assert as_json.exit_code == 1 and len(json.loads(as_json.stdout)) == 1
    assert none.exit_code == 2 and len(none.stderr.strip().splitlines()) == 2 and "missing.csv: no such file" in none.stderr


def test_a_five_epoch_keras_log_of_a_loss_that_gave_back_all_it_gained_gets_the_live_warning(cli, tmp_path):
    # the book's 512-512 IMDB net's first epochs: a live run warns at epoch 5, and so does its log
    log = tmp_path / "big.csv"
    log.write_text("epoch,loss,val_loss\n" + "".join(
        f"{e},{loss},{value}\n" for e, (loss, value) in enumerate(zip([0.45, 0.21, 0.12, 0.06, 0.07],
                                                                      [0.415, 0.274, 0.544, 0.432, 0.510]))))

    result = cli("verdict", str(log), "--format", "json")

    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)
    assert (found["overfitting"], found["warned_at_epoch"], found["onset_epoch"]) == (True, 5, 2)


def test_a_history_file_that_is_not_there_or_a_run_that_is_not_is_one_line(cli):
    for reference, says in (("missing.csv", "missing.csv: no such file"), ("nope", "no run 'nope'")):
        result = cli("verdict", reference)
        assert result.exit_code == 2 and says in result.output


def test_verdict_does_not_import_tensorflow(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,val_loss\n" + "".join(f"{e},{1 / (e + 1)},{0.5 + 0.01 * e}\n" for e in range(10)))
    probe = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlcli.cli import app\n"
        f"result = CliRunner().invoke(app, ['verdict', {str(path)!r}])\n"
        "assert result.exit_code == 0, result.output\nassert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)


@pytest.mark.slow
def test_stop_ends_training_at_the_warning_keeps_the_best_model_and_a_killed_run_resumes_to_the_same_end(
    tmp_path, noise_table
):
    config = memorize_config(tmp_path, noise_table, ", overfitting: {stop: true}")
    straight_runs, killed_runs = tmp_path / "straight", tmp_path / "killed"
    result = CliRunner().invoke(app, ["train", str(config), "--runs-dir", str(straight_runs)])
    assert result.exit_code == 0, result.output
    (straight,) = run_folders(straight_runs)
    summary = read_json(straight / "summary.json")
    warned = summary["overfitting"]["warned_at_epoch"]
    assert warned is not None and summary["epochs_run"] == warned < 20
    assert summary["overfitting"]["stopped_at_epoch"] == warned
    assert read_json(straight / "run.json")["status"] == "completed"
    assert f"training stopped at epoch {warned} on the overfitting warning" in " ".join(summary["notes"])
    assert summary["best_epoch"] < warned and "stopping here (training.overfitting.stop)" in result.output

    # killed by SIGKILL in the commit of the epoch before the warning (the resumed run meets the
    # warning live), and in the commit of the warning's epoch (it resumes from the recorded stop)
    for commit in (warned - 1, warned):
        runs = killed_runs / f"commit-{commit}"
        command = [sys.executable, "-m", "dlcli", "train", str(config), "--runs-dir", str(runs)]
        env = {**os.environ, "DLCLI_KILL_AT": f"commit.state:{commit}"}
        process = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
        (killed,) = run_folders(runs)
        resumed = CliRunner().invoke(app, ["train", "--resume", str(killed)])

        assert resumed.exit_code == 0, resumed.output
        assert (killed / "history.csv").read_text().count("\n") == warned + 1  # the header and one row an epoch
        again = read_json(killed / "summary.json")
        assert again["overfitting"]["warned_at_epoch"] == warned and again["best_epoch"] == summary["best_epoch"]
        assert again["overfitting"]["stopped_at_epoch"] == warned
        assert read_json(killed / "run.json")["status"] == "completed"
