"""Learning curves from files: a dlcli history.csv (epochs from 1), a Keras CSVLogger file
(epochs from 0) or Keras's History.history saved as JSON or by pandas, read as rows numbered
from 1, as training numbers them; and their verdicts.

No TensorFlow: `dlcli verdict` judges any Keras user's logs as dlcli judges its own runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.choices import Direction
from dlcli.columns import EPOCH_COLUMN, FOLD_COLUMN, INTEGER_COLUMNS, metric_name
from dlcli.config import OverfittingConfig, not_a_validation_metric
from dlcli.curves.verdicts import OverfittingWatch, fewest_epochs, judged_epoch
from dlcli.errors import CSV_SEPARATORS, DlcliError, column_named_twice, counted, cut, listed, not_utf8_text
from dlcli.keys import did_you_mean

# Metric names whose lower value is better, for a file that does not say (Keras's own losses
# and error metrics), and those whose higher value is: each Keras metric's default name says its
# direction through one of them (tested against the direction each declares).
MINIMIZED_WORDS = ("loss", "error", "crossentropy", "hinge", "mae", "mse", "mape", "msle", "divergence", "poisson", "logcosh")
MAXIMIZED_WORDS = ("acc", "auc", "precision", "recall", "f1", "iou", "r2", "score", "cosine", "io_u", "correlation")


HISTORY_FILES = "a dlcli history.csv, a Keras CSVLogger file, or Keras's History.history saved as JSON or by pandas"


def read_curves(path: Path, needed: tuple[str, ...] | None = None) -> list[dict[str, float]]:
    """The rows of a history file, epochs counted from 1 whichever way the file counts them: a
    dlcli history.csv or a Keras CSVLogger file (an `epoch` column), Keras's `History.history`
    saved with `pd.DataFrame(...).to_csv()` (its unnamed index, from 0, is the epoch; without
    it, each row is the next epoch) or with `json.dump` (each metric a list, an epoch a position).

    `needed`: the columns that must hold numbers (with the epoch and fold); another column's text
    (a vector metric such as F1Score(average=None)'s "[0.5, 0.6]", a note) is left out of its row.
    None: every column must."""
    as_json = path.suffix.lower() == ".json"
    try:
        # read whole first, as a pipe gives it (`dlcli verdict <(...)`): no going back to its start
        with open(path, newline="", encoding="utf-8-sig") as file:  # a spreadsheet's byte-order mark too
            content = file.read()
        # through a pipe a file has no suffix to say it is JSON: its first character does
        if as_json or not path.suffix and content.lstrip().startswith("{"):
            rows = _history_json(content, path, needed)
        else:
            text = io.StringIO(content, newline="")
            header = text.readline()
            text.seek(0)
            # a space after each separator, as a hand-written file or pandas's sep=", " has it, is no part of a name
            separator = max(CSV_SEPARATORS, key=header.count)  # the header's commonest is the file's
            reader = csv.DictReader(text, delimiter=separator, skipinitialspace=True)
            columns = reader.fieldnames or []
            if len(columns) > 1 and columns[-1] == "":  # a separator ending the header is no column
                columns = reader.fieldnames = columns[:-1]
            if problem := column_named_twice(columns):
                raise DlcliError(f"{path}: {problem}")
            if EPOCH_COLUMN not in columns and columns[:1] == [""]:  # pandas's index, unnamed
                reader.fieldnames = [EPOCH_COLUMN, *columns[1:]]
            elif EPOCH_COLUMN not in columns and "loss" not in columns:
                raise DlcliError(
                    f"{path}: no 'epoch' or 'loss' column (has {listed(columns) or 'no header'}); give "
                    f"{HISTORY_FILES}"
                )
            records = enumerate(reader, start=2)
            decimal_comma = separator == ";"  # a spreadsheet saved where the comma is the decimal mark
            rows = [_row(record, path, number, needed, number - 1, decimal_comma) for number, record in records]
    except FileNotFoundError:
        raise DlcliError(f"{path}: no such file or run") from None
    except UnicodeDecodeError as error:
        raise DlcliError(f"not a {'JSON' if as_json else 'CSV'} file of UTF-8 text: {not_utf8_text(path, error)}") from None
    except csv.Error as error:
        raise DlcliError(f"{path}: not a CSV file ({type(error).__name__}: {str(error)[:60]})") from None
    _in_order(rows, path)
    if rows and min(row[EPOCH_COLUMN] for row in rows) == 0:  # Keras's CSVLogger counts from 0
        for row in rows:
            row[EPOCH_COLUMN] += 1
    return rows


def epoch_ranges(epochs: list[int]) -> str:
    """'epoch 7', 'epochs 6-10', 'epochs 3, 7-8': runs of consecutive epochs joined."""
    spans: list[list[int]] = []
    for epoch in sorted(epochs):
        if spans and epoch == spans[-1][1] + 1:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch])
    return _spans_said(spans)


def _spans_said(spans: list[list[int]]) -> str:
    """Spans of consecutive epochs, each [first, last], as epoch_ranges says them (a span is never
    listed: a gap of 1e30 epochs is one)."""
    parts = [f"{first}-{last}" if last != first else f"{first}" for first, last in spans]
    return ("epoch " if len(spans) == 1 and spans[0][0] == spans[0][1] else "epochs ") + ", ".join(parts)


def left_out_note(epochs: list[int], monitor: str) -> str:
    """Epochs a verdict does not read, said: training's watch leaves them out too."""
    return f"{epoch_ranges(epochs)} left out: {monitor} or loss is not a finite number there (a diverged run?)"


def _in_order(rows: list[dict[str, float]], path: Path) -> None:
    """Each model's epochs (each fold's, in a k-fold history) follow one another row by row: a file
    that a second training appended to (a CSVLogger(append=True) run twice) holds two histories,
    not one, and one with epochs missing (cut, or filtered) would be judged as if they were never run."""
    last: dict[float | None, float] = {}
    for line, row in enumerate(rows, start=2):
        fold, epoch = row.get(FOLD_COLUMN), row[EPOCH_COLUMN]
        if fold in last and epoch <= last[fold]:
            raise DlcliError(
                f"{path}, line {line}: epoch {epoch} after epoch {last[fold]}; a history holds each epoch "
                "once, in order (two trainings appended to one file? keep one's rows)"
            )
        if fold in last and epoch > last[fold] + 1:
            missing = _spans_said([[last[fold] + 1, epoch - 1]])
            raise DlcliError(
                f"{path}, line {line}: epoch {epoch} after epoch {last[fold]}, {missing} missing; a history holds "
                "every epoch (give the whole log)"
            )
        last[fold] = epoch


def _each_key_once(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object's keys, each once: Python keeps the last of two, and a metric listed twice
    would be read as the other's values."""
    read = dict(pairs)
    if len(read) < len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise DlcliError(f"{path}: the key '{cut(twice)}' is given twice in one object; History.history names each "
                         "metric once")
    return read


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond a float's range is an infinite value, as 1e400 in a CSV file is
        return math.inf if value > 0 else -math.inf


def _history_json(text: str, path: Path, needed: tuple[str, ...] | None) -> list[dict[str, float]]:
    """`json.dump(history.history, file)` (`text`, read from `path`): {metric: [a value per epoch]},
    as rows numbered from 1; a value that is no number refused in the `needed` metrics (all when
    None), left out elsewhere."""
    try:
        document = json.loads(text, object_pairs_hook=lambda pairs: _each_key_once(pairs, path))
    except json.JSONDecodeError as error:
        raise DlcliError(f"{path}: not a JSON file ({str(error)[:60]}); give {HISTORY_FILES}") from None
    except ValueError as error:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
        raise DlcliError(f"{path}: holds a number too long to read ({str(error)[:60]}); no metric is that large") from None
    except RecursionError:  # lists within lists thousands deep: Python's parser gives up
        raise DlcliError(f"{path}: nested too deep to be Keras's History.history (a mapping of each metric to a "
                         "list of its values)") from None
    if not isinstance(document, dict) or not document or not all(isinstance(v, list) for v in document.values()):
        raise DlcliError(f"{path}: not Keras's History.history (a mapping of each metric to a list of its values "
                         f"per epoch, as json.dump(history.history, file) writes it)")
    lengths = {key: len(values) for key, values in document.items()}
    if len(set(lengths.values())) > 1:
        shortest, longest = min(lengths, key=lengths.get), max(lengths, key=lengths.get)
        raise DlcliError(f"{path}: {shortest} has {counted(lengths[shortest], 'value')} and {longest} "
                         f"{lengths[longest]}; History.history has one value per metric and epoch")
    rows = []
    for index in range(max(lengths.values())):
        row: dict[str, float] = {EPOCH_COLUMN: index + 1}
        for key, values in document.items():
            value = values[index]
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                if needed is not None and key not in needed:
                    continue  # a vector metric (F1Score(average=None)'s list per epoch)
                raise DlcliError(f"{path}: {key}[{index}] (epoch {index + 1}) is {json.dumps(value)[:30]}, not a number")
            row[key] = math.nan if value is None else _as_float(value)
        rows.append(row)
    return rows


def _row(
    record: dict[str, str | None], path: Path, line: int, needed: tuple[str, ...] | None, epoch: int,
    decimal_comma: bool = False,
) -> dict[str, float]:
    """One CSV record as numbers; `epoch`: its number when the file has no epoch column (the row's);
    `decimal_comma`: a value may write its decimal mark as a comma (0,35), as a file separated by
    semicolons, the locales' own, does (in a tab-separated file 1,234 could be a thousand)."""
    row: dict[str, float] = {} if EPOCH_COLUMN in record else {EPOCH_COLUMN: epoch}
    extra = record.get(None) or []
    if None in record.values() or any(text.strip() for text in extra):  # a row cut short, or two run together
        raise DlcliError(f"{path}, line {line} has {'fewer' if None in record.values() else 'more'} fields than the "
                         "header (a file cut short, or edited?): mend or remove that line")
    for key, text in record.items():
        if key is None or text == "":
            continue  # a column a row leaves empty, or a separator at the end of the line
        try:
            value = float(text.replace(",", ".", 1) if decimal_comma and text.count(",") == 1 else text)
        except ValueError:
            if text.strip().upper() in ("NA", "NAN"):  # CSVLogger's missing value
                value = math.nan
            elif needed is not None and key not in (*needed, *INTEGER_COLUMNS):
                continue
            else:
                raise DlcliError(f"{path}, line {line}: {key} is '{text[:30]}', not a number") from None
        if key in INTEGER_COLUMNS:
            if not (math.isfinite(value) and value == int(value)):
                raise DlcliError(f"{path}, line {line}: {key} is '{text[:30]}', not a whole number")
            if value < (0 if key == EPOCH_COLUMN else 1):
                counted_from = ("its epochs from 0 (Keras's CSVLogger) or 1 (dlcli's history.csv)" if key == EPOCH_COLUMN
                                else f"its {key}s from 1")
                raise DlcliError(f"{path}, line {line}: {key} is '{text[:30]}'; a history counts {counted_from}")
            value = int(value)
        row[key] = value
    if EPOCH_COLUMN not in row:
        raise DlcliError(f"{path}, line {line}: no epoch number")
    return row


def models_of(rows: list[dict[str, float]], source: str) -> list[tuple[int | None, list[dict[str, float]]]]:
    """(fold, its rows) for each fold of a k-fold run's history, or [(None, rows)] for one model."""
    folds = sorted({int(row[FOLD_COLUMN]) for row in rows if FOLD_COLUMN in row})
    if folds and any(FOLD_COLUMN not in row for row in rows):
        raise DlcliError(f"{source}: some rows have a fold and some have none; give one model's history")
    return [(fold, [row for row in rows if row.get(FOLD_COLUMN) == fold]) for fold in folds] or [(None, rows)]


def named_direction(monitor: str) -> str | None:
    """'min' or 'max' for a metric known only by its name; None when the name does not say."""
    name = metric_name(monitor).lower()
    if any(word in name for word in MINIMIZED_WORDS):
        return Direction.min
    if any(word in name for word in MAXIMIZED_WORDS):
        return Direction.max
    return None


def guessed_direction(monitor: str) -> str:
    """named_direction, or an error when the name does not say."""
    direction = named_direction(monitor)
    if direction is None:
        raise DlcliError(f"cannot tell whether a higher '{monitor}' is better: give --mode min or --mode max")
    return direction


def _check_mode(mode: str | None, monitor: str, known: str | None, how: str) -> None:
    """Refuse a --mode against the direction known of the metric: it would call its gains overfitting."""
    if mode is not None and known is not None and mode != known:
        better = "lower" if known == Direction.min else "higher"
        raise DlcliError(f"--mode {mode}: a {better} {monitor} is better ({how}); leave --mode out, or give --mode {known}")


@dataclass
class CurveVerdict:
    """The overfitting verdict of one history, as training would have given it epoch by epoch."""

    source: str  # the file or run it came from
    monitor: str
    direction: str
    epochs: int
    verdict: dict[str, Any]
    fold: int | None = None
    left_out: list[int] = field(default_factory=list)  # epochs whose monitor or loss is no finite number

    @property
    def left_out_note(self) -> str | None:
        """What the verdict did not read, said: training's watch leaves such epochs out too."""
        return left_out_note(self.left_out, self.monitor) if self.left_out else None

    def as_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "source": self.source,
            **({"fold": self.fold} if self.fold is not None else {}),
            "monitor": self.monitor,
            "direction": self.direction,
            "epochs": self.epochs,
            "left_out_epochs": self.left_out,
            "overfitting": verdict["detected"],
            "warned_at_epoch": verdict["warned_at_epoch"],
            "onset_epoch": verdict["onset_epoch"],
            "best_epoch": verdict["best_epoch"],
            "message": verdict["message"],
            "evidence": verdict["evidence"],
            "recovered": verdict["recovered"],
        }


def judge_curves(
    rows: list[dict[str, float]], source: str, settings: OverfittingConfig, direction: str | None,
) -> tuple[list[CurveVerdict], list[DlcliError]]:
    """The verdict of each model in `rows` (each fold apart), read one epoch at a time, and why each
    fold that cannot be judged is not; `direction` 'min' or 'max', or None to tell it by the
    monitor's name.

    A history without the monitored or the training-loss column, or none of whose models has as
    many epochs as the detector needs, is an error that names the file. A fold too short beside
    others (a k-fold run stopped in it) keeps the others' verdicts.
    """
    monitor = settings.monitor
    if not rows:
        raise DlcliError(f"{source}: a header and no epochs")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    for needed in (monitor, "loss"):
        if needed not in columns:
            choose = f"{did_you_mean(needed, columns)}; choose one with --monitor" if needed == monitor else ""
            raise DlcliError(f"{source}: no '{needed}' column (has {listed(columns)}){choose}")
    if problem := not_a_validation_metric(monitor):  # a column it has: named rightly, and no validation metric
        raise DlcliError(f"--monitor {monitor}: {problem}")
    direction = direction or guessed_direction(monitor)
    fewest = fewest_epochs(direction == Direction.min)
    verdicts, too_short = [], []
    for fold, model_rows in models_of(rows, source):
        finite = [judged_epoch(row, monitor) for row in model_rows]  # as the watch reads them
        usable = [row for row, judged in zip(model_rows, finite) if judged]
        left_out = [int(row[EPOCH_COLUMN]) for row, judged in zip(model_rows, finite) if not judged]
        if len(usable) < fewest:
            which = f" (fold {fold})" if fold is not None else ""
            why = f"; {left_out_note(left_out, monitor)}" if left_out else ""
            too_short.append(DlcliError(
                f"{source}{which}: {counted(len(usable), 'epoch')} with both {monitor} and loss; a verdict needs at "
                f"least {fewest}{why}"
            ))
            continue
        watch = OverfittingWatch.replayed(settings, direction == Direction.min, model_rows)
        verdicts.append(CurveVerdict(source, monitor, direction, len(model_rows), watch.verdict(), fold, left_out))
    if not verdicts:
        raise too_short[0]
    return verdicts, too_short


class RunsFolderEntry(DlcliError):
    """A path given as a history that is one of the runs folder's own entries (`dlcli verdict runs/*`
    meets its index and its sweeps): passed by among several histories."""


def history_verdicts(
    reference: str, runs_dir: Path, monitor: str | None = None, mode: str | None = None,
) -> tuple[list[CurveVerdict], list[DlcliError]]:
    """The verdicts of a history file, or of a run (id, prefix, name, `latest`, folder) judged
    with its own config's `training.overfitting` settings, and why each fold too short to judge is
    not (judge_curves); `monitor` and `mode` override the settings."""
    from dlcli.config import load_config
    from dlcli.store.index import read_run
    from dlcli.store.runs import CONFIG_FILE, HISTORY_FILE, INDEX_FILE, RUN_FILE, SWEEPS_DIR, read_history, resolve_run

    asked = mode  # --mode itself, before a run's configured mode stands in for it
    if monitor is not None and not monitor.strip():
        raise DlcliError("--monitor: give the validation metric to watch, e.g. --monitor val_loss")
    path = Path(reference).expanduser()
    try:
        kind = path.stat().st_mode
    except OSError:  # none there, or a name longer than any path: a run's id, prefix or name
        kind = None
    is_dir = kind is not None and stat.S_ISDIR(kind)
    if path.name.startswith(INDEX_FILE) or path.name == SWEEPS_DIR and is_dir:
        raise RunsFolderEntry(f"{path}: the runs folder's {'index' if path.name.startswith(INDEX_FILE) else 'sweeps'}, "
                              f"not a history; give a run or {HISTORY_FILES}")
    if path.suffix.lower() in (".csv", ".json") and kind is None:
        raise DlcliError(f"{cut(str(path), 200)}: no such file")
    if kind is not None and (stat.S_ISREG(kind) or stat.S_ISFIFO(kind)):  # a file, or a pipe: <(...), /dev/stdin
        settings = OverfittingConfig(monitor=monitor or OverfittingConfig().monitor)
        _check_mode(mode, settings.monitor, named_direction(settings.monitor), "by its name")
        return judge_curves(read_curves(path, (settings.monitor, "loss")), str(path), settings, mode)
    if kind is not None and not is_dir:  # /dev/zero would be read without end
        raise DlcliError(f"{path}: a device, not a file; give a run or {HISTORY_FILES}")
    if is_dir and not (path / RUN_FILE).is_file():
        raise DlcliError(f"{path}: a folder, and no run folder (it has no {RUN_FILE}); give a run or {HISTORY_FILES}")
    run = resolve_run(runs_dir, reference)
    try:
        configured = load_config(run.file(CONFIG_FILE)).training.overfitting or OverfittingConfig()
    except DlcliError as error:  # its settings are lost, not its history
        raise DlcliError(f"run {run.id}: its {CONFIG_FILE}, which holds how to judge it, cannot be read ({error}); judge "
                         f"its history with the default settings instead: dlcli verdict {run.file(HISTORY_FILE)}") from None
    settings = configured.model_copy(update={"monitor": monitor}) if monitor else configured
    directions = (read_run(runs_dir, run).summary or {}).get("directions", {})
    if mode is None and settings.mode != "auto" and settings.monitor == configured.monitor:
        mode = settings.mode
    recorded = directions.get(metric_name(settings.monitor))
    _check_mode(asked, settings.monitor, recorded or named_direction(settings.monitor),
                f"as run {run.id} recorded it" if recorded else "by its name")
    direction = mode or recorded
    rows = read_history(run.file(HISTORY_FILE))
    if not rows:  # "a header and no epochs" said of a file that is not there
        lacking = "is empty" if run.file(HISTORY_FILE).is_file() else "is missing"
        raise DlcliError(f"run {run.id}: its {HISTORY_FILE} {lacking}: no epoch to judge (a run records each epoch there "
                         "as it ends)")
    return judge_curves(rows, f"run {run.id}", settings, direction)
