"""Sweeps: a grid or random search over config keys, each trial an ordinary run in its own process.

The plan (every trial, its values and its run) lives in `runs/sweeps/<id>/plan.json`,
written only by the process that runs the sweep, so a sweep can be stopped and resumed.
Nothing here imports TensorFlow except `check_trials`.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dlcli.config import NAME_PATTERN, ExperimentConfig, load_config, parse_yaml, parse_yaml_value
from dlcli.errors import ConfigError, DlcliError, RunNotFound
from dlcli.runs import SCHEMA, RunFile, RunFolder, RunRecord, load_runs, now, read_run_file

SWEEPS_DIR = "sweeps"
PLAN_FILE = "plan.json"
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")


class Trial(BaseModel):
    index: int
    values: dict[str, Any]
    run: str | None = None
    status: str = "pending"

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={json.dumps(value)}" for key, value in self.values.items()]

    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.values.items())


class Plan(RunFile):
    """`runs/sweeps/<id>/plan.json`: the sweep's config, overrides and trials (docs/run-folder.md)."""

    id: str
    config: str
    overrides: list[str]
    trials: list[Trial] = []
    updated: str | None = None
    name: str | None = None  # the config's; its trials are named NAME-tN (older plans: from the id)

    def trial_name(self, trial: Trial) -> str:
        return f"{self.name or self.id[16:]}-t{trial.index}"

    def save(self, folder: Path) -> None:
        self.updated = now().isoformat(timespec="seconds")
        self.schema_version = SCHEMA
        self.write(folder / PLAN_FILE)

    @classmethod
    def load(cls, folder: Path) -> Plan:
        return read_run_file(
            cls, folder / PLAN_FILE, f"sweep {folder.name}",
            f"its runs are kept: compare them with `dlcli compare --sweep {folder.name}`, or start the sweep again",
        )


def parse_grid(options: list[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2` options -> {KEY: [V1, V2]}, each value typed as YAML."""
    grid = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key or not raw:
            raise DlcliError(f"--grid {option}: expected KEY=V1,V2,..., e.g. training.batch_size=32,128")
        try:
            values = parse_yaml_value(f"[{raw}]")
        except Exception as error:  # noqa: BLE001 - any YAML error is the same user mistake
            raise DlcliError(f"--grid {option}: cannot read the values as YAML ({error})") from None
        grid[key.strip()] = values
    return grid


def _file_sweep(config_path: Path) -> dict[str, Any]:
    data, _ = parse_yaml(config_path.read_text(encoding="utf-8"), str(config_path))
    sweep = data.get("sweep") or {}
    if not isinstance(sweep, dict) or set(sweep) - {"grid", "random"}:
        raise ConfigError(f"{config_path}: sweep: takes `grid: {{KEY: [values]}}` and `random: {{KEY: ..., trials: N}}`")
    return sweep


def _sample(key: str, spec: Any, rng: random.Random) -> Any:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise DlcliError(f"sweep.random.{key}: give one of {', '.join(DISTRIBUTIONS)}, e.g. {{log_uniform: [1e-4, 1e-2]}}")
    ((kind, arguments),) = spec.items()
    if kind == "choice":
        return rng.choice(arguments)
    low, high = arguments
    if kind == "uniform":
        return rng.uniform(low, high)
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def plan_trials(config_path: Path, grid_options: list[str], random_trials: int | None, seed: int) -> list[Trial]:
    """The file's sweep combined with the command line's (which wins): the grid, times random samples."""
    sweep = _file_sweep(config_path)
    grid = {**(sweep.get("grid") or {}), **parse_grid(grid_options)}
    random_spec = dict(sweep.get("random") or {})
    trials_wanted = random_trials or random_spec.pop("trials", None)
    random_spec.pop("trials", None)
    rng = random.Random(random_spec.pop("seed", seed))
    if random_trials and not random_spec:
        raise DlcliError("--random N samples the keys under `sweep: random:` in the config, and it has none")
    points = [dict(zip(grid, combination)) for combination in itertools.product(*grid.values())] or [{}]
    samples = [
        {key: _sample(key, spec, rng) for key, spec in random_spec.items()} for _ in range(trials_wanted or 0)
    ] or [{}]
    values = [{**point, **sample} for point in points for sample in samples]
    if values == [{}]:
        raise DlcliError("nothing to sweep: give --grid KEY=V1,V2 or a `sweep:` section in the config")
    return [Trial(index=index, values=trial_values) for index, trial_values in enumerate(values, start=1)]


def trial_config(plan: Plan, trial: Trial) -> ExperimentConfig:
    """The trial's config, or a ConfigError that names the trial."""
    try:
        return load_config(plan.config, [*plan.overrides, *trial.overrides, "sweep=null"])
    except ConfigError as error:
        raise ConfigError(f"trial {trial.index} ({trial.label()}): {error}") from None


def check_trials(plan: Plan, runs_dir: Path) -> None:
    """Validate every trial and build its model before any trains (imports TensorFlow)."""
    _check_trial_names(trial_config(plan, plan.trials[0]), len(plan.trials))
    from dlcli.data import load_dataset
    from dlcli.train import checked_model

    data_by_dataset: dict[str, Any] = {}
    for trial in plan.trials:
        config = trial_config(plan, trial)
        key = json.dumps([config.dataset.model_dump(mode="json"), config.seed], sort_keys=True)
        try:
            if config.training.distribute == "multi_worker":
                raise config.error(
                    ("training", "distribute"),
                    "a sweep trains its trials on this machine; start multi_worker training on each worker with `dlcli train`",
                )
            if key not in data_by_dataset:
                data_by_dataset[key] = load_dataset(config)
            checked_model(config, data_by_dataset[key], runs_dir)
        except DlcliError as error:
            raise type(error)(f"trial {trial.index} ({trial.label()}): {error}") from None


def _check_trial_names(config: ExperimentConfig, count: int) -> None:
    """Trial runs are named NAME-tN: refuse a name that leaves no room for the suffix, before any trial."""
    longest = f"{config.name}-t{count}"
    if not NAME_PATTERN.fullmatch(longest):
        room = len(config.name) - (len(longest) - 64)
        raise config.error(
            ("name",), f"{config.name!r} leaves no room for this sweep's trial names ({longest!r} is "
            f"{len(longest)} characters, 64 at most): shorten it to {room} characters or fewer",
        )


def create_sweep(config_path: Path, overrides: list[str], trials: list[Trial], runs_dir: Path, name: str) -> tuple[Plan, Path]:
    sweeps = runs_dir / SWEEPS_DIR
    sweeps.mkdir(parents=True, exist_ok=True)
    folder = RunFolder.create(sweeps, name).path
    plan = Plan(id=folder.name, config=str(config_path.resolve()), overrides=overrides, trials=trials, name=name)
    plan.save(folder)
    return plan, folder


def find_sweep(runs_dir: Path, reference: str) -> Path:
    sweeps = runs_dir / SWEEPS_DIR
    candidates = sorted(p for p in sweeps.iterdir() if (p / PLAN_FILE).is_file()) if sweeps.is_dir() else []
    matches = [p for p in candidates if p.name == reference] or [p for p in candidates if p.name.startswith(reference)]
    if reference == "latest" and candidates:
        return candidates[-1]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.name for p in candidates[-5:]) or "none yet"
    raise RunNotFound(f"no single sweep '{reference}' in {sweeps}; sweeps: {known}")


def sweep_records(runs_dir: Path, sweep_id: str) -> list[RunRecord]:
    """The runs tagged in their run.json as trials of sweep `sweep_id`, oldest first."""
    return [record for record in load_runs(runs_dir) if (record.info.sweep or {}).get("id") == sweep_id]


def _refresh(plan: Plan, runs_dir: Path) -> None:
    """Each trial's newest run and its status, read from the run folders."""
    latest = {record.info.sweep["trial"]: record for record in sweep_records(runs_dir, plan.id)}
    for trial in plan.trials:
        if trial.index in latest:
            trial.run = latest[trial.index].id
            trial.status = latest[trial.index].status


class SweepInterrupted(DlcliError):
    exit_code = 130
    label = "stopped"


def _command(plan: Plan, trial: Trial, runs_dir: Path, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "dlcli", "train"]
    if resume:
        return [*base, "--resume", trial.run, "--runs-dir", str(runs_dir)]
    tag = json.dumps({"id": plan.id, "trial": trial.index, "values": trial.values})
    sets = [arg for o in [*plan.overrides, *trial.overrides, "sweep=null"] for arg in ("--set", o)]
    return [*base, plan.config, *sets, "--name", plan.trial_name(trial),
            "--runs-dir", str(runs_dir), "--sweep-trial", tag]


def run_sweep(plan: Plan, folder: Path, runs_dir: Path, jobs: int, retry_failed: bool, say) -> None:
    """Run every trial not yet completed, `jobs` at a time, each with its share of the CPU threads."""
    _refresh(plan, runs_dir)
    todo = [
        trial for trial in plan.trials
        if trial.status not in ("completed", "diverged") and (trial.status != "failed" or retry_failed)
    ]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    environment = {**os.environ, "DLCLI_THREADS": str(threads)}
    running: dict[int, tuple[Trial, subprocess.Popen]] = {}
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    try:
        while todo or running:
            while todo and len(running) < jobs:
                trial = todo.pop(0)
                resume = trial.run is not None and trial.status in ("interrupted", "crashed")
                command = _command(plan, trial, runs_dir, resume)
                say(f"trial {trial.index}/{len(plan.trials)} ({trial.label()}): {'resuming' if resume else 'starting'}")
                output = None if jobs == 1 else open(logs / f"trial-{trial.index}.log", "w")  # noqa: SIM115
                process = subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT if output else None)
                running[process.pid] = (trial, process)
                trial.status = "running"
                plan.save(folder)
            time.sleep(0.2)
            for pid, (trial, process) in list(running.items()):
                if process.poll() is not None:
                    del running[pid]
                    _refresh(plan, runs_dir)
                    say(f"trial {trial.index}: {trial.status}" + (f" ({trial.run})" if trial.run else ""))
                    plan.save(folder)
    except KeyboardInterrupt:
        processes = [process for _, process in running.values()]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # each trial stops cleanly as 'interrupted'
        for process in processes:
            process.wait()
        _refresh(plan, runs_dir)
        plan.save(folder)
        raise SweepInterrupted(
            f"sweep {plan.id} interrupted; continue it with: dlcli sweep --resume {plan.id} --runs-dir {runs_dir}"
        ) from None
    _refresh(plan, runs_dir)
    plan.save(folder)
