"""Every config in configs/ validates and builds; the offline ones train for an epoch."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from conftest import REPO, encoded, read_json, run_folders
from dlcli.build.models import build_model, compile_model, unfreeze
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.errors import ConfigError

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
NEEDS_DOWNLOAD = {"imdb_multihot", "reuters"}  # keras.datasets files, not in the suite
PHOTO_CONFIGS = {"cats_dogs_scratch", "cats_dogs_augmented", "cats_dogs_vgg16_features", "cats_dogs_finetune"}


def on_digit_photos(folder: Path, size: int = 32) -> list[str]:
    """Run a cats-vs-dogs config on two classes of exported digits, small.

    32x32 is VGG16's smallest input; the from-scratch convnet's five valid
    convolutions and four poolings need about 80x80.
    """
    return [
        f"dataset.path={folder}", f"dataset.image_size=[{size}, {size}]", "dataset.classes=['0', '1']",
    ]


@pytest.fixture(autouse=True)
def from_the_repository(monkeypatch):
    monkeypatch.chdir(REPO)  # configs name data/ relative to the project root


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_validates(path):
    config = load_config(path)

    assert config.name == path.stem.replace("_", "-")
    assert path.read_text().startswith("#"), "configs are documentation: say what the lesson is"


@pytest.mark.parametrize("stem", sorted(NEEDS_DOWNLOAD))
def test_download_configs_build(stem):
    config = load_config(REPO / "configs" / f"{stem}.yaml")

    parts = build_model(config, (config.dataset.num_words,))
    compile_model(config, parts.model)

    assert parts.model.output_shape[-1] in (1, 46)


# mnist_transfer_post needs its pre run; cats_dogs_finetune trains in test_fine_tuning_writes_one_history_with_phases,
# tickets in tests/training/test_named_outputs.py (on a table it writes)
OFFLINE = [p for p in CONFIGS if p.stem not in NEEDS_DOWNLOAD | {"mnist_transfer_post", "cats_dogs_finetune", "tickets"}]


@pytest.mark.parametrize("path", OFFLINE, ids=[p.stem for p in OFFLINE])
@pytest.mark.slow
def test_offline_config_trains_an_epoch(cli, runs_dir, digits_folder, few_digits_folder, path):
    overrides = ["training.epochs=1"]
    if path.stem in PHOTO_CONFIGS:
        overrides += on_digit_photos(digits_folder, 32 if "vgg16" in path.stem else 80)
        overrides += ["model.base.weights=none"] if "vgg16" in path.stem else []
    if path.stem in ("boston_kfold", "boston_kfold_curve"):
        overrides += ["training.kfold=2"]
    if path.stem == "keras_io_residual":  # few digits, small: the graph's four stride-2 stages still fit
        overrides += [f"dataset.path={few_digits_folder}", "dataset.image_size=[16, 16]"]

    result = cli("train", str(path), *(arg for o in overrides for arg in ("--set", o)))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "run.json")["status"] == "completed"


@pytest.mark.slow
def test_transfer_pair_reuses_the_earlier_model(cli, runs_dir):
    assert cli("train", "configs/mnist_transfer_pre.yaml", "--set", "training.epochs=1").exit_code == 0
    (pre_folder,) = run_folders(runs_dir)
    pre = keras.saving.load_model(pre_folder / "model.keras")

    config = load_config("configs/mnist_transfer_post.yaml")
    parts = build_model(config, (28, 28, 1), runs_dir)

    assert [layer.name for layer in parts.base.layers][-1] == "features"
    for before, reused in zip(pre.layers, parts.base.layers[1:]):
        for a, b in zip(before.get_weights(), reused.get_weights()):
            assert np.array_equal(a, b)
    assert not parts.base.trainable

    result = cli("train", "configs/mnist_transfer_post.yaml", "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    post_folder = run_folders(runs_dir)[-1]
    summary = read_json(post_folder / "summary.json")
    resolved = yaml.safe_load((post_folder / "config.yaml").read_text())
    assert resolved["model"]["base"]["run"] == pre_folder.name  # not the name it was given by
    assert summary["data"]["class_mapping"] == {"5": 0, "6": 1, "7": 2, "8": 3, "9": 4}
    assert summary["trainable_parameters"] < summary["parameters"]


def test_photo_configs_without_photos_fail_fast_and_suggest_digits(cli, runs_dir):
    result = cli("train", "configs/cats_dogs_scratch.yaml")

    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "configs/cats_dogs_scratch.yaml:" in message and "dataset.path: data/cats_vs_dogs_small does not exist" in message
    assert "dlcli datasets export digits" in message
    assert run_folders(runs_dir) == []


def test_imagenet_weights_offline_fail_fast_with_the_offline_choices(cli, runs_dir, digits_folder, tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    monkeypatch.setattr("keras.src.utils.file_utils.config.keras_home", lambda: str(tmp_path / "empty-keras-home"))

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    args = [arg for o in on_digit_photos(digits_folder) for arg in ("--set", o)]

    result = cli("train", "configs/cats_dogs_vgg16_features.yaml", *args)

    assert result.exit_code == 2, result.output
    assert "model.base.weights: the imagenet weights of VGG16 are not in the Keras cache" in result.stderr
    assert "use `weights: none`, a weights file, or `base: {run: RUN, until: LAYER}`" in result.stderr
    assert run_folders(runs_dir) == []


def photo_config(digits_folder, *overrides):
    overrides = [*on_digit_photos(digits_folder), "model.base.weights=none", *overrides]
    return load_config(REPO / "configs" / "cats_dogs_finetune.yaml", overrides)


def test_augmentation_is_active_in_training_only(digits_folder):
    config = photo_config(digits_folder)
    keras.utils.set_random_seed(0)
    parts = build_model(config, (32, 32, 3))
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")

    inference = [keras.ops.convert_to_numpy(parts.model(images, training=False)) for _ in range(2)]
    training = [keras.ops.convert_to_numpy(parts.model.layers[0](images, training=True)) for _ in range(2)]

    assert np.array_equal(inference[0], inference[1])
    assert not np.array_equal(training[0], training[1])


@pytest.mark.slow
def test_frozen_base_does_not_change_and_unfrozen_layers_do(digits_folder):
    config = photo_config(digits_folder, "model.augmentation=[]", "training.fine_tune.unfreeze=block5_conv1")
    splits = load_dataset(config)
    keras.utils.set_random_seed(0)
    parts = build_model(config, splits.input_shape)
    compile_model(config, parts.model)
    names = [layer.name for layer in parts.base.layers]
    x_train, y_train = encoded(splits, "train")
    before = {name: [w.copy() for w in parts.base.get_layer(name).get_weights()] for name in names}

    def changed(name: str) -> bool:
        after = parts.base.get_layer(name).get_weights()
        return any(not np.array_equal(a, b) for a, b in zip(before[name], after))

    parts.model.fit(x_train[:64], y_train[:64], epochs=1, verbose=0)
    assert not any(changed(name) for name in names)

    unfreeze(config, parts.base)
    compile_model(config, parts.model, learning_rate=1e-3)
    parts.model.fit(x_train[:64], y_train[:64], epochs=1, verbose=0)
    assert changed("block5_conv1") and changed("block5_conv3")
    assert not changed("block1_conv1") and not changed("block4_conv3")


@pytest.mark.slow
def test_fine_tuning_writes_one_history_with_phases(cli, runs_dir, digits_folder):
    args = [*on_digit_photos(digits_folder), "model.base.weights=none", "training.epochs=2",
            "training.fine_tune.epochs=1", "training.fine_tune.unfreeze=2"]

    result = cli("train", "configs/cats_dogs_finetune.yaml", *(a for o in args for a in ("--set", o)))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    history = (folder / "history.csv").read_text().splitlines()
    assert history[0].startswith("phase,epoch,")
    assert [line.split(",")[:2] for line in history[1:]] == [["1", "1"], ["1", "2"], ["2", "3"]]
    rates = [float(line.split(",")[history[0].split(",").index("learning_rate")]) for line in history[1:]]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-5)
    assert read_json(folder / "summary.json")["fine_tune_from_epoch"] == 3
    model = keras.saving.load_model(folder / "model.keras", safe_mode=True)
    assert model.layers[3].name == "vgg16_preprocessing"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.base=null"], "training.fine_tune: fine-tuning unfreezes a frozen base"),
        (["model.base.precompute=true"], "model.base.precompute: precomputed features cannot see augmentation"),
        (["model.base.application=vgg16"], "model.base.application: unknown application 'vgg16'; did you mean 'VGG16'?"),
        (["training.fine_tune.unfreeze=block5_con1"],
         "training.fine_tune.unfreeze: the base has no layer 'block5_con1'; did you mean 'block5_conv1'?"),
        (["training.fine_tune.unfreeze=top"],
         "the base has no layer 'top'; use all, a number of layers, or a layer name (block1_conv1 ... block5_pool)"),
        (["model.base.weights=missing.h5"], "model.base.weights: no weights file missing.h5"),
        (["model.base.run=x"], "model.base: give either `application`"),
        (["dataset.normalize=true"], "dataset.normalize: a VGG16 base takes raw pixels"),
        (["dataset.num_words=5"], "dataset.num_words: dataset image_directory takes no option 'num_words'"),
    ],
)
def test_model_combinations_that_cannot_work_are_config_errors(digits_folder, overrides, message):
    with pytest.raises(ConfigError) as raised:
        config = photo_config(digits_folder, *overrides)
        build_model(config, (32, 32, 3))

    assert message in str(raised.value)


def test_base_run_with_an_unknown_layer_lists_the_layers(cli, runs_dir):
    assert cli("train", "configs/mnist_transfer_pre.yaml", "--set", "training.epochs=1").exit_code == 0

    result = cli("train", "configs/mnist_transfer_post.yaml", "--set", "model.base.until=featurs")

    assert result.exit_code == 2
    assert "model.base.until: run " in result.stderr and "has no layer 'featurs'; did you mean 'features'?" in result.stderr


def test_unknown_base_run(cli, runs_dir):
    result = cli("train", "configs/mnist_transfer_post.yaml", "--set", "model.base.run=nope")

    assert result.exit_code == 2
    assert "error: --set model.base.run=nope: model.base.run: no run 'nope'" in result.stderr  # where it was named


@pytest.mark.slow
def test_a_precomputed_run_reloads_whole_for_evaluation(cli, runs_dir, digits_folder, recwarn):
    args = [*on_digit_photos(digits_folder), "model.base.weights=none", "training.epochs=1"]
    assert cli("train", "configs/cats_dogs_vgg16_features.yaml", *(a for o in args for a in ("--set", o))).exit_code == 0

    result = cli("evaluate", "latest")

    assert result.exit_code == 0, result.output
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]
    (folder,) = run_folders(runs_dir)
    test_photos = [p for label in ("0", "1") for p in (digits_folder / "test" / label).iterdir()]
    assert read_json(folder / "evaluation.json")["samples"] == len(test_photos)  # raw images through base and head
