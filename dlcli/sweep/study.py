"""Sweeps: trials of a config, searched by Optuna, trained by worker processes.

A sweep is an Optuna study. Every trial it will hold is put in the study's storage when the
study is made (`enqueue_trial`, each with the grid point it fixes), so the sweep's size is
fixed whatever number of processes or machines share it: each takes the next waiting trial
(`study.ask`), and the storage gives each to one taker only. The sampler (random or TPE)
chooses the sampled keys' values when a trial is taken; a pruner stops hopeless trials
from the metric each reports after every epoch.

Locally, `runs/sweeps/<id>/plan.json` records the trials this folder's processes took and
their runs, so a stopped sweep resumes its own interrupted trials and takes the rest.
The trials are trained by `--jobs` worker processes (`dlcli.sweep.trials`) that import
TensorFlow once. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from pydantic import BaseModel

from dlcli.choices import LATEST, Pruner, Sampled, SweepMethod
from dlcli.config import MAX_NAME_LENGTH, NAME_PATTERN, SEED_MAX, ExperimentConfig, check_new_run, load_config
from dlcli.errors import ConfigError, DlcliError, RunNotFound, counted, reason_of
from dlcli.keys import format_path, key_parts, parse_yaml_value, yaml_problem
from dlcli.stopping import EXIT_INTERRUPTED
from dlcli.store.documents import SCHEMA, RunFile, read_info, read_run_file
from dlcli.store.runs import PLAN_FILE, SWEEPS_DIR, RunFolder, RunRecord, effective_status, now, runs_dir_option
from dlcli.store.status import FINISHED, RESUMABLE, RunStatus

STUDY_FILE = "study.journal"
LOGS_DIR = "logs"
STUDY_ATTRIBUTE = "dlcli"  # the study's user attribute holding the sweep's space
STORAGE_TIMEOUT = 10  # seconds to reach a database storage
# The most seeds one config trains with (`train --repeat/--seeds`, `sweep --repeats`): the seed
# noise of a mean shrinks as 1/sqrt(N), and N runs are N trainings planned before the first.
MOST_SEEDS = 1000
# The most trials one sweep plans: every trial is put in the study's storage when the sweep is made.
MOST_TRIALS = 100_000
TOO_MANY_SEEDS = (f"a mean over {MOST_SEEDS:,} seeds already pins the seed noise to "
                  f"{1 / math.sqrt(MOST_SEEDS):.0%} of one run's")
# Optuna's trial states, in dlcli's words: a trial not yet taken is pending
STUDY_STATES = {"COMPLETE": RunStatus.completed.value, "FAIL": RunStatus.failed.value, "WAITING": "pending"}


class SweepSettings(BaseModel):
    """What a sweep searches: grid points (values fixed per trial) times samples of a space."""

    method: SweepMethod
    points: list[dict[str, Any]]
    space: dict[str, dict[str, Any]]
    samples: int  # trials per grid point (1 when nothing is sampled)
    prune: Pruner = Pruner.none
    seed: int = 0
    # `--repeats N`: each trial trains its point once per seed, and the study is told the mean
    # (empty: once, with the config's own seed)
    repeat_seeds: list[int] = []

    @property
    def total(self) -> int:
        return len(self.points) * self.samples

    def compared(self) -> dict[str, Any]:
        """What must be the same for two processes to share a study."""
        compared = {"method": self.method, "points": self.points, "space": self.space, "samples": self.samples,
                    "prune": self.prune}
        # only when set: a study made before repeats existed is still joined
        return {**compared, "repeat_seeds": self.repeat_seeds} if self.repeat_seeds else compared


class Trial(BaseModel):
    index: int  # the study's trial number + 1: runs are named NAME-tINDEX (with repeats, NAME-tINDEX-sSEED)
    values: dict[str, Any]
    run: str | None = None  # with repeats: the run of the first seed not finished, else the last seed's
    runs: list[str] = []  # with repeats: each seed's newest run, in seed order
    status: str = "pending"
    number: int | None = None  # the trial's number in the study (None: an older plan's trial)

    def label(self) -> str:
        return describe_values(self.values)


class Plan(RunFile):
    """`runs/sweeps/<id>/plan.json`: the sweep's config, search, storage and its trials here (docs/run-folder.md)."""

    id: str
    config: str
    overrides: list[str]
    trials: list[Trial] = []
    updated: str | None = None
    name: str | None = None  # the config's; its trials are named NAME-tN (older plans: from the id)
    study: str | None = None  # the Optuna study's name (older plans have none: they planned every trial)
    storage: str | None = None  # None: the journal file in the sweep's folder
    settings: SweepSettings | None = None
    direction: str = "minimize"
    monitor: str | None = None

    def trial_name(self, trial: Trial, seed: int | None = None) -> str:
        name = f"{self.name or self.id[16:]}-t{trial.index}"
        return name if seed is None else f"{name}-s{seed}"

    def save(self, folder: Path) -> None:
        self.updated = now().isoformat(timespec="seconds")
        self.schema_version = SCHEMA
        self.write(folder / PLAN_FILE)

    @classmethod
    def load(cls, folder: Path) -> Plan:
        return read_run_file(
            cls, folder / PLAN_FILE, f"sweep {folder.name}",
            "its runs are kept (compare them by their ids or `--filter`); start the sweep again to go on with it",
        )


def resume_command(sweep_id: str, runs_dir: Path) -> str:
    """The command that continues sweep `sweep_id`, from wherever it is given."""
    return f"dlcli sweep --resume {sweep_id}{runs_dir_option(runs_dir)}"


# --- what to search ---------------------------------------------------------------------------


def describe_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def parse_grid(options: list[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2` options -> {KEY: [V1, V2]}, each value typed as YAML."""
    grid = {}
    for option in options:
        key, sep, raw = option.partition("=")
        if not sep or not key or not raw:
            raise DlcliError(f"--grid {option}: expected KEY=V1,V2,..., e.g. training.batch_size=32,128")
        if raw.strip().startswith(",") or raw.strip().endswith(","):  # YAML reads [1,] as [1]: a value left out
            raise DlcliError(f"--grid {option}: a value is missing beside a comma; list every value, e.g. {key}=1,2")
        try:
            values = parse_yaml_value(f"[{raw}]")
        except (yaml.YAMLError, RecursionError) as error:  # RecursionError: brackets nested thousands deep
            raise DlcliError(f"--grid {option}: cannot read the values as YAML: {yaml_problem(error)}") from None
        key = key.strip()
        if key in grid:
            raise DlcliError(f"--grid {option}: {key} is given twice; list all its values in one --grid {key}=V1,V2")
        grid[key] = values
    return grid


def sweep_settings(
    config: ExperimentConfig, grid_options: list[str], method: str | None = None, trials: int | None = None,
    prune: str | None = None, seed: int | None = None, repeats: int | None = None,
) -> SweepSettings:
    """The config's `sweep:` section with the command line's options (which win) applied."""
    section = config.sweep
    # the option, or the section's key at its line, as the messages name it: the one the user wrote
    in_section = not repeats and section is not None and section.repeats is not None
    repeats_said = (f"{config.source.prefix(('sweep', 'repeats'))}sweep.repeats {section.repeats}" if in_section
                    else f"--repeats {repeats}")
    repeats = repeats or (section.repeats if section else None) or 1
    older_random = dict(section.random) if section else {}
    sampled_trials = trials or (section.trials if section else None) or older_random.pop("trials", None)
    older_random.pop("trials", None)
    seed = seed if seed is not None else (section.seed if section and section.seed is not None else older_random.pop("seed", 0))
    older_random.pop("seed", None)
    option_grid = parse_grid(grid_options)
    grid = {**(section.grid if section else {}), **option_grid}
    space = {**(section.params if section else {}), **older_random}

    def refused(key: str, problem: str) -> DlcliError:
        """An error of a swept key, located where it was swept: `--grid KEY`, or its line in the section."""
        if key in option_grid:
            return DlcliError(f"--grid {key}: {problem}")
        part = "params" if section and key in section.params else "random" if key in older_random else "grid"
        return config.error(("sweep", part, key), problem)

    both = [key for key in space if key in grid]
    if both:  # the sampled value would overwrite the grid's in every trial: the grid would only repeat them
        raise config.error(("sweep", "params", both[0]), f"{both[0]} is also in the grid (sweep.grid or --grid): "
                           "list its values there, or sample it here, not both")
    for key, spec in [*grid.items(), *space.items()]:
        if key.split(".")[0].split("[")[0] == "sweep":  # a trial's config has no sweep section: it would change nothing
            raise refused(key, f"the sweep cannot vary {key}, its own setting: vary a key of the experiment")
        if key == "name":
            raise refused(key, "a sweep names its trials NAME-t1, NAME-t2, ... and cannot vary `name`: give the sweep's "
                          "name with --name")
        values = spec if key in grid else spec.get(Sampled.choice, [])
        if key in grid and not values:
            raise refused(key, "lists no value: give at least one")
        written = [json.dumps(value, sort_keys=True, default=str) for value in values]
        twice = [value for value, text in zip(values, written) if written.count(text) > 1]
        if twice:  # a grid would train it twice; a sampler would pick it twice as often
            raise refused(key, f"lists {key}={twice[0]} twice: each value is tried once (for more seeds of each, "
                          "use --repeats)")
    method = method or (section.method if section else None) or (SweepMethod.random if space else SweepMethod.grid)
    prune = prune or (section.prune if section else None) or Pruner.none
    if method == SweepMethod.grid:
        not_listed = [key for key, spec in space.items() if Sampled.choice not in spec]
        if not_listed:
            raise config.error(("sweep", "params", not_listed[0]),
                               "a grid tries listed values only: give {choice: [...]}, or use method random or tpe")
        grid.update({key: spec[Sampled.choice] for key, spec in space.items()})
        space = {}
    if not grid and not space:
        raise DlcliError("nothing to sweep: give --grid KEY=V1,V2 or a `sweep:` section with `grid` or `params`")
    if sampled_trials and not space:  # a grid alone trains each of its points once: a count of samples would be lost
        listed = section is not None and bool(section.params or older_random)  # method grid made them grid values
        unsampled = ("samples nothing: with method grid, each choice of sweep.params is tried once, as a grid value"
                     if listed else "samples the keys of `sweep: params:` in the config, and it has none")
        fix = "use method random or tpe" if listed else "sample keys"
        if trials:
            raise DlcliError(f"--trials/--random {trials} {unsampled}")
        written = ("sweep", "trials") if section.trials else ("sweep", "random", "trials")
        raise config.error(written, f"{sampled_trials} {unsampled}: remove it (a grid trains each point once), or {fix}")
    if space and not sampled_trials:
        raise config.error(("sweep",), f"method {method} samples {len(space)} key(s): say how many trials, "
                           "e.g. `trials: 20` (or --trials 20)")
    if not 0 <= seed <= SEED_MAX:
        raise DlcliError(f"the sampler's seed {seed} (--seed, or sweep.seed): give one from 0 to {SEED_MAX}")
    if repeats > MOST_SEEDS:
        raise DlcliError(f"{repeats_said}: at most {MOST_SEEDS} seeds a trial ({TOO_MANY_SEEDS})")
    if config.seed + repeats - 1 > SEED_MAX:
        raise config.error(("seed",), f"{repeats_said} would train seeds up to {config.seed + repeats - 1}, "
                           f"past the largest seed {SEED_MAX}: start from a lower seed")
    if repeats > 1 and "seed" in {**grid, **space}:
        varied = "the grid" if "seed" in grid else "sweep.params"
        raise DlcliError(f"{repeats_said} trains every trial with seeds {config.seed} to {config.seed + repeats - 1}, "
                         f"and this sweep varies `seed` itself: drop `seed` from {varied}, or the repeats")
    planned = math.prod(len(values) for values in grid.values()) * (sampled_trials if space else 1)
    if planned > MOST_TRIALS:
        raise DlcliError(f"this sweep plans {planned:,} trials; at most {MOST_TRIALS:,} (each is put in the study's "
                         "storage when the sweep is made): sample fewer (trials, --trials) or list fewer grid values")
    points = [dict(zip(grid, combination)) for combination in itertools.product(*grid.values())] or [{}]
    return SweepSettings(method=method, points=points, space=space, samples=sampled_trials if space else 1,
                         prune=prune, seed=seed,
                         repeat_seeds=list(range(config.seed, config.seed + repeats)) if repeats > 1 else [])


def repeat_settings(seeds: Sequence[int], asked: str) -> SweepSettings:
    """A config trained once per seed (`dlcli train --repeat/--seeds`): a grid over `seed` alone,
    whatever `sweep:` section the config has. `seeds` may be a range (--repeat): its size is
    checked before any of it is listed; `asked` is the option as the user gave it."""
    if len(seeds) > MOST_SEEDS:
        raise DlcliError(f"{asked}: at most {MOST_SEEDS} seeds a group ({TOO_MANY_SEEDS})")
    if not seeds:
        raise DlcliError(f"{asked}: no seed listed")
    # first: the advice below names a seed, which must be one `--set seed=` takes
    outside = [seed for seed in seeds if not 0 <= seed <= SEED_MAX]  # said of the option, not of a --grid never given
    if outside:
        fix = "start from a lower seed" if outside[0] > SEED_MAX else "give seeds from 0"
        raise DlcliError(f"{asked}: seed {outside[0]} is outside 0 to {SEED_MAX}: {fix}")
    if len(seeds) < 2:  # as --repeat's range says (2 or more): a group of one tells nothing from seed noise
        raise DlcliError(f"{asked}: one seed is one run, no group to compare: list two or more, or train it alone "
                         f"with --set seed={seeds[0]}")
    if len(set(seeds)) != len(seeds):
        raise DlcliError(f"--seeds {','.join(map(str, seeds))}: a seed is given twice; each seed trains once")
    return SweepSettings(method=SweepMethod.grid, points=[{"seed": seed} for seed in seeds], space={}, samples=1)


def _encoded_choices(choices: list[Any]) -> tuple[list[Any], bool]:
    """Optuna's categorical values are None, bools, numbers or strings: others go as JSON text."""
    plain = all(value is None or isinstance(value, (bool, int, float, str)) for value in choices)
    return (choices, False) if plain else ([json.dumps(value, sort_keys=True) for value in choices], True)


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The values an Optuna trial's sampler chooses for `space`."""
    values = {}
    for key, spec in space.items():
        ((kind, arguments),) = spec.items()
        if kind == Sampled.choice:
            choices, encoded = _encoded_choices(arguments)
            chosen = trial.suggest_categorical(key, choices)
            values[key] = json.loads(chosen) if encoded else chosen
        elif kind == Sampled.int:
            values[key] = trial.suggest_int(key, *arguments)
        else:
            values[key] = trial.suggest_float(key, *arguments, log=kind == Sampled.log_uniform)
    return values


def suggested_values(params: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A trial's sampled values from its Optuna params (choices Optuna could not hold are JSON text)."""
    values = {}
    for key, value in params.items():
        encoded = Sampled.choice in space.get(key, {}) and _encoded_choices(space[key][Sampled.choice])[1]
        values[key] = json.loads(value) if encoded else value
    return values


def corner_values(settings: SweepSettings) -> list[dict[str, Any]]:
    """Values to validate before any trial: every grid point, with each sampled key at each end,
    and a continuous range inside too (its ends may be whole numbers where what it samples is not)."""
    ends = {key: _checked_values(spec) for key, spec in settings.space.items()}
    corners = [dict(zip(ends, combination)) for combination in itertools.product(*ends.values())] if ends else [{}]
    if len(corners) > 64:  # many sampled keys: each end once is enough to find a value that cannot work
        corners = [{key: values[i % len(values)] for key, values in ends.items()} for i in range(max(map(len, ends.values())))]
    return [{**point, **corner} for point in settings.points for corner in corners]


def _checked_values(spec: dict[str, Any]) -> list[Any]:
    ((kind, arguments),) = spec.items()
    if kind not in (Sampled.uniform, Sampled.log_uniform):
        return list(arguments)
    low, high = arguments
    inside = math.sqrt(low * high) if kind == Sampled.log_uniform else low + 0.382 * (high - low)
    return [low, inside, high]


def trial_config(plan: Plan, values: dict[str, Any], label: str, name: str | None = None) -> ExperimentConfig:
    """A trial's config (named `name`), or a ConfigError that names the trial."""
    swept = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    try:  # an error a value causes is the trial's, which `label` names (the user gave it by no --set)
        config = load_config(plan.config, plan.overrides, name=name, values=[*swept, "sweep=null"])
        check_new_run(config)  # as `dlcli train` checks its config: a swept validation_split of 0 beside a val_ monitor
        return config
    except ConfigError as error:
        raise ConfigError(f"{swept_at(plan, error)}{label}: {error}") from None


def check_trial_names(config: ExperimentConfig, settings: SweepSettings) -> None:
    """Trial runs are named NAME-tN (NAME-tN-sSEED with repeats): refuse a name that leaves no room
    for the suffix, before any trial."""
    longest = f"{config.name}-t{settings.total}" + (f"-s{max(settings.repeat_seeds)}" if settings.repeat_seeds else "")
    if not NAME_PATTERN.fullmatch(longest):
        room = len(config.name) - (len(longest) - MAX_NAME_LENGTH)
        raise config.error(
            ("name",), f"{config.name!r} leaves no room for this sweep's trial names ({longest!r} is "
            f"{len(longest)} characters, {MAX_NAME_LENGTH} at most): shorten it to {room} characters or fewer",
        )


def validate_trials(plan: Plan) -> list[tuple[str, ExperimentConfig]]:
    """Every value a trial can take, validated without TensorFlow: (label, config) per grid point and end."""
    checked = []
    for number, values in enumerate(corner_values(plan.settings), start=1):
        label = f"values {describe_values(values)}" if plan.settings.space else f"trial {number} ({describe_values(values)})"
        checked.append((label, trial_config(plan, values, label)))
    return checked


def swept_at(plan: Plan, error: DlcliError) -> str:
    """'WHERE: ' of the swept key a trial's `error` is about (the key itself, one under it, or one it
    is under): its line in the config's sweep section, else its --grid; '' when it names none."""
    named = format_path(getattr(error, "key", None) or ())
    if not named or plan.settings is None:  # an error of no key, or a plan from before settings were kept
        return ""
    swept = dict.fromkeys(key for values in (*plan.settings.points, plan.settings.space) for key in values)
    culprit = next((key for key in swept if f"{named}.".startswith(f"{_dotted(key)}.")
                    or _dotted(key).startswith(f"{named}.")), None)
    if culprit is None:
        return ""
    try:
        base = load_config(plan.config, plan.overrides)
    except DlcliError:  # the config changed or went since the sweep was planned: the error says enough
        return ""
    sections = [part for part in ("params", "grid", "random") if culprit in getattr(base.sweep, part, {})]
    if sections == ["grid"]:  # a --grid of the key replaced the section's list: the values swept tell which won
        listed = {json.dumps(value, sort_keys=True, default=str) for value in base.sweep.grid[culprit]}
        swept_values = {json.dumps(point[culprit], sort_keys=True, default=str) for point in plan.settings.points
                        if culprit in point}
        if swept_values != listed:
            sections = []
    return base.source.prefix(("sweep", sections[0], culprit)) if sections else f"--grid {culprit}: "


def _dotted(key: str) -> str:
    """A swept key as an error names it: model.layers[0].Dense -> model.layers.0.Dense."""
    return format_path(key_parts(key))


# --- the study ----------------------------------------------------------------------------


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(storage: str | None, folder: Path):
    """The Optuna storage `storage` names (a database URL, or a journal file's path), or the
    journal file in the sweep's folder; one line naming it when it cannot be reached."""
    optuna = _optuna()
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    where = storage or str(folder / STUDY_FILE)
    # a file the user named must be in a folder that exists: a shared filesystem not mounted would
    # otherwise give each machine a study of its own, silently (Optuna makes SQLite's folder)
    named_file = storage.split(":///", 1)[1] if storage and storage.startswith("sqlite:///") else storage
    if named_file and "://" not in named_file and named_file != ":memory:":
        parent = Path(named_file).expanduser().parent
        if not parent.is_dir():
            raise DlcliError(f"--storage {storage}: the folder {parent} does not exist (a shared filesystem not "
                             "mounted?); create it, or name a file in a folder that exists")
    try:
        if storage and "://" in storage:
            connect = {"connect_timeout": STORAGE_TIMEOUT} if storage.startswith(("postgresql", "mysql")) else {}
            return RDBStorage(storage, engine_kwargs={"connect_args": connect, "pool_pre_ping": True})
        path = Path(where).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)  # the sweep's own folder
        return JournalStorage(JournalFileBackend(str(path)))
    except ImportError as error:
        missing = error.__cause__ or error  # Optuna's own ImportError wraps SQLAlchemy's
        raise DlcliError(f"--storage {storage}: its database driver is not installed ({missing}); install it "
                         "(for PostgreSQL: pip install 'dlcli[postgres]')") from None
    except (OSError, optuna.exceptions.OptunaError) as error:
        raise DlcliError(f"cannot open the sweep's storage {where}: {error}") from None
    except Exception as error:  # SQLAlchemy's connection errors, whatever the driver; a journal's own
        reason = f"{type(error).__name__}: {reason_of(error)[:200]}"
        if not (storage and "://" in storage):
            raise DlcliError(f"cannot read the sweep's journal {where}: {reason}; a journal edited or cut short cannot "
                             "be read: start the sweep again (its runs so far are kept)") from None
        raise DlcliError(f"cannot reach the sweep's storage {where}: {reason}; check the URL, the server and the "
                         "network") from None


def sampler(settings: SweepSettings, joined: bool):
    """The settings' sampler, seeded; a process that joins a study seeds its own differently,
    so that two processes do not draw the same values."""
    optuna = _optuna()
    seed = settings.seed
    if joined:
        seed = int(hashlib.sha256(f"{seed}-{socket.gethostname()}-{os.getpid()}".encode()).hexdigest()[:8], 16)
    if settings.method == SweepMethod.tpe:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, settings.total // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def pruner(settings: SweepSettings, epochs: int):
    optuna = _optuna()
    if settings.prune == Pruner.median:
        # a trial is judged from its second epoch (steps are epoch numbers, from 1), against the
        # median of at least 3 finished trials: one epoch's numbers are too noisy to stop on
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if settings.prune == Pruner.hyperband:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def _differences(there: dict[str, Any], here: dict[str, Any]) -> str:
    keys = sorted(set(there) | set(here))
    differing = [key for key in keys if there.get(key) != here.get(key)]
    return "; ".join(f"{key}: {there.get(key)!r} there, {here.get(key)!r} here" for key in differing)


def open_study(plan: Plan, folder: Path, epochs: int, wait_seconds: float = 60.0):
    """The plan's study: made, with every trial waiting in it, or joined when it exists and
    searches the same space (refused, naming the difference, when not)."""
    optuna = _optuna()
    storage = open_storage(plan.storage, folder)
    settings = plan.settings
    common = {"study_name": plan.study, "storage": storage, "pruner": pruner(settings, epochs)}
    try:
        study = optuna.create_study(direction=plan.direction, sampler=sampler(settings, joined=False), **common)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(sampler=sampler(settings, joined=True), **common)
        deadline = time.monotonic() + wait_seconds
        while STUDY_ATTRIBUTE not in study.user_attrs:  # its maker is still putting the trials in
            if time.monotonic() > deadline:
                raise DlcliError(f"study {plan.study} in {plan.storage or folder / STUDY_FILE} was left half made "
                                 "by a process that stopped; give this sweep another --name") from None
            time.sleep(0.5)
        recorded = study.user_attrs[STUDY_ATTRIBUTE]
        if recorded["search"] != settings.compared() or recorded["direction"] != plan.direction:
            there = {**recorded["search"], "direction": recorded["direction"]}
            here = {**settings.compared(), "direction": plan.direction}
            raise DlcliError(f"study {plan.study} in {plan.storage} searches another space ({_differences(there, here)}); "
                             "give this sweep another --name, or the same sweep section") from None
        return study
    except Exception as error:
        if isinstance(error, DlcliError):
            raise
        raise DlcliError(f"cannot make study {plan.study} in {plan.storage or folder / STUDY_FILE}: "
                         f"{type(error).__name__}: {reason_of(error)[:200]}; a storage edited or cut short "
                         "cannot be read: start the sweep again (its runs so far are kept)") from None
    for point in settings.points:
        for _ in range(settings.samples):
            study.enqueue_trial({}, user_attrs={"fixed": point}, skip_if_exists=False)
    study.set_user_attr(STUDY_ATTRIBUTE, {
        "search": settings.compared(), "direction": plan.direction, "monitor": plan.monitor, "config": plan.config,
    })
    return study


def taker(folder: Path) -> str:
    """Who took a trial: this machine's sweep folder (two machines' folders can have one name)."""
    return f"{socket.gethostname()}:{folder.resolve()}"


def take_trial(study, plan: Plan, folder: Path) -> tuple[Any, dict[str, Any]] | None:
    """The next waiting trial of the study, taken for this process, with its values; None when
    every trial is taken."""
    optuna = _optuna()
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        return None
    trial = study.ask()
    if "fixed" not in trial.user_attrs:  # another process took the last waiting trial first
        trial.set_user_attr("surplus", True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    trial.set_user_attr("taker", taker(folder))
    trial.set_user_attr("host", socket.gethostname())
    return trial, {**trial.user_attrs["fixed"], **suggest(trial, plan.settings.space)}


# --- the local record ---------------------------------------------------------------------------


def create_sweep(plan: Plan, runs_dir: Path, epochs: int) -> tuple[Plan, Path, Any]:
    """The sweep's folder, its plan and its study (made or joined); no folder is left when the study is refused."""
    sweeps = runs_dir / SWEEPS_DIR
    sweeps.mkdir(parents=True, exist_ok=True)
    folder = RunFolder.create(sweeps, plan.name).path
    plan.id = folder.name
    plan.study = plan.study or plan.name
    try:
        study = open_study(plan, folder, epochs)
    except DlcliError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    plan.save(folder)
    return plan, folder, study


def find_sweep(runs_dir: Path, reference: str) -> Path:
    if not reference.strip():  # a prefix of every sweep's id
        raise RunNotFound("--resume '': an empty sweep id; give a sweep's id, a prefix of it, or latest")
    sweeps = runs_dir / SWEEPS_DIR
    candidates = sorted(p for p in sweeps.iterdir() if (p / PLAN_FILE).is_file()) if sweeps.is_dir() else []
    matches = [p for p in candidates if p.name == reference] or [p for p in candidates if p.name.startswith(reference)]
    if reference == LATEST and candidates:
        return candidates[-1]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.name for p in candidates[-5:]) or "none yet"
    raise RunNotFound(f"no single sweep '{reference}' in {sweeps}; sweeps: {known}")


def sweep_records(runs_dir: Path, sweep_id: str) -> list[RunRecord]:
    """The runs tagged in their run.json as trials of sweep `sweep_id`, oldest first: asked of the
    runs folder's index, not read from every run folder at each trial's end."""
    from dlcli.store.index import RunIndex

    with RunIndex(runs_dir) as index:
        return index.records(sweep=sweep_id)[0]


def seed_runs(records: list[RunRecord], trial: int) -> dict[int | None, RunRecord]:
    """A trial's newest run per seed it was repeated with (key None: a trial trained once)."""
    return {record.info["sweep"].get("seed"): record for record in records if record.info["sweep"]["trial"] == trial}


def repeated_status(statuses: list[str | None]) -> tuple[str | None, int]:
    """A repeated trial's status from its seeds' runs' (None: not started), in seed order, and the
    position of the seed it is at: the first that is not completed (the last when all are).
    None when no seed has started."""
    for position, status in enumerate(statuses):
        if status != RunStatus.completed:
            if status is None:  # the seeds before it trained, this one never started
                return (RunStatus.interrupted if position else None), position
            return status, position
    return RunStatus.completed, len(statuses) - 1


def refresh(plan: Plan, runs_dir: Path) -> None:
    """Each trial's newest run (each seed's, with repeats) and its status, read from the run folders."""
    records = sweep_records(runs_dir, plan.id)
    seeds = plan.settings.repeat_seeds if plan.settings else []
    for trial in plan.trials:
        runs = seed_runs(records, trial.index)
        if not seeds:
            if None in runs:
                trial.run, trial.status = runs[None].id, runs[None].status
            continue
        newest = [runs.get(seed) for seed in seeds]
        status, position = repeated_status([record.status if record else None for record in newest])
        if status is not None:
            trial.status = status
            trial.runs = [record.id for record in newest if record]
            at = newest[position] or newest[position - 1]
            trial.run = at.id


def study_trials(plan: Plan, folder: Path) -> list[dict[str, Any]]:
    """Every trial the plan's study holds, from every process and machine: number, state, values, run, host."""
    if plan.settings is None:
        return []
    study = _optuna().load_study(study_name=plan.study, storage=open_storage(plan.storage, folder))
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attributes = trial.user_attrs
        if attributes.get("surplus"):
            continue
        rows.append({
            "index": trial.number + 1, "value": trial.value,
            "state": attributes.get("status") or STUDY_STATES.get(trial.state.name, trial.state.name.lower()),
            "values": {**attributes.get("fixed", {}), **suggested_values(trial.params, plan.settings.space)},
            "run": attributes.get("run"), "host": attributes.get("host"), "status": attributes.get("status"),
        })
    return rows


# --- the workers --------------------------------------------------------------------------------


class SweepInterrupted(DlcliError):
    exit_code = EXIT_INTERRUPTED
    label = "stopped"


class Request(BaseModel):
    """What the sweep asks a worker, one JSON line: build every trial's model (`check`), or train
    or resume a trial (its runs under `runs_dir`, its output into `log` when there is one)."""

    op: Literal["check", "train", "resume"]
    plan: Plan
    runs_dir: str
    trial: Trial | None = None
    epochs: int | None = None
    log: str | None = None


class Answer(BaseModel):
    """A worker's answer, one JSON line: the trials checked (the monitored metric and its
    direction), a trial done (how it ended, its run, why when not completed), or an error that
    kept the request from starting (`config`: a mistake of the config's)."""

    op: Literal["checked", "done", "error"]
    monitor: str | None = None
    direction: str | None = None
    status: RunStatus | None = None
    run: str | None = None
    message: str | None = None
    config: bool = False


class Worker:
    """A `python -m dlcli.sweep.trials` process: requests on its stdin, answers on its stdout, one JSON
    object a line. It dies with the sweep: its stdin closes when this process dies, however."""

    def __init__(self, number: int, answers: queue.Queue, threads: int):
        environment = {**os.environ, "DLCLI_THREADS": str(threads)}
        self.number = number
        self.threads = threads
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dlcli.sweep.trials"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=environment, text=True, bufsize=1,
        )
        threading.Thread(target=self._read, args=(answers,), daemon=True).start()

    def _read(self, answers: queue.Queue) -> None:
        for line in self.process.stdout:
            try:
                answers.put((self, Answer.model_validate_json(line)))
            except ValueError:
                continue  # not an answer: something the worker's libraries printed
        answers.put((self, None))

    def send(self, request: Request) -> None:
        self.process.stdin.write(request.model_dump_json(by_alias=True) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass


def start_workers(jobs: int) -> tuple[list[Worker], queue.Queue]:
    """`jobs` workers, each with its share of the cores; they import TensorFlow while the sweep gets ready."""
    cores = os.cpu_count() or 1
    if jobs > cores:  # checked first: each worker is a process importing TensorFlow (about 200 MB)
        raise DlcliError(f"--jobs {jobs}: this machine has {counted(cores, 'core')} and each worker trains on its share "
                         f"of them; give --jobs {cores} or fewer")
    answers: queue.Queue = queue.Queue()
    threads = max(1, cores // jobs)
    return [Worker(number, answers, threads) for number in range(1, jobs + 1)], answers


def check_with_worker(plan: Plan, worker: Worker, answers: queue.Queue, runs_dir: Path) -> Answer:
    """A worker builds every trial's model before any trains; it answers the monitored metric and direction."""
    worker.send(Request(op="check", plan=plan, runs_dir=str(runs_dir)))
    _optuna()  # imported while the worker checks, for the study made next
    while True:
        answered, answer = answers.get()
        if answered is not worker:
            continue
        if answer is None:
            raise DlcliError(f"the sweep's worker stopped while checking the trials (exit code {worker.process.wait()})")
        if answer.op == "error":
            raise (ConfigError if answer.config else DlcliError)(answer.message)
        return answer


def run_sweep(
    plan: Plan, folder: Path, runs_dir: Path, study, workers: list[Worker], answers: queue.Queue,
    retry_failed: bool, say: Callable[[str], None], epochs: int,
) -> None:
    """Train this folder's unfinished trials, then take waiting trials from `study` (None: an
    older plan, which lists every trial), one per free worker."""
    if study is not None:
        _adopt_taken_trials(study, plan, folder)
    refresh(plan, runs_dir)
    again = [
        trial for trial in plan.trials
        if trial.status not in FINISHED and (trial.status != RunStatus.failed or retry_failed)
    ]
    jobs = len(workers)
    free = list(workers)
    busy: dict[Worker, Trial] = {}
    waiting_for_owner: list[Trial] = []
    exhausted = study is None
    try:
        while True:
            for trial in list(waiting_for_owner):  # trials another process still trains: wait for its end
                if not _owned_elsewhere(trial, runs_dir):
                    waiting_for_owner.remove(trial)
                    refresh(plan, runs_dir)
                    if trial.status not in FINISHED:
                        again.append(trial)
            while free and (again or not exhausted):
                if again:
                    trial = again.pop(0)
                    if trial.run and _owned_elsewhere(trial, runs_dir):
                        waiting_for_owner.append(trial)
                        continue
                    resume = trial.run is not None and trial.status in RESUMABLE
                else:
                    taken = take_trial(study, plan, folder)
                    if taken is None:
                        exhausted = True
                        break
                    optuna_trial, values = taken
                    trial = Trial(index=optuna_trial.number + 1, values=values, number=optuna_trial.number)
                    plan.trials.append(trial)
                    plan.trials.sort(key=lambda t: t.index)
                    resume = False
                worker = free.pop(0)
                say(f"trial {trial.index} ({trial.label()}): {'resuming' if resume else 'starting'}"
                    + (f" (worker {worker.number})" if jobs > 1 else ""))
                log = folder / LOGS_DIR / f"trial-{trial.index}.log" if jobs > 1 else None
                if log is not None:
                    log.parent.mkdir(exist_ok=True)
                worker.send(Request(op="resume" if resume else "train", plan=plan, trial=trial, epochs=epochs,
                                    runs_dir=str(runs_dir), log=str(log) if log else None))
                trial.status = RunStatus.running
                busy[worker] = trial
                plan.save(folder)
            if not busy and not again and not waiting_for_owner and exhausted:
                break
            if not busy and waiting_for_owner:
                time.sleep(0.5)
                continue
            worker, answer = answers.get()
            if worker not in busy:
                if answer is None and worker in free:  # an idle worker died: replace it
                    free.remove(worker)
                    free.append(_replace(worker, workers, answers))
                continue
            trial = busy.pop(worker)
            if answer is None:  # the worker died with its trial
                say(f"trial {trial.index}: crashed (its worker exited with code {worker.process.wait()}); "
                    f"`{resume_command(plan.id, runs_dir)}` continues it")
                refresh(plan, runs_dir)
                trial.status = RunStatus.crashed
                free.append(_replace(worker, workers, answers))
            else:
                refresh(plan, runs_dir)
                trial.status = answer.status or RunStatus.failed  # an "error" answer: the trial could not start
                if trial.status == RunStatus.interrupted:
                    raise KeyboardInterrupt
                say(f"trial {trial.index}: {trial.status}" + (f" ({trial.run})" if trial.run else "")
                    + (f": {answer.message}" if answer.message and trial.status != RunStatus.completed else ""))
                free.append(worker)
            plan.save(folder)
    except KeyboardInterrupt:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGINT)  # each trial stops cleanly as 'interrupted'
        for worker in workers:
            worker.process.wait()
        refresh(plan, runs_dir)
        plan.save(folder)
        raise SweepInterrupted(
            f"sweep {plan.id} interrupted; continue it with: {resume_command(plan.id, runs_dir)}"
        ) from None
    refresh(plan, runs_dir)
    plan.save(folder)


def _adopt_taken_trials(study, plan: Plan, folder: Path) -> None:
    """Trials this sweep took from the study but had not yet written into plan.json when its process
    died: back into the plan, to be trained."""
    listed = {trial.number for trial in plan.trials}
    for taken in study.get_trials(deepcopy=False, states=(_optuna().trial.TrialState.RUNNING,)):
        if taken.user_attrs.get("taker") == taker(folder) and taken.number not in listed:
            values = {**taken.user_attrs.get("fixed", {}), **suggested_values(taken.params, plan.settings.space)}
            plan.trials.append(Trial(index=taken.number + 1, values=values, number=taken.number))
    plan.trials.sort(key=lambda trial: trial.index)


def _owned_elsewhere(trial: Trial, runs_dir: Path) -> bool:
    """The trial's run is being trained by a process that is still alive (a sweep killed a moment ago)."""
    folder = RunFolder(runs_dir / trial.run)
    try:
        return effective_status(read_info(folder).to_dict(), folder) == RunStatus.running
    except DlcliError:
        return False


def _replace(dead: Worker, workers: list[Worker], answers: queue.Queue) -> Worker:
    replacement = Worker(dead.number, answers, dead.threads)
    workers[workers.index(dead)] = replacement
    return replacement


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        worker.stop()
    for worker in workers:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()

