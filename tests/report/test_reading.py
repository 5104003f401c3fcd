"""Reading results: evaluate, compare, runs, show, check — and that the readers stay fast and light."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_CONFIG, encoded, fake_run, read_json, run_folders, summary_with
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.errors import DlcliError
from dlcli.keys import flattened
from dlcli.report.compare import compare, differing_keys
from dlcli.store.documents import load_runs

# --- evaluate ------------------------------------------------------------------------

def test_evaluate_rebuilds_the_test_split_and_matches_keras(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)

    result = cli("evaluate", "latest")

    assert result.exit_code == 0, result.output
    evaluation = read_json(folder / "evaluation.json")
    splits = load_dataset(load_config(folder / "config.yaml"))
    model = keras.saving.load_model(folder / "model.keras")
    expected = model.evaluate(*encoded(splits, "test"), verbose=0, return_dict=True)
    assert evaluation["split"] == "test" and evaluation["samples"] == 360
    assert evaluation["metrics"]["accuracy"] == pytest.approx(float(expected["accuracy"]))
    assert evaluation["metrics"]["loss"] == pytest.approx(float(expected["loss"]), rel=1e-5)
    assert evaluation["fingerprint"] == read_json(folder / "summary.json")["data"]["fingerprints"]["test"]
    assert evaluation["same_data_as_training"] is True
    matrix = np.array(evaluation["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 360
    assert np.trace(matrix) / 360 == pytest.approx(evaluation["metrics"]["accuracy"])
    assert set(evaluation["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert "confusion matrix" in result.stdout

    as_json, as_csv = cli("evaluate", "latest", "--format", "json"), cli("evaluate", "latest", "--format", "csv")
    assert json.loads(as_json.stdout)["metrics"] == evaluation["metrics"]  # data only on stdout
    (row,) = csv.DictReader(io.StringIO(as_csv.stdout))
    assert row["split"] == "test" and float(row["accuracy"]) == pytest.approx(evaluation["metrics"]["accuracy"])


@pytest.mark.slow
def test_evaluate_the_validation_split_and_a_kfold_run(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config), "--set", "training.kfold=2").exit_code == 0
    (folder,) = run_folders(runs_dir)

    tested = cli("evaluate", folder.name[:12])
    result = cli("evaluate", folder.name[:12], "--split", "validation")

    assert tested.exit_code == 0 and result.exit_code == 0, result.output
    evaluation = read_json(folder / "evaluation-validation.json")
    assert evaluation["split"] == "validation" and [f["fold"] for f in evaluation["folds"]] == [1, 2]
    mean = np.mean([f["metrics"]["accuracy"] for f in evaluation["folds"]])
    assert evaluation["metrics"]["accuracy"] == pytest.approx(mean)
    # the validation split's evaluation never takes the test split's place
    test = read_json(folder / "evaluation.json")
    assert test["split"] == "test"
    (listed,) = json.loads(cli("runs", "--format", "json").stdout)
    assert listed["test.accuracy"] == test["metrics"]["accuracy"] and "validation.accuracy" not in listed



def test_an_evaluation_that_cannot_be_saved_is_still_shown(cli, tiny_config, runs_dir, monkeypatch):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)

    def read_only(path, data):  # as root the tests cannot make a folder read-only; this is what writing meets
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("dlcli.use.evaluate.write_json", read_only)
    result = cli("evaluate", "latest", "--format", "json")

    assert result.exit_code == 2
    assert json.loads(result.stdout)["metrics"]["accuracy"] >= 0  # computed and shown
    assert result.stderr.strip() == (
        f"error: cannot write {folder / 'evaluation.json'} (Permission denied); the metrics above were not saved "
        "in the run folder"
    )


def test_an_evaluation_the_index_missed_is_seen_by_the_next_command(cli, runs_dir, monkeypatch):
    from dlcli.store.documents import Evaluation
    from dlcli.store.runs import RunFolder
    from dlcli.use.evaluate import save_evaluation

    folder = RunFolder(fake_run(runs_dir, "20260101-100000-a", summary=summary_with(0.5, 0.8)))
    assert cli("runs").exit_code == 0  # indexed without an evaluation
    monkeypatch.setattr("dlcli.use.evaluate.update_index", lambda folder: None)  # another writer held the index

    save_evaluation(folder, Evaluation(run=folder.id, split="test", metrics={"accuracy": 0.75}))

    (row,) = json.loads(cli("runs", "--format", "json").stdout)
    shown = json.loads(cli("show", "latest", "--format", "json").stdout)
    assert row["test.accuracy"] == 0.75 and shown["evaluation"]["metrics"] == {"accuracy": 0.75}


def test_evaluate_errors(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-nomodel", summary=summary_with(0.5, 0.8))

    unknown = cli("evaluate", "nope")
    no_model = cli("evaluate", "20260101-100000-nomodel")
    bad_split = cli("evaluate", "latest", "--split", "train")

    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.stderr
    empty = cli("show", " ")  # not "ambiguous": every id starts with nothing
    assert empty.exit_code == 2 and "an empty run: give its id" in empty.stderr
    assert no_model.exit_code == 2 and "has no model.keras" in no_model.stderr
    assert bad_split.exit_code == 2 and "'train' is not one of 'test', 'validation'" in bad_split.stderr


def test_a_misspelled_choice_is_refused_before_tensorflow_is_imported():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom dlcli.cli import app\nrunner = CliRunner()\n"
        "for args in (['evaluate', 'latest', '--split', 'tset'], ['export', 'latest', '--format', 'pb']):\n"
        "    result = runner.invoke(app, args)\n"
        "    assert result.exit_code == 2 and 'is not one of' in result.output, result.output\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- compare -------------------------------------------------------------------------

def test_flattened_spells_keys_as_set_takes_them():
    config = {"model": {"layers": [{"Flatten": {}}, {"Dense": {"units": 64}}]}, "metrics": ["accuracy"], "seed": 0}
    assert dict(flattened(config)) == {
        "model.layers.0.Flatten": {}, "model.layers.1.Dense.units": 64, "metrics": ["accuracy"], "seed": 0,
    }


def test_differing_keys_of_two_and_three_configs():
    base = {"optimizer": {"name": "adam", "learning_rate": 0.001}, "model": {"layers": [{"Dense": {"units": 64}}]}}
    faster = {"optimizer": {"name": "adam", "learning_rate": 0.01}, "model": {"layers": [{"Dense": {"units": 64}}]}}
    wider = {"optimizer": {"name": "adam", "learning_rate": 0.001}, "model": {"layers": [{"Dense": {"units": 128}}]}}
    deeper = {**base, "model": {"layers": [{"Dense": {"units": 64}}, {"Dropout": {"rate": 0.5}}]}}

    assert differing_keys([base, faster]) == ["optimizer.learning_rate"]
    assert differing_keys([base, faster, wider]) == ["optimizer.learning_rate", "model.layers.0.Dense.units"]
    assert differing_keys([base, deeper]) == ["model.layers.1.Dropout.rate"]
    assert differing_keys([base, base]) == []
    # `optimizer: adam` is `optimizer.name: adam`: only the learning rate differs
    plain = {"optimizer": "adam", "model": base["model"]}
    assert differing_keys([plain, base]) == ["optimizer.learning_rate"]


def two_runs(runs_dir):
    fake_run(runs_dir, "20260101-100000-slow", TINY_CONFIG, summary_with(0.40, 0.90, onset=3))
    fake_run(runs_dir, "20260101-110000-fast", TINY_CONFIG.replace("learning_rate: 0.01", "learning_rate: 0.1"),
             summary_with(0.30, 0.85))


def test_compare_json_lists_the_differing_key_and_the_metrics(cli, runs_dir):
    two_runs(runs_dir)

    result = cli("compare", "--last", "2", "--format", "json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["differing_keys"] == ["optimizer.learning_rate"]
    slow, fast = data["runs"]
    assert (slow["optimizer.learning_rate"], fast["optimizer.learning_rate"]) == (0.01, 0.1)
    assert slow["best val_accuracy"] == 0.90 and slow["overfitting_onset"] == 3
    assert result.stderr == ""


def test_compare_names_each_damaged_run_once_and_never_groups_damaged_runs_as_one_experiment(cli, runs_dir):
    two_runs(runs_dir)
    for run_id, text in (("20260101-100002-c", "model: [unclosed"), ("20260101-100003-d", "- a list")):
        (fake_run(runs_dir, run_id, summary=summary_with(0.2, 0.9)) / "config.yaml").write_text(text)

    result = cli("compare", "--last", "4")
    listed = cli("compare", "--last", "4", "--format", "json")

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "run 20260101-100002-c is compared alone: config.yaml:1: invalid YAML: a '[' list opened here is never closed",
        "run 20260101-100003-d is compared alone: config.yaml is not a mapping of keys",
        "one run per config: a difference cannot be told from seed noise; repeat it over seeds: dlcli train CONFIG "
        "--repeat 5",
    ]  # two empty configs are not one experiment trained twice, nor a dataset of their own
    assert json.loads(listed.stdout)["differing_keys"] == ["optimizer.learning_rate"]  # as without them


def test_compare_csv_parses_with_one_row_per_run(cli, runs_dir):
    two_runs(runs_dir)

    result = cli("compare", "--format", "csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["run"] for row in rows] == ["20260101-100000-slow", "20260101-110000-fast"]
    assert rows[1]["optimizer.learning_rate"] == "0.1"


def test_compare_for_a_program_leaves_out_a_key_a_run_lacks_and_writes_lists_as_json(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-a", TINY_CONFIG, summary_with(0.40, 0.90))
    fake_run(runs_dir, "20260101-110000-b", TINY_CONFIG.replace("metrics: [accuracy]", "metrics: [accuracy, auc]")
             .replace("  epochs: 2\n", "  epochs: 2\n  overfitting: {patience: 4}\n"), summary_with(0.30, 0.85))

    listed = json.loads(cli("compare", "--format", "json").stdout)["runs"]
    rows = list(csv.DictReader(io.StringIO(cli("compare", "--format", "csv").stdout)))
    table = cli("compare", "--last", "2").stdout

    assert "training.overfitting.patience" not in listed[0] and listed[1]["training.overfitting.patience"] == 4
    assert (listed[0]["metrics"], listed[1]["metrics"]) == (["accuracy"], ["accuracy", "auc"])
    assert rows[0]["training.overfitting.patience"] == "" and rows[1]["training.overfitting.patience"] == "4"
    assert json.loads(rows[1]["metrics"]) == ["accuracy", "auc"]  # not Python's "['accuracy', 'auc']"
    assert "—" in table  # the table shows the missing key as such
    for run in run_folders(runs_dir):
        (run / "history.csv").write_text("epoch,loss,val_loss\n1,0.5,0.6\n2,0.4,0.5\n")
    plotted = cli("compare", "--plot", str(runs_dir.parent / "curves.png"))
    assert plotted.exit_code == 0, plotted.output  # a run without the key is labelled without it (a KeyError)


def test_best_values_are_highlighted_per_column(runs_dir):
    from dlcli.report.render import comparison_table

    two_runs(runs_dir)
    comparison = compare(load_runs(runs_dir))

    assert comparison.best == {
        "best val_loss": 0.30, "best val_accuracy": 0.90, "final val_loss": 0.30, "final val_accuracy": 0.90,
    }
    table = comparison_table(comparison)
    column = next(c for c in table.columns if c.header == "best val_accuracy")
    assert [cell.style for cell in column._cells] == ["bold green", ""]


def test_compare_sort_filter_and_explicit_runs(cli, runs_dir):
    two_runs(runs_dir)
    fake_run(runs_dir, "20260101-120000-other", TINY_CONFIG.replace("units: 16", "units: 32"), summary_with(0.2, 0.95))

    by_accuracy = json.loads(cli("compare", "--sort", "val_accuracy", "--format", "json").stdout)
    filtered = json.loads(cli("compare", "--filter", "*-f*", "--format", "json").stdout)
    chosen = json.loads(cli("compare", "20260101-10", "20260101-12", "--format", "json").stdout)
    bad_sort = cli("compare", "--sort", "colour")

    assert [r["run"][16:] for r in by_accuracy["runs"]] == ["other", "slow", "fast"]
    assert [r["run"][16:] for r in filtered["runs"]] == ["fast"]
    # a diverged run's NaN is no number to rank: last, whichever way the metric ranks
    fake_run(runs_dir, "20260101-113000-diverged", TINY_CONFIG.replace("units: 16", "units: 64"),
             summary_with(float("nan"), float("nan")))
    for metric in ("val_accuracy", "val_loss"):
        ranked = json.loads(cli("compare", "--sort", metric, "--format", "json").stdout)
        assert [r["run"][16:] for r in ranked["runs"]][-1] == "diverged", ranked["runs"]
    assert chosen["differing_keys"] == ["model.layers.1.Dense.units"]
    assert bad_sort.exit_code == 2 and "--sort colour: no such column" in bad_sort.stderr
    assert "sortable: best.val_loss, best.val_accuracy" in bad_sort.stderr  # as --sort takes them, not "best val_loss"
    dotted = json.loads(cli("compare", "--sort", "best.val_accuracy", "--format", "json").stdout)  # as runs --sort spells it
    assert [r["run"][16:] for r in dotted["runs"]] == ["other", "slow", "fast", "diverged"]
    misspelt = cli("compare", "--sort", "best.val_acuracy")
    assert "no such column; did you mean 'best.val_accuracy'?" in misspelt.stderr, misspelt.output
    for command in ("runs", "compare"):  # an empty --sort is not taken for none
        empty = cli(command, "--sort", "")
        assert empty.exit_code == 2 and "--sort: give the metric to sort by" in empty.stderr, (command, empty.output)
    twice = cli("compare", "20260101-10", "20260101-100000-slow")
    assert twice.exit_code == 2 and "20260101-100000-slow: run 20260101-100000-slow is the same run as 20260101-10; " \
        "name each run once" in twice.stderr


def r2_summary(r2: float, directions: dict | None) -> dict:
    metrics = {"loss": 0.5, "val_loss": 0.6, "val_r2_score": r2}
    summary = {"epochs_run": 2, "best_epoch": 2, "monitor": "val_r2_score", "best": metrics, "final": metrics}
    return {**summary, "directions": directions} if directions else summary


def test_compare_ranks_each_metric_in_the_direction_its_runs_recorded(cli, runs_dir):
    recorded = {"loss": "min", "r2_score": "max"}
    fake_run(runs_dir, "20260101-100000-low", TINY_CONFIG, r2_summary(0.2, recorded))
    fake_run(runs_dir, "20260101-110000-high", TINY_CONFIG.replace("units: 16", "units: 32"), r2_summary(0.8, recorded))

    ranked = json.loads(cli("compare", "--sort", "val_r2_score", "--format", "json").stdout)
    comparison = compare(load_runs(runs_dir))

    assert [r["run"][16:] for r in ranked["runs"]] == ["high", "low"]  # higher r2 first, as Keras ranks it
    assert comparison.best["best val_r2_score"] == 0.8 and comparison.best["best val_loss"] == 0.6


def test_compare_cannot_rank_a_metric_its_runs_did_not_record(runs_dir):
    fake_run(runs_dir, "20260101-100000-old", TINY_CONFIG, r2_summary(0.2, None))
    fake_run(runs_dir, "20260101-110000-older", TINY_CONFIG.replace("units: 16", "units: 32"), r2_summary(0.8, None))

    old_runs = compare(load_runs(runs_dir), sort="val_loss")  # the loss ranks downwards, as Keras has it

    assert old_runs.best == {"best val_loss": 0.6, "final val_loss": 0.6}  # r2 not highlighted rather than guessed
    with pytest.raises(DlcliError, match="do not record whether a higher or a lower r2_score is better"):
        compare(load_runs(runs_dir), sort="val_r2_score")


@pytest.mark.slow
def test_compare_plot_overlays_the_validation_curves(cli, tiny_config, runs_dir, tmp_path):
    assert cli("train", str(tiny_config)).exit_code == 0
    assert cli("train", str(tiny_config), "--set", "optimizer.learning_rate=0.002").exit_code == 0

    result = cli("compare", "--plot", str(tmp_path / "both.png"))

    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "both.png") as image:
        assert image.format == "PNG"


def test_compare_plot_draws_the_runs_it_can_and_names_a_damaged_history(cli, runs_dir, tmp_path):
    history = "epoch,loss,val_loss,accuracy,val_accuracy\n1,0.9,1.0,0.5,0.4\n2,0.5,0.7,0.7,0.6\n"
    for name, units in (("a", 16), ("b", 32)):
        run = fake_run(runs_dir, f"20260101-10000{'ab'.index(name)}-{name}", TINY_CONFIG.replace("units: 16", f"units: {units}"),
                       summary_with(0.7, 0.6))
        (run / "history.csv").write_text(history)
    (run / "history.csv").write_text(history[:60] + "x")  # cut short and overwritten: b's is damaged

    result = cli("compare", "--plot", str(tmp_path / "both.png"))

    assert result.exit_code == 0, result.output
    assert "left out of the plot: run 20260101-100001-b: history.csv is damaged" in " ".join(result.stderr.split())
    with Image.open(tmp_path / "both.png") as image:
        assert image.format == "PNG"
    nothing = cli("compare", "20260101-100001-b", "--plot", str(tmp_path / "none.png"))
    assert nothing.exit_code == 2 and "--plot: no history could be read, nothing to draw (run 20260101-100001-b" in (
        " ".join(nothing.stderr.split())) and not (tmp_path / "none.png").exists()


def test_compare_smooth_is_a_number_for_a_plot(cli, runs_dir, tmp_path):
    fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))

    nan = cli("compare", "--smooth", "nan", "--plot", str(tmp_path / "curves.png"))  # Typer's range let it through
    alone = cli("compare", "--smooth", "0.5")

    assert nan.exit_code == 2 and nan.stderr.strip() == "error: --smooth nan: give a number from 0 to 0.99"
    assert alone.exit_code == 2 and "--smooth 0.5: it smooths the curves of --plot: add --plot" in alone.stderr
    assert not (tmp_path / "curves.png").exists()


def test_a_config_emptied_and_put_back_in_place_is_seen_by_show_and_then_listed(cli, runs_dir):
    folder = fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))
    config = folder / "config.yaml"
    text = config.read_text()
    assert "completed" in cli("runs").stdout  # indexed

    written = os.stat(config)
    config.write_text("")  # in place, as `: > config.yaml` does: run.json's time is unchanged
    emptied, listed = cli("show", "good").stdout, cli("runs").stdout
    config.write_text(text)
    os.utime(config, ns=(written.st_atime_ns, written.st_mtime_ns))  # put back with its old time, as `cp -p` does
    mended, listed_again = cli("show", "good").stdout, cli("runs").stdout

    assert "damaged" in emptied and "config.yaml is empty" in emptied and "config.yaml is empty" in listed
    assert "completed" in mended and "damaged" not in listed_again  # both kept the stale index's "damaged"


def test_a_run_of_this_dlcli_without_its_config_is_damaged_and_told_to_put_it_back(cli, runs_dir):
    folder = fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9), prepared_as="0123456789abcdef")
    (folder / "config.yaml").unlink()

    shown, evaluated = cli("show", "good"), cli("evaluate", "good")

    assert "damaged" in shown.stdout and "config.yaml is missing" in shown.stdout
    assert evaluated.exit_code == 2 and evaluated.stderr.strip() == (  # it said "edited after training"
        "error: run 20260101-100000-good is damaged: config.yaml is missing; its folder is left as it is: put its "
        "config.yaml back as it was, or train the original config again for a new run")


def test_a_run_file_that_holds_no_object_is_said_in_json_s_words(cli, runs_dir):
    folder = fake_run(runs_dir, "20260101-100000-null", summary=summary_with(0.3, 0.9))
    (folder / "summary.json").write_text("null")

    listed = cli("runs", "--format", "json")

    assert json.loads(listed.stdout)[0]["damage"] == "summary.json holds null, not an object"  # "a NoneType"


def test_a_config_that_is_not_utf8_is_said_as_every_unreadable_run_file_is(cli, runs_dir):
    folder = fake_run(runs_dir, "20260101-100000-latin", summary=summary_with(0.3, 0.9))
    (folder / "config.yaml").write_bytes(b"name: caf\xe9\n")

    listed = cli("runs", "--format", "json")

    assert json.loads(listed.stdout)[0]["damage"] == "config.yaml cannot be read (not UTF-8 text: byte 0xe9 at position 9)"


def test_a_count_beyond_sqlite_s_integers_lists_every_run(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))
    beyond = str(2**63)  # SQLite's LIMIT took it for a float: "datatype mismatch"

    listed, ranked, compared = cli("runs", "--last", beyond), cli("runs", "--sort", "val_loss", "--last", beyond), \
        cli("compare", "--last", beyond)

    assert all(result.exit_code == 0 for result in (listed, ranked, compared)), listed.output + ranked.output
    assert "20260101-100000-good" in listed.stdout and "20260101-100000-good" in ranked.stdout


def test_compare_refuses_two_ways_of_choosing_the_runs(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))

    for chooser in (["--last", "2"], ["--all"], ["--sweep", "latest"]):  # the runs named had been dropped, unsaid
        result = cli("compare", "good", *chooser)
        assert result.exit_code == 2, result.output
        assert f"{' '.join(chooser)} and runs named (good) each choose the runs to compare: give one of them" in result.stderr


def test_compare_plot_never_writes_over_a_file_that_is_not_a_plot(cli, runs_dir, tmp_path):
    run = fake_run(runs_dir, "20260101-000000-a")
    (run / "model.keras").write_bytes(b"PK\x03\x04 a model")
    table = tmp_path / "keep.csv"
    table.write_text("a,b\n1,2\n")
    named_png = tmp_path / "notes.png"
    named_png.write_text("my notes")

    refused = {
        str(run / "model.keras"): "the plot is a PNG image; give a file name ending in .png",
        str(table): "give a file name ending in .png",
        str(tmp_path / "out.svg"): "give a file name ending in .png",
        str(run / "curves.png"): "is in the run folder",
        str(named_png): "exists and is not a PNG image: writing the plot would destroy it",
        str(table / "curves.png"): f"{table} is a file, not a folder; give another path",
        str(tmp_path): "is a folder; give the name of a file to write",  # a folder named like a picture
    }
    (tmp_path / "folder.png").mkdir()
    refused[str(tmp_path / "folder.png")] = refused.pop(str(tmp_path))
    for path, message in refused.items():
        result = cli("compare", "--plot", path)
        assert result.exit_code == 2 and message in result.stderr, (path, result.output)
        assert result.stdout == ""  # refused before the table, not after it
    assert (run / "model.keras").read_bytes() == b"PK\x03\x04 a model" and named_png.read_text() == "my notes"
    assert not (run / "curves.png").exists()


# --- runs and show ---------------------------------------------------------------------

def test_runs_lists_crashed_and_damaged_folders_without_failing(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-good", summary=summary_with(0.3, 0.9))
    fake_run(runs_dir, "20260101-110000-dead", status="running", pid=2**22 + 7)
    (runs_dir / "20260101-120000-norecord").mkdir()
    torn = fake_run(runs_dir, "20260101-130000-torn", summary=summary_with(0.3, 0.9))
    (torn / "summary.json").write_text('{"epochs_run": 2, "best": {')

    statuses = {record.id[16:]: (record.status, record.damage) for record in load_runs(runs_dir)}
    result = cli("runs")

    assert result.exit_code == 0, result.output
    assert statuses["good"] == ("completed", None)
    assert statuses["dead"] == ("crashed", None)
    assert statuses["norecord"] == ("damaged", "run.json is missing")
    assert statuses["torn"] == ("damaged", "summary.json cannot be read (not whole JSON: expecting property name enclosed in "
                                           "double quotes, line 1 column 28)")  # where it breaks, not cut mid-word
    compared = cli("compare", "--format", "json")
    assert compared.exit_code == 0 and len(json.loads(compared.stdout)["runs"]) == 4
    crashed = cli("runs", "--status", "crashed")
    assert "20260101-110000-dead" in crashed.stdout and "good" not in crashed.stdout


def test_a_damaged_evaluation_json_is_said_wherever_the_test_score_would_be(cli, runs_dir):
    scored = fake_run(runs_dir, "20260101-100000-scored", summary=summary_with(0.3, 0.9))
    torn = fake_run(runs_dir, "20260101-110000-torn", summary=summary_with(0.3, 0.9))
    (scored / "evaluation.json").write_text(json.dumps({"run": scored.name, "split": "test", "metrics": {"accuracy": 0.8}}))
    (torn / "evaluation.json").write_text('{"run": "20260101-110000-torn", "metrics": {"accur')
    says = "run 20260101-110000-torn: evaluation.json cannot be read (not whole JSON: unterminated string starting at, line 1"
    again = f"its test score is left out; `dlcli evaluate 20260101-110000-torn --runs-dir {runs_dir}` writes it again"

    listed, shown, compared = cli("runs"), cli("show", "torn"), cli("compare")
    rows = {row["name"]: row for row in json.loads(cli("runs", "--format", "json").stdout)}

    assert "accuracy 0.8" in listed.stdout and "evaluation.json damaged" in listed.stdout  # not a blank cell
    assert says in shown.stdout and again in " ".join(shown.stdout.split())
    assert says in compared.stderr and again in " ".join(compared.stderr.split())
    assert rows["torn"]["status"] == "completed" and rows["torn"]["damage"] is None  # the run itself is whole
    assert "evaluation.json cannot be read (not whole JSON" in rows["torn"]["evaluation_damage"]
    assert rows["scored"]["evaluation_damage"] is None


def test_counts_below_zero_make_a_run_damaged_and_a_duration_below_zero_is_none(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-epochs", summary={**summary_with(0.3, 0.9), "epochs_run": -5})
    fake_run(runs_dir, "20260101-110000-duration", summary=summary_with(0.3, 0.9), duration_s=-100)

    statuses = {record.id[16:]: (record.status, record.damage) for record in load_runs(runs_dir)}

    assert statuses["epochs"] == ("damaged", "summary.json: epochs_run: Input should be greater than or equal to 0")
    assert statuses["duration"] == ("completed", None)  # the clock set back during the run: it took no time
    assert "-100s" not in cli("runs").stdout and " 0s " in cli("runs").stdout


def test_names_and_paths_are_shown_as_written_not_as_markup_or_emoji(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-lr[bold]1e-3", summary=summary_with(0.3, 0.9),
             name="lr[bold]1e-3[red]x", group="[red]g:smile:")

    listed, shown = cli("runs"), cli("show", "latest")

    assert listed.exit_code == 0 and shown.exit_code == 0, listed.output + shown.output
    assert "lr[bold]1e-3[red]x" in listed.stdout and "[red]g:smile:" in listed.stdout
    assert "20260101-100000-lr[bold]1e-3" in shown.stdout and "group: [red]g:smile:" in shown.stdout


def test_a_config_edited_after_training_is_said_where_it_is_shown(cli, runs_dir):
    from dlcli.keys import read_yaml
    from dlcli.store.runs import prepared_as

    recorded = prepared_as(read_yaml(TINY_CONFIG))  # as training recorded it, in both
    fake_run(runs_dir, "20260101-100000-a", summary=summary_with(0.3, 0.9), prepared_as=recorded)
    edited = fake_run(runs_dir, "20260101-110000-b", summary=summary_with(0.3, 0.9), prepared_as=recorded)
    (edited / "config.yaml").write_text(TINY_CONFIG.replace("units: 16", "units: 32"))  # edited since (fake_run's start: 2026)

    compared, shown = cli("compare", "--last", "2"), cli("show", "20260101-110000-b")

    note = ("run 20260101-110000-b: its config.yaml was edited after training started: the config shown is the edit, "
            "not the one it trained with")
    assert note in compared.stderr, compared.output  # it showed units 32 as what the run trained with
    assert note in " ".join(shown.stdout.split()), shown.output
    assert "edited" not in cli("show", "20260101-100000-a").stdout  # its file is as recorded (written after the start too)
    assert compared.stderr.count("was edited after training") == 1
    (edited / "config.yaml").write_text("a: &a [*a]\n")  # after the index read it: a document that holds itself
    again = cli("show", "20260101-110000-b")
    assert again.exit_code == 0 and "Traceback" not in again.output, again.output  # a recursion error


def test_a_sweep_id_is_said_to_be_a_sweep_not_read_as_the_prefix_of_its_first_trial(cli, runs_dir):
    fake_run(runs_dir, "20260101-100000-lr-trial-1", summary=summary_with(0.3, 0.9))  # started in the sweep's second
    (runs_dir / "sweeps" / "20260101-100000-lr").mkdir(parents=True)
    (runs_dir / "sweeps" / "20260101-100000-lr" / "plan.json").write_text("{}")

    for command in (("show", "20260101-100000-lr"), ("train", "--resume", "20260101-100000-lr")):
        result = cli(*command)
        assert result.exit_code == 2 and result.stderr.strip() == (
            f"error: '20260101-100000-lr' is a sweep, not a run: `dlcli compare --sweep 20260101-100000-lr --runs-dir "
            f"{runs_dir}` compares its trials, `dlcli sweep --resume 20260101-100000-lr --runs-dir {runs_dir}` continues "
            "it"), result.output
    assert cli("show", "20260101-100000-lr-trial").exit_code == 0  # a prefix of the run's own id still finds it


def test_show_a_crashed_run_suggests_resume_and_a_damaged_one_says_why(cli, runs_dir):
    fake_run(runs_dir, "20260101-110000-dead", status="running", pid=2**22 + 7)
    (runs_dir / "20260101-120000-norecord").mkdir()

    crashed = cli("show", "20260101-11")
    damaged = cli("show", "20260101-12")

    assert crashed.exit_code == 0 and "crashed" in crashed.stdout
    assert f"resume with: dlcli train --resume 20260101-110000-dead --runs-dir {runs_dir}" in crashed.stdout
    assert damaged.exit_code == 0 and "damaged" in damaged.stdout and "run.json is missing" in damaged.stdout


def test_show_a_trained_run(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)

    result = cli("show", "latest")

    assert result.exit_code == 0
    for fragment in ("completed", "dataset:", f"curves: {folder / 'curves.png'}", "model: ", "TensorBoard logs: "):
        assert fragment in result.stdout


def test_empty_runs_folder(cli):
    result = cli("runs")

    assert result.exit_code == 0 and "no runs in" in result.stderr


def test_readers_never_import_tensorflow_or_matplotlib_nor_pydantic_or_yaml_once_the_index_is_up_to_date(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "20260101-100000-a", summary=summary_with(0.3, 0.9))
    fake_run(runs, "20260101-110000-b", TINY_CONFIG.replace("units: 16", "units: 8"), summary_with(0.2, 0.8))
    code = f"""
import sys
from typer.testing import CliRunner
from dlcli.cli import app
def invoke(*commands):
    for args in commands:
        where = ["--runs-dir", {str(runs)!r}] if args[0] in ("runs", "compare", "show") else []
        result = CliRunner().invoke(app, [*args, *where])
        assert result.exit_code == 0, (args, result.output)
invoke(["--help"], ["runs"], ["show", "latest"], ["show", "20260101-100000-a", "--format", "json"])
print("yaml" in sys.modules, "dlcli.report.groups" in sys.modules)  # listing and showing runs: no YAML either
invoke(["runs", "--where", "optimizer.name=adam"], ["compare"], ["compare", "--format", "json"],
       ["compare", "20260101-100000-a", "20260101-110000-b"], ["datasets"])
print(*(module in sys.modules for module in ("tensorflow", "keras", "matplotlib", "pydantic")))
"""
    indexing = subprocess.run([sys.executable, "-m", "dlcli", "runs", "--runs-dir", str(runs)], capture_output=True)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert indexing.returncode == 0 and out.returncode == 0, out.stderr
    # pydantic: 0.07 s of import, paid only to validate the folders changed since the index read them
    assert out.stdout.split() == ["False"] * 6


def test_comparing_the_seeds_of_one_config_as_a_table_imports_no_scipy(tmp_path):
    runs = tmp_path / "runs"
    fake_run(runs, "20260101-100000-a", summary=summary_with(0.3, 0.9))
    fake_run(runs, "20260101-110000-b", TINY_CONFIG.replace("seed: 0", "seed: 1"), summary_with(0.2, 0.8))
    code = f"""
import sys
from typer.testing import CliRunner
from dlcli.cli import app
result = CliRunner().invoke(app, ["compare", "--runs-dir", {str(runs)!r}])
assert result.exit_code == 0, result.output
print("scipy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]  # a third of a second of import, for spreads the table does not show


# --- check ---------------------------------------------------------------------------

def test_check_shows_data_and_layers_without_training(cli, tiny_config, runs_dir):
    result = cli("check", str(tiny_config), runs=False)

    assert result.exit_code == 0, result.output
    assert "input shape (8, 8, 1)" in result.stdout and "1,210 parameters" in result.stdout
    assert "Dense" in result.stdout and "(None, 16)" in result.stdout
    assert "the config is valid" in result.stdout
    assert run_folders(runs_dir) == []


def test_check_reports_config_errors_like_train(cli, write_config):
    result = cli("check", str(write_config(TINY_CONFIG.replace("units: 16", "unit: 16"))), runs=False)

    assert result.exit_code == 2
    assert "unexpected argument 'unit'; did you mean 'units'?" in result.stderr


def test_each_run_keeps_its_colour_in_every_panel_of_a_comparison_plot(monkeypatch, tmp_path):
    from dlcli.curves import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda figure, path, title: drawn.append(figure))
    loss_only = [{"epoch": e, "val_loss": 1 / e} for e in (1, 2, 3)]
    both = [{"epoch": e, "val_loss": 1 / e, "val_accuracy": 0.5 + e / 10} for e in (1, 2, 3)]

    plots.plot_comparison([("regression", loss_only), ("first", both), ("second", both)], tmp_path / "p.png", "t")

    loss_panel, accuracy_panel = drawn[0].axes
    colours = [{line.get_label(): line.get_color() for line in axis.get_lines()} for axis in (loss_panel, accuracy_panel)]
    assert set(colours[1]) == {"first", "second"}
    assert all(colours[1][label] == colours[0][label] for label in colours[1])


def test_show_runs_and_compare_mark_a_test_score_measured_on_data_that_changed_since_training(cli, runs_dir):
    folder = fake_run(runs_dir, "20260101-100000-changed", TINY_CONFIG, summary_with(0.4, 0.9))
    evaluation = {"schema": 1, "run": folder.name, "split": "test", "metrics": {"accuracy": 0.5},
                  "same_data_as_training": False}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))

    same = fake_run(runs_dir, "20260101-110000-same", TINY_CONFIG, summary_with(0.4, 0.9))
    (same / "evaluation.json").write_text(json.dumps({**evaluation, "run": same.name, "same_data_as_training": True}))

    shown = cli("show", folder.name)
    listed = cli("runs")
    compared = cli("compare", folder.name, same.name, "--format", "json")

    assert shown.exit_code == 0, shown.output
    assert "test: accuracy 0.5 (on a rebuilt split that differs from the one training saw" in " ".join(shown.stdout.split())
    assert " ".join(listed.stdout.split()).count("(data changed)") == 1, listed.stdout
    # not one column with the other run's score on other data: each its own, neither the better
    by_run = {row["run"]: row for row in json.loads(compared.stdout)["runs"]}
    assert by_run[folder.name]["test (data changed) accuracy"] == 0.5 and by_run[folder.name]["test accuracy"] is None
    assert by_run[same.name]["test accuracy"] == 0.5
    # a program reading `runs` is told too: JSON and CSV say which test score is of other data
    as_json = {row["id"]: row for row in json.loads(cli("runs", "--format", "json").stdout)}
    assert as_json[folder.name]["test_data_changed"] is True and as_json[same.name]["test_data_changed"] is False
    as_csv = {row["id"]: row for row in csv.DictReader(io.StringIO(cli("runs", "--format", "csv").stdout))}
    assert as_csv[folder.name]["test_data_changed"] == "True" and as_csv[same.name]["test.accuracy"] == "0.5"
    # ranked after the scores of the same data, however good, and selected by it
    (folder / "evaluation.json").write_text(json.dumps({**evaluation, "metrics": {"accuracy": 0.99}}))
    ranked = [row["id"] for row in json.loads(cli("runs", "--sort", "test.accuracy", "--format", "json").stdout)]
    assert ranked == [same.name, folder.name]
    selected = json.loads(cli("runs", "--where", "test_data_changed=true", "--format", "json").stdout)
    assert [row["id"] for row in selected] == [folder.name]
