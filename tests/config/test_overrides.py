"""`--set KEY=VALUE`: dotted paths, list indices, YAML-typed values, errors naming the path."""

from __future__ import annotations

import pytest
import yaml

from dlcli.config import load_config
from dlcli.errors import ConfigError
from dlcli.keys import flattened


def test_scalars_nested_values_and_list_indices(tiny_config):
    config = load_config(
        tiny_config,
        [
            "training.epochs=3",
            "optimizer.learning_rate=1e-4",
            "model.layers.1.Dense.units=256",
            "model.layers[2].Dense.activation=sigmoid",
            "dataset.classes=[3, 5]",
        ],
    )

    assert config.training.epochs == 3
    assert config.optimizer.kwargs == {"learning_rate": 1e-4}
    assert config.model.layers[1] == {"Dense": {"units": 256, "activation": "relu"}}
    assert config.model.layers[2]["Dense"]["activation"] == "sigmoid"
    assert config.dataset.classes == [3, 5]


def test_override_onto_shorthand_expands_it(write_config):
    from conftest import TINY_CONFIG

    path = write_config(TINY_CONFIG.replace("{name: adam, learning_rate: 0.01}", "rmsprop"))

    config = load_config(path, ["optimizer.learning_rate=0.5", "loss=mse"])

    assert (config.optimizer.name, config.optimizer.kwargs) == ("rmsprop", {"learning_rate": 0.5})
    assert config.loss.name == "mse"


def test_one_metric_may_be_named_without_a_list_as_a_per_output_one_may(tiny_config):
    config = load_config(tiny_config, ["metrics=accuracy"])

    assert [metric.name for metric in config.metrics] == ["accuracy"]


def test_an_absent_section_with_defaults_can_be_set(write_config):
    from conftest import TINY_CONFIG

    without_training = TINY_CONFIG[: TINY_CONFIG.index("training:")]

    config = load_config(write_config(without_training), ["training.batch_size=7"])

    assert (config.training.batch_size, config.training.epochs) == (7, 10)


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epoch=3", "--set training.epoch=3: training: unknown key 'epoch'; did you mean 'epochs'?"),
        ("not.a.key=3", "--set not.a.key=3: unknown key 'not'; valid keys: name, seed, dataset,"),  # no file line
        ("model.layers.7.Dense.units=3",
         "--set model.layers.7.Dense.units=3: model.layers has 3 items (indices 0..2); there is no item '7'"),
        ("model.layers.1.Conv2D.filters=8",
         "--set model.layers.1.Conv2D.filters=8: model.layers.1 is Dense, not Conv2D"),
        ("seed.value=1", "--set seed.value=1: seed is 0, not a mapping or list, so it has no 'value'"),
        ("training.epochs=[1", "--set training.epochs=[1: cannot read the value as YAML"),
        ("training.epochs", "--set training.epochs: expected KEY=VALUE, e.g. training.epochs=3"),
        ("a..b=1", "--set a..b=1: 'a..b' is not a key path: write it as training.epochs"),
        (".training.epochs=2", "--set .training.epochs=2: '.training.epochs' is not a key path"),
        ("training.epochs=ten", "--set training.epochs=ten: training.epochs: input should be a valid integer"),
        ("dataset.classes.0=1", "--set dataset.classes.0=1: dataset.classes is not set, so it has no item 0: give the "
         "whole list, e.g. --set dataset.classes=[...]"),  # not "expected a list (got {'0': 1})"
        ("model.layers.1={}", "--set model.layers.1={}: model.layers.1: an item names one class, not 0"),  # not the file's line
    ],
)
def test_bad_override_names_itself(tiny_config, override, message):
    with pytest.raises(ConfigError) as raised:
        load_config(tiny_config, [override])

    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("override", [
    "name=" + "a" * 5000, "a." * 3000 + "=1", "seed." + "a" * 5000 + "=1", "x" * 5000 + ".0=1",
    "model.layers.0." + "x" * 5000 + ".units=1", "model.layers." + "x" * 5000 + "=1",
])
def test_a_value_thousands_of_characters_long_is_cut_where_a_message_echoes_it(tiny_config, override):
    with pytest.raises(ConfigError) as raised:
        load_config(tiny_config, [override])

    assert len(str(raised.value)) < 400, str(raised.value)[:400]  # it was echoed whole: 5,000 characters


def test_error_in_an_overridden_value_points_at_the_override_not_the_file(tiny_config):
    # Keras names are resolved at build time, through the locations kept here.
    config = load_config(tiny_config, ["metrics=[acuracy]"])

    assert config.error(("metrics", 0), "x").args[0] == "--set metrics=[acuracy]: metrics.0: x"


def test_a_callback_section_is_a_switch_too(tiny_config):
    off = load_config(tiny_config, ["training.early_stopping=false"])  # it had been refused: "expected a mapping"
    on = load_config(tiny_config, ["training.reduce_lr_on_plateau=true"])

    assert off.training.early_stopping is None and "early_stopping" not in yaml.safe_load(off.to_yaml())["training"]
    assert on.training.reduce_lr_on_plateau == {}


def test_resolved_config_round_trips(tiny_config, tmp_path):
    config = load_config(tiny_config, ["training.epochs=5"])
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(config.to_yaml())

    again = load_config(resolved)

    assert again.model_dump() == config.model_dump()
    written = yaml.safe_load(config.to_yaml())
    assert written["training"] == {
        "epochs": 5, "batch_size": 64, "monitor": "val_loss", "monitor_mode": "auto",
        "overfitting": {"monitor": "val_loss", "mode": "auto", "patience": 3, "min_delta": 0.0, "stop": False},
        "tensorboard": True, "plot": {"smooth": 0.0, "from_epoch": 1}, "callbacks": [],
        "steps_per_execution": "auto", "jit_compile": "auto",
        "cache": "auto", "prefetch": True, "mixed_precision": False, "distribute": "none",
    }
    assert written["dataset"]["normalize"] is True  # defaults are filled in
    assert written["model"]["layers"][0] == {"Flatten": {}}


def test_name_defaults_to_the_file_stem(write_config):
    from conftest import TINY_CONFIG

    path = write_config(TINY_CONFIG.replace("name: tiny\n", ""), filename="my experiment.yaml")

    assert load_config(path).name == "my-experiment"


def test_a_dataset_can_be_named_alone(write_config):
    from conftest import TINY_CONFIG

    text = TINY_CONFIG.replace("dataset:\n  name: digits\n  validation_split: 0.2\n", "dataset: digits\n")

    config = load_config(write_config(text))

    assert (config.dataset.name, config.dataset.validation_split) == ("digits", 0.2)


def test_every_flattened_key_is_one_set_takes(tiny_config):
    """compare's columns, the index's `--where` keys and error messages spell a key one way: `--set`'s."""
    config = load_config(tiny_config)
    resolved = yaml.safe_load(config.to_yaml())
    keys = dict(flattened(resolved))
    assert "model.layers.1.Dense.units" in keys
    for key, value in keys.items():
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        again = load_config(tiny_config, [f"{key}={text}"])
        assert dict(flattened(yaml.safe_load(again.to_yaml())))[key] == value, key


def test_an_override_changes_only_the_aliased_copy_it_names(write_config):
    text = (
        "name: aliased\nseed: 0\ndataset: {name: digits}\nmodel:\n  layers:\n    - Flatten\n"
        "    - Dense: &hidden {units: 16, activation: relu}\n    - Dense: *hidden\n"
        "    - Dense: {units: 10, activation: softmax}\n"
        "optimizer: adam\nloss: sparse_categorical_crossentropy\nmetrics: [accuracy]\ntraining: {epochs: 1}\n"
    )
    config = load_config(write_config(text), ["model.layers.1.Dense.units=32"])

    assert config.model.layers[1] == {"Dense": {"units": 32, "activation": "relu"}}
    assert config.model.layers[2] == {"Dense": {"units": 16, "activation": "relu"}}  # its alias is its own copy


@pytest.mark.parametrize("layer", [
    "LayerNormalization: {axis: [1, 2]}", "ZeroPadding1D: {padding: [1, 2]}", "Normalization: {axis: null}",
], ids=["axis list", "padding pair", "axis null"])
def test_arguments_whose_default_is_a_number_may_be_lists_or_null(write_config, layer):
    """Keras takes these: only a word or a switch where a number belongs is refused before Keras sees it."""
    from dlcli.build.models import _check_arguments, keras_class

    config = load_config(write_config())
    ((name, arguments),) = yaml.safe_load(layer).items()
    import keras

    _check_arguments(config, ("model", "layers", 0), keras_class(config, (), keras.layers, keras.layers.Layer, name, "layer"),
                     arguments)


@pytest.mark.parametrize("file_name, name", [
    ("ñandú modelo.yaml", "nandu-modelo"),  # accents dropped, not the letters
    ("a" * 80 + ".yaml", "a" * 64),  # at most a name's 64 characters
    ("--.yaml", "run"),
])
def test_a_config_without_a_name_is_named_after_its_file(tmp_path, file_name, name):
    from conftest import TINY_CONFIG

    path = tmp_path / file_name
    path.write_text(TINY_CONFIG.replace("name: tiny\n", ""))

    assert load_config(path).name == name


def test_a_name_taken_from_the_file_name_is_blamed_on_the_file_name(tmp_path):
    from conftest import TINY_CONFIG

    path = tmp_path / "latest.yaml"
    path.write_text(TINY_CONFIG.replace("name: tiny\n", ""))

    from dlcli.config import check_new_run

    with pytest.raises(ConfigError) as raised:
        check_new_run(load_config(path))

    assert str(raised.value).startswith(f"{path} (named after the file: no `name:` in it): name: 'latest' would be read")
