"""dlcli's own Keras callbacks: the epoch record, the best-model checkpoint, the live display.

Each does what no Keras callback does as dlcli needs it: Keras's `CSVLogger` numbers
epochs from 0 and appends in place, its `ModelCheckpoint` writes the model archive in
place (a kill mid-save corrupts the only copy), and its progress bar is not rich.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dlcli.config import ExperimentConfig, KeyPath, did_you_mean
from dlcli.models import build_object
from dlcli.runs import rows_to_csv, write_atomic, write_json
from dlcli.verdicts import OverfittingWatch, best_row


def _saved_atomically(save: Callable[[Path], None], path: Path) -> None:
    """`save(temporary)`, then rename it to `path`: a kill mid-save never leaves half a file there."""
    # Keras picks the format from the file's ending (.keras, .weights.h5): the temporary keeps it
    temporary = path.with_name(f".{path.name.split('.')[0]}.{os.getpid()}.tmp{''.join(path.suffixes)}")
    try:
        save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """`model.save`, through a temporary file, so `path` always holds a whole model."""
    _saved_atomically(model.save, path)


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


class EpochRecorder(keras.callbacks.Callback):
    """Keeps one row per epoch and rewrites `history.csv` atomically after each.

    Rows: the `tags` (`fold`, `phase`), `epoch` (from 1), every logged metric,
    `learning_rate`, `seconds`. Rows accumulate over successive `fit` calls (phases, folds).
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.rows: list[dict[str, float]] = []
        self.tags: dict[str, int] = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logged = sorted((logs or {}).items(), key=lambda item: metric_order(item[0]))
        row = {**self.tags, "epoch": epoch + 1, **{key: float(value) for key, value in logged}}
        row.setdefault("learning_rate", current_learning_rate(self.model))
        row["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        self.rows.append(row)
        write_atomic(self.path, rows_to_csv(self.rows))


def metric_order(key: str) -> tuple[bool, bool, str]:
    """Training before validation, loss first in each: loss, accuracy, val_loss, val_accuracy."""
    return key.startswith("val_"), key.removeprefix("val_") != "loss", key


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves; remembers the best epoch.

    Without a monitor (a validation metric, and no validation data) every epoch whose loss
    is finite is saved: the last one is kept. The best is kept across successive `fit`
    calls (fine-tuning continues the same run). `model_to_save` is the whole model when the
    one being fitted is only its head.
    """

    def __init__(
        self, path: Path, config: ExperimentConfig, model_to_save: keras.Model, monitor: str | None, minimize: bool,
    ):
        super().__init__()
        self.path = path
        self.config = config
        self.model_to_save = model_to_save
        self.monitor = monitor
        self.minimize = minimize  # the direction Keras gives the monitor (models.monitor_directions)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return self.best is None or (value < self.best if self.minimize else value > self.best)

    def restore(self, rows: list[dict[str, float]]) -> None:
        """Take up the best epoch so far (the last, without a monitor) from an interrupted run's history."""
        if self.monitor is None:
            self.best_epoch = rows[-1]["epoch"] if rows else None
            return
        best = best_row(rows, self.monitor, self.minimize)
        if best is not None:
            self.best, self.best_epoch = best[self.monitor], best["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            if math.isfinite(float((logs or {}).get("loss", math.nan))):
                self.best_epoch = epoch + 1
                save_model_atomic(self.model_to_save, self.path)
            return
        value = _monitored(self.config, ("training", "monitor"), self.monitor, logs)
        if self._improves(value):
            self.best, self.best_epoch = value, epoch + 1
            save_model_atomic(self.model_to_save, self.path)


class OverfittingMonitor(keras.callbacks.Callback):
    """Warns once, as it happens, when validation trends away from its best while the training loss falls."""

    def __init__(self, watch: OverfittingWatch, config: ExperimentConfig, console: Console | None):
        super().__init__()
        self.watch = watch
        self.config = config
        self.console = console
        self.warned = False  # whether this process showed the ⚠ line

    def on_epoch_end(self, epoch, logs=None):
        _monitored(self.config, ("training", "overfitting", "monitor"), self.watch.monitor, logs)
        logs = logs or {}
        warning = self.watch.observe({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        if warning and self.console is not None:
            self.console.print(f"[bold yellow]⚠ {warning}[/]", highlight=False, soft_wrap=True)
            self.warned = True


WEIGHTS_FILE = "last.weights.h5"
STATE_FILE = "state.json"


class ResumeCheckpoint(keras.callbacks.Callback):
    """After each epoch: the fitted model's weights and optimizer state, then the epoch reached.

    `dlcli train --resume` continues from here. Keras's BackupAndRestore does the same but
    overwrites its weights file in place and keeps the epoch in a private file; dlcli
    needs the epoch to cut history.csv back to it, and a kill must never corrupt either.
    """

    def __init__(self, folder: Path, tags: dict[str, int]):
        super().__init__()
        self.folder = folder
        self.tags = tags

    def on_epoch_end(self, epoch, logs=None):
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            return  # a diverged epoch is no state to resume from; the previous one stays
        self.folder.mkdir(exist_ok=True)
        _saved_atomically(self.model.save_weights, self.folder / WEIGHTS_FILE)
        write_json(self.folder / STATE_FILE, {**self.tags, "epoch": epoch + 1})


# A stop request outlives the KeyboardInterrupt that dlcli's SIGINT/SIGTERM handler
# raises with it: should native code swallow that exception, the next batch raises it
# again, so a stop is never lost. It stays pending until a run has stopped on it.
_stop_requested = threading.Event()


def request_stop() -> None:
    """Ask the training running in this process to stop as Ctrl-C would, at the next batch."""
    _stop_requested.set()


def stop_honoured() -> None:
    _stop_requested.clear()


class StopOnRequest(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the first batch or epoch end after `request_stop()`."""

    def _check(self, *args, **kwargs) -> None:
        if _stop_requested.is_set():
            raise KeyboardInterrupt

    on_train_batch_end = on_test_batch_end = on_epoch_end = _check


def keras_callbacks(config: ExperimentConfig) -> list[keras.callbacks.Callback]:
    """The Keras callbacks the config asks for: early stopping, LR reduction, `training.callbacks`."""
    training = config.training
    built: list[tuple[KeyPath, keras.callbacks.Callback]] = []
    for key, class_name in (("early_stopping", "EarlyStopping"), ("reduce_lr_on_plateau", "ReduceLROnPlateau")):
        arguments = getattr(training, key)
        if arguments is not None:
            callback = build_object(config, ("training", key), getattr(keras.callbacks, class_name), arguments)
            built.append((("training", key), callback))
    available = {
        name: cls for name, cls in vars(keras.callbacks).items()
        if isinstance(cls, type) and issubclass(cls, keras.callbacks.Callback) and name not in REFUSED_CALLBACKS
        and cls is not keras.callbacks.Callback
    }
    for index, item in enumerate(training.callbacks):
        ((class_name, arguments),) = item.items()
        path = ("training", "callbacks", index)
        if class_name in REFUSED_CALLBACKS:
            raise config.error(path, f"{class_name}: {REFUSED_CALLBACKS[class_name]}")
        if class_name not in available:
            raise config.error(path, f"unknown callback '{class_name}'{did_you_mean(class_name, available)}")
        built.append((path, build_object(config, (*path, class_name), available[class_name], arguments)))
    for key, callback in built if not config.validates else ():
        # without validation data a callback watching a validation metric would never act
        monitor = getattr(callback, "monitor", None)
        if isinstance(monitor, str) and monitor.startswith("val_"):
            raise config.error(
                key, f"monitors {monitor}, and there is no validation data (`dataset.validation_split: 0`): "
                f"monitor a training metric ({monitor.removeprefix('val_')}) or keep a validation split",
            )
    return [callback for _, callback in built]


REFUSED_CALLBACKS = {
    "LambdaCallback": "runs Python code from the config and is refused",
    "RemoteMonitor": "sends training logs over the network and is refused",
    "ModelCheckpoint": "dlcli saves the best model (model.keras) and resume checkpoints itself",
    "BackupAndRestore": "dlcli keeps resume checkpoints itself (`dlcli train --resume RUN`)",
    "CSVLogger": "dlcli writes history.csv itself",
    "TensorBoard": "dlcli writes tensorboard/ itself (`training.tensorboard`)",
    "ProgbarLogger": "dlcli shows progress itself",
    "History": "dlcli records the history itself",
    "CallbackList": "it is a container, not a callback",
}


class RichProgress(keras.callbacks.Callback):
    """A bar while an epoch runs (on a terminal), then one line per finished epoch."""

    def __init__(
        self, console: Console, epochs: int, steps_per_epoch: int, checkpoint: BestModelCheckpoint, label: str = "",
        watch: OverfittingWatch | None = None,
    ):
        super().__init__()
        self.console = console
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.checkpoint = checkpoint
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
        parts = [f"{self.label}epoch {epoch + 1:>{width}}/{self.epochs}"]
        for key, value in sorted(logs.items(), key=lambda item: metric_order(item[0])):
            style = "cyan" if key.startswith("val_") else ""
            text = f"{key} {float(value):.4f}"
            parts.append(f"[{style}]{text}[/]" if style else text)
        parts.append(f"lr {current_learning_rate(self.model):.2g}")
        parts.append(f"{time.perf_counter() - self._started:.1f}s")
        if self.checkpoint.monitor and self.checkpoint.best_epoch == epoch + 1:
            parts.append("[green]best[/]")
        hint = self.watch.hint() if self.watch is not None else None
        if hint:
            parts.append(f"[dim]{hint}[/]")
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
