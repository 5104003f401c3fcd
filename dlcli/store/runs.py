"""The run folder: created without collisions, written atomically, read back tolerantly."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import platform
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlcli import __version__
from dlcli.choices import InputKind
from dlcli.errors import DlcliError, RunNotFound
from dlcli.keys import read_yaml
from dlcli.outputs import replaced
from dlcli.store.status import FINISHED, RunStatus

# The run folder's layout: every file dlcli writes in it (docs/run-folder.md describes each).
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"
EVALUATION_FILE = "evaluation.json"
MODEL_FILE = "model.keras"
INPUTS_FILE = "inputs.json"
CURVES_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
VISUALIZATIONS_DIR = "visualizations"  # dlcli visualize: activations/, filters/, heatmaps/
EXPORT_DIR = "export"  # dlcli export's default destination
OWNER_FILE = "owner.lock"  # locked by the process training the run (RunFolder.owned)
CHECKPOINT_DIR = "checkpoint"  # an unfinished run's resume state; removed when it completes
STATE_FILE = "state.json"  # in CHECKPOINT_DIR: the last committed epoch (CheckpointState)
OLD_WEIGHTS_FILE = "last.weights.h5"  # in CHECKPOINT_DIR, by dlcli before checkpoint schema 1


# What runs of one experiment may differ in: their name, their seed, and the sweep section a
# sweep's trials drop. Runs whose configs are otherwise the same form one group (repeats).
NOT_THE_EXPERIMENT = ("name", "seed", "sweep")


def group_of(config: dict[str, Any]) -> str:
    """The group of the runs of `config` (a run's resolved config, as read from config.yaml):
    the same for every seed of one experiment, different for any other change."""
    experiment = {key: value for key, value in config.items() if key not in NOT_THE_EXPERIMENT}
    return hashlib.sha256(json.dumps(experiment, sort_keys=True, default=str).encode()).hexdigest()[:10]


def model_file(fold: int | None) -> str:
    """The run's model: `model.keras`, or fold K's of a k-fold run."""
    return MODEL_FILE if fold is None else f"model-fold-{fold}.keras"


def preprocessing_file(fold: int | None) -> str:
    """The preprocessing `dlcli predict` puts before the model (see dlcli.build.inference)."""
    return "preprocessing.keras" if fold is None else f"preprocessing-fold-{fold}.keras"


def weights_file(commit: int) -> str:
    return f"weights-{commit}.weights.h5"


def callback_arrays_file(commit: int) -> str:
    return f"callbacks-{commit}.npz"


def best_model_file(commit: int) -> str:
    return f"model-{commit}.keras"


def is_temporary(name: str) -> bool:
    """A file an interrupted atomic write left: `.<name>.<random>.tmp` or `.<stem>.<pid>.tmp.<suffix>`."""
    return name.startswith(".") and (name.endswith(".tmp") or ".tmp." in name)


def remove_temporary_files(folder: Path) -> list[str]:
    """Remove what interrupted writes left in `folder`; only the run's owner may call this."""
    removed = []
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.is_file() and is_temporary(path.name):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


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
    status: str = "unknown"  # a RunStatus (running, completed, interrupted, failed, diverged, pruned)
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
    resumes: list[dict[str, Any]] = []  # one {at, command} per --resume
    resumable: bool = True  # false when it failed on its config: a resume would fail the same way

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
    epochs_run: int
    best_epoch: int | None = None
    best: dict[str, float] = {}
    final: dict[str, float] = {}
    notes: list[str] = []
    overfitting: OverfittingVerdict | None = None
    kfold: KFold | None = None
    diverged: dict[str, Any] | None = None
    pruned: dict[str, Any] | None = None  # {epoch}: a sweep's pruner stopped the run there
    parameters: int | None = None
    trainable_parameters: int | None = None
    fine_tune_from_epoch: int | None = None
    fold: int | None = None  # one fold's own summary, inside a k-fold run's `kfold.folds`
    fit_seconds: float | None = None
    samples_per_second: float | None = None
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
    input_shape: list[int]
    task: Literal["classification", "regression"]
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
        reason = str(error).strip().splitlines()[0][:80]
        raise DlcliError(f"{owner}: {path.name} is damaged ({type(error).__name__}: {reason}); {advice}") from None




def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    with replaced(path, binary=isinstance(content, bytes), newline="") as file:
        file.write(content)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def rows_to_csv(rows: list[dict[str, float]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# history.csv's columns other than what Keras logged. The tags say which model and stage a row
# is of (k-fold's fold, fine-tune's phase); with the epoch they count rather than measure.
FOLD_COLUMN, PHASE_COLUMN = "fold", "phase"
TAG_COLUMNS = (FOLD_COLUMN, PHASE_COLUMN)
INTEGER_COLUMNS = ("epoch", *TAG_COLUMNS)
# What a row says about the epoch itself: never a value of the model.
EPOCH_COLUMNS = (*INTEGER_COLUMNS, "seconds")
# Logged beside the metrics but no measure of the model: summary.json keeps the learning rate a
# row ended with; no curve, comparison or ranking treats it as a metric.
NOT_METRIC_COLUMNS = (*EPOCH_COLUMNS, "learning_rate")


def metric_name(key: str) -> str:
    """The metric a logged key measures: 'val_accuracy' and 'accuracy' are both 'accuracy'."""
    return key.removeprefix("val_")


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv back into rows (tags and epochs as ints), [] when there is none."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # a spreadsheet saves a BOM first
            return [
                {key: int(value) if key in INTEGER_COLUMNS else float(value) for key, value in row.items()}
                for row in csv.DictReader(file)
            ]
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as error:  # a cut or overwritten file
        raise DlcliError(
            f"run {path.parent.name}: {path.name} is damaged ({type(error).__name__}: {str(error)[:60]}); "
            "train its config.yaml again for a whole history"
        ) from None


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


class RunFolder:
    """One run's folder; `run.json` holds its identity and status."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, runs_dir: Path, name: str) -> RunFolder:
        """A new folder `<YYYYMMDD-HHMMSS>-<name>`, with `-2`, `-3`... when that one exists.

        `mkdir` either creates the folder or fails, so concurrent runs never share one.
        """
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DlcliError(f"cannot create the runs folder {runs_dir}: {error.strerror}") from error
        base = f"{now():%Y%m%d-%H%M%S}-{name}"
        suffix = 1
        while True:
            path = runs_dir / (base if suffix == 1 else f"{base}-{suffix}")
            try:
                path.mkdir()
            except FileExistsError:
                suffix += 1
                continue
            except OSError as error:
                raise DlcliError(f"cannot create a run folder in {runs_dir}: {error.strerror}") from error
            return cls(path)

    @contextlib.contextmanager
    def owned(self):
        """Hold this run for this process while it trains: an exclusive lock on `owner.lock`, which the
        kernel releases when the process dies, so a second `train --resume` cannot train it too."""
        handle = open(self.file(OWNER_FILE), "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = ""
                for _ in range(20):  # the owner writes who it is just after taking the lock
                    handle.seek(0)
                    if owner := handle.read().strip():
                        break
                    time.sleep(0.05)
                owner = owner or "another process"
                raise DlcliError(
                    f"run {self.id} is being trained by {owner}; wait for it to end, or stop it first"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {now().isoformat(timespec='seconds')}")
            handle.flush()
            yield self
        finally:
            handle.close()

    def read_info(self) -> RunInfo:
        """run.json, or one line saying the run is damaged and how."""
        return self._read_whole(RUN_FILE, RunInfo)

    def read_summary(self) -> dict[str, Any]:
        """summary.json, each key it may lack there with its default; or one line saying it is damaged."""
        return self._read_whole(SUMMARY_FILE, Summary).to_dict()

    def _read_whole(self, name: str, model: type[RunFile]):
        data, damage = _read_run_file(self.file(name), model)
        if data is None:
            raise DlcliError(
                f"run {self.id} is damaged: {damage or f'it has no {name}'}; its folder is left as it is: "
                f"train its {CONFIG_FILE} again for a new run"
            )
        return model.from_dict(data)

    def start(
        self, config_yaml: str, seed: int, name: str, versions: dict[str, str], command: str | None,
        dataset: str, sweep: dict[str, Any] | None = None,
    ) -> RunInfo:
        """Write the resolved config and a `running` run.json."""
        write_atomic(self.file(CONFIG_FILE), config_yaml)
        info = RunInfo(
            id=self.id, name=name, dataset=dataset, status=RunStatus.running, group=group_of(read_yaml(config_yaml)),
            created=now().isoformat(timespec="milliseconds"), command=command, cwd=os.getcwd(), seed=seed,
            versions={"python": platform.python_version(), "dlcli": __version__, **versions},
            host=socket.gethostname(), pid=os.getpid(), pid_started=process_start_time(os.getpid()), sweep=sweep,
        )
        info.write(self.file(RUN_FILE))
        return info

    def restart(self, command: str | None) -> RunInfo:
        """Mark a resumed run `running` again, by this process."""
        info = self.read_info()
        info.resumes.append({"at": now().isoformat(timespec="milliseconds"), "command": command})
        info = info.model_copy(update=dict(
            status=RunStatus.running, ended=None, duration_s=None, error=None, host=socket.gethostname(), pid=os.getpid(),
            pid_started=process_start_time(os.getpid()), schema_version=SCHEMA,
        ))
        info.write(self.file(RUN_FILE))
        return info

    def finish(self, status: str, error: str | None = None, resumable: bool = True) -> RunInfo:
        """Record the final status, the end time and the duration."""
        info = self.read_info()
        ended = now()
        created = datetime.fromisoformat(info.created) if info.created else ended
        info = info.model_copy(update=dict(
            status=status, ended=ended.isoformat(timespec="milliseconds"),
            duration_s=round((ended - created).total_seconds(), 1), error=error, resumable=resumable,
            schema_version=SCHEMA,
        ))
        info.write(self.file(RUN_FILE))
        return info


RUN_ID = re.compile(r"\d{8}-\d{6}-.+")


def list_run_folders(runs_dir: Path) -> list[RunFolder]:
    """Every run folder under `runs_dir`, oldest first (the id starts with its start time).

    A folder named like a run counts even without its run.json: it is a damaged run.
    """
    if not runs_dir.is_dir():
        return []
    with os.scandir(runs_dir) as entries:  # the entries' types come with the listing: no stat for each
        folders = sorted(entry.name for entry in entries if entry.is_dir())
    return [
        RunFolder(runs_dir / name) for name in folders
        if RUN_ID.fullmatch(name) or (runs_dir / name / RUN_FILE).is_file()
    ]


def _named(runs: list[RunFolder], name: str) -> list[RunFolder]:
    named = []
    for run in runs:
        try:
            if run.read_info().name == name:
                named.append(run)
        except DlcliError:
            continue  # a damaged run.json names nothing
    return named


def resolve_run(runs_dir: Path, reference: str) -> RunFolder:
    """A run by folder path, full id, unique id prefix, `latest`, or name (its latest run)."""
    as_path = Path(reference).expanduser()
    if (as_path / RUN_FILE).is_file() or (as_path.is_dir() and RUN_ID.fullmatch(as_path.name)):
        return RunFolder(as_path)
    runs = list_run_folders(runs_dir)
    if not runs:
        raise RunNotFound(f"no run '{reference}': {runs_dir} holds no runs yet")
    if reference == "latest":
        return next((run for run in reversed(runs) if run.file(RUN_FILE).is_file()), runs[-1])
    exact = [run for run in runs if run.id == reference]
    matches = exact or [run for run in runs if run.id.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if not matches and (named := _named(runs, reference)):
        return named[-1]
    if matches:
        listed = ", ".join(run.id for run in matches[:10])
        raise RunNotFound(f"run '{reference}' is ambiguous: {len(matches)} runs match ({listed}); give more of the id")
    recent = ", ".join(run.id for run in runs[-5:])
    raise RunNotFound(f"no run '{reference}' in {runs_dir}; the latest are {recent} (or use 'latest')")


def process_start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in (...) may hold spaces


def _process_alive(pid: int, started: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process exists
    # a recycled pid belongs to a process that started later
    return started is None or process_start_time(pid) in (None, started)


def _owner_alive(folder: RunFolder) -> bool | None:
    """Whether a process holds the run's owner.lock (None: the run has none, an older dlcli's)."""
    try:
        handle = open(folder.file(OWNER_FILE), "rb")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the file releases the shared lock this took


def effective_status(info: RunInfo | dict[str, Any], folder: RunFolder | None = None) -> str:
    """The recorded status, except a `running` run whose process is gone: `crashed`.

    Gone means: no process holds the run's owner.lock (the kernel releases it however the
    process died), or, for a run without one, its pid is not that process. A run on another
    host cannot be checked from here and keeps its recorded status.
    """
    if isinstance(info, dict):
        info = RunInfo.from_dict(info)
    if info.status == RunStatus.running:
        return running_status(folder, info.host, info.pid, info.pid_started)
    return info.status


def running_status(folder: RunFolder | None, host: str | None, pid: int | None, pid_started: int | None) -> str:
    """'running', or 'crashed' for a run recorded as running whose process is gone (see effective_status)."""
    if host == socket.gethostname():
        owner = _owner_alive(folder) if folder is not None else None
        if owner is False or (owner is None and (pid is None or not _process_alive(pid, pid_started))):
            return RunStatus.crashed
    return RunStatus.running


@dataclass
class RunRecord:
    """What a run folder says about itself, read without trusting it to be whole."""

    folder: RunFolder
    info: RunInfo
    status: str  # the effective status: 'crashed' for a dead 'running' run, 'damaged' for an unreadable one
    damage: str | None = None
    summary: dict[str, Any] | None = None  # as written; Summary has validated its common keys
    evaluation: dict[str, Any] | None = None
    epochs: int | None = None  # epochs trained, when the index has counted them already

    @property
    def id(self) -> str:
        return self.folder.id

    # as_row's columns before the metrics
    ROW_COLUMNS = ("id", "name", "status", "damage", "dataset", "epochs", "created", "ended", "duration_s", "sweep",
                   "group")

    def as_row(self) -> dict[str, Any]:
        """The run as `dlcli runs --format json|csv` prints it: plain values, metrics flattened."""
        info = self.info
        values = (self.id, info.name, self.status, self.damage, info.dataset,
                  None if self.damage else self.epochs_done(), info.created, info.ended, info.duration_s,
                  (info.sweep or {}).get("id"), info.group)
        return {**dict(zip(self.ROW_COLUMNS, values)), **self.metrics()}

    def metrics(self) -> dict[str, Any]:
        """Every metric as `best.M`, `final.M` (summary.json) and `test.M` (evaluation.json)."""
        summary, evaluation = self.summary or {}, self.evaluation or {}
        return {
            f"{prefix}.{key}": value
            for prefix, metrics in (("best", summary.get("best")), ("final", summary.get("final")),
                                    ("test", evaluation.get("metrics")))
            for key, value in (metrics or {}).items()
        }

    def epochs_done(self) -> int:
        if self.epochs is not None:
            return self.epochs
        if self.summary and "epochs_run" in self.summary:
            return self.summary["epochs_run"]
        try:
            with open(self.folder.file(HISTORY_FILE), "rb") as file:
                return max(sum(1 for _ in file) - 1, 0)
        except OSError:
            return 0


def _read_run_file(path: Path, model: type[RunFile]) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None) when `model` accepts the file, or (None, why it cannot be read); a missing file is (None, None)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"{path.name} is unreadable ({type(error).__name__}: {str(error)[:60]})"
    if not isinstance(data, dict):
        return None, f"{path.name} holds a {type(data).__name__}, not an object"
    try:
        model.from_dict(data)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        return None, f"{path.name}: {where}: {problem['msg']}"
    return data, None


def load_run(folder: RunFolder) -> RunRecord:
    """The run's record; a missing or corrupt run.json or summary.json makes it 'damaged', never an error."""
    data, damage = _read_run_file(folder.file(RUN_FILE), RunInfo)
    if data is None:
        return RunRecord(folder, RunInfo(id=folder.id), RunStatus.damaged, damage or f"{RUN_FILE} is missing")
    info = RunInfo.from_dict(data)
    status = effective_status(info, folder)
    summary, summary_damage = _read_run_file(folder.file(SUMMARY_FILE), Summary)
    if summary_damage is None and summary is None and status in FINISHED:
        summary_damage = f"{SUMMARY_FILE} is missing though the run is {status}"
    evaluation, _ = _read_run_file(folder.file(EVALUATION_FILE), Evaluation)  # optional: re-made by `dlcli evaluate`
    if summary_damage:
        return RunRecord(folder, info, RunStatus.damaged, summary_damage, None, evaluation)
    # through their models: a key an older or damaged file lacks is there, with its default
    summary = Summary.from_dict(summary).to_dict() if summary is not None else None
    evaluation = Evaluation.from_dict(evaluation).to_dict() if evaluation is not None else None
    return RunRecord(folder, info, status, None, summary, evaluation)


def load_runs(runs_dir: Path) -> list[RunRecord]:
    """Every run of `runs_dir` read from its folder, oldest first (the commands ask the index)."""
    return [load_run(folder) for folder in list_run_folders(runs_dir)]
