"""dlcli's own Keras callbacks: the epoch record, the best-model checkpoint, the live display.

Each does what no Keras callback does as dlcli needs it: Keras's `CSVLogger` numbers
epochs from 0 and appends in place, its `ModelCheckpoint` writes the model archive in
place (a kill mid-save corrupts the only copy), and its progress bar is not rich.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path

import keras
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dlcli.config import ExperimentConfig
from dlcli.runs import write_atomic


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """`model.save`, through a temporary file, so `path` always holds a whole model."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def current_learning_rate(model: keras.Model) -> float:
    return float(model.optimizer.learning_rate.numpy())


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


def rows_to_csv(rows: list[dict[str, float]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `training.monitor` improves; remembers the best epoch.

    The best is kept across successive `fit` calls (fine-tuning continues the same run).
    `model_to_save` is the whole model when the one being fitted is only its head.
    """

    def __init__(self, path: Path, config: ExperimentConfig, model_to_save: keras.Model):
        super().__init__()
        self.path = path
        self.config = config
        self.model_to_save = model_to_save
        self.monitor = config.training.monitor
        self.minimize = config.training.monitor_minimizes
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise self.config.error(
                ("training", "monitor"),
                f"'{self.monitor}' is not logged; choose one of {', '.join(logs)}",
            )
        value = float(logs[self.monitor])
        if math.isnan(value):
            return
        if self.best is None or (value < self.best if self.minimize else value > self.best):
            self.best, self.best_epoch = value, epoch + 1
            save_model_atomic(self.model_to_save, self.path)


class RichProgress(keras.callbacks.Callback):
    """A bar while an epoch runs (on a terminal), then one line per finished epoch."""

    def __init__(
        self, console: Console, epochs: int, steps_per_epoch: int, checkpoint: BestModelCheckpoint, label: str = ""
    ):
        super().__init__()
        self.console = console
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.checkpoint = checkpoint
        self.label = label  # e.g. "fold 2/4  "
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
        if self.checkpoint.best_epoch == epoch + 1:
            parts.append("[green]best[/]")
        self.console.print("  ".join(parts), highlight=False, soft_wrap=True)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
