"""Watching training: overfitting verdicts and advice, notes, curves, callbacks, divergence, resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import TINY_CONFIG, read_json, run_folders
from dlcli.config import load_config
from dlcli.curves.verdicts import overfitting_advice, training_notes


def rows_from(val_losses, losses, accuracies=None):
    return [
        {"epoch": n, "loss": loss, "val_loss": val, **({"accuracy": accuracies[n - 1]} if accuracies else {})}
        for n, (val, loss) in enumerate(zip(val_losses, losses), start=1)
    ]


def config_with(write_config, *overrides):
    return load_config(write_config(TINY_CONFIG), list(overrides))


def test_advice_depends_on_the_config(write_config):
    verdict = {"detected": True, "onset_epoch": 3, "monitor": "val_loss"}
    plain = overfitting_advice(config_with(write_config), verdict, epochs_run=10, parameters=500_000, train_samples=1000)
    careful = overfitting_advice(
        config_with(write_config, "model.layers.1={Dropout: {rate: 0.5}}",
                    "model.augmentation=[{RandomFlip: {mode: horizontal}}]"),
        verdict, epochs_run=4, parameters=500, train_samples=1000,
    )

    assert any("train for `epochs: 3`" in advice for advice in plain)
    assert any("no Dropout" in advice for advice in plain)
    assert any("augmentation" in advice and "not RandomFlip: a mirrored digit" in advice for advice in plain)
    assert any("500,000 parameters for 1,000 training examples" in advice for advice in plain)
    assert careful == []
    assert overfitting_advice(config_with(write_config), {"detected": False}, 10, 1, 1) == []


def test_notes_for_a_flat_loss_and_for_validation_still_improving(write_config):
    config = config_with(write_config)
    flat = rows_from([2.30, 2.30, 2.30], [2.302, 2.301, 2.302], [0.1, 0.1, 0.1])
    improving = rows_from([0.9, 0.7, 0.6], [1.0, 0.8, 0.6], [0.60, 0.70, 0.78])
    finished = rows_from([0.9, 0.6, 0.62], [1.0, 0.8, 0.6], [0.60, 0.70, 0.78])
    overfitting = rows_from([0.50, 0.35, 0.29, 0.31, 0.36], [0.6, 0.4, 0.2, 0.1, 0.05], [0.8, 0.9, 0.95, 0.97, 0.99])

    assert "the model is not learning" in training_notes(flat, config, True)[0]
    assert "sparse_categorical_crossentropy" in training_notes(flat, config, True)[0]
    assert "val_loss was still improving at the last epoch (0.7 → 0.6)" in training_notes(improving, config, True)[0]
    assert training_notes(finished, config, True) == []
    assert training_notes(overfitting, config, True) == []  # rising training accuracy is no reason to train longer
    maximized = config_with(write_config, "training.monitor=val_accuracy")
    assert training_notes([{"epoch": 1, "loss": 1.0, "val_accuracy": 0.5}, {"epoch": 2, "loss": 0.5, "val_accuracy": 0.7}],
                          maximized, False)[0].startswith("val_accuracy was still improving")


@pytest.mark.parametrize("dataset, expected", [
    ("digits", "not RandomFlip: a mirrored digit is another symbol"),
    ("fashion_mnist", "RandomFlip, RandomRotation, RandomZoom"),
    ("image_directory", "RandomFlip if a mirrored image keeps its class"),
])
def test_augmentation_advice_fits_the_images(write_config, tmp_path, dataset, expected):
    path = f"\n  path: {tmp_path}" if dataset == "image_directory" else ""
    text = TINY_CONFIG.replace("name: digits", f"name: {dataset}{path}")
    verdict = {"detected": True, "onset_epoch": 3, "monitor": "val_loss"}

    advice = overfitting_advice(load_config(write_config(text)), verdict, 4, 500, 1000)

    assert any(expected in line for line in advice)


def test_no_augmentation_advice_for_tables(write_config):
    text = TINY_CONFIG.replace("name: digits", "name: boston_housing")
    regression = ["loss=mse", "model.layers.2.Dense.units=1", "model.layers.2.Dense.activation=linear", "metrics=[mae]"]
    config = load_config(write_config(text), regression)
    advice = overfitting_advice(config, {"detected": True, "onset_epoch": 3, "monitor": "val_loss"}, 4, 500, 1000)

    assert not any("augmentation" in line for line in advice)


OVERFITTING = TINY_CONFIG.replace("{units: 16, activation: relu}", "{units: 512, activation: relu}").replace(
    "epochs: 2", "epochs: 25").replace("validation_split: 0.2", "validation_split: 0.5\n  classes: [1, 7]"
).replace("units: 10, activation: softmax", "units: 2, activation: softmax")


def test_an_overfitting_run_is_flagged_in_its_summary_and_curves(cli, write_config, runs_dir):
    result = cli("train", str(write_config(OVERFITTING)), "--set", "optimizer.learning_rate=0.01")

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    summary = read_json(folder / "summary.json")
    verdict = summary["overfitting"]
    with open(folder / "history.csv", newline="") as file:
        val_losses = [float(row["val_loss"]) for row in csv.DictReader(file)]
    assert verdict["detected"]
    assert verdict["best_epoch"] == int(np.argmin(val_losses)) + 1 == summary["best_epoch"]
    assert verdict["onset_epoch"] <= verdict["best_epoch"] < verdict["warned_at_epoch"]
    assert verdict["message"].startswith(f"overfitting since epoch {verdict['onset_epoch']}: val_loss")
    assert verdict["gap"]["metric"] == "loss" and verdict["gap"]["gap"] > 0
    assert any("Dropout" in advice for advice in verdict["advice"])
    assert result.stdout.count("⚠ overfitting since epoch") == 1
    with Image.open(folder / "curves.png") as image:
        assert image.format == "PNG" and image.size[0] > 800


def test_a_healthy_run_is_not_flagged_and_overfitting_can_be_turned_off(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    assert cli("train", str(tiny_config), "--set", "training.overfitting=false").exit_code == 0

    healthy, off = (read_json(folder / "summary.json") for folder in run_folders(runs_dir))
    assert healthy["overfitting"]["detected"] is False
    assert off["overfitting"] is None  # no verdict when the watch is off


def test_tensorboard_logs_and_turning_them_off(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    assert cli("train", str(tiny_config), "--set", "training.tensorboard=false").exit_code == 0

    with_logs, without = run_folders(runs_dir)
    assert list((with_logs / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (without / "tensorboard").exists()


@pytest.mark.parametrize(
    "overrides, check",
    [
        (["training.epochs=8", "training.early_stopping={monitor: loss, patience: 0, min_delta: 100}"],
         lambda rows: len(rows) == 2),
        (["training.epochs=3", "training.callbacks=[{EarlyStopping: {monitor: loss, patience: 0, min_delta: 100}}]"],
         lambda rows: len(rows) == 2),
        (["training.epochs=3", "training.reduce_lr_on_plateau={monitor: loss, factor: 0.5, patience: 0, min_delta: 100}"],
         # each row has the rate its epoch trained at; the cut comes after epoch 2
         lambda rows: [round(float(r["learning_rate"]), 6) for r in rows] == [0.01, 0.01, 0.005]),
    ],
    ids=["early_stopping", "callbacks list", "reduce_lr_on_plateau"],
)
def test_keras_callbacks_from_the_config_take_effect(cli, tiny_config, runs_dir, overrides, check):
    result = cli("train", str(tiny_config), *(arg for o in overrides for arg in ("--set", o)))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    with open(folder / "history.csv", newline="") as file:
        assert check(list(csv.DictReader(file)))


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.callbacks=[{EarlyStoping: {}}]",
         "training.callbacks.0: unknown callback 'EarlyStoping'; did you mean 'EarlyStopping'?"),
        ("training.callbacks=[{LambdaCallback: {}}]", "LambdaCallback: runs Python code from the config and is refused"),
        ("training.callbacks=[{ModelCheckpoint: {filepath: /tmp/x.keras}}]", "dlcli saves the best model"),
        ("training.callbacks=[{LearningRateScheduler: {schedule: 0.1}}]",
         "LearningRateScheduler: takes a Python function, which a config cannot hold"),  # was a crash at fit()
        ("training.early_stopping={mode: maximum}",
         "training.early_stopping: EarlyStopping mode 'maximum' is unknown, fallback to auto mode. (Keras only warns"),
        ("training.early_stopping={patiense: 3}",
         "training.early_stopping: unexpected argument 'patiense'; did you mean 'patience'?"),
    ],
)
def test_bad_callbacks_are_config_errors(cli, tiny_config, runs_dir, override, message):
    result = cli("train", str(tiny_config), "--set", override)

    assert result.exit_code == 2
    assert message in result.stderr
    assert run_folders(runs_dir) == []


def test_a_nan_loss_stops_the_run_as_diverged_and_keeps_the_last_good_model(cli, tiny_config, runs_dir, monkeypatch):
    import dlcli.training.train

    class ExplodeAtEpochThree(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                self.model.optimizer.learning_rate.assign(1e30)

    configured = dlcli.training.train.keras_callbacks
    monkeypatch.setattr(dlcli.training.train, "keras_callbacks", lambda config: [*configured(config), ExplodeAtEpochThree()])

    result = cli("train", str(tiny_config), "--set", "training.epochs=6")

    assert result.exit_code == 1
    (folder,) = run_folders(runs_dir)
    assert f"run {folder.name} diverged: the loss became nan in epoch 3" in result.stderr
    assert "lower the learning rate" in result.stderr
    info = read_json(folder / "run.json")
    assert info["status"] == "diverged" and "epoch 3" in info["error"]
    summary = read_json(folder / "summary.json")
    assert summary["diverged"]["epoch"] == 3 and summary["epochs_run"] == 3
    assert summary["best_epoch"] in (1, 2)
    model = keras.saving.load_model(folder / "model.keras")
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_stop_request_whose_keyboard_interrupt_was_swallowed_still_stops_the_run(cli, tiny_config, runs_dir,
                                                                                  monkeypatch):
    import dlcli.training.train
    from dlcli.stopping import request_stop, stop_pending

    class StopSilentlyInEpochTwo(keras.callbacks.Callback):
        """As a signal arriving inside native code that drops its KeyboardInterrupt."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                request_stop()

    configured = dlcli.training.train.keras_callbacks
    monkeypatch.setattr(dlcli.training.train, "keras_callbacks", lambda config: [*configured(config), StopSilentlyInEpochTwo()])

    result = cli("train", str(tiny_config), "--set", "training.epochs=5")

    assert result.exit_code == 130
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "interrupted"
    assert len(list(csv.DictReader((folder / "history.csv").open()))) == 1  # epoch 2 was cut short
    assert not stop_pending()  # honoured: the next run in this process is not stopped


def test_a_stop_signal_inside_fit_takes_effect_at_the_batch_end_only(cli, tiny_config, runs_dir, monkeypatch):
    import threading

    import dlcli.training.train
    from dlcli.stopping import STOP_SIGNALS, stop_pending

    survived = []

    class SignalledInEpochTwo(keras.callbacks.Callback):
        """A SIGTERM landing in Keras's own Python, where a KeyboardInterrupt once corrupted
        TensorFlow's state (a process aborted inside make_iterator)."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
                for _ in range(100):  # the Python handler runs at one of these bytecodes
                    pass
                survived.append(epoch)

    configured = dlcli.training.train.keras_callbacks
    monkeypatch.setattr(dlcli.training.train, "keras_callbacks", lambda config: [*configured(config), SignalledInEpochTwo()])
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        result = cli("train", str(tiny_config), "--set", "training.epochs=5")
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)

    assert result.exit_code == 130, result.output
    assert survived == [1]  # no KeyboardInterrupt inside the callback
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "interrupted"
    assert len(list(csv.DictReader((folder / "history.csv").open()))) == 1
    assert not stop_pending()


def test_an_interrupt_that_a_context_manager_turns_into_another_error_still_interrupts(cli, tiny_config, runs_dir,
                                                                                       monkeypatch):
    import dlcli.training.train
    from dlcli.stopping import request_stop, stop_pending

    class InterruptedInsideADeviceScope(keras.callbacks.Callback):
        """As Ctrl-C landing inside `with tf.device(...)`: the scope's exit raises in its place
        (seen once in 80 SIGINTs: "RuntimeError: Exiting device scope without proper scope nesting")."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                request_stop()
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt:
                    raise RuntimeError("Exiting device scope without proper scope nesting") from None

    configured = dlcli.training.train.keras_callbacks
    monkeypatch.setattr(dlcli.training.train, "keras_callbacks",
                        lambda config: [*configured(config), InterruptedInsideADeviceScope()])

    result = cli("train", str(tiny_config), "--set", "training.epochs=5")

    assert result.exit_code == 130, result.output
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "interrupted" and "continue it with" in result.stderr
    assert not stop_pending()
    monkeypatch.undo()
    assert cli("train", "--resume", folder.name).exit_code == 0


def test_a_huge_learning_rate_diverges(cli, tiny_config, runs_dir):
    # an unbounded loss (MSE on a linear output): softmax cross-entropy is clipped and stays finite
    regression = ["dataset.name=boston_housing", "loss=mse", "metrics=[]", "model.layers=[{Dense: {units: 1}}]"]
    overrides = [*regression, "optimizer={name: sgd, learning_rate: 1e6}", "training.epochs=5"]
    result = cli("train", str(tiny_config), *(arg for o in overrides for arg in ("--set", o)))

    assert result.exit_code == 1
    assert "diverged: the loss became" in result.stderr
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "diverged"
    assert read_json(folder / "summary.json")["diverged"]["epoch"] == 1  # no good epoch: no model to use
    assert "no model was kept" in result.stderr and not (folder / "model.keras").exists()
    evaluated = cli("evaluate", folder.name)
    assert evaluated.exit_code == 2
    assert "diverged, and has no model.keras: no good epoch of it was saved" in evaluated.stderr


# --- interrupt, crash and resume in real processes ---------------------------------

LONG = TINY_CONFIG.replace("epochs: 2", "epochs: 5").replace("batch_size: 64", "batch_size: 4")


def start_training(config, runs):
    return subprocess.Popen(
        [sys.executable, "-m", "dlcli", "train", str(config), "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for_epochs(runs, process, count):
    deadline = time.monotonic() + 120
    while True:
        histories = list(runs.glob("*/history.csv"))
        if histories and len(histories[0].read_text().splitlines()) > count:
            return
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def epochs_in(folder):
    with open(folder / "history.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def history_without_seconds(folder):
    with open(folder / "history.csv", newline="") as file:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(file)]


@pytest.mark.slow
def test_sigint_interrupts_and_resume_completes_every_epoch_once(cli, write_config, runs_dir):
    config = write_config(LONG.replace("batch_size: 4", "batch_size: 8"))
    process = start_training(config, runs_dir)
    wait_for_epochs(runs_dir, process, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "interrupted"
    assert f"continue it with: dlcli train --resume {folder.name} --runs-dir {runs_dir}" in stderr
    done = epochs_in(folder)
    assert 2 <= len(done) < 5 and (folder / "checkpoint" / "state.json").exists()

    result = cli("train", "--resume", folder.name)

    assert result.exit_code == 0, result.output
    assert epochs_in(folder) == list(range(1, 6))
    info = read_json(folder / "run.json")
    assert info["status"] == "completed" and len(info["resumes"]) == 1
    assert not (folder / "checkpoint").exists()
    # the same numbers as an uninterrupted run of the config (tests/training/test_resume.py kills runs instead)
    assert cli("train", str(config)).exit_code == 0
    straight = [f for f in run_folders(runs_dir) if f != folder][0]
    assert history_without_seconds(folder) == history_without_seconds(straight)


@pytest.mark.slow
def test_two_resumes_of_one_run_train_it_once(write_config, runs_dir):
    process = start_training(write_config(LONG.replace("epochs: 5", "epochs: 6")), runs_dir)
    wait_for_epochs(runs_dir, process, 1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    (folder,) = run_folders(runs_dir)
    command = [sys.executable, "-m", "dlcli", "train", "--resume", folder.name, "--runs-dir", str(runs_dir)]

    resumes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(resume.wait(timeout=300), resume.communicate()[1]) for resume in resumes]

    assert sorted(code for code, _ in results) == [0, 2], results
    (refused,) = [stderr for code, stderr in results if code == 2]
    assert f"run {folder.name} is being trained by pid" in refused, refused
    assert epochs_in(folder) == list(range(1, 7))  # every epoch once
    info = read_json(folder / "run.json")
    assert info["status"] == "completed" and len(info["resumes"]) == 1


def test_resume_refuses_completed_runs_and_extra_arguments(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config)).exit_code == 0
    (folder,) = run_folders(runs_dir)

    completed = cli("train", "--resume", folder.name)
    with_config = cli("train", str(tiny_config), "--resume", folder.name)
    unknown = cli("train", "--resume", "nope")

    assert completed.exit_code == 2 and f"run {folder.name} is completed; nothing to resume" in completed.stderr
    assert with_config.exit_code == 2 and "give no CONFIG, --set or --name" in with_config.stderr
    assert unknown.exit_code == 2 and "no run 'nope'" in unknown.stderr


# --- The direction of each metric, from Keras --------------------------------------------------

RANKED_METRICS = ["mae", "mse", "r2_score", "cosine_similarity", "acc", "accuracy", "auc", "poisson", "hinge"]


def test_directions_are_the_ones_keras_monitor_callbacks_use(write_config):
    """dlcli reads each metric's direction before training; Keras's EarlyStopping reads it from the
    compiled metrics after an epoch. They must agree on every metric."""
    from dlcli.build.models import metric_directions

    config = load_config(write_config(TINY_CONFIG), [f"metrics=[{', '.join(RANKED_METRICS)}]"])
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy", metrics=RANKED_METRICS)
    x, y = np.random.default_rng(0).random((32, 4)), np.random.default_rng(1).integers(0, 2, (32, 1))
    model.fit(x, y, epochs=1, verbose=0)

    directions = metric_directions(config)
    for name in ["loss", *RANKED_METRICS]:
        keras_rule = keras.callbacks.EarlyStopping(monitor=f"val_{name}")
        keras_rule.set_model(model)
        keras_rule._set_monitor_op()
        keras_direction = "min" if keras_rule.monitor_op is keras.ops.less else "max"
        assert directions[name] == keras_direction, name
    assert directions["r2_score"] == directions["cosine_similarity"] == "max"


REGRESSION = TINY_CONFIG.replace("name: digits", "name: boston_housing\n  standardize: true").replace(
    "units: 10, activation: softmax", "units: 1").replace(
    "loss: sparse_categorical_crossentropy", "loss: mse").replace("metrics: [accuracy]", "metrics: [mae, r2_score]")


def test_a_metric_keras_ranks_upwards_picks_the_best_epoch_and_model(cli, write_config, runs_dir):
    result = cli("train", str(write_config(REGRESSION)), "--set", "training.epochs=6",
                 "--set", "training.monitor=val_r2_score", "--set", "optimizer.learning_rate=0.003")

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    summary = read_json(folder / "summary.json")
    with open(folder / "history.csv", newline="") as file:
        r2 = [float(row["val_r2_score"]) for row in csv.DictReader(file)]
    assert summary["directions"] == {"loss": "min", "mae": "min", "r2_score": "max"}
    assert r2[-1] > r2[0]  # learning: the worst epoch is the first, and must not be the one kept
    assert summary["best_epoch"] == int(np.argmax(r2)) + 1
    assert summary["best"]["val_r2_score"] == max(r2)
    assert cli("evaluate", folder.name, "--split", "validation").exit_code == 0  # the saved model.keras
    assert read_json(folder / "evaluation-validation.json")["metrics"]["r2_score"] == pytest.approx(max(r2), abs=1e-4)


@pytest.mark.parametrize("overrides, expected", [
    (["metrics=[false_negatives]", "training.monitor=val_false_negatives"],
     "training.monitor: Keras does not say whether a higher or a lower 'val_false_negatives' is better: "
     "set `training.monitor_mode: min` or `max`"),
    (["training.overfitting.monitor=val_acuracy"],
     "training.overfitting.monitor: 'val_acuracy' is not logged; choose one of loss, accuracy, val_loss, "
     "val_accuracy"),
])
def test_a_monitor_without_a_known_direction_is_refused_before_training(cli, write_config, runs_dir, overrides, expected):
    arguments = [item for override in overrides for item in ("--set", override)]
    result = cli("train", str(write_config(TINY_CONFIG)), *arguments)

    assert result.exit_code == 2
    assert expected in " ".join(result.output.split())
    assert run_folders(runs_dir) == []


def test_a_monitor_mode_against_the_direction_keras_gives_is_refused(cli, write_config, runs_dir):
    """A mode ranks what Keras cannot; against Keras it would keep the worst epoch's model (as `dlcli
    verdict --mode` refuses it too)."""
    result = cli("train", str(write_config(TINY_CONFIG)), "--set", "training.monitor=val_accuracy",
                 "--set", "training.monitor_mode=min")

    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: --set training.monitor_mode=min: training.monitor_mode: 'min' ranks val_accuracy upside down: a higher "
        "val_accuracy is better (Keras ranks it 'max'); set it to max, or auto"), result.output
    assert run_folders(runs_dir) == []
