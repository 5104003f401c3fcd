"""The choices that both a config file and a command-line option offer, as `str` enums: Typer
lists and checks them, pydantic validates them, and the code compares against their members.
Kept apart from config.py so that the command line gets them without importing pydantic."""

from __future__ import annotations

from enum import Enum

# The run (or sweep) reference that means the newest one: no run may be named so.
LATEST = "latest"
# How `--where KEY<op>VALUE` compares (`==` is read as `=`), and the example its messages give.
WHERE_OPERATORS = ("=", "!=", ">", "<", ">=", "<=")
WHERE_EXAMPLE = "optimizer.name=adam or best.val_accuracy>0.95"


def where_operators_said() -> str:
    return f"{', '.join(WHERE_OPERATORS[:-1])} or {WHERE_OPERATORS[-1]}"


class Choice(str, Enum):
    """A str enum that prints as its word, in f-strings and messages, on every Python (3.11's
    format() of a mixed-in enum gives 'SweepMethod.grid')."""

    def __str__(self) -> str:
        return self.value


class SweepMethod(Choice):
    """How a sweep picks its trials: Optuna's samplers."""

    grid = "grid"
    random = "random"
    tpe = "tpe"


class Pruner(Choice):
    """How a sweep stops hopeless trials early: Optuna's pruners."""

    none = "none"
    median = "median"
    hyperband = "hyperband"


class Direction(Choice):
    """Whether a lower (min) or a higher (max) value of a metric is better."""

    min = "min"
    max = "max"


class Leaks(Choice):
    """What `dataset.leaks` does with validation or test examples that the training split holds too."""

    warn = "warn"
    error = "error"
    drop = "drop"


class InputKind(Choice):
    """What a table's named input reads (`dataset.inputs`): a text column, numbers (feature columns,
    or an .npz's arrays), or categorical columns."""

    text = "text"
    features = "features"
    categorical = "categorical"


class Split(Choice):
    """The held-out split `dlcli evaluate` scores a run's model on."""

    test = "test"
    validation = "validation"


class ExportFormat(Choice):
    """What `dlcli export` writes: a TensorFlow SavedModel, an ONNX graph or a TFLite (LiteRT) model."""

    saved_model = "saved_model"
    onnx = "onnx"
    tflite = "tflite"


class Task(Choice):
    """What a dataset's labels are: classes to tell apart, or a quantity to predict."""

    classification = "classification"
    regression = "regression"


class CacheMode(Choice):
    """Where decoded images are kept between epochs (`training.cache`): auto picks memory when
    they fit its budget, else the disk."""

    auto = "auto"
    memory = "memory"
    disk = "disk"
    none = "none"


class Distribution(Choice):
    """How training is spread (`training.distribute`): one device, tf.distribute's mirrored
    strategy over this machine's devices, or its multi-worker strategy over several machines."""

    none = "none"
    mirrored = "mirrored"
    multi_worker = "multi_worker"


class Sampled(Choice):
    """How a sweep's `params` key draws its values: from a list, or a range (uniform, log-uniform, integers)."""

    choice = "choice"
    uniform = "uniform"
    log_uniform = "log_uniform"
    int = "int"
