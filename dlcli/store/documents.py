"""The run folder's JSON documents as pydantic models, each validated and written in one place.

`run.json`, `summary.json`, `inputs.json`, `evaluation.json` and `checkpoint/state.json` are
typed here; so are the operations that write run.json (a run starts, resumes, ends) and the
one that reads a folder whole (`load_run`). The reading commands ask the index
(dlcli.store.index), which calls `load_run` only for the folders that changed since it last
read them, so that listing runs never pays for importing pydantic.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, ValidationError, field_validator

from dlcli import __version__
from dlcli.choices import InputKind, Task
from dlcli.errors import DlcliError, file_problem, kind_of
from dlcli.keys import read_yaml
from dlcli.outputs import write_atomic
from dlcli.store.runs import (
    CONFIG_FILE,
    EVALUATION_FILE,
    OLD_WEIGHTS_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    TRAIN_AGAIN,
    RunFolder,
    RunRecord,
    checkpointed_as,
    effective_status,
    group_of,
    list_run_folders,
    now,
    prepared_as,
    process_start_time,
    run_config,
)
from dlcli.store.status import FINISHED, RECORDED, RunStatus

SCHEMA = 1  # of the run folder's JSON files, as this dlcli writes them


class RunFile(BaseModel):
    """A JSON file of the run folder with a `schema` version; a file without one is version 0
    (written before versions, with the same keys), and keys a later dlcli adds are kept."""

    # Infinity and NaN as JSON's usual extension (Python's json reads them), not null
    model_config = ConfigDict(extra="allow", populate_by_name=True, ser_json_inf_nan="constants", defer_build=True)

    schema_version: int = Field(SCHEMA, alias="schema")

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return cls.model_validate({"schema": 0, **data})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    def write(self, path: Path) -> None:
        write_atomic(path, self.model_dump_json(by_alias=True, indent=2) + "\n")


class RunInfo(RunFile):
    """`run.json`: a run's identity and status (docs/run-folder.md)."""

    id: str
    name: str = ""
    dataset: str = ""
    status: str = "unknown"  # one of status.RECORDED
    created: str | None = None  # ISO 8601 with its offset; one written without is read as UTC
    ended: str | None = None
    duration_s: float | None = None
    command: str | None = None
    cwd: str | None = None
    seed: int | None = None
    versions: dict[str, str] = {}
    host: str | None = None
    pid: int | None = None
    pid_started: int | None = None  # clock ticks since boot: a reused pid is another process
    error: str | None = None
    sweep: dict[str, Any] | None = None  # {id, trial, values} for a trial of a sweep
    group: str | None = None  # group_of its config: the runs that differ only in their seed
    checkpointed_as: str | None = None  # checkpointed_as its config: what a resume must keep
    prepared_as: str | None = None  # prepared_as its config: what evaluate must rebuild the data with
    resumes: list[dict[str, Any]] = []  # one {at, command} per --resume
    resumable: bool = True  # false when it failed on its config: a resume would fail the same way

    @field_validator("status")
    @classmethod
    def _a_known_status(cls, value: str) -> str:
        """A status dlcli records: another word (an edit, a bad disk) would be listed and filtered as if it were one."""
        known = [status.value for status in RECORDED]
        if value not in known:
            raise ValueError(f"{value!r} is no status dlcli records ({', '.join(known)})")
        return value

    @field_validator("duration_s")
    @classmethod
    def _no_time_before_the_start(cls, value: float | None) -> float | None:
        """A duration below zero: the clock was set back during the run (an older dlcli wrote it as it
        came). The run is whole; it is shown as taking no time, never as a negative one."""
        return None if value is None else max(value, 0.0)

    @field_validator("created", "ended")
    @classmethod
    def _a_moment(cls, value: str | None) -> str | None:
        """A time of day a duration can be counted from: ISO 8601, its offset UTC when it has none."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value)  # ValueError: the run is damaged, and says why
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.isoformat(timespec="milliseconds")


class OverfittingVerdict(BaseModel):
    """summary.json's `overfitting`: the verdict of curves.verdicts, or of k folds together."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    detected: bool
    monitor: str | None = None
    onset_epoch: int | None = None
    warned_at_epoch: int | None = None
    stopped_at_epoch: int | None = None
    message: str | None = None
    advice: list[str] = []
    folds: list[int] | None = None  # a k-fold run: the folds that overfit


class KFold(BaseModel):
    """summary.json's `kfold`: each fold's own result, and their means and spreads."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    k: int
    folds: list[dict[str, Any]]
    best: dict[str, dict[str, float]] = {}
    final: dict[str, dict[str, float]] = {}


class Summary(RunFile):
    """`summary.json`, written once training has ended; every key a reader relies on is typed,
    so a file that breaks one makes its run `damaged` (with the reason) instead of a traceback."""

    monitor: str | None = None
    directions: dict[str, str] = {}
    epochs_run: NonNegativeInt
    best_epoch: NonNegativeInt | None = None
    best: dict[str, float] = {}
    final: dict[str, float] = {}
    notes: list[str] = []
    overfitting: OverfittingVerdict | None = None
    kfold: KFold | None = None
    diverged: dict[str, Any] | None = None
    pruned: dict[str, Any] | None = None  # {epoch}: a sweep's pruner stopped the run there
    parameters: NonNegativeInt | None = None
    trainable_parameters: NonNegativeInt | None = None
    fine_tune_from_epoch: NonNegativeInt | None = None
    fold: int | None = None  # one fold's own summary, inside a k-fold run's `kfold.folds`
    fit_seconds: NonNegativeFloat | None = None
    samples_per_second: NonNegativeFloat | None = None
    speed: dict[str, Any] = {}
    data: dict[str, Any] = {}

    def part(self) -> dict[str, Any]:
        """The keys set, as a fold's entry of `kfold.folds` holds them."""
        return self.model_dump(mode="json", exclude_unset=True, exclude={"schema_version"})


class InputRecord(BaseModel):
    """One named input of a table, in `inputs.json`: its kind, columns, encoded shape and encoding."""

    kind: InputKind
    columns: list[str]
    shape: list[int]
    encoding: str


class OutputRecord(BaseModel):
    """One named output of a table, in `inputs.json`: its column, its classes (none: a regression),
    and whether the model gives logits or probabilities for it."""

    column: str
    class_names: list[str] = []
    outputs: Literal["logits", "probabilities"] = "probabilities"


class Inputs(RunFile):
    """`inputs.json`: what the trained model takes and gives, for predict, export and visualize."""

    kind: Literal["image", "array", "text", "table"]  # table: named inputs and outputs (`table_inputs`, `table_outputs`)
    input_shape: list[PositiveInt]
    task: Task
    table_inputs: dict[str, InputRecord] = {}
    table_outputs: dict[str, OutputRecord] = {}
    table_format: Literal["csv", "npz"] | None = None  # what a table's inputs were read from, and predict reads
    columns: list[str] = []
    class_names: list[str] = []
    class_mapping: dict[str, Any] = {}
    folds: int | None = None
    value_range: float | None = None
    encoding: str | None = None
    outputs: Literal["logits", "probabilities"] = "probabilities"


class Evaluation(RunFile):
    """`evaluation.json`, written by `dlcli evaluate`: the metrics on a split (for k-fold, the folds'
    mean and spread, and each fold's own), and for a classifier the confusion matrix."""

    run: str
    split: str
    metrics: dict[str, float]
    evaluated: str | None = None
    samples: int | None = None
    metrics_std: dict[str, float] = {}
    class_names: list[str] = []
    confusion_matrix: list[list[int]] | None = None  # rows: the true class, columns: the predicted
    per_class_accuracy: dict[str, float | None] = {}
    # a table's classification outputs, each by name: its class_names, confusion_matrix, per_class_accuracy
    outputs: dict[str, dict[str, Any]] = {}
    folds: list[dict[str, Any]] | None = None
    fingerprint: str | None = None  # of the split rebuilt
    same_data_as_training: bool | None = None  # None: training recorded no comparable fingerprint

    def shown(self) -> dict[str, Any]:
        """The keys this evaluation has, as evaluation.json and `--format json` give them."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


class CheckpointState(RunFile):
    """`checkpoint/state.json`: an unfinished run's last committed epoch and the files that hold it.

    Written last in each epoch's commit (dlcli.training.checkpoint), so it only ever names files that
    are whole. Schema 0 is an older dlcli's `{epoch, fold?, phase?}` beside `last.weights.h5`.
    """

    commit: int = 0  # numbers the files of this commit
    stage: int = 0  # its index in dlcli.training.plan.plan_stages
    epoch: int  # the last epoch trained, numbered as in history.csv
    stopped: bool = False  # a callback (EarlyStopping) ended the stage at this epoch
    finished: bool = False  # the stage has ended; the weights are those the next stage starts from
    weights: str = OLD_WEIGHTS_FILE  # in checkpoint/: the fitted model's weights and optimizer state
    history: list[dict[str, Any]] | None = None  # history.csv up to this epoch (ints stay ints); None in schema 0
    callbacks: list[dict[str, Any]] | None = None  # each Keras callback's own numbers, in config order
    callback_arrays: str | None = None  # in checkpoint/: their arrays (EarlyStopping's best weights)
    random: list[list[int]] | None = None  # the fitted model's random generators' states
    best_model: str | None = None  # in checkpoint/: this epoch's model, still to move to best_model_target
    best_model_target: str | None = None
    fold: int | None = None  # schema 0 only
    phase: int | None = None  # schema 0 only

    def files(self) -> set[str]:
        return {name for name in (self.weights, self.callback_arrays, self.best_model) if name}


def read_run_file(model: type[RunFile], path: Path, owner: str, advice: str):
    """`path` read through `model`, or one line: '<owner>: <file> is damaged (why); <advice>'."""
    try:
        return model.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as error:  # pydantic's ValidationError is a ValueError
        raise DlcliError(f"{owner}: {path.name} is damaged ({file_problem(error)}); {advice}") from None


def read_info(folder: RunFolder) -> RunInfo:
    """run.json, or one line saying the run is damaged and how."""
    return _read_whole(folder, RUN_FILE, RunInfo)


def read_summary(folder: RunFolder) -> dict[str, Any]:
    """summary.json, each key it may lack there with its default; or one line saying it is damaged."""
    return _read_whole(folder, SUMMARY_FILE, Summary).to_dict()


def damaged_run(folder: RunFolder, damage: str) -> DlcliError:
    """The error of a command that cannot read the run's files: what is damaged, and what to do."""
    again = TRAIN_AGAIN if run_config(folder)[0] is not None else \
        f"put its {CONFIG_FILE} back as it was, or train the original config again for a new run"
    return DlcliError(f"run {folder.id} is damaged: {damage}; its folder is left as it is: {again}")


def _read_whole(folder: RunFolder, name: str, model: type[RunFile]):
    data, damage = _validated(folder.file(name), model)
    if data is None:
        raise damaged_run(folder, damage or f"it has no {name}")
    return model.from_dict(data)


def start_run(
    folder: RunFolder, config_yaml: str, seed: int, name: str, versions: dict[str, str], command: str | None,
    dataset: str, sweep: dict[str, Any] | None = None,
) -> RunInfo:
    """Write the resolved config and a `running` run.json."""
    write_atomic(folder.file(CONFIG_FILE), config_yaml)
    written = read_yaml(config_yaml)
    info = RunInfo(
        id=folder.id, name=name, dataset=dataset, status=RunStatus.running, group=group_of(written),
        checkpointed_as=checkpointed_as(written), prepared_as=prepared_as(written),
        created=now().isoformat(timespec="milliseconds"), command=command, cwd=os.getcwd(), seed=seed,
        versions={"python": platform.python_version(), "dlcli": __version__, **versions},
        host=socket.gethostname(), pid=os.getpid(), pid_started=process_start_time(os.getpid()), sweep=sweep,
    )
    info.write(folder.file(RUN_FILE))
    return info


def restart_run(folder: RunFolder, command: str | None) -> RunInfo:
    """Mark a resumed run `running` again, by this process."""
    info = read_info(folder)
    info.resumes.append({"at": now().isoformat(timespec="milliseconds"), "command": command})
    info = info.model_copy(update=dict(
        status=RunStatus.running, ended=None, duration_s=None, error=None, host=socket.gethostname(), pid=os.getpid(),
        pid_started=process_start_time(os.getpid()), schema_version=SCHEMA,
    ))
    info.write(folder.file(RUN_FILE))
    return info


def finish_run(folder: RunFolder, status: str, error: str | None = None, resumable: bool = True) -> RunInfo:
    """Record the final status, the end time and the duration."""
    info = read_info(folder)
    ended = now()
    created = datetime.fromisoformat(info.created) if info.created else ended
    info = info.model_copy(update=dict(
        status=status, ended=ended.isoformat(timespec="milliseconds"),
        # a clock set back during the run would make it negative, which no reader takes
        duration_s=max(round((ended - created).total_seconds(), 1), 0.0), error=error, resumable=resumable,
        schema_version=SCHEMA,
    ))
    info.write(folder.file(RUN_FILE))
    return info


def _validated(path: Path, model: type[RunFile]) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None) when `model` accepts the file, or (None, why it cannot be read); a missing file is (None, None)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, ValueError) as error:  # a JSONDecodeError says where it breaks
        return None, f"{path.name} cannot be read ({file_problem(error)})"
    if not isinstance(data, dict):
        return None, f"{path.name} holds {kind_of(data)}, not an object"
    try:
        model.from_dict(data)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        return None, f"{path.name}: {where}: {problem['msg']}"
    return data, None


def load_run(folder: RunFolder) -> RunRecord:
    """The run's record read from its folder; a missing or corrupt run.json or summary.json makes it
    'damaged', never an error. Each document through its model: a key an older or damaged file
    lacks is there, with its default."""
    data, damage = _validated(folder.file(RUN_FILE), RunInfo)
    if data is None:
        info = RunInfo(id=folder.id).to_dict()
        return RunRecord(folder, info, RunStatus.damaged, damage or f"{RUN_FILE} is missing")
    info = RunInfo.from_dict(data).to_dict()
    status = effective_status(info, folder)
    summary, summary_damage = _validated(folder.file(SUMMARY_FILE), Summary)
    if summary_damage is None and summary is None and status in FINISHED:
        summary_damage = f"{SUMMARY_FILE} is missing though the run is {status}"
    # optional, re-made by `dlcli evaluate`: a damaged one takes the test score away, not the run
    evaluation, evaluation_damage = _validated(folder.file(EVALUATION_FILE), Evaluation)
    config, config_damage = run_config(folder)
    if config is None and config_damage is None and info.get("prepared_as") is not None:  # a run of this dlcli had one
        config_damage = f"{CONFIG_FILE} is missing"
    if summary_damage or config_damage:
        return RunRecord(folder, info, RunStatus.damaged, summary_damage or config_damage, None, evaluation, config=config,
                         evaluation_damage=evaluation_damage)
    summary = Summary.from_dict(summary).to_dict() if summary is not None else None
    evaluation = Evaluation.from_dict(evaluation).to_dict() if evaluation is not None else None
    return RunRecord(folder, info, status, None, summary, evaluation, config=config, evaluation_damage=evaluation_damage)


def load_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run of `runs_dir` read from its folder, oldest first (the commands ask the index)."""
    return [load_run(folder) for folder in list_run_folders(runs_dir)]
