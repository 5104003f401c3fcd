"""dlcli's own Keras callbacks: the epoch commit, the overfitting alarm, stop requests, the live display.

Each does what no Keras callback does as dlcli needs it: Keras's `CSVLogger` numbers
epochs from 0 and appends in place, its `ModelCheckpoint` writes the model archive in
place (a kill mid-save corrupts the only copy) and `BackupAndRestore` saves neither the
random state nor the other callbacks' state, apart from the history, so a resumed run
drifts from the uninterrupted one; and Keras's progress bar is not rich.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable

import keras
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from dlcli.build.models import build_object, contradicted_direction, keras_class, metric_directions
from dlcli.choices import Direction
from dlcli.columns import EPOCH_COLUMN, LEARNING_RATE_COLUMN, SECONDS_COLUMN, VALIDATION_PREFIX
from dlcli.config import ExperimentConfig, without_validation_data
from dlcli.curves.verdicts import OverfittingWatch, best_row
from dlcli.errors import reason_of
from dlcli.keys import KeyPath, did_you_mean, format_path
from dlcli.stopping import stop_pending
from dlcli.training.checkpoint import Checkpoint


def _monitored(config: ExperimentConfig, key: KeyPath, monitor: str, logs: dict | None) -> float:
    """The epoch's value of `monitor`, or a config error at `key` that lists what is logged."""
    logs = logs or {}
    if monitor not in logs:
        raise config.error(key, f"'{monitor}' is not logged; choose one of {', '.join(logs)}")
    return float(logs[monitor])


def current_learning_rate(model: keras.Model) -> float:
    return float(model.optimizer.learning_rate.numpy())


class EpochClock(keras.callbacks.Callback):
    """Tells the training stream's `EpochOrder` which epoch begins: Keras starts each epoch's
    iterator after `on_epoch_begin`, so the epoch is shuffled by `(seed, epoch)` alone."""

    def __init__(self, order):
        super().__init__()
        self.order = order

    def on_epoch_begin(self, epoch, logs=None):
        self.order.epoch = epoch


class BestModel:
    """The best epoch so far of one model file by `monitor`, taken up from the rows of a resumed run.

    Without a monitor (a validation metric, and no validation data) every epoch whose loss
    is finite is the best: the last one is kept.
    """

    def __init__(self, file: str, monitor: str | None, minimize: bool):
        self.file = file  # model.keras, or model-fold-K.keras
        self.monitor = monitor
        self.minimize = minimize  # the direction Keras gives the monitor (models.monitor_directions)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def restore(self, rows: list[dict[str, float]]) -> None:
        if self.monitor is None:
            self.best_epoch = rows[-1][EPOCH_COLUMN] if rows else None
            return
        best = best_row(rows, self.monitor, self.minimize)
        if best is not None:
            self.best, self.best_epoch = best[self.monitor], best[EPOCH_COLUMN]

    def improved_by(self, row: dict[str, float]) -> bool:
        """Whether `row`'s epoch is the new best; it becomes the best if so."""
        value = row["loss"] if self.monitor is None else row[self.monitor]
        if not math.isfinite(value):
            return False
        if self.monitor is not None and self.best is not None:
            if not (value < self.best if self.minimize else value > self.best):
                return False
        self.best, self.best_epoch = (value if self.monitor else None), row[EPOCH_COLUMN]
        return True


class EpochCommit(keras.callbacks.Callback):
    """After each epoch: its row of history.csv, the best model when it improved, and the resume
    state with the weights it refers to, committed together (dlcli.training.checkpoint).

    It goes after the Keras callbacks whose state it saves, so that it sees them after their
    epoch end (EarlyStopping's stop, ReduceLROnPlateau's new rate).
    """

    def __init__(
        self, checkpoint: Checkpoint, config: ExperimentConfig, stage: int, tags: dict[str, int],
        best: BestModel, model_to_save: keras.Model, saved_callbacks: list[keras.callbacks.Callback],
    ):
        super().__init__()
        self.checkpoint = checkpoint
        self.config = config
        self.stage = stage
        self.tags = tags  # `fold`, `phase`
        self.best = best
        self.model_to_save = model_to_save  # the whole model when the one being fitted is only its head
        self.saved_callbacks = saved_callbacks

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logged = sorted((logs or {}).items(), key=lambda item: metric_order(item[0]))
        row = {**self.tags, EPOCH_COLUMN: epoch + 1, **{key: float(value) for key, value in logged}}
        row.setdefault(LEARNING_RATE_COLUMN, current_learning_rate(self.model))
        row[SECONDS_COLUMN] = round(time.perf_counter() - self._epoch_started, 3)
        if not math.isfinite(row.get("loss", 0.0)):
            self.checkpoint.record(row)  # a diverged epoch is no state to resume from
            return
        if self.best.monitor is not None:
            _monitored(self.config, ("training", "monitor"), self.best.monitor, logs)
        improved = self.best.improved_by(row)
        self.checkpoint.rows.append(row)
        self.checkpoint.commit(
            self.stage, epoch + 1, self.model, self.saved_callbacks, stopped=bool(self.model.stop_training),
            best=(self.model_to_save, self.best.file) if improved else None,
        )


def metric_order(key: str) -> tuple[bool, bool, str]:
    """Training before validation, loss first in each: loss, accuracy, val_loss, val_accuracy."""
    return key.startswith("val_"), key.removeprefix("val_") != "loss", key


class OverfittingMonitor(keras.callbacks.Callback):
    """Warns once, as it happens, when validation trends away from its best while the training loss
    falls; with `training.overfitting.stop`, training ends there (the commit after it records the stop)."""

    def __init__(self, watch: OverfittingWatch, config: ExperimentConfig, console: Console | None):
        super().__init__()
        self.watch = watch
        self.config = config
        self.console = console
        self.warned = False  # whether this process showed the ⚠ line

    def on_epoch_end(self, epoch, logs=None):
        _monitored(self.config, ("training", "overfitting", "monitor"), self.watch.monitor, logs)
        logs = logs or {}
        warning = self.watch.observe({EPOCH_COLUMN: epoch + 1, **{k: float(v) for k, v in logs.items()}})
        if warning is None:
            return
        if self.watch.stops:
            self.model.stop_training = True
        if self.console is not None:
            stopping = "; stopping here (training.overfitting.stop)" if self.watch.stops else ""
            self.console.print(Text(f"⚠ {warning}{stopping}", style="bold yellow"), soft_wrap=True)
            self.warned = True


class StopOnRequest(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the first batch or epoch end after `request_stop()`."""

    def _check(self, *args, **kwargs) -> None:
        if stop_pending():
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check


class ReportToSweep(keras.callbacks.Callback):
    """Hands a sweep the monitored metric after each epoch; stops training when its pruner says so."""

    def __init__(self, report: Callable[[int, float], bool], monitor: str):
        super().__init__()
        self.report = report
        self.monitor = monitor
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and self.report(epoch + 1, float(value)):
            self.pruned_at = epoch + 1
            self.model.stop_training = True


def _each_once(config: ExperimentConfig, built: list[tuple[KeyPath, keras.callbacks.Callback]]) -> None:
    """Refuse a callback given twice (as a section and in `training.callbacks`, or listed twice):
    the same class on the same monitor does the same work twice, and two that set the learning
    rate undo each other's steps whatever they monitor."""
    first: dict[tuple[type, str | None], KeyPath] = {}
    for key, callback in built:
        sets_rate = isinstance(callback, keras.callbacks.ReduceLROnPlateau)
        seen = (type(callback), None if sets_rate else getattr(callback, "monitor", None))
        if seen in first:
            what = type(callback).__name__ + ("" if sets_rate or seen[1] is None else f" on {seen[1]}")
            why = "both would set the learning rate" if sets_rate else "it would do the same work twice"
            raise config.error(key, f"{what} is given already, at {format_path(first[seen])}: {why}; keep one")
        first[seen] = key


def keras_callbacks(config: ExperimentConfig) -> list[keras.callbacks.Callback]:
    """The Keras callbacks the config asks for: early stopping, LR reduction, `training.callbacks`."""
    training = config.training
    built: list[tuple[KeyPath, keras.callbacks.Callback]] = []
    for key, class_name in (("early_stopping", "EarlyStopping"), ("reduce_lr_on_plateau", "ReduceLROnPlateau")):
        arguments = getattr(training, key)
        if arguments is not None:
            callback = _built_callback(config, ("training", key), getattr(keras.callbacks, class_name), arguments)
            built.append((("training", key), callback))
    for index, item in enumerate(training.callbacks):
        ((class_name, arguments),) = item.items()
        path = ("training", "callbacks", index)
        if class_name in REFUSED_CALLBACKS:
            raise config.error(path, f"{class_name}: {REFUSED_CALLBACKS[class_name]}")
        cls = keras_class(
            config, path, keras.callbacks, keras.callbacks.Callback, class_name, "callback", excluded=REFUSED_CALLBACKS
        )
        built.append((path, _built_callback(config, (*path, class_name), cls, arguments)))
    _each_once(config, built)
    for key, callback in built:
        if isinstance(callback, keras.callbacks.SwapEMAWeights) and not config.optimizer.kwargs.get("use_ema"):
            raise config.error(
                key, "SwapEMAWeights evaluates with the optimizer's moving averages of the weights, and the optimizer "
                f"keeps none: set `optimizer: {{name: {config.optimizer.name}, use_ema: true}}`",
            )
    keras_said = metric_directions(config)  # resolves every configured metric: once
    logged = [*keras_said, *(f"{VALIDATION_PREFIX}{name}" for name in keras_said if config.validates), LEARNING_RATE_COLUMN]
    for key, callback in built:
        monitor = getattr(callback, "monitor", None)
        if not isinstance(monitor, str) or monitor in logged:
            continue
        if monitor.startswith("val_") and not config.validates:
            # without validation data a callback watching a validation metric would never act
            raise config.error(key, without_validation_data(monitor))
        # Keras would only warn at each epoch's end, and the callback would never act
        raise config.error(
            key, f"monitors '{monitor}', which is not logged (logged: {', '.join(logged)})"
            f"{did_you_mean(monitor, logged)}",
        )
    for key, callback in built:
        if isinstance(callback, COMPARING):
            mode = getattr(callback, "mode", "auto")
            if mode in (Direction.min, Direction.max) and isinstance(callback.monitor, str):
                if (problem := contradicted_direction(callback.monitor, mode, keras_said)) is not None:
                    raise config.error((*key, *_item_class(config, key), "mode"), problem)
            _tried_on_two_epochs(config, key, callback)
    return [callback for _, callback in built]


# Callback arguments Keras takes whatever their value: the least that means anything, and what it is
AT_LEAST = {
    "patience": (0, "a number of epochs"), "cooldown": (0, "a number of epochs"),
    "start_from_epoch": (0, "a number of epochs"), "min_delta": (0, "the least change that counts"),
    "min_lr": (0, "a learning rate"),
}


def _built_callback(config: ExperimentConfig, path: KeyPath, cls: type, arguments: dict) -> keras.callbacks.Callback:
    """The callback the config describes. A warning Keras gives while building one means an
    argument it will ignore (an unknown `mode`: it falls back to 'auto'), so it is a config error."""
    for key, value in arguments.items():
        least, what = AT_LEAST.get(key, (None, ""))
        if least is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < least:
            raise config.error((*path, key), f"{key} is {what}: {least} or more, not {value}")
    if isinstance(arguments.get("factor"), (int, float)) and arguments["factor"] <= 0:
        raise config.error((*path, "factor"), f"factor {arguments['factor']} would set the learning rate to "
                           f"{'0' if arguments['factor'] == 0 else 'below 0'}: give one between 0 and 1, e.g. 0.5")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        callback = build_object(config, path, cls, arguments)
    from_keras = [w for w in caught if issubclass(w.category, UserWarning) and f"{os.sep}keras{os.sep}" in w.filename]
    for other in caught:  # any other warning (another library's, a deprecation) is shown as it would have been
        if other not in from_keras:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    if from_keras:
        raise config.error(path, f"{str(from_keras[0].message).strip()} (Keras only warns and carries on: correct the argument)")
    return callback


def _item_class(config: ExperimentConfig, key: KeyPath) -> tuple[str, ...]:
    """The class name a `training.callbacks` item is written under (its arguments are below it); none for a section."""
    return tuple(config.training.callbacks[key[-1]]) if isinstance(key[-1], int) else ()


# Callbacks that compare their arguments (baseline, min_delta) with the monitored value only as an
# epoch ends: a value Keras cannot compare (`baseline: abc`) would fail the run after its first epoch.
COMPARING = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)


def _tried_on_two_epochs(config: ExperimentConfig, path: KeyPath, callback: keras.callbacks.Callback) -> None:
    """A copy of the callback (a monitor it logs), on a model of one unit made for it, through two made-up epochs."""
    entry = keras.Input((1,), name="dlcli_tried_callback_input")
    unit = keras.layers.Dense(1, kernel_initializer="zeros", name="dlcli_tried_callback_unit")  # named, seeded by none:
    model = keras.Model(entry, unit(entry), name="dlcli_tried_callback")  # the run's own names and draws stay theirs
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    tried = copy.deepcopy(callback)
    tried.set_model(model)
    try:
        tried.on_train_begin()
        for epoch, value in enumerate((1.0, 2.0)):
            tried.on_epoch_end(epoch, {callback.monitor: np.float32(value), "learning_rate": np.float32(0.1)})
    except (TypeError, ValueError) as error:
        name = type(callback).__name__
        raise config.error(path, f"{name} fails at an epoch's end with these arguments: {reason_of(error)}") from None


REFUSED_CALLBACKS = {
    "LearningRateScheduler": (
        "takes a Python function, which a config cannot hold; `training.reduce_lr_on_plateau` lowers the "
        "learning rate when the monitored metric stalls"
    ),
    "LambdaCallback": "runs Python code from the config and is refused",
    "RemoteMonitor": "sends training logs over the network and is refused",
    "ModelCheckpoint": "dlcli saves the best model (model.keras) and resume checkpoints itself",
    "BackupAndRestore": "dlcli keeps resume checkpoints itself (`dlcli train --resume RUN`)",
    "OrbaxCheckpoint": "dlcli keeps resume checkpoints itself (`dlcli train --resume RUN`)",
    "CSVLogger": "dlcli writes history.csv itself",
    "TensorBoard": "dlcli writes tensorboard/ itself (`training.tensorboard`)",
    "ProgbarLogger": "dlcli shows progress itself",
    "History": "dlcli records the history itself",
    "CallbackList": "it is a container, not a callback",
}


class RichProgress(keras.callbacks.Callback):
    """A bar while an epoch runs (on a terminal), then one line per finished epoch."""

    def __init__(
        self, console: Console, epochs: int, steps_per_epoch: int, best: BestModel, label: str = "",
        watch: OverfittingWatch | None = None,
    ):
        super().__init__()
        self.console = console
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.best = best
        self.label = label  # e.g. "fold 2/4  "
        self.watch = watch  # its weaker evidence shows, dimmed, at the end of the epoch's line
        self.progress: Progress | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        if not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn(f"{self.label}epoch {epoch + 1}/{self.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[loss]}"),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("train", total=self.steps, loss="")
        self.progress.start()

    def on_train_batch_end(self, batch, logs=None):
        if self.progress is not None:
            loss = (logs or {}).get("loss")
            self.progress.update(
                self.task, completed=batch + 1, loss=f"loss {float(loss):.4f}" if loss is not None else ""
            )

    def on_epoch_end(self, epoch, logs=None):
        self.close()
        logs = logs or {}
        width = len(str(self.epochs))
        parts: list[str | tuple[str, str]] = [f"{self.label}epoch {epoch + 1:>{width}}/{self.epochs}"]
        for key, value in sorted(logs.items(), key=lambda item: metric_order(item[0])):
            parts.append((f"{key} {float(value):.4f}", "cyan" if key.startswith("val_") else ""))
        parts.append(f"lr {current_learning_rate(self.model):.2g}")
        parts.append(f"{time.perf_counter() - self._started:.1f}s")
        if self.best.monitor and self.best.best_epoch == epoch + 1:
            parts.append(("best", "green"))
        hint = self.watch.hint() if self.watch is not None else None
        if hint:
            parts.append((hint, "dim"))
        separated = [piece for part in parts for piece in ("  ", part)][1:]
        self.console.print(Text.assemble(*separated), soft_wrap=True)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
