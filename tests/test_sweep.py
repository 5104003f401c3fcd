"""dlcli sweep: grids and random searches, each trial an ordinary run; resumable, parallel."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import TINY_CONFIG, read_json, run_folders
from dlcli.sweep import PLAN_FILE, plan_trials


def sweep_folders(runs_dir):
    folder = runs_dir / "sweeps"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_two_by_two_grid_runs_four_trials_two_at_a_time(cli, tiny_config, runs_dir):
    result = cli("sweep", str(tiny_config), "--grid", "training.batch_size=32,64",
                 "--grid", "model.layers.1.Dense.units=8,16", "--set", "training.epochs=1", "--jobs", "2")

    assert result.exit_code == 0, result.output
    (sweep,) = sweep_folders(runs_dir)
    plan = json.loads((sweep / PLAN_FILE).read_text())
    assert [t["status"] for t in plan["trials"]] == ["completed"] * 4
    assert [t["values"] for t in plan["trials"]] == [
        {"training.batch_size": 32, "model.layers.1.Dense.units": 8},
        {"training.batch_size": 32, "model.layers.1.Dense.units": 16},
        {"training.batch_size": 64, "model.layers.1.Dense.units": 8},
        {"training.batch_size": 64, "model.layers.1.Dense.units": 16},
    ]
    runs = [folder for folder in run_folders(runs_dir) if folder.name != "sweeps"]
    assert len(runs) == 4
    for trial in plan["trials"]:
        folder = runs_dir / trial["run"]
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["training"]["batch_size"] == trial["values"]["training.batch_size"]
        assert config["model"]["layers"][1]["Dense"]["units"] == trial["values"]["model.layers.1.Dense.units"]
        assert config["training"]["epochs"] == 1 and "sweep" not in config
        tag = read_json(folder / "run.json")["sweep"]
        assert tag == {"id": sweep.name, "trial": trial["index"], "values": trial["values"]}
    logs = sorted(p.name for p in (sweep / "logs").iterdir())
    assert logs == [f"trial-{n}.log" for n in range(1, 5)]
    assert "batch_size" in result.stdout and "all 4 trials completed" in result.stdout
    compared = json.loads(cli("compare", "--sweep", "latest", "--format", "json").stdout)
    assert compared["differing_keys"] == ["model.layers[1].Dense.units", "training.batch_size"]
    losses = [row["best val_loss"] for row in compared["runs"]]
    assert losses == sorted(losses)  # sorted by the monitored metric, best first


RANDOM_SWEEP = TINY_CONFIG + """\
sweep:
  random:
    trials: 3
    optimizer.learning_rate: {log_uniform: [0.0001, 0.1]}
    model.layers.1.Dense.units: {choice: [8, 16, 32]}
"""


def test_a_random_search_is_reproducible_from_its_seed(write_config):
    config = write_config(RANDOM_SWEEP)

    first, again = plan_trials(config, [], None, seed=1), plan_trials(config, [], None, seed=1)
    other = plan_trials(config, [], None, seed=2)
    with_grid = plan_trials(config, ["training.batch_size=16,32"], 2, seed=1)

    assert [t.values for t in first] == [t.values for t in again]
    assert [t.values for t in first] != [t.values for t in other]
    assert len(first) == 3 and all(1e-4 <= t.values["optimizer.learning_rate"] <= 0.1 for t in first)
    assert len(with_grid) == 4  # the command line's --random 2 wins over the file's 3, times the grid


@pytest.mark.parametrize(
    "grid, message",
    [
        ("training.epochs=1,zero", "trial 2 (training.epochs=zero): --set training.epochs=\"zero\": training.epochs: input should be a valid integer"),
        ("training.epoch=1,2", "trial 1 (training.epoch=1): --set training.epoch=1: training: unknown key 'epoch'; did you mean 'epochs'?"),
        ("model.layers.1.Dense.activation=relu,relux", "trial 2 (model.layers.1.Dense.activation=relux):"),
        ("training.early_stopping={patience: 2},{patiense: 2}", "trial 2 (training.early_stopping={'patiense': 2}): "
         "--set training.early_stopping={\"patiense\": 2}: training.early_stopping: unexpected argument 'patiense'"),
        ("training.distribute=none,multi_worker", "trial 2 (training.distribute=multi_worker): --set "
         "training.distribute=\"multi_worker\": training.distribute: a sweep trains its trials on this machine"),
    ],
)
def test_an_invalid_grid_fails_before_any_trial(cli, tiny_config, runs_dir, grid, message):
    result = cli("sweep", str(tiny_config), "--grid", grid)

    assert result.exit_code == 2
    assert message in result.stderr
    assert sweep_folders(runs_dir) == [] and run_folders(runs_dir) == []


def test_nothing_to_sweep(cli, tiny_config):
    result = cli("sweep", str(tiny_config))

    assert result.exit_code == 2 and "nothing to sweep" in result.stderr


def test_an_interrupted_sweep_resumes_only_what_is_left(cli, write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 4").replace("batch_size: 64", "batch_size: 4"))
    process = subprocess.Popen(
        [sys.executable, "-m", "dlcli", "sweep", str(config), "--grid", "seed=1,2,3", "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while True:  # wait for trial 1 to finish and trial 2 to have trained an epoch
        histories = sorted(runs_dir.glob("*-t2/history.csv"))
        if histories and len(histories[0].read_text().splitlines()) >= 2:
            break
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    import os

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    (sweep,) = sweep_folders(runs_dir)
    assert f"continue it with: dlcli sweep --resume {sweep.name}" in stderr
    plan = json.loads((sweep / PLAN_FILE).read_text())
    assert [t["status"] for t in plan["trials"]] == ["completed", "interrupted", "pending"]
    first_run, second_run = plan["trials"][0]["run"], plan["trials"][1]["run"]
    first_mtime = (runs_dir / first_run / "run.json").stat().st_mtime

    result = cli("sweep", "--resume", sweep.name)

    assert result.exit_code == 0, result.output
    plan = json.loads((sweep / PLAN_FILE).read_text())
    assert [t["status"] for t in plan["trials"]] == ["completed"] * 3
    assert plan["trials"][1]["run"] == second_run  # resumed in its own folder, not started again
    assert (runs_dir / first_run / "run.json").stat().st_mtime == first_mtime  # left alone
    epochs = [line.split(",")[0] for line in (runs_dir / second_run / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [str(n) for n in range(1, 5)]


def test_a_name_too_long_for_the_trial_names_fails_before_any_trial(cli, write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("name: tiny", "name: " + "n" * 62))

    result = cli("sweep", str(config), "--grid", "seed=1,2,3,4,5,6,7,8,9,10")

    assert result.exit_code == 2, result.output
    assert "config.yaml:1: name: 'nnnn" in result.stderr and "shorten it to 60 characters or fewer" in result.stderr
    assert not runs_dir.exists()


def test_a_damaged_plan_is_one_line_on_resume(cli, runs_dir):
    folder = runs_dir / "sweeps" / "20260101-000000-tiny"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text('{"id": "20260101-000000-tiny", "config": "x.y')

    result = cli("sweep", "--resume", folder.name)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: sweep {folder.name}: plan.json is damaged (JSONDecodeError")
    assert f"dlcli compare --sweep {folder.name}" in result.stderr
