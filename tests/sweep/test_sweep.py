"""dlcli sweep: grids and random searches, each trial an ordinary run; resumable, parallel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import TINY_CONFIG, fake_run, read_json, run_folders, summary_with
from dlcli.cli import app
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.store.documents import load_runs
from dlcli.store.runs import PLAN_FILE
from dlcli.sweep.study import Plan, open_study, repeated_status, study_trials, sweep_settings, take_trial


def sweep_folders(runs_dir):
    folder = runs_dir / "sweeps"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.slow
def test_a_two_by_two_grid_runs_four_trials_two_at_a_time(cli, tiny_config, runs_dir):
    result = cli("sweep", str(tiny_config), "--grid", "training.batch_size=32,64",
                 "--grid", "model.layers.1.Dense.units=8,16", "--set", "training.epochs=1", "--jobs", "2",
                 "--prune", "hyperband")  # one epoch each: nothing to prune, but every trial reports to it

    assert result.exit_code == 0, result.output
    (sweep,) = sweep_folders(runs_dir)
    assert f"sweep {sweep.name}: 4 trials (grid, pruning: hyperband), 2 at a time" in result.stderr
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
    assert compared["differing_keys"] == ["model.layers.1.Dense.units", "training.batch_size"]
    losses = [row["best val_loss"] for row in compared["runs"]]
    assert losses == sorted(losses)  # sorted by the monitored metric, best first


RANDOM_SWEEP = TINY_CONFIG + """\
sweep:
  random:
    trials: 3
    optimizer.learning_rate: {log_uniform: [0.0001, 0.1]}
    model.layers.1.Dense.units: {choice: [8, 16, 32]}
"""


def sampled_values(config, tmp_path, seed, grid=(), trials=None, method=None):
    """The values of every trial of a new study of `config`'s sweep, taken in turn (nothing trains)."""
    settings = sweep_settings(load_config(config), list(grid), method, trials, None, seed)
    folder = tmp_path / f"sweep-{seed}-{len(list(tmp_path.iterdir()))}"
    plan = Plan(id=folder.name, config=str(config), overrides=[], name="tiny", study="tiny", settings=settings)
    study = open_study(plan, folder, epochs=2)
    values = []
    while (taken := take_trial(study, plan, folder)) is not None:
        values.append(taken[1])
    return values


def test_a_random_search_is_reproducible_from_its_seed(write_config, tmp_path):
    config = write_config(RANDOM_SWEEP)

    first, again = sampled_values(config, tmp_path, 1), sampled_values(config, tmp_path, 1)
    other = sampled_values(config, tmp_path, 2)
    with_grid = sampled_values(config, tmp_path, 1, grid=["training.batch_size=16,32"], trials=2)

    assert first == again and first != other
    assert len(first) == 3 and all(1e-4 <= v["optimizer.learning_rate"] <= 0.1 for v in first)
    assert all(v["model.layers.1.Dense.units"] in (8, 16, 32) for v in first)
    # the command line's --trials 2 wins over the file's 3, for each grid point
    assert [v["training.batch_size"] for v in with_grid] == [16, 16, 32, 32]
    tpe = sampled_values(config, tmp_path, 1, method="tpe")
    assert len(tpe) == 3 and tpe == sampled_values(config, tmp_path, 1, method="tpe")


@pytest.mark.parametrize(
    "grid, message",
    [
        ("training.epochs=1,zero",
         "trial 2 (training.epochs=zero): training.epochs: input should be a valid integer"),
        ("training.epoch=1,2",
         "trial 1 (training.epoch=1): training: unknown key 'epoch'; did you mean 'epochs'?"),  # no --set was given
        ("epoch=1,2", "error: --grid epoch: trial 1 (epoch=1): unknown key 'epoch'; valid keys: name,"),  # not the file's line
        ("model.layers.1.Dense.activation=relu,relux", "trial 2 (model.layers.1.Dense.activation=relux):"),
        ("training.early_stopping={patience: 2},{patiense: 2}", "trial 2 (training.early_stopping={'patiense': 2}): "
         "training.early_stopping: unexpected argument 'patiense'"),
        ("training.distribute=none,multi_worker", "trial 2 (training.distribute=multi_worker): "
         "training.distribute: a sweep trains its trials on this machine"),
    ],
)
@pytest.mark.slow
def test_an_invalid_grid_fails_before_any_trial(cli, tiny_config, runs_dir, grid, message):
    result = cli("sweep", str(tiny_config), "--grid", grid)

    assert result.exit_code == 2
    assert message in result.stderr
    assert sweep_folders(runs_dir) == [] and run_folders(runs_dir) == []


def test_too_many_seeds_and_an_empty_sweep_id_are_one_line(cli, tiny_config, runs_dir):
    repeated = cli("train", str(tiny_config), "--repeat", "4294967295")
    empty = cli("sweep", "--resume", "")

    assert repeated.exit_code == 2 and "--repeat 4294967295: at most 1000 seeds a group" in repeated.stderr
    assert empty.exit_code == 2 and "an empty sweep id" in empty.stderr, empty.output
    assert run_folders(runs_dir) == []


@pytest.mark.parametrize("options, message", [
    (["--seeds", "-1,2"], "error: --seeds (2 listed): seed -1 is outside 0 to 4294967295: give seeds from 0"),
    (["--set", "seed=4294967295", "--repeat", "2"],
     "error: --repeat 2: seed 4294967296 is outside 0 to 4294967295: start from a lower seed"),
    (["--seeds", "7"], "error: --seeds (1 listed): one seed is one run, no group to compare: list two or more, or train it "
     "alone with --set seed=7"),  # as --repeat 1 is refused
    (["--seeds", "-1"], "error: --seeds (1 listed): seed -1 is outside 0 to 4294967295: give seeds from 0"),
], ids=["a negative seed listed", "a repeat past the largest seed", "a single seed",
        "a single seed out of range"])  # it was told to `--set seed=-1`, which is refused too
def test_a_seed_out_of_range_is_blamed_on_the_option_that_gave_it(cli, tiny_config, runs_dir, options, message):
    result = cli("train", str(tiny_config), *options)

    assert result.exit_code == 2 and result.stderr.strip() == message, result.output  # not on a --grid never given
    assert run_folders(runs_dir) == []


def test_check_validates_every_value_the_sweep_section_gives_a_trial(cli, write_config, runs_dir):
    swept = write_config(TINY_CONFIG + "sweep:\n  method: tpe\n  trials: 3\n  params:\n    training.epochs: {int: [-5, 3]}\n")
    misspelt = write_config(TINY_CONFIG + "sweep:\n  grid:\n    training.epoch: [1, 2]\n", "misspelt.yaml")
    good = write_config(TINY_CONFIG + "sweep:\n  grid:\n    training.batch_size: [16, 32]\n", "good.yaml")
    settings_alone = write_config(TINY_CONFIG + "sweep:\n  seed: 3\n", "settings.yaml")  # its keys come by --grid
    unbuilt = write_config(TINY_CONFIG + "sweep:\n  grid:\n    model.layers.1.Dense.units: [8, -1]\n", "unbuilt.yaml")
    argument = write_config(TINY_CONFIG + "sweep:\n  method: random\n  trials: 2\n  params:\n"
                            "    optimizer.learning_rat: {log_uniform: [1.0e-4, 1.0e-2]}\n", "argument.yaml")

    low, typo, fine = cli("check", str(swept)), cli("check", str(misspelt)), cli("check", str(good))
    assert cli("check", str(settings_alone)).exit_code == 0
    no_validation = write_config(TINY_CONFIG.replace("batch_size: 64", "batch_size: 64\n  monitor: val_accuracy")
                                 + "sweep:\n  grid:\n    dataset.validation_split: [0.2, 0]\n", "no_validation.yaml")
    unwatched = cli("check", str(no_validation))  # the trial checked as `dlcli train` checks a config: it trained
    assert unwatched.exit_code == 2 and "trial 2 (dataset.validation_split=0): " in unwatched.stderr \
        and "training.monitor: monitors val_accuracy, and there is no validation data" in unwatched.stderr, unwatched.output
    negative, misnamed = cli("check", str(unbuilt)), cli("check", str(argument))  # each passed `check`, refused by `sweep`
    assert negative.exit_code == 2 and "trial 2 (model.layers.1.Dense.units=-1): model.layers.1.Dense.units: Received " \
        "an invalid value for `units`" in negative.stderr, negative.output
    assert misnamed.exit_code == 2 and "optimizer: unexpected argument 'learning_rat'; did you mean 'learning_rate'?" \
        in misnamed.stderr, misnamed.output

    assert low.exit_code == 2 and "values training.epochs=-5: training.epochs: input should be greater than or equal " \
        "to 1" in low.stderr, low.output  # `check` passed it: only `dlcli sweep` found it
    assert typo.exit_code == 2 and "unknown key 'epoch'; did you mean 'epochs'?" in typo.stderr, typo.output
    assert fine.exit_code == 0 and "sweep: 2 trials (grid); every value a trial can take is valid" in fine.stdout
    assert not runs_dir.exists() or sweep_folders(runs_dir) == []


def test_nothing_to_sweep(cli, tiny_config):
    result = cli("sweep", str(tiny_config))

    assert result.exit_code == 2 and "nothing to sweep" in result.stderr


@pytest.mark.parametrize("section, options, message", [
    ("", ["--grid", "training.batch_size=32,64", "--grid", "training.batch_size=128"],
     "--grid training.batch_size=128: training.batch_size is given twice; list all its values in one --grid"),
    ("sweep:\n  grid:\n    training.batch_size: []\n", [],
     "config.yaml:19: sweep.grid.training.batch_size: lists no value: give at least one"),
    ("sweep:\n  grid:\n    training.epochs: [1, 2]\n", ["--grid", "training.batch_size=32", "--grid", "training.epochs=1",
                                                       "--grid", "training.epochs=2"], "training.epochs is given twice"),
    ("", ["--grid", "training.epochs=1,"], "--grid training.epochs=1,: a value is missing beside a comma"),
    ("", ["--grid", "training.epochs=1,2,1"], "--grid training.epochs: lists training.epochs=1 twice: each value is tried once"),
    ("", ["--grid", "name=a,b"], "--grid name: a sweep names its trials NAME-t1, NAME-t2, ... and cannot vary `name`"),
    ("", ["--grid", "seed=1,2", "--jobs", "1000"], "--jobs 1000: this machine has"),
    ("", ["--grid", "seed=1,2", "--seed", "-1"], "the sampler's seed -1 (--seed, or sweep.seed): give one from 0 to"),
    ("", ["--grid", "training.epochs=1,2", "--repeats", "5000"], "--repeats 5000: at most 1000 seeds a trial"),
    ("", ["--grid", "seed=1,2", "--storage", ""], "--storage '': give a journal file's path or a database URL"),
    ("", ["--grid", "sweep.trials=1,2"], "--grid sweep.trials: the sweep cannot vary sweep.trials, its own setting"),
    ("sweep:\n  trials: 2\n  params:\n    optimizer.learning_rate: {uniform: [.nan, 0.1]}\n", [],
     "uniform: give [low, high], two finite numbers with low < high (got [nan, 0.1])"),
    ("sweep:\n  trials: 100000000\n  params:\n    optimizer.learning_rate: {uniform: [0.001, 0.1]}\n", [],
     "this sweep plans 100,000,000 trials; at most 100,000"),
    ("", ["--grid", "training.epochs=1,2", "--name", "a" * 62], "leaves no room for this sweep's trial names"),
    ("sweep:\n  repeats: 1000000\n  grid:\n    training.epochs: [1, 2]\n", [],
     "config.yaml:18: sweep.repeats 1000000: at most 1000 seeds a trial"),  # not '--repeats', which was not given
    ("sweep:\n  trials: 5\n  grid:\n    training.epochs: [1, 2]\n", [],
     "config.yaml:18: sweep.trials: 5 samples the keys of `sweep: params:` in the config, and it has none"),
    ("sweep:\n  trials: 2\n  params:\n    optimizer.name: {choice: [adam, adam]}\n", [],
     "config.yaml:20: sweep.params.optimizer.name: lists optimizer.name=adam twice"),
    ("sweep:\n  trials: 2\n  params:\n    name: {choice: [a, b]}\n", [],
     "config.yaml:20: sweep.params.name: a sweep names its trials NAME-t1, NAME-t2, ... and cannot vary `name`"),
    ("sweep:\n  method: grid\n  trials: 5\n  params:\n    optimizer.name: {choice: [adam, rmsprop]}\n", [],
     "config.yaml:19: sweep.trials: 5 samples nothing: with method grid, each choice of sweep.params is tried once"),
], ids=["a key twice", "an empty list in the section", "twice on the command line over a section", "a trailing comma",
        "a value twice", "the name", "more workers than cores", "a negative sampler seed", "too many repeats",
        "an empty storage", "its own setting", "a range without end", "a hundred million trials", "a --name too long",
        "the section's repeats", "trials beside a grid alone", "a choice listed twice", "a sampled name",
        "trials beside choices a grid tries"])
def test_a_grid_that_would_drop_or_skip_values_is_refused(cli, write_config, runs_dir, section, options, message):
    result = cli("sweep", str(write_config(TINY_CONFIG + section)), *options)

    assert result.exit_code == 2 and message in result.stderr, result.output
    assert sweep_folders(runs_dir) == [] and run_folders(runs_dir) == []


@pytest.mark.parametrize("section, options, message", [
    ("sweep:\n  trials: 2\n  params:\n    optimizer.learning_rate: {choise: [0.1, 0.01]}\n", [],
     "config.yaml:20: sweep.params.optimizer.learning_rate: give one of choice, uniform, log_uniform, int, e.g. "
     "{log_uniform: [1.0e-4, 1.0e-2]} (got {'choise': [0.1, 0.01]}); did you mean 'choice'?"),
    ("sweep:\n  params:\n    training.batch_size: [16, 32]\n", [],
     "config.yaml:19: sweep.params.training.batch_size: a list is fixed values: to sample among them write "
     "{choice: [16, 32]}, or list them under sweep.grid to train each"),
    ("sweep:\n  grid:\n    model.layers.7.Dense.units: [3, 4]\n", [],
     "config.yaml:19: trial 1 (model.layers.7.Dense.units=3): model.layers has 3 items (indices 0..2); there is no item '7'"),
    ("", ["--grid", "model.layers.0.Dense.units=3,4"],
     "--grid model.layers.0.Dense.units: trial 1 (model.layers.0.Dense.units=3): model.layers.0 is Flatten, not Dense"),
    ("sweep:\n  grid:\n    training.batchsize: [32, 64]\n", [],
     "config.yaml:19: trial 1 (training.batchsize=32): training: unknown key 'batchsize'; did you mean 'batch_size'?"),
    ("sweep:\n  trials: 2\n  params:\n    training.batch_size: {choice: [8, 16]}\n", ["--grid", "training.batch_size=32,64"],
     "config.yaml:20: sweep.params.training.batch_size: training.batch_size is also in the grid (sweep.grid or --grid): "
     "list its values there, or sample it here, not both"),
    ("", ["--grid", "training.epochs=1,'2"],
     "--grid training.epochs=1,'2: cannot read the values as YAML: found unexpected end of stream (at character 7)"),
    ("", ["--grid", "model.layers[0].Dense.units=3,4"],
     "--grid model.layers[0].Dense.units: trial 1 (model.layers[0].Dense.units=3): model.layers.0 is Flatten, not Dense"),
    ("sweep:\n  grid:\n    model.layers.0.Dense.units: [3, 4]\n", ["--grid", "model.layers.0.Dense.units=5,6"],
     "--grid model.layers.0.Dense.units: trial 1 (model.layers.0.Dense.units=5): model.layers.0 is Flatten, not Dense"),
    ("sweep:\n  grid:\n    model.layers.0.Dense.units: [3, 4]\n", ["--grid", "model.layers.0.Dense.units=3"],
     "--grid model.layers.0.Dense.units: trial 1 (model.layers.0.Dense.units=3): model.layers.0 is Flatten, not Dense"),
], ids=["a misspelled kind", "a list among the sampled keys", "a grid key of the file", "a --grid key",
        "an unknown grid key of the file", "a key both sampled and in the grid", "a --grid value that is no YAML",
        "a --grid key in brackets", "a --grid key that replaced the file's", "a --grid of some of the file's values"])
def test_a_bad_swept_key_is_located_where_it_was_swept(cli, write_config, runs_dir, section, options, message):
    config = write_config(TINY_CONFIG + section)
    result = cli("sweep", str(config), *options)

    located = config.parent / message if message.startswith("config.yaml") else message
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {located}", result.output
    assert sweep_folders(runs_dir) == [] and run_folders(runs_dir) == []


@pytest.mark.slow
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
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    (sweep,) = sweep_folders(runs_dir)
    assert f"continue it with: dlcli sweep --resume {sweep.name}" in stderr
    plan = json.loads((sweep / PLAN_FILE).read_text())
    assert [t["status"] for t in plan["trials"]] == ["completed", "interrupted"]  # trial 3 waits in the study
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


def test_a_continuous_range_over_a_whole_number_fails_before_any_trial(cli, write_config, runs_dir):
    # both ends are whole numbers; what uniform samples between them is not
    section = "sweep:\n  trials: 2\n  params:\n    model.layers.1.Dense.units: {uniform: [8, 16]}\n"

    result = cli("sweep", str(write_config(TINY_CONFIG + section)))

    assert result.exit_code == 2, result.output
    assert "values model.layers.1.Dense.units=11.056" in result.stderr and "expected a positive integer" in result.stderr
    assert not runs_dir.exists()


def test_a_damaged_plan_is_one_line_on_resume(cli, runs_dir):
    folder = runs_dir / "sweeps" / "20260101-000000-tiny"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text('{"id": "20260101-000000-tiny", "config": "x.y')

    result = cli("sweep", "--resume", folder.name)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: sweep {folder.name}: plan.json is damaged (not whole JSON: "), result.stderr
    assert "its runs are kept (compare them by their ids or `--filter`)" in result.stderr


def test_a_damaged_plan_still_lets_compare_show_the_sweeps_runs_here(cli, runs_dir):
    folder = runs_dir / "sweeps" / "20260101-000000-tiny"
    folder.mkdir(parents=True)
    (folder / "plan.json").write_text('{"id": "20260101-000000-tiny", "config": "x.y')
    for trial in (1, 2):
        fake_run(runs_dir, f"20260101-00000{trial}-tiny-t{trial}", TINY_CONFIG.replace("seed: 0", f"seed: {trial}"),
                 summary_with(0.5, 0.8), sweep={"id": folder.name, "trial": trial, "values": {"seed": trial}})

    result = cli("compare", "--sweep", folder.name, "--format", "json")

    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["runs"]) == 2
    assert result.stderr.startswith("note: the trials taken elsewhere are not listed: sweep 20260101-000000-tiny: "
                                    "plan.json is damaged")


def _sweep_process(config, runs_dir, *args, env=None):
    """`dlcli sweep CONFIG ARGS` as a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "dlcli", "sweep", str(config), "--runs-dir", str(runs_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )


def _trial_indexes(runs_dir):
    return [read_json(folder / "run.json")["sweep"]["trial"] for folder in run_folders(runs_dir) if folder.name != "sweeps"]


# trials long enough (a second or so each) that neither process takes them all before the other starts
SAMPLED_SWEEP = TINY_CONFIG.replace("batch_size: 64", "batch_size: 16") + """\
sweep:
  method: tpe
  trials: 6
  params:
    optimizer.learning_rate: {log_uniform: [0.001, 0.1]}
"""


POSTGRES_URL = os.environ.get("DLCLI_TEST_POSTGRES_URL")  # e.g. postgresql://postgres@localhost:5433/dlcli_sweeps


@pytest.mark.parametrize("kind", [
    "journal file",
    pytest.param("postgresql", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="set DLCLI_TEST_POSTGRES_URL to a PostgreSQL database dlcli may write to")),
])
@pytest.mark.slow
def test_two_sweeps_on_one_storage_share_its_trials_none_twice(write_config, tmp_path, kind):
    name = f"tiny-{os.getpid()}-{time.time_ns()}"  # a study of its own in a database other tests share
    config = write_config(SAMPLED_SWEEP.replace("name: tiny", f"name: {name}"))
    storage = tmp_path / "shared" / "study.journal" if kind == "journal file" else POSTGRES_URL
    (tmp_path / "shared").mkdir()  # the shared filesystem, mounted
    machines = [tmp_path / "machine-1", tmp_path / "machine-2"]

    processes = [_sweep_process(config, runs, "--storage", str(storage)) for runs in machines]
    outputs = [process.communicate(timeout=300) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], [stderr[-2000:] for _, stderr in outputs]
    taken = [_trial_indexes(runs) for runs in machines]
    assert sorted(taken[0] + taken[1]) == [1, 2, 3, 4, 5, 6]  # six in all, none twice
    assert taken[0] and taken[1]
    (sweep,) = sweep_folders(machines[0])
    compared = json.loads(CliRunner().invoke(
        app, ["compare", "--sweep", sweep.name, "--format", "json", "--runs-dir", str(machines[0])],
    ).stdout)
    assert len(compared["runs"]) == len(taken[0])
    assert sorted(row["trial"] for row in compared["trials_elsewhere"]) == sorted(taken[1])
    assert {row["state"] for row in compared["trials_elsewhere"]} == {"completed"}

    other = write_config(SAMPLED_SWEEP.replace("[0.001, 0.1]", "[0.001, 0.5]"), "other.yaml")
    refused = CliRunner().invoke(app, ["sweep", str(other), "--name", name, "--storage", str(storage),
                                       "--runs-dir", str(tmp_path / "machine-3")])
    assert refused.exit_code == 2, refused.output
    assert f"study {name} in {storage} searches another space (space: " in refused.stderr
    assert not (tmp_path / "machine-3" / "sweeps").exists() or not list((tmp_path / "machine-3" / "sweeps").iterdir())
    assert "'log_uniform': [0.001, 0.1]" in refused.stderr and "'log_uniform': [0.001, 0.5]" in refused.stderr


@pytest.mark.parametrize("storage", ["sqlite:////nonexistent-folder/study.db", "/nonexistent-folder/study.journal"])
def test_a_storage_in_a_folder_that_is_not_there_is_one_line_and_makes_no_folder(tiny_config, runs_dir, storage):
    started = time.monotonic()
    result = CliRunner().invoke(app, ["sweep", str(tiny_config), "--grid", "seed=1,2", "--storage", storage,
                                      "--runs-dir", str(runs_dir)])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --storage {storage}: the folder /nonexistent-folder does not exist "
                                    "(a shared filesystem not mounted?)")
    assert len(result.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 30
    assert not Path("/nonexistent-folder").exists()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its (dead) parent's reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_killing_the_sweep_stops_its_trials_and_resume_runs_each_left_once(write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 4").replace("batch_size: 64", "batch_size: 4"))
    process = _sweep_process(config, runs_dir, "--grid", "seed=1,2,3,4", "--jobs", "2")
    deadline = time.monotonic() + 180
    while len([h for h in runs_dir.glob("*-t*/history.csv") if len(h.read_text().splitlines()) >= 2]) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    workers = [record.info["pid"] for record in load_runs(runs_dir) if record.status == "running"]

    process.kill()  # SIGKILL: the sweep cannot tell its workers anything
    process.wait()
    resumed = subprocess.Popen(  # at once: it waits for the trials still stopping
        [sys.executable, "-m", "dlcli", "sweep", "--resume", "latest", "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )

    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers):  # the workers stop with their sweep
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert sorted(_trial_indexes(runs_dir)) == [1, 2, 3, 4]  # each trial one run: resumed, never started twice
    for folder in run_folders(runs_dir):
        if folder.name != "sweeps":
            info = read_json(folder / "run.json")
            assert info["status"] == "completed"
            assert len(info.get("resumes", [])) <= 1
            assert [row.split(",")[0] for row in (folder / "history.csv").read_text().splitlines()[1:]] == ["1", "2", "3", "4"]


@pytest.mark.slow
def test_a_dead_worker_crashes_its_trial_only_and_is_replaced(write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 3"))
    # every worker kills itself in its first trial's second epoch commit
    process = _sweep_process(config, runs_dir, "--grid", "seed=1,2", env={"DLCLI_KILL_AT": "commit.state:2"})
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 2, stderr
    assert "trial 1: crashed (its worker exited with code -9)" in stderr and "trial 2: crashed" in stderr
    (sweep,) = sweep_folders(runs_dir)
    assert [t["status"] for t in json.loads((sweep / PLAN_FILE).read_text())["trials"]] == ["crashed", "crashed"]

    result = CliRunner().invoke(app, ["sweep", "--resume", sweep.name, "--runs-dir", str(runs_dir)])

    assert result.exit_code == 0, result.output
    assert sorted(_trial_indexes(runs_dir)) == [1, 2]


@pytest.mark.slow
def test_a_pruned_trial_stops_early_keeps_its_folder_and_says_so(cli, tiny_config, runs_dir):
    # three good trials, then one whose learning rate is far too low to learn: the median pruner stops it
    result = cli("sweep", str(tiny_config), "--grid", "optimizer.learning_rate=0.01,0.011,0.012,0.0000001",
                 "--set", "training.epochs=4", "--prune", "median")

    assert result.exit_code == 0, result.output
    assert "all 4 trials completed, 1 of them pruned" in result.stdout
    (sweep,) = sweep_folders(runs_dir)
    statuses = [t["status"] for t in json.loads((sweep / PLAN_FILE).read_text())["trials"]]
    assert statuses == ["completed", "completed", "completed", "pruned"]
    pruned = runs_dir / json.loads((sweep / PLAN_FILE).read_text())["trials"][3]["run"]
    assert read_json(pruned / "run.json")["status"] == "pruned"
    assert read_json(pruned / "summary.json")["pruned"] == {"epoch": 2}
    assert len((pruned / "history.csv").read_text().splitlines()) == 1 + 2 and (pruned / "model.keras").is_file()
    assert "pruned" in cli("runs").stdout and "pruned" in cli("show", pruned.name).stdout
    compared = json.loads(cli("compare", "--sweep", sweep.name, "--format", "json").stdout)
    assert sorted(row["status"] for row in compared["runs"]) == ["completed"] * 3 + ["pruned"]
    resumed = cli("train", "--resume", pruned.name)
    assert resumed.exit_code == 2 and "was pruned by its sweep's pruner; nothing to resume" in resumed.stderr


@pytest.mark.parametrize(
    "statuses, expected",
    [
        (["completed", "completed"], ("completed", 1)),
        (["completed", None], ("interrupted", 1)),  # killed between two seeds
        ([None, None], (None, 0)),
        (["completed", "crashed", None], ("crashed", 1)),
        (["pruned", None], ("pruned", 0)),
        (["completed", "running"], ("running", 1)),
    ],
)
def test_a_repeated_trial_is_where_its_first_unfinished_seed_is(statuses, expected):
    assert repeated_status(statuses) == expected


@pytest.mark.slow
def test_repeats_train_every_trial_per_seed_and_the_study_optimizes_their_mean(cli, tiny_config, runs_dir):
    result = cli("sweep", str(tiny_config), "--grid", "model.layers.1.Dense.units=4,16", "--repeats", "2",
                 "--set", "training.epochs=1")

    assert result.exit_code == 0, result.output
    (sweep,) = sweep_folders(runs_dir)
    assert "2 trials (grid, each with seeds 0-1, the study told their mean)" in result.stderr
    assert "all 2 trials completed (2 seeds each)" in result.stdout
    plan = Plan.load(sweep)
    names = sorted(folder.name.split("-", 2)[2] for folder in run_folders(runs_dir) if folder.name != "sweeps")
    assert names == ["tiny-t1-s0", "tiny-t1-s1", "tiny-t2-s0", "tiny-t2-s1"]
    for trial, study_row in zip(plan.trials, study_trials(plan, sweep)):
        assert trial.status == "completed" and len(trial.runs) == 2
        seeds = [read_json(runs_dir / run / "run.json")["sweep"]["seed"] for run in trial.runs]
        bests = [read_json(runs_dir / run / "summary.json")["best"]["val_loss"] for run in trial.runs]
        assert seeds == [0, 1] and bests[0] != bests[1]
        assert study_row["value"] == pytest.approx(sum(bests) / 2)  # what the sampler sees
    compared = json.loads(cli("compare", "--sweep", sweep.name, "--format", "json").stdout)
    assert sorted(group["n"] for group in compared["groups"]) == [2, 2]

    # a trial stopped between its seeds trains the seed that is missing, and nothing else
    kept = {run: (runs_dir / run / "run.json").stat().st_mtime for t in plan.trials for run in t.runs}
    missing = plan.trials[1].runs[1]
    shutil.rmtree(runs_dir / missing)
    plan.trials[1].status = "interrupted"
    plan.save(sweep)

    resumed = cli("sweep", "--resume", sweep.name)

    assert resumed.exit_code == 0, resumed.output
    plan = Plan.load(sweep)
    assert [t.status for t in plan.trials] == ["completed", "completed"]
    retrained = plan.trials[1].runs[1]
    assert retrained != missing and read_json(runs_dir / retrained / "run.json")["sweep"]["seed"] == 1
    assert all((runs_dir / run / "run.json").stat().st_mtime == mtime for run, mtime in kept.items() if run != missing)


def test_repeats_check_the_data_of_every_seed_before_any_trains(cli, write_config, tmp_path, runs_dir):
    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in rng.normal(size=4)) + f",{label}" for label in range(2) for _ in range(40)]
    (tmp_path / "table.csv").write_text("a,b,c,d,label\n" + "\n".join([*rows, rows[5]]) + "\n")  # one row twice
    text = ("name: table\nseed: {seed}\ndataset: {{name: csv, path: %s, label_column: label, leaks: error}}\n"
            "model:\n  layers:\n    - Dense: {{units: 2, activation: softmax}}\noptimizer: {{name: adam}}\n"
            "loss: sparse_categorical_crossentropy\ntraining: {{epochs: 1}}\n" % (tmp_path / "table.csv"))

    def leaks(seed):
        splits = load_dataset(load_config(write_config(text.format(seed=seed)), ["dataset.leaks=warn"]))
        return any(finding["leak"] for finding in splits.describe()["checks"])

    seed = next(s for s in range(50) if not leaks(s) and leaks(s + 1))  # the copy lands in validation only then
    result = cli("sweep", str(write_config(text.format(seed=seed))), "--grid", "optimizer.learning_rate=0.01,0.02",
                 "--repeats", "2")

    assert result.exit_code == 2, result.output
    assert f"seed {seed + 1}: " in result.stderr and "dataset.leaks is error" in result.stderr
    assert [folder for folder in run_folders(runs_dir) if folder.name != "sweeps"] == []  # nothing trained


def test_a_journal_edited_by_hand_is_one_line_that_says_to_start_again(tmp_path):
    import optuna

    from dlcli.errors import DlcliError
    from dlcli.sweep.study import STUDY_FILE, open_storage

    optuna.create_study(study_name="tiny", storage=open_storage(None, tmp_path))
    journal = tmp_path / STUDY_FILE
    journal.write_text("garbage{\n" + journal.read_text())  # a line Optuna did not write (a last one may be half written)

    with pytest.raises(DlcliError, match=r"cannot read the sweep's journal .*study.journal: JSONDecodeError: .*; a "
                                         r"journal edited or cut short cannot be read: start the sweep again"):
        open_storage(None, tmp_path)
