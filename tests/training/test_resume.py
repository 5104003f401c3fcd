"""Runs killed with SIGKILL anywhere resume to the uninterrupted run's numbers, value for value.

Each killed run is a real `dlcli train` process that SIGKILLs itself at a kill point
(dlcli.faults): between the writes of an epoch's commit, after a stage, at the end of the
run. The killed processes start together (one TensorFlow import each, the cores shared),
then each is resumed in-process and its history.csv compared with an uninterrupted run's.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import TINY_CONFIG, read_json, run_folders
from dlcli.cli import app
from dlcli.store.documents import load_run
from dlcli.store.runs import RunFolder, effective_status
from dlcli.training.callbacks import REFUSED_CALLBACKS
from dlcli.training.checkpoint import CALLBACK_STATE, STATELESS_CALLBACKS


def photos(name, folder, model, training):
    """A config on digits exported as 16x16 PNG files, 3 batches an epoch of the few kept (so that a
    resume that mixed up steps and epochs shows); `model` and `training` are YAML blocks."""
    return (
        f"name: {name}\nseed: 0\n"
        f"dataset: {{name: image_directory, path: {folder}, image_size: [16, 16], validation_split: 0.2}}\n"
        f"model:\n{model}\n"
        "optimizer: {name: adam, learning_rate: 0.01}\nloss: sparse_categorical_crossentropy\nmetrics: [accuracy]\n"
        f"training:\n  batch_size: 32\n{training}\n"
    )


# The base the fine-tune and precompute runs take from an earlier run
BASE_MODEL = """\
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, activation: relu, name: conv_a}
    - MaxPooling2D: {name: pool_a}
    - Conv2D: {filters: 4, kernel_size: 3, activation: relu, name: conv_b}
    - Flatten: {name: features}
    - Dense: {units: 10, activation: softmax}"""

RANDOM_MODEL = """\
  augmentation:
    - RandomFlip: {mode: horizontal}
    - RandomRotation: {factor: 0.1}
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
    - MaxPooling2D
    - Flatten
    - Dropout: {rate: 0.3}
    - Dense: {units: 10, activation: softmax}"""
# min_delta 1.0: the loss never improves enough, so both callbacks act on a known schedule whatever
# the numbers: the rate halves after epochs 3 and 5, and training stops after epoch 6 of 8.
# Killed after epoch 4, a resume that lost their counters would halve at 6 and never stop.
CALLBACKS = """\
  epochs: 8
  reduce_lr_on_plateau: {monitor: loss, factor: 0.5, patience: 2, min_delta: 1.0}
  early_stopping: {monitor: loss, patience: 5, min_delta: 1.0, restore_best_weights: true}"""


def on_a_base(base, extra=""):
    return f"  base: {{run: {base}, until: features{extra}}}\n  layers:\n    - Dropout: {{rate: 0.3}}\n" \
        "    - Dense: {units: 10, activation: softmax}"


FINE_TUNE = "  epochs: 3\n  fine_tune: {unfreeze: 2, epochs: 2, learning_rate: 0.001}"

TINY_WITH_DROPOUT = TINY_CONFIG.replace("    - Dense: {units: 10", "    - Dropout: {rate: 0.2}\n    - Dense: {units: 10")

# name -> (config, its --set overrides, kill point:pass). Commits count from 1 over the whole
# run; each stage ends with one more commit (the stage's end) after its epochs'.
KILLS = {
    "random state and callbacks": ("exact", [], "commit.state:4"),
    "fine-tune in phase 1": ("fine_tune", [], "commit.weights:2"),
    "fine-tune in phase 2": ("fine_tune", [], "commit.history:5"),
    "k-fold in its second fold": ("tiny", ["training.kfold=2", "training.epochs=3"], "commit.state:6"),
    "precompute": ("precompute", [], "commit.history:2"),
    "best model saved, not committed": ("tiny", ["dataset.validation_split=0"], "commit.model:2"),
    "best model moved, history not written": ("tiny", ["dataset.validation_split=0"], "commit.model_moved:2"),
    "between the last epoch and the stage's end": ("tiny", [], "stage.finished"),
    "after the summary": ("tiny", [], "end.summary"),
}


def _sets(overrides):
    return [part for override in overrides for part in ("--set", override)]


@pytest.fixture(scope="module")
def killed(tmp_path_factory, few_digits_folder):
    """name -> (config path, overrides, the killed run's folder, its process's stderr)."""
    root = tmp_path_factory.mktemp("resume")
    base_config = root / "base.yaml"
    base_config.write_text(photos("base", few_digits_folder, BASE_MODEL, "  epochs: 1"))
    base_runs = root / "base-runs"
    result = CliRunner().invoke(app, ["train", str(base_config), "--runs-dir", str(base_runs)])
    assert result.exit_code == 0, result.output
    (base,) = run_folders(base_runs)
    configs = {
        "exact": photos("exact", few_digits_folder, RANDOM_MODEL, CALLBACKS),
        "fine_tune": photos("fine-tune", few_digits_folder, on_a_base(base), FINE_TUNE),
        "precompute": photos("precompute", few_digits_folder, on_a_base(base, ", precompute: true"), "  epochs: 3"),
        "tiny": TINY_WITH_DROPOUT,
    }
    paths = {}
    for name, text in configs.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(textwrap.dedent(text))
    processes = {}
    for number, (name, (config, overrides, point)) in enumerate(KILLS.items()):
        runs = root / f"killed-{number}"
        command = [sys.executable, "-m", "dlcli", "train", str(paths[config]), *_sets(overrides), "--runs-dir", str(runs)]
        env = {**os.environ, "DLCLI_KILL_AT": point}
        processes[name] = (runs, subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env))
    outcome = {}
    for name, (runs, process) in processes.items():
        _, stderr = process.communicate(timeout=300)
        config, overrides, _ = KILLS[name]
        assert process.returncode == -signal.SIGKILL, f"{name}: not killed at {KILLS[name][2]}: {stderr[-3000:]}"
        (folder,) = run_folders(runs)
        shutil.copytree(folder, root / "as-killed" / name / folder.name)  # for the tests that damage one
        outcome[name] = (paths[config], overrides, folder)
    return outcome


def history(folder):
    """history.csv's rows as written, less the seconds each epoch took."""
    with open(folder / "history.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


_uninterrupted: dict[tuple, Path] = {}


def uninterrupted(config, overrides, runs):
    """An uninterrupted run of the config, trained once per config and overrides in this module."""
    key = (str(config), tuple(overrides))
    if key not in _uninterrupted:
        result = CliRunner().invoke(app, ["train", str(config), *_sets(overrides), "--runs-dir", str(runs)])
        assert result.exit_code == 0, result.output
        _uninterrupted[key] = run_folders(runs)[-1]
    return _uninterrupted[key]


@pytest.mark.parametrize("name", KILLS)
@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_runs_numbers(killed, name, tmp_path):
    config, overrides, folder = killed[name]
    assert effective_status(read_json(folder / "run.json")) == "crashed"  # as the kill left it

    resumed = CliRunner().invoke(app, ["train", "--resume", str(folder)])

    assert resumed.exit_code == 0, resumed.output
    straight = uninterrupted(config, overrides, tmp_path / "straight")
    assert history(folder) == history(straight)
    if name == "random state and callbacks":  # the check means something only if they acted
        rates = [float(row["learning_rate"]) for row in history(straight)]
        assert rates == pytest.approx([0.01] * 3 + [0.005] * 2 + [0.0025])
    info = read_json(folder / "run.json")
    assert info["status"] == "completed" and len(info["resumes"]) == 1
    assert read_json(folder / "summary.json")["best_epoch"] == read_json(straight / "summary.json")["best_epoch"]
    for model_file in sorted(straight.glob("model*.keras")):
        expected = keras.saving.load_model(model_file).get_weights()
        got = keras.saving.load_model(folder / model_file.name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(expected, got)), model_file.name
    assert not (folder / "checkpoint").exists()
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")]  # no temporary files



def test_every_callback_a_config_may_name_has_its_state_saved_or_keeps_none():
    allowed = {
        name for name, cls in vars(keras.callbacks).items()
        if isinstance(cls, type) and issubclass(cls, keras.callbacks.Callback)
        and cls is not keras.callbacks.Callback and name not in REFUSED_CALLBACKS
    }
    assert allowed == set(CALLBACK_STATE) | STATELESS_CALLBACKS


def interrupted_after_first_epoch(cli, config, monkeypatch):
    """A run stopped (as by Ctrl-C) once its first epoch is committed; its folder."""
    from dlcli.training.callbacks import EpochCommit

    commit = EpochCommit.on_epoch_end

    def stop_after_first(self, epoch, logs=None):
        commit(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(EpochCommit, "on_epoch_end", stop_after_first)
    assert cli("train", str(config), "--set", "training.epochs=3").exit_code == 130
    monkeypatch.setattr(EpochCommit, "on_epoch_end", commit)
    return cli


def test_an_older_dlcli_checkpoint_resumes_with_a_note(cli, tiny_config, runs_dir, monkeypatch):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    checkpoint = folder / "checkpoint"
    # as dlcli before checkpoint schema 1 left it: {epoch} beside last.weights.h5, no schema in run.json
    (checkpoint / "weights-1.weights.h5").rename(checkpoint / "last.weights.h5")
    (checkpoint / "state.json").write_text('{"epoch": 1}')
    info = read_json(folder / "run.json")
    del info["schema"]
    (folder / "run.json").write_text(json.dumps(info))
    # what a kill during an atomic write leaves: the next owner removes it
    leftovers = [folder / ".model.99999.tmp.keras", folder / ".history.csv.x1y2.tmp", checkpoint / ".state.json.a.tmp"]
    for path in leftovers:
        path.write_text("half")

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 0, resumed.output
    assert "an older dlcli saved this checkpoint without the random state" in resumed.output
    assert [row["epoch"] for row in history(folder)] == ["1", "2", "3"]
    assert read_json(folder / "run.json")["schema"] == 1 and read_json(folder / "summary.json")["schema"] == 1
    assert not any(path.exists() for path in leftovers)


def test_recorded_epochs_without_a_checkpoint_are_not_retrained_silently(cli, tiny_config, runs_dir, monkeypatch):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    shutil.rmtree(folder / "checkpoint")
    before = (folder / "history.csv").read_text()

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 2
    assert f"run {folder.name} recorded 1 epoch but has no checkpoint to continue them from" in resumed.stderr
    assert (folder / "history.csv").read_text() == before
    assert read_json(folder / "run.json")["status"] == "interrupted"


@pytest.mark.parametrize("edit", [("units: 16", "units: 32"), ("validation_split: 0.2", "validation_split: 0.5"),
                                  ("seed: 0", "seed: 7")])
def test_a_run_whose_config_was_edited_is_not_resumed_under_other_settings(cli, tiny_config, runs_dir, monkeypatch,
                                                                           edit):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    config = folder / "config.yaml"
    assert edit[0] in config.read_text()
    config.write_text(config.read_text().replace(*edit))

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 2, resumed.output
    assert f"run {folder.name}: its config.yaml was edited after training started" in resumed.stderr
    assert "train the edited config as a new run" in resumed.stderr
    assert read_json(folder / "run.json")["status"] == "interrupted"
    assert [row["epoch"] for row in history(folder)] == ["1"]


def test_a_checkpoint_cut_short_is_refused_before_the_run_is_touched(cli, tiny_config, runs_dir, monkeypatch):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    (weights,) = (folder / "checkpoint").glob("weights-*.weights.h5")
    weights.write_bytes(weights.read_bytes()[:1000])

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 2, resumed.output
    assert f"run {folder.name}: checkpoint/{weights.name} is damaged (Unable to" in resumed.stderr
    assert "train its config.yaml again" in resumed.stderr and "--resume" not in resumed.stderr
    assert read_json(folder / "run.json")["status"] == "interrupted"


def test_a_best_model_not_yet_moved_into_place_and_cut_short_is_refused_before_it_is_moved(
        cli, tiny_config, runs_dir, monkeypatch):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    # as a kill between the commit's state and its move leaves it, then a copy cut the model short
    state = read_json(folder / "checkpoint" / "state.json")
    pending = folder / "checkpoint" / f"model-{state['commit']}.keras"
    pending.write_bytes((folder / "model.keras").read_bytes()[:2000])
    (folder / "checkpoint" / "state.json").write_text(json.dumps(
        {**state, "best_model": pending.name, "best_model_target": "model.keras"}))
    model_before = (folder / "model.keras").read_bytes()

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 2, resumed.output
    assert f"run {folder.name}: checkpoint/{pending.name} is damaged" in resumed.stderr
    assert (folder / "model.keras").read_bytes() == model_before and pending.is_file()
    assert read_json(folder / "run.json")["status"] == "interrupted"


def test_a_run_resumes_after_an_edit_of_how_it_runs_only(cli, tiny_config, runs_dir, monkeypatch):
    interrupted_after_first_epoch(cli, tiny_config, monkeypatch)
    (folder,) = run_folders(runs_dir)
    config = folder / "config.yaml"
    edited = config.read_text().replace("tensorboard: true", "tensorboard: false").replace("prefetch: true", "prefetch: false")
    assert edited != config.read_text()
    config.write_text(edited)

    resumed = cli("train", "--resume", folder.name)

    assert resumed.exit_code == 0, resumed.output
    assert [row["epoch"] for row in history(folder)] == ["1", "2", "3"]


def test_run_json_of_the_wrong_type_makes_the_run_damaged_and_names_the_key(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)
    info = read_json(folder / "run.json")
    (folder / "run.json").write_text(json.dumps({**info, "pid": "twelve"}))

    record = load_run(RunFolder(folder))
    listed = cli("runs")

    assert record.status == "damaged" and record.damage.startswith("run.json: pid: Input should be a valid integer")
    assert listed.exit_code == 0 and "damaged" in listed.stdout
    (folder / "run.json").write_text(json.dumps({**info, "status": "bogus"}))
    assert load_run(RunFolder(folder)).damage.startswith("run.json: status: Value error, 'bogus' is no status dlcli records")


def test_a_run_is_crashed_when_no_process_holds_its_lock_whatever_its_pid(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)
    info = read_json(folder / "run.json")
    # running, by a live process (this one, as in a container where pids are reused), yet nobody owns it
    (folder / "run.json").write_text(json.dumps({**info, "status": "running", "pid": os.getpid(), "pid_started": None}))

    assert load_run(RunFolder(folder)).status == "crashed"
    with RunFolder(folder).owned():
        assert load_run(RunFolder(folder)).status == "running"


def test_evaluating_a_run_still_being_trained_says_it_uses_the_best_model_so_far(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)
    info = read_json(folder / "run.json")
    (folder / "run.json").write_text(json.dumps({**info, "status": "running"}))

    with RunFolder(folder).owned():
        evaluated = cli("evaluate", folder.name)

    assert evaluated.exit_code == 0, evaluated.output
    assert f"note: run {folder.name} is still being trained by pid {os.getpid()}" in evaluated.stderr

    # its process gone (crashed): the model is the best of the epochs it got to, and resume continues it
    (folder / "run.json").write_text(json.dumps({**info, "status": "running", "pid": 2**22 + 7}))
    crashed = cli("evaluate", folder.name)
    assert crashed.exit_code == 0, crashed.output
    assert (f"note: run {folder.name} crashed after 2 epochs: this uses the best model of those; `dlcli train --resume "
            f"{folder.name} --runs-dir {folder.parent}` continues it") in " ".join(crashed.stderr.split())


# --- Damaged run folders: every reader says which run and file, exit 2, never a traceback ------------

DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "emptied": lambda data: b"",
    "of the wrong JSON type": lambda data: b"[1, 2]",
    "not UTF-8": lambda data: b"\xff\xfe" + data[:20],
}
FILES = ["run.json", "summary.json", "evaluation.json", "config.yaml", "history.csv", "checkpoint/state.json",
         "model.keras"]


@pytest.fixture(scope="module")
def stopped_run(killed):
    """A run killed after its last epoch, given a summary and an evaluation: every file a run has."""
    folder = killed["between the last epoch and the stage's end"][2]
    (folder,) = run_folders(folder.parent.parent / "as-killed" / "between the last epoch and the stage's end")
    (folder / "summary.json").write_text(json.dumps({"schema": 1, "epochs_run": 1, "best": {}, "final": {}}))
    (folder / "evaluation.json").write_text(json.dumps({"schema": 1, "run": folder.name, "split": "test",
                                                        "metrics": {"loss": 0.5, "accuracy": 0.9}}))
    return folder


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("name", FILES)
def test_a_damaged_run_file_is_one_line_from_every_reader(stopped_run, tmp_path, name, damage):
    folder = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, folder)
    path = folder / name
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    runner = CliRunner()

    for command in (["runs"], ["show", folder.name], ["compare", folder.name], ["train", "--resume", folder.name]):
        result = runner.invoke(app, [*command, "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code in (0, 2), (command, result.output, result.exception)
        assert result.exit_code == 0 or len(result.stderr.strip().splitlines()) == 1, (command, result.stderr)
        assert "Traceback" not in result.output


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _damaged_field(data: bytes, position: int, value) -> bytes:
    """The JSON document with one of its values (chosen by `position`, nested ones too) replaced."""
    document = json.loads(data)
    places = []

    def collect(node):
        for key in list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []:
            places.append((node, key))
            collect(node[key])

    collect(document)
    if not places:
        return json.dumps(value).encode()
    node, key = places[position % len(places)]
    node[key] = value
    return json.dumps(document).encode()


random_damages = st.one_of(
    st.tuples(st.just("cut"), st.integers(min_value=0, max_value=4000)),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
    st.tuples(st.just("field"), st.tuples(st.integers(min_value=0, max_value=500), json_values)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["run.json", "summary.json", "evaluation.json", "checkpoint/state.json", "history.csv",
                             "config.yaml"]), damage=random_damages)
@pytest.mark.slow
def test_a_randomly_damaged_run_file_is_one_line_from_every_reading_command(stopped_run, tmp_path_factory, name, damage):
    runs = tmp_path_factory.mktemp("damaged")
    folder = runs / stopped_run.name
    shutil.copytree(stopped_run, folder)
    path = folder / name
    kind, argument = damage
    if kind == "field" and not name.endswith(".json"):
        kind, argument = "bytes", json.dumps(argument[1]).encode()
    data = path.read_bytes()
    damaged = {"cut": lambda: data[:argument], "bytes": lambda: argument,
               "field": lambda: _damaged_field(data, *argument)}[kind]()
    path.write_bytes(damaged)

    for command in (["runs"], ["show", folder.name], ["compare", folder.name], ["compare", "--format", "json"]):
        result = CliRunner().invoke(app, [*command, "--runs-dir", str(runs)])
        assert result.exit_code in (0, 2), (command, result.output, result.exception)
        assert result.exit_code == 0 or len(result.stderr.strip().splitlines()) == 1, (command, result.stderr)
        assert "Traceback" not in result.output


def test_a_run_folder_without_run_json_is_a_damaged_run(stopped_run, tmp_path):
    folder = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, folder)
    (folder / "run.json").unlink()

    resumed = CliRunner().invoke(app, ["train", "--resume", str(folder)])

    assert resumed.exit_code == 2
    assert resumed.stderr.strip() == (
        f"error: run {folder.name} is damaged: it has no run.json; its folder is left as it is: "
        "train its config.yaml again for a new run"
    )


def test_a_run_without_its_config_or_with_a_torn_run_json_is_named_damaged_by_id_and_by_name(stopped_run, tmp_path):
    folder = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, folder)
    (folder / "config.yaml").unlink()
    (folder / "summary.json").unlink()  # its training had not ended: it must read its config to go on
    resumed = CliRunner().invoke(app, ["train", "--resume", str(folder)])
    assert resumed.exit_code == 2 and resumed.stderr.strip() == (
        f"error: run {folder.name} is damaged: its config.yaml is missing, so it cannot continue; its folder is left "
        "as it is: train the original config again for a new run"
    )

    (folder / "run.json").write_text("{garbage")
    name = folder.name.split("-", 2)[2]  # <date>-<time>-<name>: the folder still says the run's name
    shown = CliRunner().invoke(app, ["show", name, "--runs-dir", str(tmp_path / "runs")])
    assert shown.exit_code == 0 and f"{folder.name}  damaged" in shown.stdout, shown.output


@pytest.mark.parametrize(("name", "damage"), [
    ("model.keras", "truncated"), ("model.keras", "emptied"), ("preprocessing.keras", "truncated"),
])
def test_a_damaged_model_is_named_by_evaluate_predict_and_export(stopped_run, tmp_path, name, damage):
    folder = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, folder)
    model = folder / name
    model.write_bytes(DAMAGES[damage](model.read_bytes()))
    arrays = tmp_path / "x.npy"
    np.save(arrays, np.zeros((2, 8, 8), "float32"))
    runner = CliRunner()

    readers = [["predict", str(folder), str(arrays)], ["export", str(folder), "--output", str(tmp_path / "out")]]
    for command in [["evaluate", str(folder)]] * (name == "model.keras") + readers:
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert f"run {folder.name}: {name} is damaged (not a whole .keras archive" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_damaged_inputs_json_is_made_again_from_the_run(stopped_run, tmp_path):
    folder = tmp_path / "runs" / stopped_run.name
    shutil.copytree(stopped_run, folder)
    expected = read_json(folder / "inputs.json")
    (folder / "inputs.json").write_bytes(b'{"kind": "ima')
    arrays = tmp_path / "x.npy"
    np.save(arrays, np.zeros((2, 8, 8, 1), "uint8"))

    result = CliRunner().invoke(app, ["predict", str(folder), str(arrays)])

    assert result.exit_code == 0, result.output
    assert read_json(folder / "inputs.json") == expected
