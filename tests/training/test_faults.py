"""Faults: full disks, unwritable folders, concurrent runs, and configs no parser should choke on."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import REPO, TINY_CONFIG, read_json, run_folders
from dlcli.config import load_config
from dlcli.errors import ConfigError


def test_runs_folder_that_is_a_file(cli, tiny_config, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")

    result = cli("train", str(tiny_config), "--runs-dir", str(blocker / "runs"), runs=False)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot create the runs folder {blocker / 'runs'}")


def test_a_run_folder_that_cannot_be_written_is_not_left_behind(cli, tiny_config, runs_dir, monkeypatch):
    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("dlcli.store.documents.write_atomic", disk_full)

    result = cli("train", str(tiny_config))

    assert result.exit_code == 2
    assert "cannot write the run folder" in result.stderr and "No space left on device" in result.stderr
    assert run_folders(runs_dir) == []


def test_disk_full_during_training_fails_the_run_with_advice(cli, tiny_config, runs_dir, monkeypatch):
    import dlcli.training.checkpoint

    real_write = dlcli.training.checkpoint.write_atomic
    writes = {"history": 0}

    def fill_up_on_second_epoch(path, content):
        if path.name == "history.csv":
            writes["history"] += 1
            if writes["history"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, content)

    monkeypatch.setattr(dlcli.training.checkpoint, "write_atomic", fill_up_on_second_epoch)

    result = cli("train", str(tiny_config))

    assert result.exit_code == 1
    (folder,) = run_folders(runs_dir)
    message = result.stderr.strip()
    assert message.startswith(f"error: run {folder.name} failed: cannot write {folder / 'history.csv'}")
    assert "No space left on device; free some disk space, then continue it with: dlcli train --resume" in message
    assert "Traceback" not in result.output
    info = read_json(folder / "run.json")
    assert info["status"] == "failed" and "No space left on device" in info["error"]
    assert len((folder / "history.csv").read_text().splitlines()) == 2  # header and epoch 1, whole


def test_when_even_run_json_cannot_be_written_the_message_says_so(cli, tiny_config, runs_dir, monkeypatch):
    import dlcli.training.checkpoint
    import dlcli.training.train

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dlcli.training.checkpoint, "write_atomic", no_space)
    monkeypatch.setattr(dlcli.training.train, "finish_run", no_space)

    result = cli("train", str(tiny_config))

    assert result.exit_code == 1
    assert "(its run.json could not be updated either: No space left on device)" in result.stderr


@pytest.mark.slow
def test_four_runs_started_together_get_four_folders(tmp_path):
    config = tmp_path / "same.yaml"
    config.write_text(TINY_CONFIG)
    runs = tmp_path / "runs"
    processes = [
        subprocess.Popen([sys.executable, "-m", "dlcli", "train", str(config), "--runs-dir", str(runs)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=240)[1] for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0, 0], errors
    folders = run_folders(runs)
    assert len(folders) == 4 and len({folder.name for folder in folders}) == 4
    for folder in folders:
        assert read_json(folder / "run.json")["status"] == "completed"
        assert (folder / "model.keras").is_file() and (folder / "summary.json").is_file()


# --- fuzzing: any YAML in, a config or a one-line ConfigError out ------------------------

SHIPPED = [yaml.safe_load(path.read_text()) for path in sorted((REPO / "configs").glob("*.yaml"))]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["Dense", "relu", "adam", "digits", "mnist_5k", "1e-4", "-1"]),
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def check_outcome(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message.strip(), message
        assert message.startswith(str(path)), message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=yaml_values)
def test_random_yaml_documents(tmp_path, document):
    check_outcome(tmp_path, yaml.safe_dump(document))


def mutate(config, path, value):
    """Replace the value at `path` (a list of choices into nested dicts/lists) with `value`."""
    node = config
    for choice in path[:-1]:
        if not isinstance(node, (dict, list)) or not node:
            return config
        children = list(node) if isinstance(node, dict) else list(range(len(node)))
        node = node[children[choice % len(children)]]
    if isinstance(node, (dict, list)) and len(node):
        children = list(node) if isinstance(node, dict) else list(range(len(node)))
        node[children[path[-1] % len(children)]] = value
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shipped=st.sampled_from(SHIPPED),
    path=st.lists(st.integers(0, 20), min_size=1, max_size=5),
    value=yaml_values,
)
def test_mutated_shipped_configs(tmp_path, shipped, path, value):
    import copy

    check_outcome(tmp_path, yaml.safe_dump(mutate(copy.deepcopy(shipped), path, value)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text(tmp_path, text):
    check_outcome(tmp_path, text)


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00name: x")

    with pytest.raises(ConfigError, match=r"binary.yaml:1: the config is not UTF-8 text \(byte 0xff\); save it as UTF-8"):
        load_config(path)


def test_non_utf8_bytes_on_a_later_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\ndataset: digits\n# café\n".encode("latin-1"))

    with pytest.raises(ConfigError, match=r"latin1.yaml:3: the config is not UTF-8 text \(byte 0xe9\)"):
        load_config(path)


SET_KEYS = ["training.epochs", "seed", "optimizer.learning_rate", "model.layers", "model.layers[1].Dense",
            "training.early_stopping", "dataset"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(SET_KEYS), value=st.text(max_size=40))
@example(key="training.epochs", value="\\n")  # a backslash and an n, typed: echoed as typed
@example(key="training.epochs", value="1\n2")  # a newline: escaped, the message stays one line
def test_random_set_values(tmp_path, key, value):
    path = tmp_path / "config.yaml"
    path.write_text(TINY_CONFIG)
    try:
        load_config(path, [f"{key}={value}"])
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message and "\r" not in message, message
        if "\\" not in value:  # a backslash the user typed may be echoed; none other appears
            assert "\\n" not in message, message


# Object configs Keras deserializes from inside layer arguments, refused or built, never anything else
nested_objects = st.recursive(
    st.sampled_from([None, 1, 0.5, "relu", "glorot_uniform", "x"]),
    lambda children: st.fixed_dictionaries(
        {"class_name": st.sampled_from(["Lambda", "TFSMLayer", "GlorotUniform", "L2", "Constant", "Dense", "keras>L1"])},
        optional={"config": st.dictionaries(st.sampled_from(["value", "l2", "seed", "function"]), children, max_size=2),
                  "module": st.sampled_from(["keras.initializers", "keras.regularizers", "os", "builtins", 3])},
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def digits_data():
    from dlcli.data import load_dataset

    return load_dataset(load_config(REPO / "configs" / "digits_dense.yaml"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argument=st.sampled_from(["kernel_initializer", "kernel_regularizer", "activation"]), value=nested_objects)
def test_nested_keras_object_configs(tmp_path, digits_data, argument, value):
    from dlcli.training.train import checked_model

    text = TINY_CONFIG.replace("{units: 16, activation: relu}", "{units: 16}")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        config = load_config(path, [f"model.layers[1].Dense.{argument}={yaml.safe_dump(value, default_flow_style=True).strip()}"])
        checked_model(config, digits_data, tmp_path)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message, message
    else:  # built: so nothing refused was anywhere in it
        assert not any(bad in repr(value) for bad in ("'Lambda'", "'TFSMLayer'", "'os'", "'builtins'")), value
