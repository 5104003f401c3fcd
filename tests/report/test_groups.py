"""Repeats and groups: runs that differ only in their seed, compared beyond their seed noise."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest

from conftest import TINY_CONFIG, fake_run, read_json, run_folders, summary_with
from dlcli.report import groups
from dlcli.store.runs import group_of

FAST = TINY_CONFIG.replace("learning_rate: 0.01", "learning_rate: LR")


def runs_of(runs_dir, learning_rate: str, accuracies: list[float], start: int = 0) -> None:
    for number, accuracy in enumerate(accuracies):
        seed = start + number
        fake_run(runs_dir, f"20260101-0000{seed:02d}-lr{learning_rate}", FAST.replace("LR", learning_rate)
                 .replace("seed: 0", f"seed: {seed}"), summary_with(1 - accuracy, accuracy))


def compared(cli, *args):
    result = cli("compare", "--all", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return {group["label"]: group for group in json.loads(result.stdout)["groups"]}


def test_the_group_leaves_out_the_seed_the_name_and_the_sweep_section_only():
    config = {"name": "a", "seed": 0, "optimizer": "adam", "sweep": {"grid": {"seed": [1, 2]}}}

    assert group_of(config) == group_of({**config, "name": "b", "seed": 7, "sweep": None})
    assert group_of(config) != group_of({**config, "optimizer": "rmsprop"})


def test_runs_that_differ_only_in_their_seed_are_one_group_with_mean_spread_and_interval(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92, 0.94])
    runs_of(runs_dir, "0.0001", [0.50, 0.52, 0.51], start=10)

    found = compared(cli)

    best, worse = found["optimizer.learning_rate=0.01"], found["optimizer.learning_rate=0.0001"]
    assert best["n"] == 3 and best["seeds"] == [0, 1, 2]
    accuracy = best["metrics"]["best val_accuracy"]
    assert accuracy["mean"] == pytest.approx(0.92) and accuracy["std"] == pytest.approx(0.02)
    assert accuracy["low"] == pytest.approx(0.92 - 4.303 * 0.02 / 3**0.5, abs=1e-3)  # Student's t, 2 degrees
    assert accuracy["verdict"] == "better"
    assert worse["metrics"]["best val_accuracy"]["verdict"] == "worse"
    assert worse["metrics"]["best val_accuracy"]["difference"] == pytest.approx(-0.41)
    assert worse["metrics"]["best val_loss"]["verdict"] == "worse"  # each metric in its own direction
    table = cli("compare", "--all")
    assert "2 groups" in table.stdout and "better" in table.stdout and "worse" in table.stdout


def test_groups_whose_difference_is_within_their_spread_are_within_seed_noise(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.93, 0.91, 0.95])
    runs_of(runs_dir, "0.02", [0.92, 0.89, 0.94, 0.91], start=10)

    found = compared(cli)

    assert {group["metrics"]["best val_accuracy"]["verdict"] for group in found.values()} == {"within seed noise"}


def test_one_run_per_config_cannot_be_told_from_noise_and_says_how_to_repeat(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.93])
    runs_of(runs_dir, "0.02", [0.92], start=10)

    found = compared(cli)
    table = cli("compare", "--all")

    assert found["optimizer.learning_rate=0.02"]["metrics"]["best val_accuracy"]["verdict"] == groups.ONE_RUN
    assert found["optimizer.learning_rate=0.02"]["metrics"]["best val_accuracy"]["noise"] == groups.REPEAT_HINT
    assert "one run per config: a difference cannot be told from seed noise" in table.stderr
    assert "--repeat 5" in table.stderr


def test_a_single_run_borrows_the_seed_noise_of_repeated_groups_of_its_model_and_says_so(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92, 0.94])
    runs_of(runs_dir, "0.001", [0.60], start=10)

    lone = compared(cli)["optimizer.learning_rate=0.001"]["metrics"]["best val_accuracy"]

    assert lone["verdict"] == "worse" and "pooled from 1 repeated group" in lone["noise"]
    assert lone["difference_low"] < lone["difference"] < lone["difference_high"]


def test_a_seed_trained_twice_is_one_sample_of_the_seed_noise_and_the_comparison_says_so(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92, 0.94])
    runs_of(runs_dir, "0.001", [0.60, 0.60])  # seeds 0 and 1 ...
    runs_of(runs_dir, "0.001", [0.60], start=50)  # ... and seed 0 again, by another id
    (next(runs_dir.glob("*000050-lr0.001")) / "config.yaml").write_text(FAST.replace("LR", "0.001"))

    found = compared(cli)
    table = cli("compare", "--all")

    again = found["optimizer.learning_rate=0.001"]
    assert again["n"] == 2 and again["seeds"] == [0, 1, 0]
    assert again["shared_seeds"] == [{"seed": 0, "runs": 2}]
    assert found["optimizer.learning_rate=0.01"]["shared_seeds"] == []
    assert "3 runs" not in table.stderr and "2 runs of seed 0, the same experiment again: counted once" in table.stderr


def test_a_lone_seed_trained_twice_borrows_the_seed_noise_of_other_groups_instead_of_showing_none(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92, 0.94])
    runs_of(runs_dir, "0.001", [0.60])
    runs_of(runs_dir, "0.001", [0.60], start=50)
    (next(runs_dir.glob("*000050-lr0.001")) / "config.yaml").write_text(FAST.replace("LR", "0.001"))

    lone = compared(cli)["optimizer.learning_rate=0.001"]

    assert lone["n"] == 1 and lone["metrics"]["best val_accuracy"]["std"] is None
    assert "pooled from 1 repeated group" in lone["metrics"]["best val_accuracy"]["noise"]


def test_groups_on_other_datasets_are_each_set_against_the_best_of_their_own(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92, 0.94])
    runs_of(runs_dir, "0.02", [0.50, 0.52, 0.51], start=10)
    for number, accuracy in enumerate([0.30, 0.31, 0.32]):
        config = FAST.replace("LR", "0.01").replace("name: digits", "name: mnist").replace("seed: 0", f"seed: {number}")
        fake_run(runs_dir, f"20260101-0001{number:02d}-mnist", config, summary_with(1 - accuracy, accuracy))

    found = compared(cli)
    table = cli("compare", "--all")

    mnist = next(group for label, group in found.items() if "mnist" in label)
    assert mnist["metrics"]["best val_accuracy"]["verdict"] != "worse"  # alone on its data: nothing to lose to
    slower = next(group for label, group in found.items() if "0.02" in label)
    assert slower["metrics"]["best val_accuracy"]["verdict"] == "worse"
    assert "runs on 2 datasets (digits, mnist): each group is set against the best of its own dataset only" in table.stderr


def test_runs_name_the_group_and_where_selects_it(cli, runs_dir):
    runs_of(runs_dir, "0.01", [0.90, 0.92])
    runs_of(runs_dir, "0.02", [0.80], start=10)
    group = group_of({**__import__("yaml").safe_load(FAST.replace("LR", "0.01"))})

    listed = cli("runs", "--where", f"group={group}", "--format", "json")

    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 2  # runs from before groups were recorded: from their config


def test_an_interval_leaves_out_zero_exactly_when_the_verdict_is_not_within_seed_noise():
    generator = random.Random(1)
    seen = set()
    for _ in range(200):
        found = []
        for number in range(4):
            group = groups.Group(f"g{number}", "", ["run"] * 4, [], ("digits", ()))
            group.values["m"] = [generator.gauss(number * 0.8, 1.0) for _ in range(4)]
            group.spreads["m"] = groups.spread(group.values["m"])
            found.append(group)
        groups._set_differences(found, "m", minimize=False)
        for group in found:
            difference = group.differences["m"]
            if difference.best_group != group.id:
                excludes_zero = difference.low > 0 or difference.high < 0
                assert excludes_zero == (difference.verdict == groups.WORSE), difference
                seen.add(difference.verdict)
    assert seen == {groups.WORSE, groups.WITHIN_NOISE}  # both cases met


def _simulated_calls(count: int, seeds: int, shift: float, trials: int, generator: random.Random) -> float:
    """The share of `trials` comparisons of `count` groups of `seeds` runs (normal noise, the
    first shifted by `shift` standard deviations) in which some group is called better or worse."""
    calls = 0
    for _ in range(trials):
        found = []
        for number in range(count):
            group = groups.Group(f"g{number}", "", ["run"] * seeds, [], ("digits", ()))
            group.values["best val_accuracy"] = [generator.gauss(shift if number == 0 else 0.0, 1.0) for _ in range(seeds)]
            group.spreads["best val_accuracy"] = groups.spread(group.values["best val_accuracy"])
            found.append(group)
        groups._set_differences(found, "best val_accuracy", minimize=False)
        calls += any(g.differences["best val_accuracy"].verdict in (groups.BETTER, groups.WORSE) for g in found)
    return calls / trials


@pytest.mark.slow
def test_identical_groups_of_3_to_10_seeds_are_called_different_at_most_5_percent_of_the_time():
    generator = random.Random(0)
    rates = {seeds: _simulated_calls(2, seeds, 0.0, 1000, generator) for seeds in range(3, 11)}
    several = _simulated_calls(4, 5, 0.0, 500, generator)  # the best of four is chosen by the same values
    power = {seeds: _simulated_calls(2, seeds, 2.0, 200, generator) for seeds in (3, 5, 10)}

    assert sum(rates.values()) / len(rates) <= 0.05  # 8,000 comparisons; Welch's exact rate is 3.4-4.9%
    assert max(rates.values()) <= 0.07 and several <= 0.06  # each of 500-1,000: 5% ± 2 of its standard errors
    assert power[3] < power[5] < power[10] and power[10] >= 0.9  # docs/comparing.md reports the rest


def _process(*args):
    return subprocess.Popen([sys.executable, "-m", "dlcli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_five_seeds_against_five_more_of_the_same_config_are_within_seed_noise(cli, write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 3"))

    first = cli("train", str(config), "--repeat", "5", "--jobs", "2")
    second = cli("train", str(config), "--seeds", "5,6,7,8,9", "--set", "training.tensorboard=false")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "5 seeds trained" in first.stdout
    found = compared(cli)
    assert [group["n"] for group in found.values()] == [5, 5]
    assert [sorted(group["seeds"]) for group in found.values()] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    for group in found.values():
        assert group["metrics"]["best val_accuracy"]["verdict"] == "within seed noise"


@pytest.mark.slow
def test_a_learning_rate_that_learns_is_better_than_one_that_does_not_beyond_seed_noise(cli, runs_dir):
    for rate in ("1e-3", "1e-6"):
        result = cli("train", "configs/mnist_dense.yaml", "--repeat", "3",
                     "--set", f"optimizer={{name: rmsprop, learning_rate: {rate}}}", "--set", "training.epochs=2")
        assert result.exit_code == 0, result.output

    found = compared(cli)

    assert found["optimizer.learning_rate=0.001"]["metrics"]["best val_accuracy"]["verdict"] == "better"
    assert found["optimizer.learning_rate=1e-06"]["metrics"]["best val_accuracy"]["verdict"] == "worse"


@pytest.mark.slow
def test_a_killed_repeat_resumes_its_unfinished_seeds_only(write_config, runs_dir):
    config = write_config(TINY_CONFIG.replace("epochs: 2", "epochs: 4").replace("batch_size: 64", "batch_size: 4"))
    process = _process("train", str(config), "--repeat", "3", "--runs-dir", str(runs_dir))
    deadline = time.monotonic() + 180

    def trial_runs():
        return [folder for folder in run_folders(runs_dir) if folder.name != "sweeps"]

    def finished_runs():  # a folder just made has no run.json yet
        infos = {folder.name: read_json(folder / "run.json") for folder in trial_runs() if (folder / "run.json").is_file()}
        return {name: info["ended"] for name, info in infos.items() if info.get("status") == "completed"}

    while not finished_runs() or len(trial_runs()) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.kill()  # SIGKILL
    process.wait()
    finished = finished_runs()  # read after the kill: no run finishes between this and the resume

    resumed = _process("sweep", "--resume", "latest", "--runs-dir", str(runs_dir))
    _, stderr = resumed.communicate(timeout=300)

    assert resumed.returncode == 0, stderr
    runs = trial_runs()
    assert sorted(read_json(folder / "run.json")["sweep"]["trial"] for folder in runs) == [1, 2, 3]
    assert sorted(read_json(folder / "run.json")["seed"] for folder in runs) == [0, 1, 2]
    assert all(read_json(folder / "run.json")["status"] == "completed" for folder in runs)
    for name, ended in finished.items():  # a finished seed is not trained again
        info = read_json(runs_dir / name / "run.json")
        assert info["ended"] == ended and not info.get("resumes")


@pytest.mark.parametrize("model", ["a", "{layers: a}", "{layers: [{}, 3]}", "[1, 2]"])
def test_a_config_edited_into_other_shapes_is_still_compared(cli, runs_dir, model):
    fake_run(runs_dir, "20260101-100000-edited", config_text=f"name: edited\nseed: 0\ndataset: digits\nmodel: {model}\n",
             summary=summary_with(0.3, 0.9))
    fake_run(runs_dir, "20260101-110000-plain", summary=summary_with(0.4, 0.8))

    result = cli("compare")

    assert result.exit_code == 0, result.output
    assert "edited" in result.stdout and "plain" in result.stdout
