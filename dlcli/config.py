"""Experiment configs: YAML with line numbers, pydantic validation, ``--set`` overrides.

Nothing here imports TensorFlow: structure is checked with pydantic, and Keras names
(layers, optimizers, losses) are resolved later by ``dlcli.build.models`` against the same
key paths and lines, through ``ExperimentConfig.error``.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import typing
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from dlcli.choices import LATEST, CacheMode, Direction, Distribution, InputKind, Leaks, Pruner, Sampled, SweepMethod, Task
from dlcli.columns import DEFAULT_MONITOR, EPOCH_COLUMN, LEARNING_RATE_COLUMN, NOT_METRIC_COLUMNS, VALIDATION_PREFIX, metric_name
from dlcli.data.catalog import DATASETS, REQUIRED
from dlcli.errors import ConfigError, counted, cut, kind_of
from dlcli.keys import (
    MAX_CONFIG_VALUES,
    KeyPath,
    YamlLoader,
    canonical,
    did_you_mean,
    format_path,
    key_parts,
    not_a_boolean,
    not_finite,
    parse_yaml_value,
    visible,
    yaml_error_place,
    yaml_problem,
)

MAX_IMAGE_SIDE = 4096  # pixels; the largest keras.applications input is 600
# Lists whose items are written `ClassName: {kwargs}` or a bare `ClassName`.
LAYER_LISTS = ("layers", "augmentation", "callbacks")


class SourceMap:
    """Where each key path of a config came from: a file line or a --set override."""

    def __init__(self, file: str, lines: dict[KeyPath, int] | None = None):
        self.file = file
        self.lines = lines or {}
        self.overrides: dict[KeyPath, str] = {}

    def where(self, path: KeyPath) -> str:
        prefixes = [path[:length] for length in range(len(path), -1, -1)]
        # An override replaces the whole subtree under it, file lines included.
        for prefix in prefixes:
            if prefix in self.overrides:
                return self.overrides[prefix]
        if path not in self.lines:  # a key the file does not hold, made by an override that sets a key under it
            made = [where for key, where in self.overrides.items() if key[: len(path)] == path]
            if made:
                return made[0]
        for prefix in prefixes:
            if prefix in self.lines:
                return f"{self.file}:{self.lines[prefix]}"
        return self.file

    def error(self, path: KeyPath, message: str, set_at: KeyPath | None = None) -> ConfigError:
        """`path: message`, located where `set_at` (else `path`) was set."""
        location = f"{format_path(path)}: " if path else ""
        return ConfigError(f"{self.prefix(set_at or path)}{location}{message}", key=set_at or path)

    def prefix(self, path: KeyPath) -> str:
        """'WHERE: ' for a message about `path`; '' when its setter's caller names the place (a sweep's values)."""
        where = self.where(path)
        return f"{where}: " if where else ""


# --- the schema -------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # no setting means an infinite or undefined amount

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        """`epochs: yes` is no 1: pydantic's lax mode reads a boolean as a number, YAML reads yes/no/on/off as booleans."""
        if isinstance(value, bool) and _number_not_boolean(cls.model_fields[info.field_name].annotation):
            raise ValueError(not_a_boolean(value, "a number"))
        return value


def _number_not_boolean(annotation: Any) -> bool:
    """Whether a field of this type takes a number and no boolean."""
    kinds: set[Any] = set()
    pending = [annotation]
    while pending:
        kind = pending.pop()
        arguments = typing.get_args(kind)
        if typing.get_origin(kind) is typing.Annotated:
            pending.append(arguments[0])
        elif arguments:
            pending.extend(arguments)
        else:
            kinds.add(kind)
    return bool(kinds & {int, float}) and bool not in kinds and Any not in kinds


class KerasObject(BaseModel):
    """A Keras object by name plus its keyword arguments: `{name: adam, learning_rate: 1e-3}`."""

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_serializer
    def _as_written(self) -> str | dict[str, Any]:
        return {"name": self.name, **self.kwargs} if self.kwargs else self.name


# A count (epochs, a batch's size, steps, trials) past this is no setting but a slip: TensorFlow's
# shapes and Keras's loops take 32-bit counts, and a larger one fails mid-run with an OverflowError.
MOST_COUNT = 2**31 - 1
PositiveInt = Annotated[int, Field(ge=1, le=MOST_COUNT)]


def _one_class(item: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A list item of layers, augmentation or callbacks names one Keras class (checked per item: the
    error is located at the item, in the file or the --set that gave it)."""
    if len(item) != 1:
        raise ValueError(
            f"an item names one class, not {len(item)} ({', '.join(item) or 'none'}): write it as "
            "`ClassName: {argument: value}` or a bare `ClassName`"
        )
    return item


LayerList = list[Annotated[dict[str, dict[str, Any]], AfterValidator(_one_class)]]


class NoiseFeatures(_Strict):
    """Features appended to every (flattened) example: white noise over the data's range, or zeros."""

    count: PositiveInt
    kind: Literal["noise", "zeros"] = "noise"


# A table's input or output name: a Keras Input's name, a key of `loss`, part of a history column.
FEATURE_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
TEXT_ENCODINGS = ("multi_hot", "count", "tf_idf", "sequence")
CATEGORICAL_ENCODINGS = ("one_hot", "integer")


# Names Keras's own history columns begin with: an output `val` would log `val_loss` over the total's.
RESERVED_FEATURE_NAMES = (VALIDATION_PREFIX.rstrip("_"), "loss", "name", EPOCH_COLUMN, LEARNING_RATE_COLUMN)


def _feature_names(mapping: dict[str, Any] | None) -> dict[str, Any] | None:
    for name in mapping or {}:
        if not FEATURE_NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{_shown(name)} cannot name an input or output: use letters, digits and '_', starting with a letter "
                "(it names a Keras Input, a key of `loss` and history columns such as val_NAME_loss)"
            )
        if name in RESERVED_FEATURE_NAMES or name.startswith("val_"):
            raise ValueError(f"{name!r} would be confused with Keras's own history columns and keys: name it otherwise")
    return mapping


def misplaced_sequence_length(encoding: str | None, of_text: bool = True) -> str:
    """`sequence_length` beside another encoding: it pads or cuts token sequences, which only a
    text's `encoding: sequence` makes (a dataset's top-level encoding, or a named text input's)."""
    fix = "remove it, or set `encoding: sequence`" if of_text else "remove it: only a text input's tokens have one"
    return f"sequence_length goes with `encoding: sequence`, not {encoding or 'numbers'}: {fix}"


class TableInput(_Strict):
    """One named input (`dataset.inputs.NAME`): a CSV's text column, numeric feature columns or
    categorical columns, encoded as fitted on the training split; or, in an .npz, the arrays
    NAME_train and NAME_test (no column key)."""

    text_column: str | None = None
    feature_columns: list[str] | None = Field(None, min_length=1)  # names, or patterns such as tag_*
    categorical_columns: list[str] | None = Field(None, min_length=1)
    encoding: Literal[TEXT_ENCODINGS + CATEGORICAL_ENCODINGS] | None = None
    num_words: int = Field(10000, ge=2)
    sequence_length: PositiveInt | None = None
    standardize: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> TableInput:
        given = [key for key in ("text_column", "feature_columns", "categorical_columns") if getattr(self, key)]
        if len(given) > 1:
            raise ValueError(
                f"give one of text_column, feature_columns or categorical_columns, not {' and '.join(given)} "
                "(make them two inputs)"
            )
        kind = given[0] if given else "feature_columns"  # none: an .npz's arrays, numbers
        kinds = {"text_column": TEXT_ENCODINGS, "categorical_columns": CATEGORICAL_ENCODINGS, "feature_columns": ()}
        allowed = kinds[kind]
        what = kind if given else "numbers (an .npz's arrays)"
        if self.encoding is not None and self.encoding not in allowed:
            takes = f"one of {', '.join(allowed)}" if allowed else "none (numbers are standardized, or not)"
            raise ValueError(f"encoding '{self.encoding}' does not fit {what}: it takes {takes}")
        if self.encoding is None and allowed:
            self.encoding = allowed[0]
        for key, fits in (("num_words", kind == "text_column"), ("sequence_length", self.encoding == "sequence"),
                          ("standardize", kind == "feature_columns")):
            # set to other than its default (a resolved config.yaml writes the defaults too)
            if getattr(self, key) != type(self).model_fields[key].default and not fits:
                if key == "sequence_length":
                    raise ValueError(misplaced_sequence_length(self.encoding, kind == "text_column"))
                goes = {"num_words": "text_column", "standardize": "feature_columns (numbers)"}[key]
                raise ValueError(f"{key} goes with {goes}, not with {what}")
        return self

    @property
    def kind(self) -> InputKind:
        return (InputKind.text if self.text_column else InputKind.categorical if self.categorical_columns
                else InputKind.features)


class TableOutput(_Strict):
    """One named output (`dataset.outputs.NAME`): a CSV's column to predict, or an .npz's arrays
    NAME_train and NAME_test (no `label_column`)."""

    label_column: str | None = None
    task: Task = Task.classification
    labels: Literal["sparse", "one_hot"] = "sparse"

    @model_validator(mode="after")
    def _labels_of_classes(self) -> TableOutput:
        if self.task == Task.regression and self.labels == "one_hot":
            raise ValueError("`labels: one_hot` is for classification; a regression output predicts a number")
        return self


class DatasetConfig(_Strict):
    name: str
    validation_split: float = Field(0.2, ge=0, lt=1)  # 0: train on all the training data, no validation
    # The generalization experiments: extra features that carry nothing, and training labels
    # shuffled (the training split's only, seeded) so that nothing but memorizing is left.
    noise_features: NoiseFeatures | None = None
    shuffle_labels: bool = False
    classes: list[int | str] | None = Field(None, min_length=2)
    labels: Literal["sparse", "one_hot"] = "sparse"
    # Options of some datasets only (`dlcli datasets` lists them); an unset option takes
    # the dataset's default, and one the dataset does not take is an error.
    normalize: bool | None = None
    standardize: bool | None = None
    path: str | None = None
    # [height, width]; past MAX_IMAGE_SIDE a decoded batch would not fit in memory
    image_size: list[Annotated[int, Field(ge=1, le=MAX_IMAGE_SIDE)]] | None = Field(None, min_length=2, max_length=2)
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = None
    test_split: float | None = Field(None, gt=0, lt=1)
    num_words: int | None = Field(None, ge=2)
    encoding: Literal[TEXT_ENCODINGS] | None = None
    sequence_length: PositiveInt | None = None
    label_column: str | None = None
    text_column: str | None = None
    feature_columns: list[str] | None = Field(None, min_length=1)
    task: Task | None = None
    # A table with several inputs and outputs (the functional API): each by name
    inputs: dict[str, TableInput] | None = Field(None, min_length=1)
    outputs: dict[str, TableOutput] | None = Field(None, min_length=1)
    leaks: Leaks = Leaks.warn  # validation/test examples the training split holds too (dlcli.data.checks)

    _names = field_validator("inputs", "outputs")(_feature_names)

    @property
    def named(self) -> bool:
        """Whether the data comes as named inputs and outputs (`inputs:` and `outputs:`)."""
        return self.outputs is not None

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in DATASETS:
            raise ValueError(
                f"unknown dataset '{name}'{did_you_mean(name, DATASETS)} "
                f"(`dlcli datasets` lists them: {', '.join(DATASETS)})"
            )
        return name


COMMON_DATASET_KEYS = ("name", "validation_split", "classes", "labels", "noise_features", "shuffle_labels", "leaks")


class BaseConfig(_Strict):
    """A convolutional base under `model.layers`: a keras.applications model or an earlier run's."""

    application: str | None = None
    weights: str | None = None
    run: str | None = None
    until: str | None = None
    trainable: bool = False
    precompute: bool = False
    # application: the application's own preprocess_input, in the model; none: the dataset's pixels as they come
    preprocess: Literal["application", "none"] = "application"

    @model_validator(mode="after")
    def _one_source(self) -> BaseConfig:
        if (self.application is None) == (self.run is None):
            raise ValueError(
                "give either `application` (a keras.applications model, e.g. VGG16) "
                "or `run` (an earlier run whose model to reuse), not both or neither"
            )
        if self.run is not None and (self.until is None or self.weights is not None):
            raise ValueError(
                "`run` takes `until: LAYER_NAME` (the last layer to keep) and no `weights`"
            )
        if self.run is not None and self.preprocess != "application":
            raise ValueError("`preprocess` chooses an application's preprocessing; a run's base has none")
        if self.application is not None:
            if self.until is not None:
                raise ValueError("`until` goes with `run`, not `application`")
            self.weights = self.weights or "imagenet"
        if self.precompute and self.trainable:
            raise ValueError("`precompute: true` needs a frozen base (`trainable: false`)")
        return self


class ModelConfig(_Strict):
    augmentation: LayerList = []
    base: BaseConfig | None = None
    layers: LayerList = Field(min_length=1)
    outputs: list[str] | None = Field(None, min_length=1)  # the layers whose outputs the model gives; default the last


class FineTuneConfig(_Strict):
    """A second phase: unfreeze (part of) the base and train on at a low learning rate."""

    unfreeze: Literal["all"] | PositiveInt | str = "all"  # all | the last N layers | from LAYER_NAME on
    epochs: PositiveInt = 10
    learning_rate: float = Field(1e-5, gt=0)


class OverfittingConfig(_Strict):
    """Flag overfitting: `monitor` moves away from its best beyond this run's epoch-to-epoch
    noise, climbs steadily since it, or (a loss) gives back all it gained, for at least
    `patience` epochs while the training loss still falls (dlcli.curves.verdicts); with `stop`,
    training ends at the warning."""

    monitor: str = DEFAULT_MONITOR
    mode: Direction | Literal["auto"] = "auto"  # auto: the direction Keras gives the metric
    patience: PositiveInt = 3
    min_delta: float = Field(0.0, ge=0)  # the least worsening worth a warning, in the metric's units
    stop: bool = False  # end training at the warning (status completed); model.keras stays the best epoch's


# A run id's start (YYYYMMDD-HHMMSS): a name that could be one is read as an id prefix first
ID_PREFIX = re.compile(r"\d{1,8}|\d{8}-\d{0,6}")


# A --set key: names joined by dots, a list's item also as [N] (model.layers[1].Dense.units)
KEY_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*")


def check_new_run(config: ExperimentConfig) -> None:
    """What a new run's config may not say, though a run of an older dlcli may have said it (its
    config.yaml is still read, to evaluate, predict or resume it)."""
    if config.name == LATEST or ID_PREFIX.fullmatch(config.name):
        # commands find a run by id, id prefix, `latest` or name, in that order: it could never be found by it
        raise config.error(("name",), f"{config.name!r} would be read as "
                           f"{'the newest run' if config.name == LATEST else 'the start of a run id'}: give another name")
    watch = config.training.overfitting
    # a training metric's name as the config writes it; any other name is checked against what is logged, later
    training_names = ["loss", *(f"{output}_loss" for output in config.output_names or ()),
                      *(f"{f'{output}_' if output else ''}{metric.name}" for _, metric, output in config.metric_specs())]
    if watch and (problem := not_a_validation_metric(watch.monitor, training_names)):
        raise config.error(("training", "overfitting", "monitor"), problem)
    monitor = config.training.monitor
    # another than the default, which keeps the last epoch's model without validation data and says so (a run's
    # config.yaml writes the default out, so whether it was written tells nothing)
    if monitor != DEFAULT_MONITOR and monitor.startswith(VALIDATION_PREFIX) and not config.validates:
        raise config.error(("training", "monitor"), without_validation_data(monitor))
    _check_metrics_once(config)


def without_validation_data(monitor: str) -> str:
    """Why a validation metric cannot be monitored by a run that trains on all its training data."""
    return (f"monitors {monitor}, and there is no validation data (`dataset.validation_split: 0`): monitor a training "
            f"metric ({monitor.removeprefix(VALIDATION_PREFIX)}) or keep a validation split")


def not_a_validation_metric(monitor: str, training_names: list[str] | None = None) -> str | None:
    """Why the overfitting watch cannot watch `monitor`, or None: the training data's own metrics
    keep improving as it is memorized. `training_names`: the training metrics there are; a name
    among none of them is no training metric but a misspelling, said by whoever knows what is logged."""
    if metric_name(monitor) in NOT_METRIC_COLUMNS:
        return f"{monitor} is logged beside the metrics and measures no model: watch a validation metric, such as val_loss"
    if monitor.startswith(VALIDATION_PREFIX) or (training_names is not None and monitor not in training_names):
        return None
    return f"overfitting shows on the validation data, not the training data's {monitor}: watch {VALIDATION_PREFIX}{monitor}"


class PlotConfig(_Strict):
    """How curves.png draws the curves."""

    smooth: float = Field(0.0, ge=0, lt=1)  # exponential moving average: 0.9 as the book's Boston figure
    from_epoch: PositiveInt = 1  # leave out the first epochs, whose values can dwarf the rest


def _true_means_defaults(value: Any) -> Any:
    return {} if value is True else value


def _a_switch(value: Any) -> Any:
    """A callback section as a switch too: true, its defaults; false, off (as the section left out)."""
    return None if value is False else _true_means_defaults(value)


class TrainingConfig(_Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    # An epoch of this many batches, the training data gone round again and again (each time
    # shuffled anew); unset: one pass over the training data.
    steps_per_epoch: PositiveInt | None = None
    monitor: str = DEFAULT_MONITOR
    monitor_mode: Direction | Literal["auto"] = "auto"  # auto: the direction Keras gives the metric
    overfitting: OverfittingConfig | Literal[False] = OverfittingConfig()
    tensorboard: bool = True
    plot: PlotConfig = PlotConfig()
    early_stopping: dict[str, Any] | None = None  # keras.callbacks.EarlyStopping arguments
    reduce_lr_on_plateau: dict[str, Any] | None = None  # keras.callbacks.ReduceLROnPlateau arguments
    callbacks: LayerList = []  # any keras.callbacks class: [{ClassName: {arguments}}]
    kfold: int | None = Field(None, ge=2)
    fine_tune: FineTuneConfig | None = None
    # Speed: "auto" picks what measured fastest on this kind of device (docs/performance.md).
    steps_per_execution: PositiveInt | Literal["auto"] = "auto"
    jit_compile: bool | Literal["auto"] = "auto"
    # Decoded image files kept between epochs: memory when they fit the budget, else disk
    # (dlcli.data.cache); true and false are aliases of auto and none.
    cache: CacheMode = CacheMode.auto
    prefetch: bool = True
    mixed_precision: bool = False
    distribute: Distribution = Distribution.none
    devices: list[str] | None = Field(None, min_length=1)  # for `mirrored`: e.g. [/gpu:0, /gpu:1]

    _true_is_default = field_validator("overfitting", mode="before")(_true_means_defaults)
    _switched = field_validator("early_stopping", "reduce_lr_on_plateau", mode="before")(_a_switch)

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_aliases(cls, value: Any) -> Any:
        return {True: CacheMode.auto, False: CacheMode.none}.get(value, value) if isinstance(value, bool) else value


MAX_NAME_LENGTH = 64  # a run name's characters: it becomes part of its folder's name
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME_LENGTH - 1}}}")
SEED_MAX = 2**32 - 1  # NumPy's and TensorFlow's seeds are 32-bit


SAMPLED = tuple(kind.value for kind in Sampled)


def sampled_key(value: Any) -> dict[str, Any]:
    """One sampled key's space: `{choice: [...]}`, or `{uniform|log_uniform|int: [low, high]}`."""
    if isinstance(value, list):  # the grid's form, or a choice without its word
        raise ValueError(
            f"a list is fixed values: to sample among them write {{choice: {_shown(value)}}}, or list them under "
            "sweep.grid to train each"
        )
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in SAMPLED:
        kind = next(iter(value)) if isinstance(value, dict) and len(value) == 1 else None
        hint = did_you_mean(kind, SAMPLED) if isinstance(kind, str) else ""
        raise ValueError(
            f"give one of {', '.join(SAMPLED)}, e.g. {{log_uniform: [1.0e-4, 1.0e-2]}} (got {_shown(value)}){hint}"
        )
    ((kind, arguments),) = value.items()
    if kind == Sampled.choice:
        if not isinstance(arguments, list) or not arguments:
            raise ValueError(f"choice: give a list of values, e.g. {{choice: [32, 128]}} (got {_shown(arguments)})")
        return value
    numbers = isinstance(arguments, list) and len(arguments) == 2 and all(
        isinstance(a, int if kind == Sampled.int else (int, float)) and not isinstance(a, bool) and math.isfinite(a)
        for a in arguments
    )
    if not numbers or arguments[0] >= arguments[1]:
        what = "integers" if kind == Sampled.int else "numbers"
        raise ValueError(f"{kind}: give [low, high], two finite {what} with low < high (got {_shown(arguments)})")
    if kind == Sampled.log_uniform and arguments[0] <= 0:
        raise ValueError(f"log_uniform: low must be above 0 (got {arguments[0]})")
    return value


class SweepConfig(_Strict):
    """The `sweep:` section, read by `dlcli sweep` (the command line's options win)."""

    method: SweepMethod | None = None  # default: grid, or random when keys are sampled
    trials: PositiveInt | None = None  # sampled trials (per grid point, with a grid)
    params: dict[str, Annotated[Any, AfterValidator(sampled_key)]] = {}
    grid: dict[str, list[Any]] = {}
    random: dict[str, Any] = {}  # the older form of `params`, with `trials` (and `seed`) among the keys
    prune: Pruner | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    repeats: PositiveInt | None = None  # seeds per trial; the study optimizes their mean

    @field_validator("random")
    @classmethod
    def _older_random_section(cls, random: dict[str, Any]) -> dict[str, Any]:
        for key, value in random.items():
            if key in ("trials", "seed"):
                if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "trials" else 0):
                    least = " of at least 1" if key == "trials" else ""
                    raise ValueError(f"{key}: expected a whole number{least} (got {_shown(value)})")
            else:
                try:
                    sampled_key(value)
                except ValueError as error:
                    raise ValueError(f"{key}: {error}") from None
        return random


class ExperimentConfig(_Strict):
    name: str
    seed: int = Field(0, ge=0, le=SEED_MAX)
    dataset: DatasetConfig
    model: ModelConfig
    optimizer: KerasObject = KerasObject(name="rmsprop")
    loss: KerasObject | dict[str, KerasObject]  # one, or one per output by name
    metrics: list[KerasObject] | dict[str, list[KerasObject]] = []
    loss_weights: dict[str, Annotated[float, Field(ge=0)]] | None = None  # per output
    training: TrainingConfig = TrainingConfig()
    sweep: SweepConfig | None = None  # read by `dlcli sweep`; `dlcli train` ignores it

    @property
    def validates(self) -> bool:
        """Whether training sees validation data: not with `dataset.validation_split: 0` (k-fold always does)."""
        return self.training.kfold is not None or self.dataset.validation_split > 0

    @field_validator("name")
    @classmethod
    def _safe_folder_name(cls, name: str) -> str:
        # The name becomes part of the run folder's name: it must not reach outside runs/.
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"a run name uses letters, digits, '.', '_' and '-' (starting with a letter or "
                f"digit, at most {MAX_NAME_LENGTH}), got {_shown(name)}"
            )
        return name

    _source: SourceMap = PrivateAttr(default_factory=lambda: SourceMap("<config>"))

    @property
    def output_names(self) -> list[str]:
        """The model's outputs by name, in the order it gives them (the dataset's, whatever the order
        of `model.outputs`); empty for one unnamed output."""
        return list(self.dataset.outputs or [])

    @property
    def keyed_outputs(self) -> list[str]:
        """The outputs Keras keys losses, metrics and history columns by (`val_NAME_loss`): those of a
        model of several; none for one output, named or not, which Keras treats as any model of one."""
        return self.output_names if len(self.output_names) > 1 else []

    def losses(self) -> list[tuple[KeyPath, KerasObject, str | None]]:
        """(key, loss, output) of each output: one entry with output None for a model of one unnamed output."""
        if isinstance(self.loss, KerasObject):
            return [(("loss",), self.loss, name) for name in self.output_names or [None]]
        return [(("loss", name), self.loss[name], name) for name in self.output_names]

    def metric_specs(self) -> list[tuple[KeyPath, KerasObject, str | None]]:
        """(key, metric, output) of every configured metric."""
        if isinstance(self.metrics, list):
            return [(("metrics", index), metric, None) for index, metric in enumerate(self.metrics)]
        return [
            (("metrics", name, index), metric, name)
            for name in self.output_names for index, metric in enumerate(self.metrics.get(name, []))
        ]

    @property
    def source(self) -> SourceMap:
        return self._source

    @property
    def task(self) -> str:
        """'classification' or 'regression'."""
        return self.dataset.task or DATASETS[self.dataset.name].task

    def error(self, path: KeyPath, message: str, set_at: KeyPath | None = None) -> ConfigError:
        """A ConfigError about `path`, located at the file line or --set override that set `set_at`
        (a key under `path` that the message names), else `path`."""
        return self._source.error(path, message, set_at)

    def to_yaml(self) -> str:
        """The resolved config: defaults filled in, overrides applied, shorthand kept."""
        return yaml.safe_dump(
            self.model_dump(mode="json", exclude_none=True),
            sort_keys=False,
            default_flow_style=None,
            allow_unicode=True,
        )


# --- loading ----------------------------------------------------------------------------


# A config is a page of YAML; this bound refuses a huge file before anything reads it
# (keys.MAX_CONFIG_VALUES, an alias bomb).
MAX_CONFIG_BYTES = 1_000_000


def _line_map(root: yaml.Node, source: SourceMap) -> dict[KeyPath, int]:
    """Key path -> line, walking aliases as they would expand, within MAX_CONFIG_VALUES."""
    lines: dict[KeyPath, int] = {}
    stack: list[tuple[yaml.Node, KeyPath, frozenset[int]]] = [(root, (), frozenset())]
    visited = 0
    while stack:
        node, path, ancestors = stack.pop()
        visited += 1
        if visited > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{source.file}: the config expands to more than {MAX_CONFIG_VALUES:,} values "
                "(YAML aliases?); refused"
            )
        if id(node) in ancestors:
            raise ConfigError(
                f"{source.file}:{node.start_mark.line + 1}: {format_path(path)}: a YAML alias contains "
                "itself; refused"
            )
        lines.setdefault(path, node.start_mark.line + 1)
        inside = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                line = key_node.start_mark.line + 1
                if key in first_seen:
                    where = f"{source.file}:{line}: {format_path(path) + ': ' if path else ''}"
                    raise ConfigError(
                        f"{where}duplicate key '{key}' (first set on line {first_seen[key]}); keep one"
                    )
                first_seen[key] = line
                lines[(*path, key)] = line
                stack.append((value_node, (*path, key), inside))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, index), inside) for index, item in enumerate(node.value))
    return lines


def _unshared(value: Any) -> Any:
    """The document with every mapping and list its own object: PyYAML gives an alias and its
    anchor the same one, so that changing one would change both."""
    if isinstance(value, dict):
        return {key: _unshared(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_unshared(inner) for inner in value]
    return value


def parse_yaml(text: str, file: str) -> tuple[dict[str, Any], SourceMap]:
    """YAML text -> (data, source map of key paths to lines), refusing anything but a mapping."""
    source = SourceMap(file)
    try:
        loader = YamlLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                source.lines = _line_map(node, source)  # bounded, before anything expands
            # each alias its own copy (its size bounded by the line map): `--set` on one leaves the others
            data = _unshared(loader.construct_document(node)) if node is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        raise ConfigError(f"{file}: the config is nested too deeply; refused") from None
    except yaml.MarkedYAMLError as error:
        problem, mark = yaml_error_place(error, text)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        if "\\t" in str(problem):  # PyYAML names the character by its repr
            problem = "a tab character; YAML indents with spaces, not tabs"
        elif "another document" in str(problem):  # get_single_node's "but found another document"
            problem = "a second YAML document ('---'); a config is one document: keep one, or split them into two files"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from error
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        code = error.character if isinstance(error.character, int) else ord(error.character)
        raise ConfigError(
            f"{file}:{line}: invalid YAML: character #x{code:04x} is not allowed ({error.reason})"
        ) from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: invalid YAML: {str(error).splitlines()[0]}") from error
    if data is None:
        raise ConfigError(f"{file}: the config is empty; start from one in configs/")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}:1: the config must be a mapping of keys (name, dataset, model, ...), "
            f"not {kind_of(data)}"
        )
    return data, source


def _normalize(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite shorthand into the one form overrides and validation work on."""
    for key in ("dataset", "optimizer", "loss"):
        if isinstance(data.get(key), str):
            data[key] = {"name": data[key]}
    loss = data.get("loss")
    if isinstance(loss, dict) and "name" not in loss:  # one per output
        data["loss"] = {output: {"name": spec} if isinstance(spec, str) else spec for output, spec in loss.items()}
    metrics = data.get("metrics")
    if isinstance(metrics, str):  # one metric, as a per-output entry may be
        metrics = [metrics]
    if isinstance(metrics, list):
        data["metrics"] = _normalized_metrics(metrics)
    elif isinstance(metrics, dict):  # per output: a list, or one metric
        data["metrics"] = {
            output: _normalized_metrics(listed if isinstance(listed, list) else [listed])
            for output, listed in metrics.items()
        }
    for section in (data.get("model"), data.get("training")):
        if isinstance(section, dict):
            for key in LAYER_LISTS:
                if isinstance(section.get(key), list):
                    section[key] = [_normalize_layer(item) for item in section[key]]
    return data


def _normalized_metrics(metrics: list[Any]) -> list[Any]:
    return [{"name": m} if isinstance(m, str) else m for m in metrics]


def _normalize_layer(item: Any) -> Any:
    if isinstance(item, str):
        return {item: {}}
    if isinstance(item, dict):
        return {cls: ({} if kwargs is None else kwargs) for cls, kwargs in item.items()}
    return item


def apply_override(data: dict[str, Any], source: SourceMap, override: str, label: str) -> None:
    """Apply one `KEY=VALUE` override (dotted path, list indices, YAML-typed value) in place; an error
    it causes, now or at validation, is located at `label` (`--set KEY=VALUE`; '' for none)."""
    control = next((c for c in override if (ord(c) < 32 and c != "\t") or ord(c) == 127), None)
    if control is not None:  # echoed, it would break the one-line message, or show as an escape
        before = override.split(control, 1)[0]
        raise ConfigError(
            f"--set {before}…: a --set option is one line of text; it holds the control character "
            f"U+{ord(control):04X} (a line break or an escape): write the value as YAML on one line"
        )
    at = f"{label}: " if label else ""
    key, sep, raw_value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{at}expected KEY=VALUE, e.g. training.epochs=3")
    try:
        value = parse_yaml_value(raw_value)
    except yaml.YAMLError as error:
        raise ConfigError(f"{at}cannot read the value as YAML: {yaml_problem(error)}") from error
    if not KEY_PATH.fullmatch(key.strip()):
        raise ConfigError(f"{at}{_shown(key.strip())} is not a key path: write it as training.epochs or "
                          "model.layers.1.Dense.units (no empty part before, between or after the dots)")
    segments = key_parts(key)
    key_path = tuple(segments)  # what the errors below are about
    node: Any = data
    path: KeyPath = ()
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        if isinstance(node, list):
            if not segment.isdigit() or int(segment) >= len(node):
                raise ConfigError(
                    f"{at}{format_path(path)} has {len(node)} items "
                    f"(indices 0..{len(node) - 1}); there is no item '{visible(segment)}'", key=key_path,
                )
            step: str | int = int(segment)
        elif isinstance(node, dict):
            step = segment
            if step not in node:
                if len(path) == 3 and path[1] in LAYER_LISTS and isinstance(path[2], int):
                    raise ConfigError(f"{at}{format_path(path)} is {', '.join(node)}, not {visible(segment)}", key=key_path)
                if not last and segments[depth + 1].isdigit():  # an item of a list the config does not hold
                    whole = cut(format_path((*path, step)))
                    raise ConfigError(f"{at}{whole} is not set, so it has no item {segments[depth + 1]}: give the whole "
                                      f"list, e.g. --set {whole}=[...]", key=key_path)
                if not last:
                    node[step] = {}
        else:
            raise ConfigError(
                f"{at}{format_path(path)} is {_shown(node)}, not a mapping or list, so it has no '{visible(segment)}'",
                key=key_path,
            )
        path = (*path, step)
        if last:
            node[step] = value
        else:
            node = node[step]
    source.overrides[path] = label


def _schema_fields(path: KeyPath) -> list[str]:
    """The valid keys of the config section at `path` (for 'did you mean')."""
    model: Any = ExperimentConfig
    for step in path:
        if isinstance(step, int):
            continue
        field = model.model_fields.get(step) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _section_model(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _section_model(annotation: Any) -> Any:
    """The model of an optional section (`SweepConfig | None`, a section or a switch): its one member that has fields."""
    members = [member for member in typing.get_args(annotation) if hasattr(member, "model_fields")]
    return members[0] if len(members) == 1 else annotation


def _shown(value: Any) -> str:
    return cut(value.isoformat() if isinstance(value, datetime.date) else repr(value))  # as the YAML wrote it


def _key_path(loc: tuple[Any, ...], data: Any, kind: str) -> KeyPath:
    """The config keys of a pydantic error location, without the tags it adds for the members
    of a union ('int', "literal['auto']", 'OverfittingConfig'): a step that the data at that
    point does not hold is such a tag (but for the key a 'missing' error names)."""
    path: list[str | int] = []
    for index, step in enumerate(loc):
        holds = (isinstance(data, dict) and step in data) or (
            isinstance(data, list) and isinstance(step, int) and step < len(data)
        )
        if holds:
            data = data[step]
            path.append(step)
        elif kind == "missing" and index == len(loc) - 1:
            path.append(step)
    return tuple(path)


def _message(problem: dict[str, Any]) -> str:
    kind = problem["type"]
    if kind == "value_error":
        return str(problem["ctx"]["error"])
    if kind in ("model_type", "dict_type"):  # pydantic would name its own classes here
        return "expected a mapping of keys to values"
    if kind == "list_type":
        return "expected a list"
    if kind == "finite_number":
        return not_finite(problem["input"])
    return f"{problem['msg'][0].lower()}{problem['msg'][1:]}"


def _written_at(data: Any, path: KeyPath) -> Any:
    """The value at `path` in the config as written; None where there is none."""
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _validation_error(error: ValidationError, data: dict[str, Any], source: SourceMap) -> ConfigError:
    problems: dict[KeyPath, list[dict[str, Any]]] = {}
    for problem in error.errors():
        problems.setdefault(_key_path(tuple(problem["loc"]), data, problem["type"]), []).append(problem)
    # a union member that got further into the value says more than one that refused it whole
    deepest = [path for path in problems if not any(other[: len(path)] == path != other for other in problems)]
    path, alike = deepest[0], problems[deepest[0]]
    first = alike[0]
    kind = first["type"]
    if kind == "extra_forbidden":
        key, parent = str(path[-1]), path[:-1]
        fields = _schema_fields(parent)
        hint = did_you_mean(key, fields) or (f"; valid keys: {', '.join(fields)}" if fields else "")
        return ConfigError(
            f"{source.prefix(path)}{format_path(parent) + ': ' if parent else ''}unknown key '{visible(key)}'{hint}",
            key=path,
        )
    if kind == "missing":
        key, parent = str(path[-1]), path[:-1]
        given = _written_at(data, parent)
        near = [other for other in (given if isinstance(given, dict) else {}) if did_you_mean(str(other), [key])]
        if near:  # `{nme: adam}`: the key is there, misspelled
            return source.error(parent, f"missing required key '{key}'; is '{visible(str(near[0]))}' a misspelling of it?",
                                set_at=(*parent, near[0]))
        if key == "name" and isinstance(given, dict) and len(given) == 1 and isinstance(next(iter(given.values())), dict):
            # `{SparseTopKCategoricalAccuracy: {k: 3}}`, as layers and callbacks are written
            (written_class, arguments), = given.items()
            # each value as JSON, which YAML reads back (Python's None would read as the text 'None'); its
            # own `name` left out: here `name` is the class
            shown = ", ".join([f"name: {visible(str(written_class))}",
                               *(f"{k}: {json.dumps(v, default=str)}" for k, v in arguments.items() if k != "name")])
            return source.error(parent, f"missing required key 'name': a Keras object with arguments is written "
                                        f"{{{cut(shown, 80)}}} here (the class as `name`, beside its arguments)")
        return source.error(parent, f"missing required key '{key}'")
    # a union's members each say what they would take: one sentence, "input should be A, or B"
    said = list(dict.fromkeys(_message(problem) for problem in alike))
    message = ", or ".join([said[0], *(text.removeprefix("input should be ") for text in said[1:])])
    if kind not in ("value_error", "finite_number"):  # which say what they got
        message += f" (got {_shown(first['input'])})"
    if kind != "value_error" and first["input"] is None:  # `epochs:` in a file, `--set name=` on the command line
        message += "; YAML reads an empty value (or ~, null) as null: give a value"
    elif kind == "string_type" and type(first["input"]) in (int, float):  # YAML read `123` or `1.50` as a number
        message += "; to give it as text, put it in quotes"
    elif kind == "string_type" and isinstance(first["input"], (bool, datetime.date)):  # `no`, `2020-01-01`
        read_as = "a boolean (yes, no, on, off)" if isinstance(first["input"], bool) else "a date"
        message += f"; YAML reads it as {read_as}: to give it as text, put it in quotes"
    more = len(deepest) - 1
    return source.error(path, message + (f" (and {counted(more, 'more problem')})" if more else ""))


def name_from_file(stem: str) -> str:
    """A run name from a config file's name, for a config without `name:`: its letters without
    their accents (`ñandú modelo` -> `nandu-modelo`), anything else a dash, at most MAX_NAME_LENGTH characters."""
    ascii_letters = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_letters)[:MAX_NAME_LENGTH].strip("-._") or "run"


def validate(data: dict[str, Any], source: SourceMap, default_name: str) -> ExperimentConfig:
    """Validate already-parsed config data; errors point at `source`."""
    if "name" not in data:  # a problem with it is the file name's, not the file's first line's
        data["name"] = name_from_file(default_name)
        source.overrides.setdefault(("name",), f"{source.file} (named after the file: no `name:` in it)")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, data, source) from None
    config._source = source
    # set to other than their defaults (a resolved config.yaml writes the defaults too)
    given = {key for key, field in DatasetConfig.model_fields.items() if getattr(config.dataset, key) != field.default}
    _resolve_dataset_options(config)
    _check_named(config, given)
    _check_combinations(config)
    return config


def _check_metrics_once(config: ExperimentConfig) -> None:
    """A metric listed twice for one output (`[accuracy, accuracy]`, or `Accuracy` beside `accuracy`)
    is refused: Keras computes it twice and logs the second as `accuracy_1`."""
    seen: dict[tuple, KeyPath] = {}
    for key, spec, output in config.metric_specs():
        written = (output, canonical(spec.name), repr(sorted(spec.kwargs.items())))
        if written in seen:
            raise config.error(key, f"{spec.name} is listed already, at {format_path(seen[written])}: Keras would "
                               "compute it twice and log the second with _1 after its name; list each metric once")
        seen[written] = key


def _resolve_dataset_options(config: ExperimentConfig) -> None:
    """Fill the dataset's own defaults; refuse options it does not take."""
    dataset = config.dataset
    info = DATASETS[dataset.name]
    for key in DatasetConfig.model_fields:
        if key in COMMON_DATASET_KEYS:
            continue
        value = getattr(dataset, key)
        if key not in info.options:
            if value is not None:
                takes = f"; it takes {', '.join(info.options)}" if info.options else ""
                raise config.error(("dataset", key), f"dataset {info.name} takes no option '{key}'{takes}")
            continue
        default = info.options[key]
        if dataset.named and key in (*INPUT_KEYS, *OUTPUT_KEYS, *NOT_NAMED_KEYS):
            continue  # said per input and output
        base = config.model.base
        if key == "normalize" and base is not None and base.application and base.preprocess == "application":
            if value:
                raise config.error(
                    ("dataset", key),
                    f"a {base.application} base takes raw pixels through its own preprocess_input; remove "
                    "`normalize: true`, or set `model.base.preprocess: none` to feed it pixels in [0, 1]",
                )
            default = False
        if value is None:
            if default == REQUIRED:
                raise config.error(("dataset",), f"dataset {info.name} needs the option '{key}'")
            setattr(dataset, key, default)
    if config.task == Task.regression and (dataset.classes or dataset.labels == "one_hot"):
        key = "classes" if dataset.classes else "labels"
        raise config.error(("dataset", key), f"'{key}' is for classification; {info.name} is a regression task")


# The dataset keys of a single table that named inputs and outputs say each for itself.
INPUT_KEYS = tuple(key for key in DatasetConfig.model_fields if key in TableInput.model_fields)
OUTPUT_KEYS = tuple(key for key in DatasetConfig.model_fields if key in TableOutput.model_fields)
# ... and those that do not combine with them yet
NOT_NAMED_KEYS = ("classes", "noise_features", "shuffle_labels", "normalize")


def _check_named(config: ExperimentConfig, given: set[str]) -> None:
    """`dataset.inputs`/`outputs`, `model.outputs`, and `loss`, `metrics`, `loss_weights` keyed by
    output: all naming the same outputs. `given`: the dataset keys the config set to other than their defaults."""
    dataset = config.dataset
    if not dataset.named:
        if dataset.inputs is not None:
            raise config.error(("dataset", "inputs"), "named inputs go with named outputs: add `dataset.outputs`")
        for key, value, what in (
            (("model", "outputs"), config.model.outputs, "names the model's outputs"),
            (("loss",), None if isinstance(config.loss, KerasObject) else config.loss, "per output"),
            (("metrics",), None if isinstance(config.metrics, list) else config.metrics, "per output"),
            (("loss_weights",), config.loss_weights, "weighs outputs"),
        ):
            if value is not None:
                raise config.error(key, f"{what[0].lower()}{what[1:]}: it needs a dataset with named outputs "
                                   "(`dataset.outputs`, and `dataset.inputs`)")
        return
    if dataset.inputs is None:
        raise config.error(("dataset", "outputs"), "named outputs go with named inputs: add `dataset.inputs`")
    for key in (*INPUT_KEYS, *OUTPUT_KEYS, *NOT_NAMED_KEYS):
        if key in given:
            home = "an output's" if key in OUTPUT_KEYS else "an input's" if key in INPUT_KEYS else None
            raise config.error(
                ("dataset", key),
                f"with `dataset.inputs` and `outputs`, {key} is {home} own key: move it there" if home
                else f"{key} does not combine with named inputs and outputs yet",
            )
    for key, value in ((("training", "kfold"), config.training.kfold), (("model", "base"), config.model.base),
                       (("model", "augmentation"), config.model.augmentation)):
        if value:
            raise config.error(key, "does not combine with named inputs and outputs (`dataset.inputs`) yet: remove it")
    outputs = list(dataset.outputs)
    overlap = sorted(set(outputs) & set(dataset.inputs))
    if overlap:
        raise config.error(("dataset", "outputs", overlap[0]), f"'{overlap[0]}' names an input too: name it apart")
    if config.model.outputs is not None:
        for index, name in enumerate(config.model.outputs):
            if name not in outputs:
                raise config.error(
                    ("model", "outputs", index),
                    f"'{name}' is not one of the dataset's outputs ({', '.join(outputs)}){did_you_mean(name, outputs)}",
                )
        missing = [name for name in outputs if name not in config.model.outputs]
        if missing or len(set(config.model.outputs)) != len(config.model.outputs):
            raise config.error(("model", "outputs"), f"list each of the dataset's outputs once: {', '.join(outputs)}")
    keyed = [("loss", None if isinstance(config.loss, KerasObject) else config.loss)]
    keyed += [("metrics", None if isinstance(config.metrics, list) else config.metrics), ("loss_weights", config.loss_weights)]
    for key, mapping in keyed:
        for name in mapping or {}:
            if name not in outputs:
                raise config.error(
                    (key, name), f"'{name}' is not one of the model's outputs ({', '.join(outputs)}){did_you_mean(name, outputs)}"
                )
    if isinstance(config.loss, dict):
        missing = [name for name in outputs if name not in config.loss]
        if missing:
            raise config.error(("loss",), f"output '{missing[0]}' has no loss: add `{missing[0]}: LOSS`")
    elif len(outputs) > 1:
        raise config.error(
            ("loss",), f"the model has {len(outputs)} outputs: give a loss per output, e.g. "
            f"`loss: {{{outputs[0]}: LOSS, {outputs[1]}: LOSS}}`"
        )
    if config.loss_weights is not None and len(outputs) < 2:
        raise config.error(("loss_weights",), "weighs the losses of several outputs; the model has one: remove it")
    if config.loss_weights is not None and not any(config.loss_weights.get(name, 1.0) for name in outputs):
        raise config.error(("loss_weights",), "every weight is 0: the total loss would train nothing; weigh one "
                           "output at least")
    if isinstance(config.metrics, list) and config.metrics and len(outputs) > 1:
        raise config.error(("metrics",), f"the model has {len(outputs)} outputs: give the metrics per output, "
                           f"e.g. `metrics: {{{outputs[0]}: [...]}}`")


def _check_combinations(config: ExperimentConfig) -> None:
    base, training, dataset = config.model.base, config.training, config.dataset
    if dataset.sequence_length is not None and dataset.encoding not in (None, "sequence"):
        raise config.error(("dataset", "sequence_length"), misplaced_sequence_length(dataset.encoding))
    rate = config.optimizer.kwargs.get("learning_rate")
    if isinstance(rate, dict):  # Keras takes a schedule object, which a config cannot make
        raise config.error(
            ("optimizer", "learning_rate"),
            "a learning-rate schedule cannot be given in a config: give a number, and let "
            "`training.reduce_lr_on_plateau` lower it when the monitored metric stalls",
        )
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and not rate > 0:
        raise config.error(
            ("optimizer", "learning_rate"),
            f"learning_rate {rate} would not descend the loss; use a positive rate, e.g. 1.0e-3",
        )
    if training.fine_tune is not None and (base is None or base.trainable):
        raise config.error(
            ("training", "fine_tune"),
            "fine-tuning unfreezes a frozen base: add `model.base` with `trainable: false`",
        )
    if base is not None and base.precompute:
        if config.model.augmentation:
            raise config.error(
                ("model", "base", "precompute"),
                "precomputed features cannot see augmentation; remove `precompute` or `augmentation`",
            )
        if training.fine_tune is not None:
            raise config.error(
                ("model", "base", "precompute"),
                "precomputed features cannot be fine-tuned; remove `precompute` or `training.fine_tune`",
            )
    if training.kfold is not None and (base is not None or training.fine_tune is not None):
        raise config.error(("training", "kfold"), "k-fold validation does not combine with `model.base`")
    if training.devices is not None and training.distribute != Distribution.mirrored:
        raise config.error(("training", "devices"), "`devices` chooses the devices of `distribute: mirrored`")
    if training.distribute != Distribution.none and training.steps_per_execution not in ("auto", 1):
        raise config.error(
            ("training", "steps_per_execution"),
            "Keras fails to run several steps per call under tf.distribute; use 1 (or auto)",
        )
    if training.distribute != Distribution.none and (training.kfold or (base is not None and base.precompute)):
        raise config.error(
            ("training", "distribute"), "distributed training runs one model: not with `kfold` or `precompute`"
        )


def load_config(
    path: str | Path, overrides: Iterable[str] = (), name: str | None = None, values: Iterable[str] = (),
) -> ExperimentConfig:
    """Read, override and validate a config file; every problem is a one-line ConfigError.

    `overrides`: `--set KEY=VALUE` options, an error they cause located at theirs. `values`: KEY=VALUE
    changes whose errors the caller locates (a sweep trial's values, which its label names).
    `name` (the `--name` option) replaces the config's run name.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:  # no more than that: a device or a pipe (/dev/zero) has no size to check first
            content = file.read(MAX_CONFIG_BYTES + 1)
        if len(content) > MAX_CONFIG_BYTES:
            most = f"{MAX_CONFIG_BYTES / 1e6:g} MB"
            raise ConfigError(f"{path}: the config is over {most}; a config is at most {most} of YAML")
        text = content.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give a .yaml config file") from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: the config is not UTF-8 text (byte 0x{error.object[error.start]:02x}); "
            "save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror or error}") from None
    data, source = parse_yaml(text, str(path))
    data = _normalize(data)
    for override, label in [*((o, f"--set {cut(o, 80)}") for o in overrides), *((v, "") for v in values)]:
        apply_override(data, source, override, label)
        data = _normalize(data)  # an override may itself use shorthand: `--set loss=mse`
    if name is not None:
        data["name"] = name
        source.overrides[("name",)] = f"--name {name}"
    return validate(data, source, default_name=path.stem)
