"""`dlcli train` end to end, in-process through Typer's CliRunner."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from conftest import encoded, read_json, run_folders
from dlcli.config import load_config
from dlcli.errors import DlcliError
from dlcli.store.runs import RunFolder


def history_rows(folder):
    with open(folder / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def without_timing(rows):
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def test_train_writes_a_complete_run_folder(cli, tiny_config, runs_dir):
    result = cli("train", str(tiny_config))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    assert folder.name.endswith("-tiny")
    datetime.strptime(folder.name[:15], "%Y%m%d-%H%M%S")
    assert f"run {folder.name} completed" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml", "curves.png", "history.csv", "inputs.json", "model.keras", "owner.lock",
        "preprocessing.keras", "run.json", "summary.json", "tensorboard",
    ]  # and no checkpoint/: a completed run needs no resume state

    resolved = yaml.safe_load((folder / "config.yaml").read_text())
    assert resolved == yaml.safe_load(load_config(tiny_config).to_yaml())

    info = read_json(folder / "run.json")
    assert info["id"] == folder.name and info["name"] == "tiny"
    assert info["status"] == "completed" and info["error"] is None
    assert info["seed"] == 0 and info["duration_s"] >= 0
    assert datetime.fromisoformat(info["ended"]) >= datetime.fromisoformat(info["created"])
    assert set(info["versions"]) == {"python", "dlcli", "tensorflow", "keras"}
    assert info["host"] and info["pid"]
    assert info["command"] == f"dlcli train {tiny_config} --runs-dir {runs_dir}"

    rows = history_rows(folder)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert list(rows[0]) == [
        "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"
    ]
    assert float(rows[0]["learning_rate"]) == pytest.approx(0.01)

    summary = read_json(folder / "summary.json")
    best = summary["best_epoch"]
    assert summary["epochs_run"] == 2 and summary["monitor"] == "val_loss"
    assert summary["best"]["val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in rows))
    assert summary["final"]["val_loss"] == pytest.approx(float(rows[-1]["val_loss"]))
    assert summary["parameters"] == (64 * 16 + 16) + (16 * 10 + 10)
    assert summary["samples_per_second"] > 0
    assert summary["data"]["train"] + summary["data"]["validation"] + summary["data"]["test"] == 1797

    model = keras.saving.load_model(folder / "model.keras", safe_mode=True)
    from dlcli.data import load_dataset

    splits = load_dataset(load_config(folder / "config.yaml"))
    val_loss = model.evaluate(*encoded(splits, "validation"), verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(float(rows[best - 1]["val_loss"]), rel=1e-4)

    hparams, scalars = tensorboard_hparams(folder / "tensorboard")
    assert hparams["optimizer.name"] == "adam" and hparams["model.layers.1.Dense.units"] == 16
    assert hparams["training.epochs"] == 2 and hparams["dataset.name"] == "digits"
    assert scalars["best/val_loss"] == pytest.approx(summary["best"]["val_loss"])
    assert scalars["final/val_accuracy"] == pytest.approx(summary["final"]["val_accuracy"])


def tensorboard_hparams(log_dir):
    """The HParams session and scalar summaries of a TensorBoard log folder, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    values = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for key, value in start.hparams.items()}
    scalars = {tag: float(tensor_util.make_ndarray(events.Tensors(tag)[-1].tensor_proto))
               for tag in events.Tags()["tensors"] if tag.startswith(("best/", "final/"))}
    return values, scalars


def test_same_config_and_seed_give_the_same_history(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    assert cli("train", str(tiny_config)).exit_code == 0
    assert cli("train", str(tiny_config), "--set", "seed=1").exit_code == 0

    first, second, other_seed = (history_rows(folder) for folder in run_folders(runs_dir))
    assert without_timing(first) == without_timing(second)
    assert without_timing(first) != without_timing(other_seed)


def test_set_epochs_gives_that_many_history_rows(cli, tiny_config, runs_dir):
    result = cli("train", str(tiny_config), "--set", "training.epochs=3", "--set", "model.layers.1.Dense.units=8")

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    assert len(history_rows(folder)) == 3
    resolved = yaml.safe_load((folder / "config.yaml").read_text())
    assert resolved["training"]["epochs"] == 3
    assert resolved["model"]["layers"][1] == {"Dense": {"units": 8, "activation": "relu"}}


def test_name_option_and_runs_dir_from_the_environment(tiny_config, tmp_path):
    from typer.testing import CliRunner

    from dlcli.cli import app

    runs = tmp_path / "elsewhere"
    result = CliRunner().invoke(
        app, ["train", str(tiny_config), "--name", "baseline"], env={"DLCLI_RUNS_DIR": str(runs)}
    )

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs)
    assert folder.name.endswith("-baseline")
    assert read_json(folder / "run.json")["name"] == "baseline"


def test_name_option_cannot_leave_the_runs_folder(cli, tiny_config, runs_dir, tmp_path):
    result = cli("train", str(tiny_config), "--name", "../../escape")

    assert result.exit_code == 2
    assert "--name ../../escape: name: a run name uses letters" in result.stderr
    assert not (tmp_path / "escape").exists() and run_folders(runs_dir) == []


def test_run_folders_in_the_same_second_never_collide(tmp_path, monkeypatch):
    fixed = datetime(2026, 1, 2, 3, 4, 5).astimezone()
    monkeypatch.setattr("dlcli.store.runs.now", lambda: fixed)

    names = [RunFolder.create(tmp_path, "same").id for _ in range(3)]

    assert names == ["20260102-030405-same", "20260102-030405-same-2", "20260102-030405-same-3"]


def test_failure_during_training_keeps_the_folder_marked_failed(cli, tiny_config, runs_dir, monkeypatch):
    from dlcli.training.callbacks import EpochCommit

    record_epoch = EpochCommit.on_epoch_end

    def fail_on_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("simulated fault")
        record_epoch(self, epoch, logs)

    monkeypatch.setattr(EpochCommit, "on_epoch_end", fail_on_second_epoch)

    result = cli("train", str(tiny_config))

    assert result.exit_code == 1
    (folder,) = run_folders(runs_dir)
    assert f"run {folder.name} failed: RuntimeError: simulated fault" in result.stderr
    info = read_json(folder / "run.json")
    assert info["status"] == "failed" and info["error"] == "RuntimeError: simulated fault"
    assert len(history_rows(folder)) == 1
    assert keras.saving.load_model(folder / "model.keras") is not None


def test_offline_keras_dataset_exits_2_with_the_alternative(cli, tiny_config, runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr("dlcli.data.keras_datasets.host_reachable", lambda host: False)

    result = cli("train", str(tiny_config), "--set", "dataset.name=mnist")

    assert result.exit_code == 2
    assert "use dataset 'mnist_5k' (ships offline)" in result.stderr
    assert run_folders(runs_dir) == []


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    from dlcli.outputs import write_atomic

    target = tmp_path / "file.txt"
    write_atomic(target, "one")
    write_atomic(target, "two")

    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_a_write_goes_through_a_link_and_into_a_pipe_instead_of_replacing_them(tmp_path):
    from dlcli.outputs import write_atomic

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "answers.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to(shared / "answers.csv")
    write_atomic(tmp_path / "link.csv", "new")

    assert (tmp_path / "link.csv").is_symlink() and (shared / "answers.csv").read_text() == "new"
    assert sorted(p.name for p in shared.iterdir()) == ["answers.csv"]

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE, text=True)
    try:
        write_atomic(pipe, "through the pipe")
        assert reader.communicate(timeout=30)[0] == "through the pipe"
    finally:
        reader.kill()
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)  # still a pipe, not a file put in its place

    # /dev/stdout of a command whose output the shell sends to a file (>> log): added to, not replaced
    log = tmp_path / "log"
    log.write_text("earlier line\n")
    with open(log, "a") as stdout:
        write_atomic(Path(f"/proc/self/fd/{stdout.fileno()}"), "new line\n")
    assert log.read_text() == "earlier line\nnew line\n"


def test_a_link_into_a_run_folder_is_no_way_around_its_guard(tmp_path):
    from dlcli.store.runs import RUN_FILE, refuse_run_folder_output

    run = tmp_path / "runs" / "20260101-000000-a"
    run.mkdir(parents=True)
    (run / RUN_FILE).write_text("{}")
    (tmp_path / "out.csv").symlink_to(run / "history.csv")

    with pytest.raises(DlcliError, match=r"--output .*out.csv is in the run folder .*20260101-000000-a: its files are"):
        refuse_run_folder_output(tmp_path / "out.csv", "--output")


def test_predictions_of_saved_model_match_the_best_epoch(cli, tiny_config, runs_dir):
    """The saved model is the best epoch's, not the last one's."""
    assert cli("train", str(tiny_config), "--set", "training.epochs=4",
               "--set", "training.monitor=val_accuracy").exit_code == 0
    (folder,) = run_folders(runs_dir)
    summary = read_json(folder / "summary.json")
    rows = history_rows(folder)
    accuracies = [float(row["val_accuracy"]) for row in rows]
    assert summary["best_epoch"] == int(np.argmax(accuracies)) + 1
    assert summary["best"]["val_accuracy"] == max(accuracies)
