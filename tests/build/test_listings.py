"""What published listings need: graphs, Embedding, training on all the data, epochs of N batches, base preprocessing."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from conftest import REPO, TINY_CONFIG, read_json, run_folders
from dlcli.build.models import build_model
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.data.pipeline import EpochOrder, samples_in_batches, stream
from dlcli.errors import ConfigError

RESIDUAL = """\
name: residual
dataset: {name: digits}
model:
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu, name: stem}
    - Conv2D: {filters: 16, kernel_size: 3, padding: same, activation: relu}
    - MaxPooling2D: {pool_size: 2, padding: same, name: main}
    - Conv2D: {filters: 16, kernel_size: 1, strides: 2, padding: same, inputs: [stem], name: shortcut}
    - Add: {inputs: [main, shortcut], name: merged}
    - GlobalAveragePooling2D
    - Dense: {units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
metrics: [acc]
training: {epochs: 2, batch_size: 64}
"""


def keras_residual() -> keras.Model:
    """The same graph written with Keras's functional API."""
    inputs = keras.Input((8, 8, 1))
    stem = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    main = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(stem)
    main = keras.layers.MaxPooling2D(2, padding="same")(main)
    shortcut = keras.layers.Conv2D(16, 1, strides=2, padding="same")(stem)
    merged = keras.layers.add([main, shortcut])
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(merged))
    return keras.Model(inputs, outputs)


def test_a_residual_graph_has_the_parameters_of_the_keras_functional_model(write_config):
    parts = build_model(load_config(write_config(RESIDUAL)), (8, 8, 1))

    assert parts.model.count_params() == keras_residual().count_params()
    assert parts.inputs_of["shortcut"] == ["stem"] and parts.inputs_of["merged"] == ["main", "shortcut"]
    assert parts.inputs_of["stem"] == ["input"]


def test_a_graph_trains_logs_acc_and_check_shows_the_inputs(cli, write_config, runs_dir):
    path = write_config(RESIDUAL)
    checked = cli("check", str(path))
    trained = cli("train", str(path))

    assert checked.exit_code == 0, checked.output
    assert "main, shortcut" in checked.stdout
    assert trained.exit_code == 0, trained.output
    (folder,) = run_folders(runs_dir)
    with open(folder / "history.csv", newline="") as file:
        assert {"acc", "val_acc"} <= set(next(csv.DictReader(file)))
    assert read_json(folder / "summary.json")["directions"]["acc"] == "max"


@pytest.mark.parametrize("override, expected", [
    ("model.layers.4.Add.inputs=[main, shortcat]",
     "model.layers.4.Add.inputs: no earlier layer is named 'shortcat'; did you mean 'shortcut'?"),
    ("model.layers.3.Conv2D.inputs=[merged]", "model.layers.3.Conv2D.inputs: 'merged' comes later"),
    ("model.layers.3.Conv2D.inputs=[shortcut]", "model.layers.3.Conv2D.inputs: 'shortcut' is this layer itself"),
    ("model.layers.4.Add.inputs=[main]", "model.layers.4.Add: Add merges several inputs: give it two or more"),
    ("model.layers.4.Add.inputs=[main, main]",
     "model.layers.3.Conv2D: no later layer takes the output of 'shortcut' and it is not the last layer"),
    ("model.layers.1.Conv2D.name=stem", "model.layers.1.Conv2D: the name 'stem' is taken by an earlier layer"),
    ("model.layers.4.Add.inputs=3", "model.layers.4.Add.inputs: `inputs` lists earlier layers' names"),
])
def test_a_wrong_graph_is_one_located_line(cli, write_config, runs_dir, override, expected):
    result = cli("check", str(write_config(RESIDUAL)), "--set", override)

    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) == 1


CONV1D_TEXT = REPO / "configs" / "reviews_csv_conv1d.yaml"


def test_embedding_takes_the_vocabulary_size_or_refuses_a_smaller_one(monkeypatch, cli):
    monkeypatch.chdir(REPO)
    config = load_config(CONV1D_TEXT)
    splits = load_dataset(config)
    parts = build_model(config, splits.input_shape, vocabulary_size=splits.encoding.vocabulary_size)
    embedding = parts.model.layers[0]

    assert embedding.input_dim == splits.encoding.vocabulary_size
    too_small = cli("check", str(CONV1D_TEXT), "--set", "model.layers.0.Embedding.input_dim=10", runs=False)
    assert too_small.exit_code == 2
    assert "input_dim 10 is smaller than the dataset's vocabulary" in " ".join(too_small.stderr.split())
    no_tokens = cli("check", str(REPO / "configs" / "reviews_csv_multihot.yaml"),
                    "--set", "model.layers.0={Embedding: {output_dim: 8}}", runs=False)
    assert no_tokens.exit_code == 2 and "an Embedding takes token indices" in no_tokens.stderr


def test_training_on_all_the_data_keeps_the_last_epoch_and_evaluates(cli, write_config, runs_dir):
    path = write_config(TINY_CONFIG.replace("validation_split: 0.2", "validation_split: 0"))

    result = cli("train", str(path), "--set", "training.epochs=3")
    refused = cli("train", str(path), "--set", "training.early_stopping={patience: 1}")
    refused_default = cli("train", str(path), "--set", "training.early_stopping=true")
    compared = cli("compare", "--sort", "loss", "--format", "json")

    assert result.exit_code == 0, result.output
    assert "no validation data" in result.stdout and "⚠" not in result.stdout
    (folder,) = run_folders(runs_dir)
    summary = read_json(folder / "summary.json")
    with open(folder / "history.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert not any(key.startswith("val_") for key in rows[0])
    assert summary["monitor"] is None and summary["best_epoch"] == 3 == len(rows)
    assert summary["data"]["train"] == 1437 and summary["data"]["validation"] == 0  # all 1,797 but the test split
    assert summary["overfitting"] is None and any("no validation data" in note for note in summary["notes"])
    assert cli("evaluate", folder.name).exit_code == 0
    assert read_json(folder / "evaluation.json")["samples"] == 360
    no_split = cli("evaluate", folder.name, "--split", "validation")
    assert no_split.exit_code == 2 and "it has no validation split" in no_split.stderr
    for refusal in (refused, refused_default):
        assert refusal.exit_code == 2
        assert "training.early_stopping: monitors val_loss, and there is no validation data" in (
            " ".join(refusal.stderr.split()))
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["runs"][0]["final loss"] == summary["final"]["loss"]


def test_training_on_all_the_data_can_still_rank_by_a_training_metric(cli, write_config, runs_dir):
    path = write_config(TINY_CONFIG.replace("validation_split: 0.2", "validation_split: 0"))

    assert cli("train", str(path), "--set", "training.epochs=3", "--set", "training.monitor=loss").exit_code == 0

    summary = read_json(run_folders(runs_dir)[0] / "summary.json")
    assert summary["monitor"] == "loss" and summary["best"]["loss"] == min(
        summary["best"]["loss"], summary["final"]["loss"])


def test_an_image_folder_with_validation_trains_on_both_when_asked(write_config, digits_folder):
    import shutil

    folder = digits_folder.parent / "with-validation"
    if not folder.exists():
        shutil.copytree(digits_folder, folder)
        shutil.copytree(digits_folder / "test", folder / "validation")
    text = TINY_CONFIG.replace("name: digits", f"name: image_directory\n  path: {folder}\n  image_size: [8, 8]")
    text = text.replace("validation_split: 0.2", "validation_split: 0\n  color_mode: grayscale")

    splits = load_dataset(load_config(write_config(text)))

    assert len(splits.validation) == 0 and len(splits.train) == 1437 + 360


def test_epochs_of_n_batches_go_round_the_data_in_a_new_order_each_time(cli, write_config, runs_dir):
    config = load_config(write_config(TINY_CONFIG))
    splits = load_dataset(config)
    order = EpochOrder(config.seed)
    batches_per_visit = -(-len(splits.train) // 64)  # 18: the last one holds 1149 - 17 * 64 = 61

    endless = [labels for _, labels in stream(splits, "train", 64, order, first_batch=0).take(2 * batches_per_visit)]
    from_visit_two = [labels for _, labels in stream(splits, "train", 64, order, first_batch=batches_per_visit).take(3)]
    result = cli("train", str(write_config(TINY_CONFIG)), "--set", "training.steps_per_epoch=5",
                 "--set", "training.epochs=3")

    first_visit = np.concatenate([np.asarray(b) for b in endless[:batches_per_visit]])
    second_visit = np.concatenate([np.asarray(b) for b in endless[batches_per_visit:]])
    assert sorted(first_visit) == sorted(second_visit) == sorted(splits.train.labels)
    assert not np.array_equal(first_visit, second_visit)  # shuffled anew
    for a, b in zip(endless[batches_per_visit:], from_visit_two):  # a resumed epoch starts where it should
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert samples_in_batches(len(splits.train), 64, 15, 5) == 64 * 4 + 61  # the 18th is short
    assert result.exit_code == 0, result.output
    summary = read_json(run_folders(runs_dir)[0] / "summary.json")
    assert summary["epochs_run"] == 3
    assert summary["samples_per_second"] == pytest.approx(3 * 5 * 64 / summary["fit_seconds"], rel=0.01)


def test_preprocess_none_feeds_the_base_the_dataset_s_pixels(write_config, digits_folder):
    text = TINY_CONFIG.replace("name: digits", f"name: image_directory\n  path: {digits_folder}\n  image_size: [32, 32]")
    base = "  base: {application: MobileNetV2, weights: none, preprocess: none}\n"
    text = text.replace("model:\n  layers:", f"model:\n{base}  layers:")
    config = load_config(write_config(text), ["dataset.normalize=true", "model.layers.0=GlobalAveragePooling2D"])
    own = load_config(write_config(text), ["model.base.preprocess=application", "model.layers.0=GlobalAveragePooling2D"])

    splits = load_dataset(config)
    parts = build_model(config, splits.input_shape)
    pixels, _ = next(iter(stream(splits, "train", 64)))

    assert [type(layer).__name__ for layer in parts.feature_extractor.layers] == ["Functional"]  # no preprocess_input
    assert 0.0 <= float(np.min(pixels)) and float(np.max(pixels)) <= 1.0
    assert own.dataset.normalize is False  # with the application's own preprocessing: raw pixels
    with pytest.raises(ConfigError, match="set `model.base.preprocess: none` to feed it pixels in"):
        load_config(write_config(text), ["dataset.normalize=true", "model.base.preprocess=application",
                                         "model.layers.0=GlobalAveragePooling2D"])


def test_an_application_base_on_one_channel_or_with_a_file_of_no_weights_is_one_located_line(
        cli, write_config, runs_dir, tmp_path, digits_folder):
    base = "  base: {application: VGG16, weights: none, trainable: false}\n"
    gray = write_config(TINY_CONFIG.replace("name: digits", f"name: image_directory\n  path: {digits_folder}\n  "
                                            "image_size: [32, 32]\n  color_mode: grayscale")
                        .replace("model:\n  layers:", f"model:\n{base}  layers:"))
    not_weights = tmp_path / "weights.h5"
    not_weights.write_text("epoch,loss\n")

    one_channel = cli("check", str(gray))
    mobile = cli("check", str(gray), "--set", "model.base.application=MobileNetV2")  # its preprocessing takes any
    colour = cli("check", str(gray), "--set", "dataset.color_mode=rgb", "--set", f"model.base.weights={not_weights}")

    assert one_channel.exit_code == 2 and "config.yaml:10: model.base: VGG16's preprocessing reads images of 3 channels " \
        "(red, green, blue), and these are of 1 channel" in " ".join(one_channel.stderr.split())  # Keras's text, cut off
    assert mobile.exit_code == 0, mobile.output
    assert colour.exit_code == 2 and f"model.base.weights: {not_weights} holds no weights Keras can load into VGG16" \
        in " ".join(colour.stderr.split()), colour.output  # said to be imagenet weights that cannot be downloaded


def test_jit_compile_is_never_dropped_in_silence(cli, write_config, runs_dir):
    text = TINY_CONFIG.replace("model:\n  layers:", "model:\n  augmentation:\n    - RandomRotation: {factor: 0.1}\n  layers:")

    result = cli("check", str(write_config(text)), "--set", "training.jit_compile=true")

    assert result.exit_code == 2
    assert ("training.jit_compile: Keras cannot compile this model with XLA (RandomRotation does not support it)"
            in " ".join(result.stderr.split()))


def test_noise_features_and_shuffled_labels_change_only_what_they_say(write_config):
    plain = load_dataset(load_config(write_config(TINY_CONFIG)))
    noisy = load_dataset(load_config(write_config(TINY_CONFIG), ["dataset.noise_features={count: 64}"]))
    zeros = load_dataset(load_config(write_config(TINY_CONFIG), ["dataset.noise_features={count: 64, kind: zeros}"]))
    shuffled = load_dataset(load_config(write_config(TINY_CONFIG), ["dataset.shuffle_labels=true"]))

    assert noisy.input_shape == zeros.input_shape == (128,)  # 8x8 pixels flattened, then 64 more
    x, _ = next(iter(stream(noisy, "train", 2048)))
    extra = np.asarray(x)[:, 64:]
    assert extra.min() >= 0 and extra.max() <= 1 and extra.std() > 0.2  # uniform over the pixels' range
    assert not np.asarray(next(iter(stream(zeros, "test", 2048)))[0])[:, 64:].any()
    assert sorted(shuffled.train.labels) == sorted(plain.train.labels)
    assert np.mean(shuffled.train.labels == plain.train.labels) < 0.2  # the same labels, at random
    assert np.array_equal(shuffled.validation.labels, plain.validation.labels)  # validation is left alone
    assert np.array_equal(shuffled.test.labels, plain.test.labels)


def test_k_fold_curves_show_the_mean_of_the_folds_with_a_band(tmp_path):
    from matplotlib.figure import Figure

    from dlcli.curves.plots import _fold_lines, plot_curves, smoothed

    rows = [
        {"fold": fold, "epoch": epoch, "loss": 1.0 / epoch, "val_loss": fold + 1.0 / epoch}
        for fold in (1, 2, 3) for epoch in range(1, 6)
    ]
    axis = Figure().subplots()
    _fold_lines(axis, rows, [1, 2, 3], "val_loss", "tab:orange", "validation", 0.0, 2)

    *faint, mean = axis.lines
    assert len(faint) == 3 and all(line.get_alpha() < 0.5 for line in faint)
    assert list(mean.get_xdata()) == [2, 3, 4, 5]  # from_epoch 2
    assert np.allclose(mean.get_ydata(), [2 + 1 / e for e in (2, 3, 4, 5)])  # the mean over the folds
    assert len(axis.collections) == 1  # the ±1 std band
    assert smoothed([1.0, 0.0, 0.0], 0.5) == [1.0, 0.5, 0.25]
    plot_curves(rows, tmp_path / "curves.png", "k-fold", smooth=0.9, from_epoch=2)
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_a_plot_from_an_epoch_past_the_last_draws_them_all_and_says_so(tmp_path, monkeypatch):
    from dlcli.curves import plots

    drawn = {}
    monkeypatch.setattr(plots, "_save", lambda figure, path, title: drawn.update(figure=figure, title=title))
    rows = [{"epoch": epoch, "loss": 1.0 / epoch, "val_loss": 1.0 / epoch} for epoch in (1, 2)]

    plots.plot_curves(rows, tmp_path / "curves.png", "run", from_epoch=5)  # the run stopped before epoch 5

    assert "plot.from_epoch 5 is past the last epoch, 2: all shown" in drawn["title"]
    assert [list(line.get_xdata()) for line in drawn["figure"].axes[0].lines] == [[1, 2], [1, 2]]  # it was blank


def test_a_layer_of_one_input_given_several_is_refused(cli, write_config):
    result = cli("check", str(write_config(RESIDUAL)), "--set", "model.layers.5=GlobalAveragePooling2D",
                 "--set", "model.layers.5={Dense: {units: 4, inputs: [main, shortcut]}}")

    assert result.exit_code == 2
    assert "Dense takes one input; merge main, shortcut first" in " ".join(result.stderr.split())
