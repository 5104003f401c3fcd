"""Device settings: measured fast defaults, mixed precision, tf.distribute."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_CONFIG, read_json, run_folders
from dlcli.config import load_config
from dlcli.errors import ConfigError
from dlcli.store.runs import CHECKPOINT_DIR, OLD_WEIGHTS_FILE, STATE_FILE
from dlcli.training.devices import _cpu_has_bfloat16, has_gpu, speed_settings


def test_auto_settings_follow_the_device(write_config):
    settings = speed_settings(load_config(write_config(TINY_CONFIG)))
    chosen = speed_settings(load_config(write_config(TINY_CONFIG), [
        "training.jit_compile=true", "training.steps_per_execution=4", "training.cache=false",
    ]))

    if not has_gpu():
        assert (settings.device, settings.jit_compile, settings.steps_per_execution) == ("cpu", False, 32)
    assert (chosen.jit_compile, chosen.steps_per_execution, chosen.cache) == (True, 4, "none")


def test_the_run_records_its_speed_settings(cli, tiny_config, runs_dir):
    assert cli("train", str(tiny_config), "--set", "training.prefetch=false").exit_code == 0

    (folder,) = run_folders(runs_dir)
    speed = read_json(folder / "summary.json")["speed"]
    assert speed["prefetch"] is False and speed["distribute"] == "none" and speed["replicas"] == 1
    assert read_json(folder / "summary.json")["samples_per_second"] > 0


@pytest.mark.skipif(has_gpu(), reason="the CPU path; a GPU takes mixed_float16")
def test_mixed_precision_on_this_cpu(cli, tiny_config, runs_dir):
    result = cli("train", str(tiny_config), "--set", "training.mixed_precision=true")

    if not _cpu_has_bfloat16():
        assert result.exit_code == 2 and "lacks bfloat16 instructions" in result.stderr
        return
    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    assert read_json(folder / "summary.json")["speed"]["mixed_precision"] == "mixed_bfloat16"
    import keras

    model = keras.saving.load_model(folder / "model.keras")
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"  # the output stays float32
    assert model.layers[-2].dtype_policy.compute_dtype == "bfloat16"


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from dlcli.config import load_config
from dlcli.training.train import train
result = train(load_config(sys.argv[1], sys.argv[3:]), Path(sys.argv[2]))
print(result.summary["speed"]["replicas"], result.summary["final"]["loss"])
"""


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(write_config, tmp_path):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 1"))

    def start(*overrides):  # both at once: each process spends most of its time importing TensorFlow
        command = [sys.executable, "-c", MIRRORED, str(config), str(tmp_path / "runs"), *overrides]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(process):
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr[-2000:]
        replicas, loss = stdout.split()[-2:]
        return int(replicas), float(loss)

    one, two = start(), start("training.distribute=mirrored", "training.devices=[/cpu:0, /cpu:1]")
    (one_replicas, one_loss), (two_replicas, two_loss) = result(one), result(two)

    assert (one_replicas, two_replicas) == (1, 2)
    assert two_loss == pytest.approx(one_loss, abs=0.05)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for one in sockets:
        one.bind(("127.0.0.1", 0))
    ports = [one.getsockname()[1] for one in sockets]
    for one in sockets:
        one.close()
    return ports


def run_workers(*commands: list[str]) -> list[tuple[int, str, str]]:
    """Each `dlcli` command as one worker of a cluster on 127.0.0.1; their (returncode, stdout, stderr)."""
    cluster = [f"127.0.0.1:{port}" for port in free_ports(len(commands))]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "dlcli", *command],
            env={**os.environ,
                 "TF_CONFIG": json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index, command in enumerate(commands)
    ]
    outputs = [worker.communicate(timeout=180) for worker in workers]
    return [(worker.returncode, *output) for worker, output in zip(workers, outputs)]


def train_two_workers(config: Path, runs_dir: Path) -> None:
    command = ["train", str(config), "--set", "training.distribute=multi_worker", "--runs-dir", str(runs_dir)]
    for returncode, stdout, stderr in run_workers(command, command):
        assert returncode == 0, (stdout[-2000:], stderr[-2000:])


@pytest.fixture(scope="module")
def two_worker_runs(tmp_path_factory):
    """(config, the chief's run, the other worker's run) of one training by two workers."""
    root = tmp_path_factory.mktemp("workers")
    config = root / "config.yaml"
    config.write_text(TINY_CONFIG.replace("epochs: 2", "epochs: 1"))
    train_two_workers(config, root / "runs")
    return (config, *run_folders(root / "runs"))  # the worker's run is named after the chief's: it sorts second


@pytest.mark.slow
def test_two_workers_on_localhost_train_one_model_and_match_one_device(cli, two_worker_runs, runs_dir):
    config, chief, other = two_worker_runs
    assert chief.name.endswith("-tiny") and other.name.endswith("-tiny-worker1")

    assert cli("train", str(config)).exit_code == 0
    (single,) = run_folders(runs_dir)

    summaries = [read_json(folder / "summary.json") for folder in (chief, other, single)]
    assert [s["speed"]["replicas"] for s in summaries] == [2, 2, 1]
    assert [s["speed"]["task"] for s in summaries] == ["worker0", "worker1", None]
    # synchronous training: both workers end with the same model
    assert summaries[0]["final"] == summaries[1]["final"]
    assert summaries[0]["final"]["loss"] == pytest.approx(summaries[2]["final"]["loss"], abs=0.05)


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "multi_worker reads its cluster from the TF_CONFIG environment variable, which is not set"),
        ("{not json", "TF_CONFIG is not a cluster with this task in it (JSONDecodeError"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "(IndexError: list index out of range)"),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task type is 'ps'"),
    ],
)
def test_multi_worker_needs_a_cluster_in_tf_config(cli, write_config, runs_dir, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)

    result = cli("train", str(write_config(TINY_CONFIG)), "--set", "training.distribute=multi_worker")

    assert result.exit_code == 2
    assert "training.distribute: " in result.stderr and message in result.stderr
    assert run_folders(runs_dir) == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.devices=[/gpu:0]"], "`devices` chooses the devices of `distribute: mirrored`"),
        (["training.distribute=mirrored", "training.steps_per_execution=8"], "use 1 (or auto)"),
        (["training.distribute=mirrored", "training.kfold=2"], "not with `kfold`"),
        (["training.distribute=mirrored", "training.devices=[/gpu:99]"], "/gpu:99 is not a device of this machine (it has "),
        (["training.distribute=mirrored", "training.devices=[gpu7]"], "'gpu7' is not a device's name: write them as /gpu:0"),
    ],
)
def test_distribution_settings_that_cannot_work(cli, write_config, runs_dir, overrides, message):
    result = cli("train", str(write_config(TINY_CONFIG)), *(a for o in overrides for a in ("--set", o)))

    assert result.exit_code == 2
    assert message in result.stderr
    assert run_folders(runs_dir) == []


def test_mixed_precision_needs_a_capable_device(write_config, monkeypatch):
    monkeypatch.setattr("dlcli.training.devices.has_gpu", lambda: False)
    monkeypatch.setattr("dlcli.training.devices._cpu_has_bfloat16", lambda: False)

    with pytest.raises(ConfigError, match="training.mixed_precision: this machine has no GPU"):
        speed_settings(load_config(write_config(TINY_CONFIG), ["training.mixed_precision=true"]))


@pytest.mark.slow
def test_workers_that_saved_different_epochs_refuse_to_resume(two_worker_runs, runs_dir):
    for folder in two_worker_runs[1:]:
        shutil.copytree(folder, runs_dir / folder.name)
    chief, other = run_folders(runs_dir)
    # as if both had been stopped, the worker before it could save its epoch 2 (the
    # check comes before any weights are read, so the weights file is only a stand-in)
    for folder, saved_epoch in ((chief, 2), (other, 1)):
        info = read_json(folder / "run.json")
        (folder / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
        (folder / "summary.json").unlink()  # written only once training has ended
        (folder / CHECKPOINT_DIR).mkdir()
        (folder / CHECKPOINT_DIR / STATE_FILE).write_text(json.dumps({"epoch": saved_epoch}))
        (folder / CHECKPOINT_DIR / OLD_WEIGHTS_FILE).write_bytes(b"")

    results = run_workers(*(["train", "--resume", folder.name, "--runs-dir", str(runs_dir)] for folder in (chief, other)))

    for (returncode, _, stderr), folder in zip(results, (chief, other)):
        assert returncode == 2, stderr[-2000:]
        assert f"error: run {folder.name}: the workers saved different last epochs (epoch 1, epoch 2;" in stderr
        assert read_json(folder / "run.json")["status"] == "interrupted"  # left as it was


def test_an_augmentation_is_tried_under_a_distribution_strategy_as_without_one(cli, write_config):
    """The check's copy of the layer makes its seed variables inside the strategy's scope."""
    with_layer = TINY_CONFIG.replace("model:\n", "model:\n  augmentation: [{RandomRotation: {factor: FACTOR}}]\n")
    idle, moving = (write_config(with_layer.replace("FACTOR", factor), name) for factor, name in
                    (("0", "idle.yaml"), ("0.1", "moving.yaml")))

    refused = cli("check", str(idle), "--set", "training.distribute=mirrored")
    checked = cli("check", str(moving), "--set", "training.distribute=mirrored")

    assert refused.exit_code == 2 and "RandomRotation changed none of 32 random examples" in refused.stderr, refused.output
    assert checked.exit_code == 0, checked.output
