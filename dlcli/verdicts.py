"""Reading the curves: overfitting, underfitting and plateaus, with advice fitted to the config.

Pure functions of history rows (one dict per epoch), so the same verdict comes from a
live run, a resumed one, or a history.csv read back later.
"""

from __future__ import annotations

import math
from typing import Any

from dlcli.config import ExperimentConfig, OverfittingConfig, lower_is_better
from dlcli.data.catalog import DATASETS, IMAGE_OPTIONS

# Advice on a model "large for its data": more parameters than this many per training example.
PARAMETERS_PER_EXAMPLE = 100
# Epochs past the onset after which stopping earlier is worth suggesting.
EPOCHS_PAST_ONSET = 3
# A loss that moved less than this fraction over the run did not learn.
FLAT_LOSS_FRACTION = 0.01


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def best_row(rows: list[dict[str, float]], monitor: str, minimize: bool) -> dict[str, float] | None:
    """The first row with the best finite `monitor` value (the epoch model.keras was saved at)."""
    candidates = [row for row in rows if _finite(row.get(monitor))]
    if not candidates:
        return None
    pick = min if minimize else max
    return pick(candidates, key=lambda row: row[monitor])


class OverfittingDetector:
    """Overfitting: `monitor` has not improved for `patience` epochs while the training loss still falls.

    The onset is the monitor's best epoch: the last one before validation turned.
    """

    def __init__(self, settings: OverfittingConfig):
        self.monitor = settings.monitor
        self.patience = settings.patience
        self.min_delta = settings.min_delta
        self.minimize = lower_is_better(settings.monitor)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_loss: float | None = None
        self.onset: dict[str, float] | None = None  # the state when first detected
        self.recovered: str | None = None  # why an earlier warning no longer holds
        self.warned = False
        self.last: dict[str, float] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.minimize:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def observe(self, row: dict[str, float]) -> str | None:
        """Feed one epoch's row; returns the warning the first time overfitting is detected.

        The verdict follows the curves: a later best withdraws it, a later stall flags it
        again (without a second warning).
        """
        value, loss = row.get(self.monitor), row.get("loss")
        if not (_finite(value) and _finite(loss)):
            return None
        self.last = {"epoch": row["epoch"], "value": value, "loss": loss}
        if self._improved(value):
            if self.onset is not None:  # validation beat its old best: the overfitting did not last
                self.recovered = (
                    f"validation recovered after the overfitting warning: {self.monitor} reached a new best "
                    f"{value:.4g} at epoch {row['epoch']}"
                )
                self.onset = None
            self.best, self.best_epoch, self.best_loss = value, row["epoch"], loss
            return None
        if self.onset is None and row["epoch"] - self.best_epoch >= self.patience and loss < self.best_loss:
            self.onset = dict(self.last)
            if not self.warned:  # once a run: noisy curves would otherwise warn again and again
                self.warned = True
                return self.message(self.last)
        return None

    @classmethod
    def replayed(cls, settings: OverfittingConfig, rows: list[dict[str, float]]) -> OverfittingDetector:
        """A detector that has observed `rows` already (a resumed run's earlier epochs)."""
        detector = cls(settings)
        for row in rows:
            detector.observe(row)
        return detector

    def message(self, now: dict[str, float]) -> str:
        return (
            f"overfitting since epoch {self.best_epoch}: {self.monitor} {self.best:.4g} → {now['value']:.4g} "
            f"while loss {self.best_loss:.4g} → {now['loss']:.4g}"
        )

    def verdict(self) -> dict[str, Any]:
        detected = self.onset is not None
        return {
            "detected": detected,
            "onset_epoch": self.best_epoch if detected else None,
            "monitor": self.monitor,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "final": self.last["value"] if self.last else None,
            "message": self.message(self.last) if detected else None,
            "recovered": None if detected else self.recovered,
        }


def _layer_names(config: ExperimentConfig) -> list[str]:
    return [name for item in config.model.layers for name in item]


def overfitting_advice(
    config: ExperimentConfig, verdict: dict[str, Any], epochs_run: int, parameters: int, train_samples: int
) -> list[str]:
    """What to try against the overfitting this config showed."""
    if not verdict["detected"]:
        return []
    advice = []
    onset = verdict["onset_epoch"]
    if epochs_run - onset >= EPOCHS_PAST_ONSET:
        advice.append(
            f"{epochs_run - onset} epochs ran past the onset: train for `epochs: {onset}`, or add "
            f"`training.early_stopping: {{monitor: {verdict['monitor']}, patience: 2}}`"
        )
    if not any("Dropout" in name for name in _layer_names(config)):
        advice.append("the model has no Dropout: add `- Dropout: {rate: 0.5}` before the last Dense layer")
    if _is_image_dataset(config) and not config.model.augmentation:
        advice.append(
            f"images without augmentation: add `model.augmentation` ({_fitting_transforms(config)}) "
            "so each epoch sees new variants"
        )
    if parameters > PARAMETERS_PER_EXAMPLE * train_samples:
        advice.append(
            f"{parameters:,} parameters for {train_samples:,} training examples: try fewer units or layers, "
            "or weight regularization (`kernel_regularizer: l2`)"
        )
    return advice


def _fitting_transforms(config: ExperimentConfig) -> str:
    """The augmentation layers that keep this dataset's classes: no flips for digits."""
    mirrored_keeps_class = DATASETS[config.dataset.name].mirrored_keeps_class
    if mirrored_keeps_class is False:
        return "RandomRotation, RandomZoom, RandomTranslation; not RandomFlip: a mirrored digit is another symbol"
    if mirrored_keeps_class:
        return "RandomFlip, RandomRotation, RandomZoom"
    return "RandomRotation, RandomZoom, and RandomFlip if a mirrored image keeps its class"


def _is_image_dataset(config: ExperimentConfig) -> bool:
    options = DATASETS[config.dataset.name].options
    return "image_size" in options or options == IMAGE_OPTIONS


def training_notes(rows: list[dict[str, float]], config: ExperimentConfig) -> list[str]:
    """Underfitting and plateau notes: validation still improving at the end, or never learning at all.

    "Train longer" rests on the monitored validation metric, not on the training accuracy:
    a training accuracy that keeps rising is also what overfitting looks like.
    """
    losses = [row["loss"] for row in rows if _finite(row.get("loss"))]
    notes = []
    if len(losses) >= 2 and abs(losses[0] - losses[-1]) <= FLAT_LOSS_FRACTION * abs(losses[0]):
        notes.append(
            f"the loss stayed flat ({losses[0]:.4g} → {losses[-1]:.4g}): the model is not learning; check "
            f"the learning rate, that the last activation fits the loss ({config.loss.name}), and the labels"
        )
        return notes
    monitor, minimize = config.training.monitor, config.training.monitor_minimizes
    values = [row[monitor] for row in rows if _finite(row.get(monitor))]
    if monitor.startswith("val_") and len(values) >= 2:
        best_before = min(values[:-1]) if minimize else max(values[:-1])
        if (values[-1] < best_before) if minimize else (values[-1] > best_before):
            notes.append(
                f"{monitor} was still improving at the last epoch ({values[-2]:.4g} → {values[-1]:.4g}): "
                "the model may be underfitting; train longer (`training.epochs`)"
            )
    return notes
