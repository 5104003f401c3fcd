"""The run folder: its files' names, created without collisions, written atomically, read back
tolerantly. Its JSON documents' models are in dlcli.store.documents: nothing here imports pydantic."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import re
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from dlcli.choices import LATEST, Split
from dlcli.columns import INTEGER_COLUMNS
from dlcli.errors import DlcliError, RunNotFound, cut, file_problem, not_utf8
from dlcli.store import DEFAULT_RUNS_DIR
from dlcli.store.status import RunStatus

# The run folder's layout: every file dlcli writes in it (docs/run-folder.md describes each).
RUN_FILE = "run.json"
# A runs folder's sweeps: RUNS/sweeps/<sweep id>/plan.json (dlcli.sweep.study writes them)
SWEEPS_DIR, PLAN_FILE = "sweeps", "plan.json"
INDEX_FILE = "index.sqlite"  # the runs folder's index of its runs (dlcli.store.index), with SQLite's -wal and -shm beside it
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"
EVALUATION_FILE = "evaluation.json"  # `dlcli evaluate` on the test split: the runs' test.M
VALIDATION_EVALUATION_FILE = "evaluation-validation.json"  # `dlcli evaluate --split validation`
EVALUATION_FILES = {Split.test: EVALUATION_FILE, Split.validation: VALIDATION_EVALUATION_FILE}
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


# How a run is trained, not what: the training keys a resume may change (after a memory error, on
# another machine) without changing the model, the data or the epochs its checkpoint holds.
HOW_IT_RUNS = ("tensorboard", "plot", "steps_per_execution", "jit_compile", "cache", "prefetch", "devices")


def _digest(value: Any) -> str:
    import hashlib  # loading OpenSSL's library takes 0.01 s, which listing runs need not pay

    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def group_of(config: dict[str, Any]) -> str:
    """The group of the runs of `config` (a run's resolved config, as read from config.yaml):
    the same for every seed of one experiment, different for any other change."""
    return _digest({key: value for key, value in config.items() if key not in NOT_THE_EXPERIMENT})


def _trained_as(config: dict[str, Any], data_path: bool) -> str:
    kept = {key: value for key, value in config.items() if key != "name"}
    training, dataset = kept.get("training"), kept.get("dataset")
    if isinstance(training, dict):
        kept["training"] = {key: value for key, value in training.items() if key not in HOW_IT_RUNS}
    if isinstance(dataset, dict) and not data_path:
        kept["dataset"] = {key: value for key, value in dataset.items() if key != "path"}
    return _digest(kept)


def checkpointed_as(config: dict[str, Any]) -> str:
    """What a run's checkpoint was trained with: its config but for its name and how it runs
    (HOW_IT_RUNS). A resume under another is refused: its data, path included, is what the
    checkpoint goes on with."""
    return _trained_as(config, data_path=True)


def prepared_as(config: dict[str, Any]) -> str:
    """What a run's model was trained on, as `evaluate` rebuilds it: checkpointed_as but for where
    the data file lives (a moved file is the same data; evaluation's fingerprint of the split says
    when it is not)."""
    return _trained_as(config, data_path=False)


def config_edited(written: Any, recorded: str | None, digest: Callable[[dict[str, Any]], str] = checkpointed_as) -> bool:
    """Whether a run's config.yaml, `written` as read, was edited after training started: its
    `digest` is not the one run.json `recorded`. A run of an older dlcli recorded nothing to
    compare, and reads as unedited; a document that is no config reads as edited."""
    return recorded is not None and (not isinstance(written, dict) or digest(written) != recorded)


def edited_after_training(run: RunFolder, what: str) -> DlcliError:
    """The error of a command that cannot go on with a config.yaml edited after training (`what` it would do)."""
    return DlcliError(
        f"run {run.id}: its {CONFIG_FILE} was edited after training started, and {what}: undo the edit, or train the "
        f"edited config as a new run (dlcli train {run.file(CONFIG_FILE)})"
    )


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


def refuse_run_folder_output(path: Path, option: str, folder: bool = False) -> None:
    """Refuse an output file written straight into a run's folder (`folder`: an output folder that
    is one): its files are the run's (its model, its history), and a command's output there would
    replace one or pass for one."""
    written = Path(os.path.realpath(path))  # through a link, the folder written into is the one it points at
    if ((written if folder else written.parent) / RUN_FILE).is_file():
        where = "is the run folder" if folder else f"is in the run folder {written.parent}"
        raise DlcliError(f"{option} {path} {where}: its files are the run's; write it elsewhere")


def refuse_runs_folder_output(path: Path, runs_dir: Path, option: str, folder: bool = False) -> None:
    """Refuse an output that is one of the runs folder's own files (its index, a sweep's plan and
    study journal), or that is (`folder`: an output folder), or would make, a folder named like a
    run and not one (every reading command would list it as a damaged run; a file is listed by none)."""
    written, runs = Path(os.path.realpath(path)), Path(os.path.realpath(runs_dir))
    if written.parent == runs and written.name.startswith(INDEX_FILE) or runs / SWEEPS_DIR in written.parents:
        raise DlcliError(f"{option} {path} is among the runs folder's own files (its index, its sweeps' plans and "
                         "journals): write it elsewhere")
    made = (written, *written.parents) if folder else written.parents
    posing = next((made_folder for made_folder in made if made_folder.parent == runs), None)
    if posing is not None and RUN_ID.fullmatch(posing.name) and not (posing / RUN_FILE).is_file():
        raise DlcliError(f"{option} {path}: a folder named like a run, in the runs folder {runs_dir}: it would be "
                         "listed as a damaged run; write it elsewhere")


def refuse_training_data_output(path: Path, run: RunFolder, option: str) -> None:
    """Refuse an output that is the run's training data (its config's `dataset.path`: a CSV table,
    a photo folder) or lies in it: a predictions table written over the table it trained on, a
    picture added to a class's folder."""
    from dlcli.outputs import within

    dataset = (run_config(run)[0] or {}).get("dataset")
    data = dataset.get("path") if isinstance(dataset, dict) else None
    if not isinstance(data, str) or not data:
        return
    trained_in = (_recorded(run) or {}).get("cwd")  # a relative path is the training's: from the folder it ran in
    where = Path(trained_in if isinstance(trained_in, str) else ".") / Path(data).expanduser()
    if within(path, where):
        raise DlcliError(f"{option} {path} is {'in ' if where.is_dir() else ''}run {run.id}'s training data "
                         f"(dataset.path {data}): writing it there would change what the run trains on; write it elsewhere")


def refuse_among_runs(path: Path, runs_dir: Path, option: str, folder: bool = False) -> None:
    """Refuse an output written into a run's folder or among the runs folder's own files: the two
    checks every command that writes beside the runs makes."""
    refuse_run_folder_output(path, option, folder)
    refuse_runs_folder_output(path, runs_dir, option, folder)


def rows_to_csv(rows: list[dict[str, float]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv back into rows (tags and epochs as ints), [] when there is none."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:  # a spreadsheet saves a BOM first
            reader = csv.DictReader(file)
            return [_history_row(row, path, reader.line_num) for row in reader]
    except UnicodeDecodeError as error:  # an overwritten file
        _damaged(path, (not_utf8(path) or error.reason).removeprefix(f"{path}, "))
    except csv.Error as error:  # a cut or overwritten file
        _damaged(path, f"{type(error).__name__}: {error}")


def plotted_history(folder: RunFolder, left_out: list[str]) -> list[dict[str, float]]:
    """A run's history for a plot of several: [] when it is damaged, said in `left_out`, so that one
    run's damaged file does not keep the others from being drawn."""
    try:
        return read_history(folder.file(HISTORY_FILE))
    except DlcliError as error:
        left_out.append(str(error))
        return []


def _history_row(row: dict[str | None, str | None], path: Path, line: int) -> dict[str, float]:
    values = {}
    for key, text in row.items():
        if key is None or text is None:
            _damaged(path, f"line {line} has {'more' if key is None else 'fewer'} fields than the header")
        try:
            values[key] = int(text) if key in INTEGER_COLUMNS else float(text)
        except ValueError:
            _damaged(path, f"line {line}: {key} is {text[:20]!r}, not a number")
    return values


# What a run that cannot be continued or used is told to do, and one whose training diverged
TRAIN_AGAIN = f"train its {CONFIG_FILE} again for a new run"
LOWER_THE_LEARNING_RATE = f"lower optimizer.learning_rate in its {CONFIG_FILE} and train a new run"


def _damaged(path: Path, problem: str) -> NoReturn:
    # dlcli replaces history.csv whole (write_atomic), so damage comes from outside: a copy cut short, an edit
    raise DlcliError(
        f"run {path.parent.name}: {path.name} is damaged ({problem}); {TRAIN_AGAIN}, with a whole history"
    )


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def runs_dir_option(runs_dir: Path) -> str:
    """What a command written out for the user needs to find `runs_dir`: nothing for the default."""
    return "" if runs_dir.resolve() == DEFAULT_RUNS_DIR.resolve() else f" --runs-dir {shlex.quote(str(runs_dir))}"


def run_config(folder: RunFolder) -> tuple[dict[str, Any] | None, str | None]:
    """The run's config.yaml as a mapping, or why it is damaged (None, None: it has none yet): the
    one reading of it, for load_run and for the readers that compare or show it. YAML is imported
    here, not with the module: listing runs reads none."""
    import yaml

    from dlcli.keys import MAX_CONFIG_VALUES, read_yaml, too_many_values, yaml_error_place, yaml_problem

    try:
        text = folder.file(CONFIG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None  # a run being created, or from before config.yaml: nothing to say of it
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{CONFIG_FILE} cannot be read ({file_problem(error)})"
    try:
        config = read_yaml(text)
    except yaml.MarkedYAMLError as error:
        problem, mark = yaml_error_place(error, text)
        return None, f"{CONFIG_FILE}{f':{mark.line + 1}' if mark else ''}: invalid YAML: {problem}"
    except yaml.YAMLError as error:
        return None, f"{CONFIG_FILE}: invalid YAML: {yaml_problem(error)}"
    if not isinstance(config, dict):
        return None, f"{CONFIG_FILE} is {'empty' if config is None else 'not a mapping of keys'}"
    if too_many_values(config):
        return None, f"{CONFIG_FILE} expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases?): no config dlcli wrote"
    return config, None


class RunFolder:
    """One run's folder; `run.json` holds its identity and status."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def resume_command(self) -> str:
        """The command that continues this run, from wherever it is given."""
        return f"dlcli train --resume {self.id}{runs_dir_option(self.path.parent)}"

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


def _recorded(run: RunFolder) -> dict[str, Any] | None:
    """run.json as it was written, unvalidated (no pydantic here); None when missing or damaged."""
    try:
        recorded = json.loads(run.file(RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _named(runs: list[RunFolder], name: str) -> list[RunFolder]:
    named = []
    for run in runs:
        recorded = _recorded(run)
        if recorded is None:  # damaged: its folder's name, <start>-<name>, still says the run's
            if run.id.endswith(f"-{name}"):
                named.append(run)  # found, so that the command says it is damaged rather than missing
        elif recorded.get("name") == name:
            named.append(run)
    return named


def _sweep_named(runs_dir: Path, reference: str) -> bool:
    try:
        return (runs_dir / SWEEPS_DIR / reference / PLAN_FILE).is_file()
    except OSError:  # a name longer than any path can be
        return False


def resolve_run(runs_dir: Path, reference: str) -> RunFolder:
    """A run by folder path, full id, unique id prefix, `latest`, or name (its latest run)."""
    if not reference.strip():  # every id starts with the empty prefix: it would be called ambiguous
        raise RunNotFound("an empty run: give its id, a prefix of it, its name, its folder or 'latest'")
    shown = cut(reference, 80)  # a reference pasted whole from elsewhere: echoed cut
    as_path = Path(reference).expanduser()
    try:
        if (as_path / RUN_FILE).is_file() or (as_path.is_dir() and RUN_ID.fullmatch(as_path.name)):
            return RunFolder(as_path)
        exists, is_dir = as_path.exists(), as_path.is_dir()
    except OSError:  # a name longer than any path can be: no folder, looked for among the runs
        exists = is_dir = False
    runs = list_run_folders(runs_dir)
    # a path that is there, and no run: said as such rather than looked for among the runs' names
    what = f"a folder, and no run folder (it has no {RUN_FILE})" if is_dir else "a file, not a run folder"
    not_a_run = f"{as_path}: {what}; give a run's folder, id, name or 'latest'" if exists else None
    if not runs:
        raise RunNotFound(not_a_run or f"no run '{shown}': {runs_dir} holds no runs yet")
    if reference == LATEST:
        return next((run for run in reversed(runs) if run.file(RUN_FILE).is_file()), runs[-1])
    exact = [run for run in runs if run.id == reference]
    if not exact and _sweep_named(runs_dir, reference):  # its first trial's id starts alike
        where = runs_dir_option(runs_dir)
        raise RunNotFound(f"'{reference}' is a sweep, not a run: `dlcli compare --sweep {reference}{where}` compares its "
                          f"trials, `dlcli sweep --resume {reference}{where}` continues it")
    matches = exact or [run for run in runs if run.id.startswith(reference)]
    if len(matches) == 1:
        return matches[0]
    if not matches and (named := _named(runs, reference)):
        return named[-1]
    if matches:
        listed = ", ".join(run.id for run in matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        raise RunNotFound(f"run '{shown}' is ambiguous: {len(matches)} runs match ({listed}); give more of the id")
    if not_a_run:
        raise RunNotFound(not_a_run)
    recent = ", ".join(run.id for run in reversed(runs[-5:]))  # newest first, as 'the latest' reads
    raise RunNotFound(f"no run '{shown}' in {runs_dir}; the latest are {recent} (or use 'latest')")


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


def effective_status(info: Mapping[str, Any], folder: RunFolder | None = None) -> str:
    """The status `info` (a run.json's keys) records, except a `running` run whose process is gone: `crashed`.

    Gone means: no process holds the run's owner.lock (the kernel releases it however the
    process died), or, for a run without one, its pid is not that process. A run on another
    host cannot be checked from here and keeps its recorded status.
    """
    if info["status"] == RunStatus.running:
        return running_status(folder, info.get("host"), info.get("pid"), info.get("pid_started"))
    return info["status"]


def running_status(folder: RunFolder | None, host: str | None, pid: int | None, pid_started: int | None) -> str:
    """'running', or 'crashed' for a run recorded as running whose process is gone (see effective_status)."""
    if host == socket.gethostname():
        owner = _owner_alive(folder) if folder is not None else None
        if owner is False or (owner is None and (pid is None or not _process_alive(pid, pid_started))):
            return RunStatus.crashed
    return RunStatus.running


# How a test score on changed data (RunRecord.test_data_changed) is marked in the tables of runs
DATA_CHANGED = "(data changed)"
# The column of runs' listings, and the key `--where` takes, that says a run's test score is of other data
TEST_DATA_CHANGED = "test_data_changed"


@dataclass
class RunRecord:
    """What a run folder says about itself, read without trusting it to be whole."""

    folder: RunFolder
    info: dict[str, Any]  # run.json's keys, each one RunInfo has (with its default when the file lacks it)
    status: str  # the effective status: 'crashed' for a dead 'running' run, 'damaged' for an unreadable one
    damage: str | None = None
    summary: dict[str, Any] | None = None  # as written; Summary has validated its common keys
    evaluation: dict[str, Any] | None = None
    epochs: int | None = None  # epochs trained, when the index has counted them already
    config: dict[str, Any] | None = None  # config.yaml as read from the folder (not kept in the index)
    evaluation_damage: str | None = None  # why evaluation.json cannot be read: no test score, the run whole

    @property
    def id(self) -> str:
        return self.folder.id

    def config_may_be_edited(self) -> bool:
        """Whether config.yaml may have been edited since training started, and so is worth parsing
        to tell (`edited_note`): the run recorded what it trained on, and the file changed after the
        run started (it is written before `created` is taken)."""
        if self.info.get("prepared_as") is None:
            return False
        try:
            changed = os.stat(self.folder.file(CONFIG_FILE)).st_mtime
            started = datetime.fromisoformat(self.info["created"])
        except (OSError, TypeError, ValueError):  # no config, or no start recorded: read it to tell
            return True
        started = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
        return changed > started.timestamp() + 1  # a file system's coarse clock

    def edited_note(self, config: Any) -> str | None:
        """What to say of the run when its config.yaml (`config`, as read) was edited after training
        started: the keys a reader shows are the edit's, not the ones it trained with. None when not."""
        if not config_edited(config, self.info.get("prepared_as"), prepared_as):
            return None
        return (f"run {self.id}: its {CONFIG_FILE} was edited after training started: the config shown is the edit, "
                "not the one it trained with")

    @property
    def test_data_changed(self) -> bool:
        """Whether evaluation.json's score was measured on a rebuilt split that differs from the one
        training saw: no score of the same data as other runs' (marked DATA_CHANGED where runs are listed)."""
        return self._test_data_changed_or_unknown() is True

    # as_row's columns before the metrics
    ROW_COLUMNS = ("id", "name", "status", "damage", "dataset", "epochs", "created", "ended", "duration_s", "sweep",
                   "group", TEST_DATA_CHANGED, "evaluation_damage")

    def as_row(self) -> dict[str, Any]:
        """The run as `dlcli runs --format json|csv` prints it: plain values, metrics flattened."""
        info = self.info
        values = (self.id, info["name"], self.status, self.damage, info["dataset"],
                  None if self.damage else self.epochs_done(), info["created"], info["ended"], info["duration_s"],
                  (info["sweep"] or {}).get("id"), info["group"], self._test_data_changed_or_unknown(),
                  self.evaluation_damage)
        return {**dict(zip(self.ROW_COLUMNS, values)), **self.metrics()}

    @property
    def unscored_note(self) -> str | None:
        """What a reader of the run's test score must know when evaluation.json cannot be read."""
        if self.evaluation_damage is None:
            return None
        again = f"dlcli evaluate {self.id}{runs_dir_option(self.folder.path.parent)}"
        return f"run {self.id}: {self.evaluation_damage}: its test score is left out; `{again}` writes it again"

    def _test_data_changed_or_unknown(self) -> bool | None:
        """test_data_changed, or None without a test score or a fingerprint to tell (as_row's column)."""
        same = (self.evaluation or {}).get("same_data_as_training")
        return None if same is None else not same

    def metrics(self) -> dict[str, Any]:
        """Every metric as `best.M`, `final.M` (summary.json) and `test.M` (evaluation.json)."""
        summary, evaluation = self.summary or {}, self.evaluation or {}
        return {
            f"{prefix}.{key}": value
            for prefix, metrics in (("best", summary.get("best")), ("final", summary.get("final")),
                                    # an older dlcli kept a validation split's evaluation here too
                                    (evaluation.get("split", "test"), evaluation.get("metrics")))
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
