"""The runs folder's index: reconciled with the folders, rebuilt when lost, shared by many writers,
and the selections and output formats the reading commands build on it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import fake_run, read_json, summary_with
from dlcli.store.documents import load_run
from dlcli.store.index import RunIndex
from dlcli.store.runs import INDEX_FILE, RunFolder


def indexed_run(runs_dir, run_id, optimizer="rmsprop", units=64, val_accuracy=0.9, status="completed", test=None, **info):
    """A run's files as dlcli writes them, without training: a config of `optimizer` and `units`,
    a summary of `val_accuracy`, an evaluation of `test` accuracy."""
    config = {"name": run_id[16:], "seed": 0, "dataset": {"name": "digits"},
              "model": {"layers": ["Flatten", {"Dense": {"units": units, "activation": "relu"}}]},
              "optimizer": optimizer, "loss": "sparse_categorical_crossentropy", "training": {"epochs": 3}}
    summary = summary_with(1.1 - val_accuracy, val_accuracy, 3) if status != "running" else None
    folder = fake_run(runs_dir, run_id, yaml.safe_dump(config), summary, status, **info)
    if test is not None:
        (folder / "evaluation.json").write_text(json.dumps(
            {"schema": 1, "run": run_id, "split": "test", "metrics": {"accuracy": test}}))
    return folder


@pytest.fixture
def four_runs(runs_dir):
    indexed_run(runs_dir, "20260101-100000-a", "rmsprop", 64, 0.91)
    indexed_run(runs_dir, "20260101-110000-b", {"name": "adam", "learning_rate": 0.001}, 256, 0.96, test=0.95)
    indexed_run(runs_dir, "20260101-120000-c", "adam", 64, 0.94)
    indexed_run(runs_dir, "20260101-130000-d", {"name": "sgd", "momentum": 0.9}, 256, 0.97, test=0.96)
    return runs_dir


def listed(cli, *args):
    result = cli("runs", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return [row["id"][16:] for row in json.loads(result.stdout)]


@pytest.mark.parametrize(("where", "expected"), [
    (["optimizer.name=adam"], ["b", "c"]),  # `optimizer: adam` and `{name: adam, ...}` alike
    (["optimizer=adam"], ["b", "c"]),  # and the reverse: the name of an optimizer written with its arguments
    (["optimizer.name=adam", "best.val_accuracy>0.95"], ["b"]),
    (["model.layers.1.Dense.units=256"], ["b", "d"]),
    (["model.layers[1].Dense.units!=256"], ["a", "c"]),  # the bracket spelling older dlcli printed, too
    (["best.val_accuracy<0.92"], ["a"]),
    (["test.accuracy>=0.95"], ["b", "d"]),
    (["optimizer.momentum=0.9"], ["d"]),
    (["optimizer.name=adamw"], []),
])
def test_where_selects_by_config_keys_and_metrics(cli, four_runs, where, expected):
    assert listed(cli, *(arg for condition in where for arg in ("--where", condition))) == expected


def test_where_reads_a_number_as_the_config_does_in_every_spelling(cli, runs_dir):
    """`1e-4` is a number to the config reader, to `--set`, to `--where` and to the index alike."""
    indexed_run(runs_dir, "20260101-100000-small", {"name": "adam", "learning_rate": 0.0001})
    literal = indexed_run(runs_dir, "20260101-110000-literal", "adam")
    config = (literal / "config.yaml").read_text().replace("optimizer: adam", "optimizer: {name: adam, learning_rate: 1e-4}")
    (literal / "config.yaml").write_text(config)  # as a person writes it
    indexed_run(runs_dir, "20260101-120000-large", {"name": "adam", "learning_rate": 0.01})

    assert listed(cli, "--where", "optimizer.learning_rate=1e-4") == ["small", "literal"]
    assert listed(cli, "--where", "optimizer.learning_rate<1e-3") == ["small", "literal"]
    assert listed(cli, "--where", "optimizer.learning_rate>=1.0e-2") == ["large"]


def test_where_equals_a_fraction_as_the_table_shows_it(cli, runs_dir):
    indexed_run(runs_dir, "20260101-100000-shown", val_accuracy=0.93249871)  # the table shows 0.9325
    indexed_run(runs_dir, "20260101-110000-next", val_accuracy=0.9326)

    assert "accuracy 0.9325" in cli("runs").stdout
    assert listed(cli, "--where", "best.val_accuracy=0.9325") == ["shown"]
    assert listed(cli, "--where", "best.val_accuracy!=0.9325") == ["next"]
    assert listed(cli, "--where", "best.val_accuracy=0.93249871") == ["shown"]  # more digits than shown: exactly
    assert listed(cli, "--where", "best.val_accuracy=0.93") == []  # 0.93 is not what either shows
    assert listed(cli, "--where", "best.val_accuracy=0.93260") == ["next"]
    indexed_run(runs_dir, "20260101-120000-perfect", val_accuracy=0.99996)  # shown as 1
    indexed_run(runs_dir, "20260101-130000-nearly", val_accuracy=0.9996)  # shown as 0.9996
    assert listed(cli, "--where", "best.val_accuracy=1.0") == ["perfect"]


def test_a_short_form_is_taken_for_the_one_name_it_begins():
    from dlcli.keys import did_you_mean

    keys = ["best.val_mae", "best.val_accuracy", "best.val_loss"]
    assert did_you_mean("best.val_acc", keys) == "; did you mean 'best.val_accuracy'?"  # difflib alone: best.val_mae
    assert did_you_mean("best.val_", keys) == "; did you mean 'best.val_mae'?"  # begins several: the nearest


def test_sort_is_best_first_by_the_metrics_direction(cli, four_runs):
    assert listed(cli, "--sort", "val_accuracy") == ["d", "b", "c", "a"]
    assert listed(cli, "--sort", "best.val_loss") == ["d", "b", "c", "a"]
    assert listed(cli, "--sort", "test.accuracy") == ["d", "b", "a", "c"]  # runs without it last, by id
    assert listed(cli, "--sort", "val_accuracy", "--last", "2") == ["d", "c"]  # the 2 latest ranked, not the 2 best
    assert "2 more; --all lists every one" in cli("runs", "--sort", "val_accuracy", "--last", "2").stderr
    assert listed(cli, "--sort", "val_accuracy", "--last", "2", "--where", "model.layers.1.Dense.units=64") == ["c", "a"]
    assert listed(cli, "--sort", "val_accuracy", "--last", "2", "--status", "completed") == ["d", "c"]
    result = cli("runs", "--sort", "val_f1")
    assert result.exit_code == 2 and "--sort val_f1 (read as best.val_f1): no run has it" in result.stderr
    misspelled = cli("runs", "--sort", "val_acuracy")
    assert "--sort val_acuracy (read as best.val_acuracy): no run has it; did you mean 'best.val_accuracy'?" in \
        misspelled.stderr
    text = cli("runs", "--sort", "optimizer.name")  # it had listed the runs unsorted
    assert text.exit_code == 2 and "--sort optimizer.name: its values are text, not numbers" in text.stderr


@pytest.mark.parametrize("condition, says", [
    ("optimizer.name", "expected a KEY, an operator (=, !=, >, <, >= or <=) and a VALUE"),
    ("best.val_accuracy>high", "compares numbers; 'high' is not one"),
    ("best.val_accuracy>inf", "compares numbers; 'inf' is not a finite one"),  # it said 'inf' was no number
    ("=adam", "expected a KEY, an operator"),
    ("best.val_accuracy=>0.95", "'=>' is no operator"),
    ("optimiser.name=adam", "no run has optimiser.name; did you mean 'optimizer.name'?"),  # not "no runs match"
    ("status=completed", "a run's status is --status"),
])
def test_a_malformed_where_is_one_line(cli, four_runs, condition, says):
    for command in ("runs", "compare"):
        result = cli(command, "--where", condition)

        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith(f"error: --where {condition}:") and says in result.stderr, result.stderr


def test_where_accepts_a_double_equals_and_any_key_on_an_empty_runs_folder(cli, four_runs, tmp_path):
    assert listed(cli, "--where", "optimizer.name==adam") == ["b", "c"]
    elsewhere = tmp_path / "elsewhere"  # a folder of other things, named by mistake: left as it was
    elsewhere.mkdir()
    assert cli("runs", "--where", "optimiser.name=adam", "--runs-dir", str(elsewhere), runs=False).exit_code == 0
    assert list(elsewhere.iterdir()) == []
    malformed = cli("runs", "--where", "a=>1", "--runs-dir", str(elsewhere), runs=False)
    assert malformed.exit_code == 2 and "'=>' is no operator" in malformed.stderr
    fresh = tmp_path / "fresh"
    indexed_run(fresh, "20260101-100000-a", "adam", 64, 0.91)  # trained, never evaluated
    unevaluated = cli("runs", "--where", "test.accuracy>0.9", "--runs-dir", str(fresh), runs=False)
    assert unevaluated.exit_code == 2 and "no run has test.accuracy yet: `dlcli evaluate RUN`" in unevaluated.stderr


def test_runs_shows_the_latest_50_and_says_how_many_more(cli, runs_dir):
    for number in range(55):
        indexed_run(runs_dir, f"20260101-{10 + number // 60:02d}{number % 60:02d}00-r{number}")

    shown = cli("runs")
    assert "50 runs" in shown.stdout and "5 more; --all lists every one" in shown.stderr
    assert len(listed(cli)) == 50 and listed(cli)[-1] == "r54" and listed(cli)[0] == "r5"
    assert len(listed(cli, "--all")) == 55 and listed(cli, "--last", "3") == ["r52", "r53", "r54"]


def test_a_folder_added_changed_or_removed_by_hand_is_seen_by_the_next_command(cli, four_runs):
    assert listed(cli) == ["a", "b", "c", "d"]
    shutil.copytree(four_runs / "20260101-130000-d", four_runs / "20260101-140000-e")
    shutil.rmtree(four_runs / "20260101-100000-a")
    info = read_json(four_runs / "20260101-110000-b" / "run.json")
    (four_runs / "20260101-110000-b" / "run.json").write_text(json.dumps({**info, "status": "failed"}))  # in place

    assert listed(cli) == ["b", "c", "d", "e"]
    assert listed(cli, "--status", "failed") == ["b"]


def test_show_and_compare_of_named_runs_read_a_changed_folder_again(cli, four_runs):
    import os

    assert listed(cli) == ["a", "b", "c", "d"]  # every run indexed as it was
    run_json = four_runs / "20260101-110000-b" / "run.json"
    info = read_json(run_json)
    run_json.write_text(json.dumps({**info, "status": "failed", "error": "out of memory"}))
    later = run_json.stat().st_mtime_ns + 10**9  # an edit a second later, whatever the clock's resolution
    os.utime(run_json, ns=(later, later))
    (four_runs / "20260101-120000-c" / "run.json").write_text("{")  # broken by hand

    shown = cli("show", "20260101-110000-b", "--format", "json")
    compared = cli("compare", "20260101-110000-b", "20260101-120000-c", "--format", "json")

    assert shown.exit_code == 0 and json.loads(shown.stdout)["run"]["status"] == "failed", shown.output
    assert json.loads(shown.stdout)["info"]["error"] == "out of memory"
    assert compared.exit_code == 0, compared.output
    assert listed(cli, "--status", "damaged") == ["c"]  # and the index now knows both


def test_an_index_locked_by_another_process_is_answered_from_a_copy_reading_only_what_changed(
    cli, four_runs, monkeypatch,
):
    import sqlite3
    import time

    from dlcli.store import documents

    assert listed(cli) == ["a", "b", "c", "d"]  # the index exists
    shutil.copytree(four_runs / "20260101-130000-d", four_runs / "20260101-140000-e")  # a change to reconcile
    read = []
    monkeypatch.setattr(documents, "load_run", lambda folder: read.append(folder.id) or load_run(folder))
    writer = sqlite3.connect(four_runs / INDEX_FILE, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process's long write (a rebuild) holds the lock
    try:
        started = time.monotonic()
        assert listed(cli) == ["a", "b", "c", "d", "e"]
        assert read == ["20260101-140000-e"]  # the index as committed, and the one folder new since
        assert listed(cli, "--where", "optimizer.name=adam") == ["b", "c"]
        assert time.monotonic() - started < 10  # not the 60 s a status update would wait
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert listed(cli) == ["a", "b", "c", "d", "e"]


def test_a_run_shown_by_its_path_elsewhere_is_read_from_its_folder_and_no_index_is_made_there(cli, four_runs, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(four_runs / "20260101-110000-b", elsewhere / "20260101-110000-b")

    shown = cli("show", str(elsewhere / "20260101-110000-b"), "--format", "json")

    assert shown.exit_code == 0 and json.loads(shown.stdout)["run"]["name"] == "b", shown.output
    assert sorted(path.name for path in elsewhere.iterdir()) == ["20260101-110000-b"]


def test_a_running_run_nobody_owns_is_crashed_in_the_index_too(cli, runs_dir):
    folder = indexed_run(runs_dir, "20260101-100000-gone", status="running")  # this process's pid and host
    (folder / "owner.lock").write_text("")  # but nobody holds its lock
    with RunFolder(indexed_run(runs_dir, "20260101-110000-alive", status="running")).owned():
        assert listed(cli, "--status", "crashed") == ["gone"] and listed(cli, "--status", "running") == ["alive"]


@pytest.mark.parametrize("loss", ["deleted", "garbage", "emptied", "another version", "a table dropped",
                                  "records emptied", "records not JSON"])
def test_a_lost_or_damaged_index_is_rebuilt_with_the_same_answers(cli, four_runs, loss):
    def answers():
        return [cli("runs", "--format", "json").stdout, listed(cli, "--where", "optimizer.name=adam"),
                cli("show", "20260101-110000-b", "--format", "json").stdout]

    before = answers()
    index = four_runs / INDEX_FILE
    if loss == "deleted":
        index.unlink()
    elif loss == "garbage":
        index.write_bytes(b"not a database at all" * 100)
    elif loss == "emptied":
        index.write_bytes(b"")
    else:
        import sqlite3

        edit = {"another version": "PRAGMA user_version=99", "a table dropped": "DROP TABLE fields",
                "records emptied": "UPDATE runs SET record = '{}'", "records not JSON": "UPDATE runs SET record = 'x'"}
        connection = sqlite3.connect(index, isolation_level=None)
        connection.execute(edit[loss])
        connection.close()  # its write-ahead log put into the file
    for suffix in ("-wal", "-shm"):
        (four_runs / f"{INDEX_FILE}{suffix}").unlink(missing_ok=True)

    assert answers() == before


WRITER = """
import sys
from pathlib import Path
from dlcli.store.index import RunIndex
from dlcli.store.runs import RunFolder
runs, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
index = RunIndex(runs)
for number in range(first, first + count):
    for _ in range(3):  # each row written again and again, by one writer among many
        index.update(RunFolder(runs / f"20260101-1000{number:02d}-w{number}"))
"""


def test_many_writers_at_once_lose_no_update(runs_dir, tmp_path):
    for number in range(40):
        indexed_run(runs_dir, f"20260101-1000{number:02d}-w{number}", val_accuracy=0.5 + number / 100)
    RunIndex(runs_dir).reconcile()  # made before the writers start: each then only updates
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for number in range(40):  # every row out of date, so that a lost update would show
        info = read_json(runs_dir / f"20260101-1000{number:02d}-w{number}" / "run.json")
        (runs_dir / f"20260101-1000{number:02d}-w{number}" / "run.json").write_text(json.dumps({**info, "status": "failed"}))

    writers = [subprocess.Popen([sys.executable, str(script), str(runs_dir), str(first), "10"], stderr=subprocess.PIPE,
                                text=True) for first in range(0, 40, 10)]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]

    assert [writer.returncode for writer in writers] == [0] * 4, errors
    import sqlite3

    with sqlite3.connect(runs_dir / INDEX_FILE) as connection:  # as written, without reconciling
        statuses = dict(connection.execute("SELECT id, status FROM runs"))
    assert len(statuses) == 40 and set(statuses.values()) == {"failed"}


def test_every_reading_command_prints_json_and_csv_data_only(cli, four_runs):
    for command in (["runs"], ["show", "20260101-110000-b"], ["compare", "--last", "2"]):
        as_json = cli(*command, "--format", "json")
        as_csv = cli(*command, "--format", "csv")
        assert as_json.exit_code == as_csv.exit_code == 0, (command, as_json.output, as_csv.output)
        data = json.loads(as_json.stdout)
        rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
        assert data and rows, command
    shown = json.loads(cli("show", "20260101-110000-b", "--format", "json").stdout)
    assert shown["run"]["best.val_accuracy"] == 0.96 and shown["run"]["test.accuracy"] == 0.95
    (row,) = csv.DictReader(io.StringIO(cli("show", "20260101-110000-b", "--format", "csv").stdout))
    assert row["status"] == "completed" and float(row["best.val_accuracy"]) == 0.96


def test_compare_takes_the_same_selection(cli, four_runs):
    compared = json.loads(cli("compare", "--where", "optimizer.name=adam", "--format", "json").stdout)
    assert [row["run"][16:] for row in compared["runs"]] == ["b", "c"]
    compared = json.loads(cli("compare", "--all", "--where", "best.val_accuracy>0.93", "--sort", "val_accuracy",
                              "--format", "json").stdout)
    assert [row["run"][16:] for row in compared["runs"]] == ["d", "b", "c"]
    result = cli("compare", "--where", "optimizer.name=nadam")
    assert result.exit_code == 2 and "no runs to compare" in result.stderr
    assert "that match --where optimizer.name=nadam" in result.stderr
    for command in ("runs", "compare"):
        both = cli(command, "--last", "2", "--all")
        assert both.exit_code == 2 and "--last 2 and --all: give one of them" in both.stderr


def test_all_streams_every_run_in_order(cli, runs_dir):
    for number in range(1203):
        indexed_run(runs_dir, f"20260101-{number // 3600:02d}{number // 60 % 60:02d}{number % 60:02d}-r{number}")

    assert listed(cli, "--all") == [f"r{number}" for number in range(1203)]  # read 500 at a time
    table = cli("runs", "--all")
    assert [line for line in table.stdout.splitlines() if line.strip().endswith(" runs")] == [
        "500 runs", "500 runs", "203 runs"]
    assert len(list(csv.DictReader(io.StringIO(cli("runs", "--all", "--format", "csv").stdout)))) == 1203


def test_a_csv_stream_has_the_metric_columns_of_the_runs_it_lists(cli, four_runs):
    def header_and_ids(*args):
        rows = list(csv.DictReader(io.StringIO(cli("runs", *args, "--format", "csv").stdout)))
        return list(rows[0]), [row["id"][16:] for row in rows]

    columns, ids = header_and_ids("--all")
    assert ids == ["a", "b", "c", "d"]
    assert {"best.val_accuracy", "final.val_accuracy", "test.accuracy"} <= set(columns)
    assert columns.index("best.val_accuracy") < columns.index("final.val_accuracy") < columns.index("test.accuracy")
    columns, ids = header_and_ids("--where", "optimizer.name=adam", "--where", "best.val_accuracy<0.95")
    assert ids == ["c"] and "best.val_accuracy" in columns and "test.accuracy" not in columns  # only b and d have one


def test_a_sweeps_trials_are_found_through_the_index(runs_dir):
    from dlcli.sweep.study import sweep_records

    indexed_run(runs_dir, "20260101-100000-alone")
    for trial in (1, 2, 3):
        indexed_run(runs_dir, f"20260101-11000{trial}-s-t{trial}", sweep={"id": "20260101-105959-s", "trial": trial})
    indexed_run(runs_dir, "20260101-120000-other-t1", sweep={"id": "20260101-115959-other", "trial": 1})

    assert [record.id[16:] for record in sweep_records(runs_dir, "20260101-105959-s")] == ["s-t1", "s-t2", "s-t3"]
    (runs_dir / INDEX_FILE).unlink()  # the folders still tell
    assert [record.info["sweep"]["trial"] for record in sweep_records(runs_dir, "20260101-105959-s")] == [1, 2, 3]
    assert sweep_records(runs_dir, "20260101-000000-none") == []


@pytest.mark.parametrize("config, damage", [
    ("model: [unclosed\n", "config.yaml:1: invalid YAML: a '[' list opened here is never closed"),
    ("", "config.yaml is empty"),
    ("- a list\n", "config.yaml is not a mapping of keys"),
    ("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
     "config.yaml expands to more than 10,000 values (YAML aliases?): no config dlcli wrote"),
    ("a: &a [1, *a]\n", "config.yaml expands to more than 10,000 values"),  # an alias that holds itself
])
def test_a_run_whose_config_yaml_is_damaged_is_a_damaged_run(cli, runs_dir, config, damage):
    fake_run(runs_dir, "20260101-000000-torn", summary=summary_with(0.5, 0.8))
    (runs_dir / "20260101-000000-torn" / "config.yaml").write_text(config)

    (row,) = json.loads(cli("runs", "--format", "json").stdout)
    shown = cli("show", "torn")

    assert row["status"] == "damaged" and row["damage"].startswith(damage), row["damage"]
    assert "damaged" in shown.stdout
    assert load_run(RunFolder(runs_dir / "20260101-000000-torn")).damage.startswith(damage)  # read without the index


def test_a_selection_that_matches_no_run_points_at_the_whole_list(cli, four_runs):
    result = cli("runs", "--where", "optimizer.name=nadam")

    assert result.exit_code == 0 and "no runs that match in" in result.stderr
    assert "`dlcli runs` lists them all" in result.stderr and "dlcli train" not in result.stderr


def test_an_output_in_the_runs_folder_is_refused_only_where_it_would_pass_for_a_run_or_replace_the_folder_s_own(runs_dir):
    from dlcli.errors import DlcliError
    from dlcli.store.runs import refuse_runs_folder_output

    runs_dir.mkdir()
    refuse_runs_folder_output(runs_dir / "20260102-100000-cmp.png", runs_dir, "--plot")  # a file is listed as no run
    for path, folder in ((runs_dir / "20260102-100000-cmp", True), (runs_dir / "20260102-100000-x" / "a.png", False),
                         (runs_dir / "index.sqlite-wal", False), (runs_dir / "sweeps" / "s" / "study.journal", False)):
        with pytest.raises(DlcliError):
            refuse_runs_folder_output(path, runs_dir, "--output", folder=folder)
