"""The columns of a history (history.csv, a Keras CSVLogger file): what an epoch's row holds
beside the values Keras logged for the model. Below the config: the config, the run store and the
curves all name them."""

from __future__ import annotations

EPOCH_COLUMN = "epoch"
SECONDS_COLUMN = "seconds"  # how long the epoch took
LEARNING_RATE_COLUMN = "learning_rate"  # Keras 3 logs it; dlcli adds it when Keras did not
VALIDATION_PREFIX = "val_"  # Keras's name of a value measured on the validation data
DEFAULT_MONITOR = "val_loss"  # what a run picks its best epoch by and the overfitting watch reads, as Keras's callbacks
# The tags say which model and stage a row is of (k-fold's fold, fine-tune's phase); with the
# epoch they count rather than measure.
FOLD_COLUMN, PHASE_COLUMN = "fold", "phase"
TAG_COLUMNS = (FOLD_COLUMN, PHASE_COLUMN)
INTEGER_COLUMNS = (EPOCH_COLUMN, *TAG_COLUMNS)
# What a row says about the epoch itself: never a value of the model.
EPOCH_COLUMNS = (*INTEGER_COLUMNS, SECONDS_COLUMN)
# Logged beside the metrics but no measure of the model: summary.json keeps the learning rate a
# row ended with; no curve, comparison, ranking or overfitting watch treats it as a metric.
NOT_METRIC_COLUMNS = (*EPOCH_COLUMNS, LEARNING_RATE_COLUMN)


def metric_name(key: str) -> str:
    """The metric a logged key measures: 'val_accuracy' and 'accuracy' are both 'accuracy'."""
    return key.removeprefix(VALIDATION_PREFIX)
