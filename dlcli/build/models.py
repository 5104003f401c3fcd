"""Config -> compiled Keras model, every name resolved through Keras's own modules.

A name or argument Keras does not accept becomes a ConfigError at the key path and line
that wrote it, with the nearest valid name.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import random
import re
import socket
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np
from tensorflow import errors as tf_errors

from dlcli.build.saved import ApplicationPreprocessing, load_run_model
from dlcli.choices import Direction, Task
from dlcli.columns import metric_name
from dlcli.config import ExperimentConfig, KerasObject, not_a_validation_metric
from dlcli.data.catalog import DATASETS
from dlcli.data.files import is_number
from dlcli.errors import DataUnavailable, DlcliError, counted, reason_of
from dlcli.keys import KeyPath, canonical, did_you_mean, not_a_boolean, not_finite, visible
from dlcli.store import DEFAULT_RUNS_DIR

# Layers that would run code or load files named in a config: a config stays data.
REFUSED_LAYERS = {
    "Lambda": "runs Python code from the config",
    "TFSMLayer": "loads a SavedModel from an arbitrary path",
}
# The input shape comes from the dataset, never from a layer's arguments, nor from an input layer.
INPUT_ARGUMENTS = {"input_shape", "input_dim", "batch_input_shape"}
INPUT_LAYERS = {"Input", "InputLayer"}
# What Keras raises for an argument it refuses, as a layer is made or called: a wrong type or value,
# or a value it has no implementation of (`fill_mode: bogus`; that error is a RuntimeError)
KERAS_REFUSALS = (TypeError, ValueError, RuntimeError)
WEIGHTS_DOWNLOAD_TIMEOUT_S = 10
# Helpers exported next to the objects in keras.losses/metrics/optimizers/activations.
NOT_OBJECT_NAMES = {"get", "serialize", "deserialize", "Loss", "Metric", "Optimizer", "Reduction"}


def _public_classes(module: ModuleType, base: type) -> dict[str, type]:
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
        and not name.startswith("_")
    }


def keras_class(
    config: ExperimentConfig, path: KeyPath, module: ModuleType, base: type, name: str, kind: str,
    excluded: Iterable[str] = (),
) -> type:
    """The public subclass of `base` that `module` calls `name` (a layer, a callback); an unknown
    name is a config error at `path` with the nearest one. Losses, metrics and optimizers, which
    Keras also names in snake case, go through `_resolve` and Keras's own `get`."""
    classes = {key: cls for key, cls in _public_classes(module, base).items() if key not in excluded}
    if name not in classes:
        raise config.error(path, f"unknown {kind} '{name}'{did_you_mean(name, classes)}")
    return classes[name]


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _object_names(module: ModuleType) -> list[str]:
    """The names Keras's `module.get` accepts, in snake case, for suggestions; with the initials it
    takes for them (mse, mae, msle), which Keras keeps out of its public names."""
    names = list(dict.fromkeys(
        _snake_case(name) for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and name not in NOT_OBJECT_NAMES
    ))
    initials = {"".join(word[0] for word in name.split("_")) for name in names if name.count("_") >= 2}
    return names + sorted(short for short in initials - set(names) if _gets(module, short))


def _gets(module: ModuleType, name: str) -> bool:
    try:
        module.get(name)
    except (ValueError, TypeError):
        return False
    return True


def _accepted_arguments(cls: type) -> tuple[dict[str, Any], list[str]]:
    """(every keyword the constructor accepts with its default, the ones it requires), following
    **kwargs up the MRO."""
    accepted: dict[str, Any] = {}
    required: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]
        named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if klass is cls:
            required = [p.name for p in named if p.default is p.empty]
        for parameter in named:
            accepted.setdefault(parameter.name, parameter.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted, required


def _number_text(value: Any) -> bool:
    """A number in quotes (`units: "16"`): YAML gives it as text."""
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


def _wrong_kind(value: Any, default: Any) -> str | None:
    """Why `value` cannot stand where Keras's default is `default`: a switch must be true or false,
    a number is never a word, and no number is infinite or NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return not_finite(value)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if isinstance(value, bool) and default is inspect.Parameter.empty:  # what a layer needs is never a switch
        return not_a_boolean(value, "a value")
    if isinstance(value, bool) and isinstance(default, (int, float)):
        return not_a_boolean(value, "a number")
    if _number_text(value) and (default is inspect.Parameter.empty or isinstance(default, (int, float))):  # `units: "16"`
        return f"expected a number, not the text {value!r}: write it without quotes"
    if isinstance(default, (int, float)) and isinstance(value, str):
        # only a word or a switch: many numeric arguments also take a list (axis, strides, a factor's range),
        # None or an object config, which Keras checks itself
        return f"must be a number, not {value!r}"
    return None


def _check_arguments(config: ExperimentConfig, path: KeyPath, cls: type, kwargs: dict[str, Any]) -> None:
    accepted, required = _accepted_arguments(cls)
    # an Embedding's input_dim is the size of its vocabulary, not of its input
    refused = INPUT_ARGUMENTS - {"input_dim"} if issubclass(cls, keras.layers.Embedding) else INPUT_ARGUMENTS
    for key in kwargs:
        if key in refused:
            raise config.error(
                (*path, key), f"remove '{key}': the input shape comes from the dataset"
            )
        if key not in accepted:
            hint = did_you_mean(key, accepted) or f"; {cls.__name__} takes {', '.join(sorted(accepted))}"
            raise config.error(path, f"unexpected argument '{visible(key)}'{hint}", set_at=(*path, key))
        problem = _wrong_kind(kwargs[key], accepted[key])
        if problem:
            raise config.error((*path, key), problem)
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise config.error(path, f"missing required argument '{missing[0]}'")


def _refuse_nested(config: ExperimentConfig, path: KeyPath, value: Any) -> None:
    """Keras builds the object configs nested in arguments ({class_name, config, module}: activations,
    initializers, regularizers, constraints, layers inside wrappers): refuse there what is refused at the
    top, and anything from outside Keras."""
    if isinstance(value, dict):
        class_name = value.get("class_name")
        if isinstance(class_name, str) and class_name.rsplit(">", 1)[-1] in REFUSED_LAYERS:
            name = class_name.rsplit(">", 1)[-1]
            raise config.error(path, f"{name} {REFUSED_LAYERS[name]} and is refused, nested in an argument too")
        module = value.get("module")
        if module is not None and not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            raise config.error((*path, "module"), f"module {module!r}: a config names Keras's own objects only")
        for key, item in value.items():
            _refuse_nested(config, (*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nested(config, (*path, index), item)


# The arguments Keras makes an object of, by the end of their name (`kernel_regularizer`): a name
# (`l2`), or the object's class and arguments, written as a layer is (`L2: {l2: 0.001}`) or as
# Keras serializes it ({class_name: L2, config: {l2: 0.001}}). An example of each, for the advice.
OBJECT_ARGUMENTS = {
    "_initializer": (keras.initializers, "he_normal", "RandomNormal: {stddev: 0.05}"),
    "_regularizer": (keras.regularizers, "l2", "L2: {l2: 0.001}"),
    "_constraint": (keras.constraints, "non_neg", "MaxNorm: {max_value: 3}"),
}


def _objects_checked(config: ExperimentConfig, path: KeyPath, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with each object argument in the form Keras reads, each refused at its key when
    Keras cannot make it (Keras's own words name a `config` of a `dict`, not the argument)."""
    checked = dict(kwargs)
    for key, value in kwargs.items():
        module, name, written = next((kind for end, kind in OBJECT_ARGUMENTS.items() if key.endswith(end)), (None,) * 3)
        if module is None or value is None:
            continue
        if isinstance(value, dict) and len(value) == 1 and "class_name" not in value:
            ((class_name, arguments),) = value.items()
            if isinstance(arguments, dict) or arguments is None:
                value = {"class_name": class_name, "config": arguments or {}}
        try:
            module.get(copy.deepcopy(value))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            what = key.rsplit("_", 1)[-1]
            if isinstance(value, str):
                reason = f"unknown {what} '{value}'{did_you_mean(value, _object_names(module))}"
            elif isinstance(value, dict) and "class_name" not in value:
                reason = f"{kwargs[key]} names no {what} class"
            else:
                reason = f"cannot make the {what}: {reason_of(error)}"
            raise config.error((*path, key), f"{reason}; write a name ({name}) or its class and arguments ({written})") from None
        checked[key] = value
    return checked


def build_object(config: ExperimentConfig, path: KeyPath, cls: type, kwargs: dict[str, Any]) -> Any:
    """cls(**kwargs), with Keras's complaint located at the argument it names."""
    _check_arguments(config, path, cls, kwargs)
    _refuse_nested(config, path, kwargs)
    kwargs = _objects_checked(config, path, kwargs)
    try:
        return cls(**kwargs)
    except (*KERAS_REFUSALS, KeyError, AttributeError) as error:
        # KeyError, AttributeError: Keras building an incomplete object config nested in an argument
        message = f"an object config in the arguments lacks the key {error}" if isinstance(error, KeyError) else reason_of(error)
        named = [key for key in kwargs if re.search(rf"\b{re.escape(key)}\b", message)]
        if "activation" in kwargs and "activation" in message:
            named = ["activation"]
            message += did_you_mean(str(kwargs["activation"]), _object_names(keras.activations))
        where = (*path, named[0]) if named else path
        raise config.error(where, message) from error


def _embedding_arguments(
    config: ExperimentConfig, path: KeyPath, kwargs: dict[str, Any], vocabulary_size: int | None,
) -> dict[str, Any]:
    """An Embedding's arguments with `input_dim` the dataset's vocabulary size unless given; a
    given one too small for the vocabulary is an error."""
    given = kwargs.get("input_dim")
    if vocabulary_size is None:
        if given is None:
            fix = ("read a named input of token indices (`encoding: sequence` or `integer`)" if config.dataset.named
                   else "set `dataset.encoding: sequence`")
            raise config.error(
                path, f"an Embedding takes token indices: {fix}, or give `input_dim` (the number of distinct indices)"
            )
        return kwargs
    if given is None:
        return {**kwargs, "input_dim": vocabulary_size}
    if not isinstance(given, int) or given < vocabulary_size:
        raise config.error(
            (*path, "input_dim"),
            f"input_dim {given} is smaller than the dataset's vocabulary ({vocabulary_size} token indices, "
            f"`dataset.num_words`): leave it out to use the vocabulary's size",
        )
    return kwargs


def build_layer(
    config: ExperimentConfig, path: KeyPath, class_name: str, kwargs: dict[str, Any], vocabulary_size: int | None = None,
):
    """The Keras layer `class_name(**kwargs)` of the config item at `path`; an Embedding's
    `input_dim` defaults to `vocabulary_size`, the dataset's."""
    if class_name == "Embedding":
        kwargs = _embedding_arguments(config, (*path, class_name), kwargs, vocabulary_size)
    if class_name in REFUSED_LAYERS:
        raise config.error(
            path, f"{class_name} {REFUSED_LAYERS[class_name]} and is refused; use Keras's built-in layers"
        )
    if class_name in INPUT_LAYERS:
        raise config.error(path, f"remove the {class_name}: the input and its shape come from the dataset")
    rate = kwargs.get("rate")
    if "Dropout" in class_name and isinstance(rate, (int, float)) and rate >= 1:
        raise config.error((*path, class_name, "rate"), f"rate {rate} drops every unit, and the layer passes nothing on: "
                           "give a rate below 1, e.g. 0.5")
    cls = keras_class(config, path, keras.layers, keras.layers.Layer, class_name, "layer", excluded=REFUSED_LAYERS)
    return build_object(config, (*path, class_name), cls, kwargs)


# How many random examples each augmentation layer is tried on as the model is built, and how many
# times at most, until one changes: a random flip leaves 32 as they are once in 2**32, and a layer
# that changes one example in 20 (RandomInvert with factor 0.1) leaves 320 once in 10**7.
TRIED_EXAMPLES = 32
TRIES = 10


def _augmentation_layers(config: ExperimentConfig, input_shape: tuple[int, ...]) -> list[tuple[KeyPath, keras.layers.Layer]]:
    """The layers of `model.augmentation` with their key paths, each first tried, as a copy, on
    random examples: an augmentation learns no weights, leaves the data as it is at inference and
    changes some of it while training. Keras accepts, for instance, `RandomFlip: {mode: diagonal}`
    and then flips nothing, and `Dense` there would run at inference too."""
    examples = np.random.default_rng(0).uniform(size=(TRIED_EXAMPLES, *input_shape)).astype("float32") \
        if None not in input_shape else None
    layers = []
    for index, item in enumerate(config.model.augmentation):
        ((class_name, kwargs),) = item.items()
        path = ("model", "augmentation", index, class_name)
        layers.append((path, build_layer(config, path[:-1], class_name, kwargs)))
        if examples is not None:
            examples = _tried_augmentation(config, path, kwargs, examples)
    return layers


def _tried_augmentation(config: ExperimentConfig, path: KeyPath, kwargs: dict[str, Any], examples):
    """What a copy of the augmentation layer at `path` makes of `examples` at inference, after
    checking that it is an augmentation (`_augmentation_layers`)."""
    class_name = path[-1]
    seeds = random.getstate()  # a layer draws its seed from Python's generator: the run's layers keep theirs
    try:  # named, so that it takes no name Keras would give a layer of the run (random_flip_1)
        layer = build_layer(config, path[:-1], class_name, {**kwargs, "name": "dlcli_tried_augmentation"})
    finally:
        random.setstate(seeds)
    taking = f"examples of shape {examples.shape[1:]}"
    with _reported_at(config, path, class_name, taking):
        at_inference = np.asarray(layer(examples, training=False), dtype="float32")
    # under mixed precision an example the layer leaves as it is may come back rounded, or not at all
    computed = np.asarray(keras.ops.cast(examples, layer.compute_dtype), dtype="float32")
    move = "augmentation is applied only while training: move it to model.layers"
    if layer.weights:
        raise config.error(path, f"{class_name} learns weights, and {move}")
    if at_inference.shape != examples.shape or not (np.allclose(at_inference, computed) or
                                                    np.allclose(at_inference, examples)):
        raise config.error(path, f"{class_name} changes the data at inference too, and {move}")
    for _ in range(TRIES):
        with _reported_at(config, path, class_name, taking):
            while_training = np.asarray(layer(examples, training=True), dtype="float32")
        if while_training.shape != examples.shape:  # RandomCrop: the layers after it are built on inference's shape
            raise config.error(path, f"{class_name} changes the examples' shape while training, from "
                               f"{examples.shape[1:]} to {while_training.shape[1:]}, and not at inference: the layers "
                               "after it cannot take both; use RandomTranslation or RandomZoom, or crop the same way "
                               "always (CenterCrop, Resizing) in model.layers")
        if not np.array_equal(while_training, at_inference):
            return at_inference
    raise config.error(
        path, f"{class_name} changed none of {TRIED_EXAMPLES} random examples in {TRIES} tries while training: with "
        "these arguments it augments nothing; check them",
    )


@dataclass
class ModelParts:
    """The model to train and save, and the pieces that precomputing and fine-tuning work on."""

    model: keras.Model  # input -> augmentation -> (preprocessing, base) -> layers
    base: keras.Model | None = None
    feature_extractor: keras.Sequential | None = None  # input -> preprocessing -> base
    head: keras.Model | None = None  # base features -> layers (for `precompute`)
    inputs_of: dict[str, list[str]] = field(default_factory=dict)  # each `model.layers` layer's inputs, by name

    def layer_rows(self) -> list[tuple[str, str, str, str, int, bool]]:
        """Per layer of the model: name, class, inputs (of a graph), output shape, parameters, trainable."""
        return [
            (layer.name, type(layer).__name__, ", ".join(self.inputs_of.get(layer.name, [])),
             str(tuple(layer.output.shape)), layer.count_params(), layer.trainable)
            for layer in self.model.layers
        ]


# The layers that merge several inputs into one; they take `inputs: [A, B, ...]`.
MERGE_LAYERS = (
    keras.layers.Add, keras.layers.Subtract, keras.layers.Multiply, keras.layers.Average, keras.layers.Maximum,
    keras.layers.Minimum, keras.layers.Concatenate, keras.layers.Dot,
)
# What `inputs` calls the output of everything before `model.layers` (augmentation, base).
GRAPH_INPUT = "input"


def _add(
    config: ExperimentConfig, model: keras.Sequential, input_shape: tuple[int, ...],
    layer, path: KeyPath, class_name: str,
) -> None:
    """model.add(layer), with a shape mismatch reported at the config item that made the layer."""
    shape = model.output_shape if model.layers else (None, *input_shape)
    if any(earlier.name == layer.name for earlier in model.layers):
        raise config.error(path, f"the name '{layer.name}' is taken by an earlier layer: give each layer its own "
                           "name, or none")
    grid = re.match(r"(Conv|MaxPool|AveragePool|GlobalM|GlobalA)", class_name)
    advice = ""
    if grid and len(shape) == 2:
        advice = ("; 1D convolution and pooling layers need sequences (batch, steps, features): an Embedding of "
                  "token indices (`encoding: sequence`) gives them" if "1D" in class_name else
                  "; convolution and pooling layers need images (batch, height, width, channels), "
                  "so put Flatten after them, not before")
    with _reported_at(config, path, class_name, f"the previous output of shape {shape}", advice):
        model.add(layer)


@contextlib.contextmanager
def _reported_at(config: ExperimentConfig, path: KeyPath, class_name: str, taking: str, advice: str = ""):
    """A layer called or added, its mistakes reported at the config item that made it, in one line:
    an input it cannot take (`taking` describes it), or an argument TensorFlow rejects only when the
    layer makes its weights (an initializer's `value: relu`), without TensorFlow's
    `{{function_node ...}}` prefix."""
    try:
        yield
    except KERAS_REFUSALS as error:
        raise config.error(path, f"cannot take {taking}: {reason_of(error)}{advice}") from error
    except tf_errors.OpError as error:
        raise config.error(
            path, f"{class_name} cannot make its weights with these arguments: {reason_of(error)}"
        ) from error


def _application_base(config: ExperimentConfig, input_shape: tuple[int, ...]) -> tuple[keras.Model, str]:
    """A keras.applications model without its classifier, and the name of its module."""
    spec = config.model.base
    constructors = {
        name: value for name, value in vars(keras.applications).items()
        if callable(value) and name[:1].isupper()
    }
    if spec.application not in constructors:
        raise config.error(
            ("model", "base", "application"),
            f"unknown application '{spec.application}'{did_you_mean(spec.application, constructors)}",
        )
    constructor = constructors[spec.application]
    weights: str | None = spec.weights
    if weights.lower() == "none":
        weights = None
    elif weights != "imagenet" and not Path(weights).expanduser().is_file():
        raise config.error(
            ("model", "base", "weights"),
            f"no weights file {weights}; use imagenet, none or the path of a .h5/.weights.h5 file",
        )
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(WEIGHTS_DOWNLOAD_TIMEOUT_S)  # offline, a download must fail fast
    try:
        base = constructor(include_top=False, weights=weights, input_shape=input_shape)
    except ValueError as error:
        raise config.error(("model", "base"), f"{spec.application} on input {input_shape}: {reason_of(error)}") from error
    except Exception as error:  # urllib and socket errors of a failed download, or a file that holds no weights
        if weights not in (None, "imagenet"):
            raise config.error(("model", "base", "weights"), f"{weights} holds no weights Keras can load into "
                               f"{spec.application} ({reason_of(error)}); give a .h5 or .weights.h5 file saved from "
                               f"{spec.application}") from error
        raise DataUnavailable(
            f"{config.source.prefix(('model', 'base', 'weights'))}model.base.weights: the imagenet weights "
            f"of {spec.application} are not in the Keras cache and cannot be downloaded ({error}); "
            "use `weights: none`, a weights file, or `base: {run: RUN, until: LAYER}`"
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return base, constructor.__module__.rsplit(".", 1)[-1]


def _run_base(config: ExperimentConfig, input_shape: tuple[int, ...], runs_dir: Path) -> keras.Model:
    """An earlier run's model up to (and including) the layer named by `until`."""
    from dlcli.store.runs import MODEL_FILE, resolve_run

    spec = config.model.base
    try:
        run = resolve_run(runs_dir, spec.run)
        previous = load_run_model(run, MODEL_FILE, compile=True)
    except DlcliError as error:  # RunNotFound among them: the config names the run
        raise config.error(("model", "base", "run"), str(error)) from None
    names = [layer.name for layer in previous.layers]
    if spec.until not in names:
        raise config.error(
            ("model", "base", "until"),
            f"run {run.id} has no layer '{spec.until}'{did_you_mean(spec.until, names)}; "
            f"its layers: {', '.join(names)}",
        )
    if tuple(previous.input_shape[1:]) != tuple(input_shape):
        raise config.error(
            ("model", "base", "run"),
            f"run {run.id} takes input {tuple(previous.input_shape[1:])}, this dataset gives {tuple(input_shape)}",
        )
    if not Path(spec.run).expanduser().is_dir():
        spec.run = run.id  # the resolved config names the exact run, not 'latest' or a name
    return keras.Model(previous.inputs, previous.get_layer(spec.until).output, name=f"base_{spec.until}")


def _graph_layers(
    config: ExperimentConfig, vocabulary_size: int | None, vocabularies: dict[str, int | None] | None = None,
) -> list[tuple[KeyPath, str, keras.layers.Layer, list[str] | None]]:
    """`model.layers` built, each with its path and the names its `inputs` key gives (None: the one
    before). `vocabularies`: each named input's token indices, the `input_dim` of an Embedding that reads it."""
    built = []
    last = len(config.model.layers) - 1
    for index, item in enumerate(config.model.layers):
        ((class_name, kwargs),) = item.items()
        path = ("model", "layers", index, class_name)
        kwargs = dict(kwargs)
        names = kwargs.pop("inputs", None)
        if isinstance(names, str):
            names = [names]
        if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
            raise config.error((*path, "inputs"), "`inputs` lists earlier layers' names, e.g. [input, conv1]")
        if vocabularies is not None:  # a table's inputs: an Embedding's vocabulary is that of the input it reads
            vocabulary_size = vocabularies.get(names[0]) if names and len(names) == 1 else None
        is_output = index == last or kwargs.get("name") in config.output_names  # the last layer's is always one
        if is_output and config.training.mixed_precision and "dtype" not in kwargs:
            kwargs["dtype"] = "float32"  # mixed precision: the outputs stay float32
        built.append((path, class_name, build_layer(config, path[:-1], class_name, kwargs, vocabulary_size), names))
    return built


def _connect(
    config: ExperimentConfig, layers: list[tuple[KeyPath, str, keras.layers.Layer, list[str] | None]], start,
) -> tuple[Any, dict[str, list[str]]]:
    """Call each layer on its inputs, from the tensor `start` (or the named tensors of a dict); the
    last layer's output is the model's, or the outputs `model.outputs` names (a list).

    Returns that output and each layer's inputs by name. Names that are unknown or come
    later, a merge of one input and a layer whose output no later layer takes are errors
    at the item that wrote them.
    """
    outputs = dict(start) if isinstance(start, dict) else {GRAPH_INPUT: start}
    starts = list(outputs)
    inputs_of: dict[str, list[str]] = {}
    unused: dict[str, KeyPath] = {}
    previous = GRAPH_INPUT
    all_names = [layer.name for _, _, layer, _ in layers]
    for path, class_name, layer, names in layers:
        if layer.name in outputs:
            taken = ("is reserved for the graph's input" if layer.name == GRAPH_INPUT else
                     f"is input '{layer.name}''s (dataset.inputs)" if layer.name in starts else "is taken by an earlier layer")
            raise config.error(path, f"the name '{layer.name}' {taken}; give this one another")
        if names is None and previous not in outputs:  # a table's first layer: it reads which input?
            if len(starts) > 1:
                raise config.error(path, f"reads no input: add `inputs: [...]` naming some of {', '.join(starts)}")
            previous = starts[0]
        names = names if names is not None else [previous]
        for name in names:
            if name == layer.name:
                raise config.error((*path, "inputs"), f"'{name}' is this layer itself: a layer takes only earlier ones")
            if name in all_names and name not in outputs:
                raise config.error((*path, "inputs"), f"'{name}' comes later: a layer takes only earlier ones")
            if name not in outputs:
                hint = did_you_mean(name, outputs) or f"; the earlier ones: {', '.join(outputs)}"
                raise config.error((*path, "inputs"), f"no earlier layer is named '{name}'{hint}")
            unused.pop(name, None)
        if isinstance(layer, MERGE_LAYERS) and len(names) < 2:
            raise config.error(
                path, f"{class_name} merges several inputs: give it two or more, e.g. `inputs: [{names[0]}, OTHER]`"
            )
        if not isinstance(layer, MERGE_LAYERS) and len(names) > 1:
            raise config.error(
                (*path, "inputs"),
                f"{class_name} takes one input; merge {', '.join(names)} first (Add, Concatenate, ...)",
            )
        arguments = [outputs[name] for name in names]
        shapes = ", ".join(f"{name} {tuple(outputs[name].shape)}" for name in names)
        with _reported_at(config, path, class_name, shapes):
            output = layer(arguments if len(arguments) > 1 else arguments[0])
        outputs[layer.name] = output
        inputs_of[layer.name] = names
        unused[layer.name] = path
        previous = layer.name
    named_outputs = config.output_names
    if len(named_outputs) == 1 and named_outputs[0] not in inputs_of and config.model.outputs is None:
        named_outputs = []  # one output, no layer named after it: the last layer gives it
    for index, name in enumerate(named_outputs):
        if name not in inputs_of:
            hint = did_you_mean(name, inputs_of) or "; name the layer that gives it `name: " + name + "`"
            raise config.error(("model", "outputs", index) if config.model.outputs else ("dataset", "outputs", name),
                               f"no layer is named '{name}'{hint}")
        unused.pop(name, None)
    if not named_outputs:
        unused.pop(previous)  # the last layer's output is the model's
    if unused:
        name, path = next(iter(unused.items()))
        last = "not an output (`model.outputs`)" if named_outputs else "not the last layer"
        raise config.error(
            path, f"no later layer takes the output of '{name}' and it is {last}: name it in a "
            "later layer's `inputs`, or remove it",
        )
    unread = [name for name in starts if not any(name in taken for taken in inputs_of.values())]
    if isinstance(start, dict) and unread:
        raise config.error(
            ("dataset", "inputs", unread[0]),
            f"no layer reads input '{unread[0]}': name it in a layer's `inputs`, or leave it out of the dataset",
        )
    if len(named_outputs) > 1:
        return [outputs[name] for name in named_outputs], inputs_of
    if named_outputs:  # one output: a tensor, as Keras gives a model of one output (metrics named without it)
        return outputs[named_outputs[0]], inputs_of
    return outputs[previous], inputs_of


def _is_graph(config: ExperimentConfig) -> bool:
    return any("inputs" in kwargs for item in config.model.layers for kwargs in item.values())


# The layers that take token indices as such: an index is a name, not an amount.
INDEX_LAYERS = (keras.layers.Embedding, keras.layers.CategoryEncoding)


def _named_inputs_model(config: ExperimentConfig, named_inputs: dict[str, Any]) -> ModelParts:
    """A functional model of a table's named inputs (`dataset.inputs`) and outputs: `model.layers`
    wired by their `inputs`, each input a keras.Input of its name."""
    inputs = {
        name: keras.Input(shape=spec.shape, name=name, dtype=spec.encoding.dtype) for name, spec in named_inputs.items()
    }
    layers = _graph_layers(config, None, {name: spec.encoding.vocabulary_size for name, spec in named_inputs.items()})
    outputs, inputs_of = _connect(config, layers, inputs)
    for path, class_name, layer, _ in layers:  # token indices are no numbers to weigh: a Dense on them learns nonsense
        for name in inputs_of[layer.name]:
            spec = named_inputs.get(name)
            if spec is not None and spec.encoding.dtype == "int32" and not isinstance(layer, INDEX_LAYERS):
                raise config.error(
                    path, f"{class_name} reads input '{name}', token indices ({spec.encoding.describe}): read them "
                    "with an Embedding, or encode the input as numbers (one_hot for categories, multi_hot for text)",
                )
    model = keras.Model(list(inputs.values()), outputs, name=re.sub(r"\W", "_", config.name))
    return ModelParts(model, inputs_of=inputs_of)


def _graph_model(
    config: ExperimentConfig, input_shape: tuple[int, ...], runs_dir: Path | None, vocabulary_size: int | None,
) -> ModelParts:
    """A functional model: augmentation and base in order, then `model.layers` wired by their `inputs`."""
    inputs = keras.Input(shape=input_shape)
    start, extractor, base = inputs, None, None
    for path, layer in _augmentation_layers(config, input_shape):
        start = _called(config, layer, start, path)
    if config.model.base is not None:
        preprocessing, base = _base_parts(config, input_shape, runs_dir)
        extractor = keras.Sequential([keras.Input(shape=input_shape)], name="feature_extractor")
        for layer in (preprocessing, base):
            if layer is not None:
                start = _called(config, layer, start, ("model", "base"))
                extractor.add(layer)
    layers = _graph_layers(config, vocabulary_size)
    output, inputs_of = _connect(config, layers, start)
    model = keras.Model(inputs, output, name=re.sub(r"\W", "_", config.name))
    head = None
    if config.model.base is not None and config.model.base.precompute:
        features = keras.Input(shape=base.output_shape[1:])
        head = keras.Model(features, _connect(config, layers, features)[0], name="head")
    return ModelParts(model, base, extractor, head, inputs_of)


def _called(config: ExperimentConfig, layer: keras.layers.Layer, tensor, path: KeyPath):
    """layer(tensor), its mistakes reported at the config item that made the layer."""
    with _reported_at(config, path, type(layer).__name__, f"an input of shape {tuple(tensor.shape)}"):
        return layer(tensor)


def _check_preprocessing(config: ExperimentConfig, preprocessing: keras.layers.Layer, input_shape: tuple[int, ...]) -> None:
    """The application's preprocessing tried on an example of the data's shape: VGG's and ResNet's
    subtract a mean per colour channel and fail on one channel deep inside Keras, cut off."""
    try:
        preprocessing(np.zeros((1, *input_shape), dtype="float32"))
    except Exception:  # whatever the application's function raises on this shape (a slice out of bounds)
        channels = f"of {counted(input_shape[-1], 'channel')}" if len(input_shape) == 3 else f"of shape {input_shape}"
        raise config.error(("model", "base"), f"{config.model.base.application}'s preprocessing reads images of 3 "
                           f"channels (red, green, blue), and these are {channels}: use colour "
                           "images (dataset.color_mode: rgb for a folder of photos), or `weights: none, preprocess: "
                           "none`") from None


def _base_parts(
    config: ExperimentConfig, input_shape: tuple[int, ...], runs_dir: Path | None,
) -> tuple[keras.layers.Layer | None, keras.Model]:
    """The base of `model.base` (trainable as configured), and the preprocessing its application needs."""
    spec = config.model.base
    preprocessing = None
    if spec.application:
        base, module = _application_base(config, input_shape)
        if spec.preprocess == "application":
            preprocessing = ApplicationPreprocessing(module, name=f"{module}_preprocessing")
            _check_preprocessing(config, preprocessing, input_shape)
    else:
        base = _run_base(config, input_shape, runs_dir or DEFAULT_RUNS_DIR)
    base.trainable = spec.trainable
    return preprocessing, base


def build_model(
    config: ExperimentConfig, input_shape: tuple[int, ...], runs_dir: Path | None = None,
    vocabulary_size: int | None = None, named_inputs: dict[str, Any] | None = None,
) -> ModelParts:
    """The config's model on the dataset's input shape (not compiled): a Sequential stack, or a
    functional graph when a layer names its `inputs`. `vocabulary_size`: how many token indices
    the dataset's sequences hold, an Embedding's default `input_dim`. `named_inputs`: a table's
    named inputs (`Splits.inputs`), each an input of the model."""
    if named_inputs:
        return _named_inputs_model(config, named_inputs)
    build = _graph_model if _is_graph(config) else _stack_model
    parts = build(config, input_shape, runs_dir, vocabulary_size)
    if config.training.fine_tune is not None:
        unfreeze(config, parts.base, apply=False)
    return parts


def _stack_model(
    config: ExperimentConfig, input_shape: tuple[int, ...], runs_dir: Path | None, vocabulary_size: int | None,
) -> ModelParts:
    """The Sequential stack of the config on the dataset's input shape."""
    model = keras.Sequential([keras.Input(shape=input_shape)], name=re.sub(r"\W", "_", config.name))
    for path, layer in _augmentation_layers(config, input_shape):
        _add(config, model, input_shape, layer, path, path[-1])
    parts = ModelParts(model)
    spec = config.model.base
    if spec is not None:
        preprocessing, base = _base_parts(config, input_shape, runs_dir)
        extractor = keras.Sequential([keras.Input(shape=input_shape)], name="feature_extractor")
        for layer, what in ((preprocessing, spec.application), (base, base.name)):
            if layer is not None:
                _add(config, model, input_shape, layer, ("model", "base"), what)
                extractor.add(layer)
        parts.base, parts.feature_extractor = base, extractor
    first_head_layer = len(model.layers)
    previous = GRAPH_INPUT
    for path, class_name, layer, _ in _graph_layers(config, vocabulary_size):
        _add(config, model, input_shape, layer, path, class_name)
        parts.inputs_of[layer.name], previous = [previous], layer.name
    if spec is not None and spec.precompute:
        parts.head = keras.Sequential(
            [keras.Input(shape=parts.base.output_shape[1:]), *model.layers[first_head_layer:]], name="head"
        )
    return parts


def unfreeze(config: ExperimentConfig, base: keras.Model, apply: bool = True) -> None:
    """Make the layers `training.fine_tune.unfreeze` names trainable; BatchNormalization stays frozen.

    Keras runs a frozen BatchNormalization layer in inference mode, so its statistics,
    learned on the base's original data, survive fine-tuning. `apply=False` only checks.
    """
    spec = config.training.fine_tune.unfreeze
    names = [layer.name for layer in base.layers]
    if spec == "all":
        start = 0
    elif isinstance(spec, int):
        start = max(0, len(names) - spec)
    elif spec in names:
        start = names.index(spec)
    else:
        hint = did_you_mean(spec, names) or (
            f"; use all, a number of layers, or a layer name ({names[1]} ... {names[-1]})"
        )
        raise config.error(("training", "fine_tune", "unfreeze"), f"the base has no layer '{spec}'{hint}")
    if not apply:
        return
    base.trainable = True
    for index, layer in enumerate(base.layers):
        layer.trainable = index >= start and not isinstance(layer, keras.layers.BatchNormalization)


# Names Keras's compile turns into the accuracy that fits the labels (binary, categorical or
# sparse) instead of looking them up; every one of those ranks upwards.
COMPILE_ACCURACIES = {"accuracy", "acc"}


def _resolve(config: ExperimentConfig, path: KeyPath, spec: KerasObject, module: ModuleType, base: type, kind: str):
    """A loss/metric/optimizer: its name as Keras's `get` takes it, or an instance when configured."""
    if kind == "metric" and not spec.kwargs and spec.name.lower() in COMPILE_ACCURACIES:
        return spec.name
    if not spec.kwargs:
        try:
            module.get(spec.name)
        except (ValueError, TypeError):
            pass
        else:
            return spec.name
    classes = {canonical(name): cls for name, cls in _public_classes(module, base).items()}
    cls = classes.get(canonical(spec.name))
    if cls is None:
        try:  # an alias such as 'mse': find the class of the function it stands for
            cls = classes.get(canonical(module.get(spec.name).__name__))
        except (ValueError, TypeError, AttributeError):
            cls = None
    if cls is None:
        # Optimizers are written in lower case ('rmsprop'), losses and metrics in snake case.
        names = [cls.__name__.lower() for cls in classes.values()] if kind == "optimizer" else _object_names(module)
        # located where the name was set: a --set of `optimizer.name` under an optimizer the file writes
        raise config.error(path, f"unknown {kind} '{spec.name}'{did_you_mean(spec.name, names)}", set_at=(*path, "name"))
    return build_object(config, path, cls, spec.kwargs)


def blame_metric(config: ExperimentConfig, labels: Any, outputs: Any) -> None:
    """After the compiled metrics failed on `labels` and `outputs` (one batch, as the model gives
    them): a config error at the first configured metric that fails on its own, with the shapes it
    was given. Keras's accuracies are left out: compile fits them to the loss and labels."""
    named = config.keyed_outputs
    for key, spec, output in config.metric_specs():
        metric = _resolve(config, key, spec, keras.metrics, keras.metrics.Metric, "metric")
        if isinstance(metric, str):
            if metric.lower() in COMPILE_ACCURACIES:
                continue
            metric = keras.metrics.get(metric)
        truth = labels[output] if named else labels
        predicted = outputs[named.index(output)] if named else outputs
        try:
            metric.update_state(truth, predicted) if isinstance(metric, keras.metrics.Metric) else metric(truth, predicted)
        except Exception as error:
            hint = ""
            classes = predicted.shape[-1]
            if classes and classes > 1 and (len(truth.shape) == 1 or truth.shape[-1] == 1):
                labels_key = f"dataset.outputs.{output}.labels" if output else "dataset.labels"
                hint = (f"; it compares labels with outputs position by position: for one class index per example "
                        f"among {classes}, set `{labels_key}: one_hot` (with categorical_crossentropy), or use a "
                        "metric of class indices (accuracy, sparse_top_k_categorical_accuracy)")
            raise config.error(
                key, f"{spec.name} cannot score labels of shape {_per_batch(truth.shape)} against outputs of shape "
                f"{_per_batch(predicted.shape)}: {reason_of(error)[:200]}{hint}",
            ) from error


def _per_batch(shape: tuple) -> str:
    """A batch's shape as a user reads it: N examples of the rest, `(N, 10)`."""
    return "(" + ", ".join(["N", *map(str, shape[1:])]) + ("," if len(shape) == 1 else "") + ")"


def resolved_losses(config: ExperimentConfig) -> dict[str | None, Any]:
    """Each output's loss (None: the one output of a dataset without named outputs), as Keras's
    `compile` takes it: a name or a configured instance."""
    return {output: _resolve(config, key, spec, keras.losses, keras.losses.Loss, "loss")
            for key, spec, output in config.losses()}


def compile_model(
    config: ExperimentConfig, model: keras.Model, learning_rate: float | None = None,
    jit_compile: bool | str = "auto", steps_per_execution: int = 1,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> None:
    """Compile with the config's optimizer (at `learning_rate` when given), loss and metrics.

    `optimizer` shares another model's optimizer: the whole model around a trained head.
    """
    if optimizer is None:
        spec = config.optimizer
        if learning_rate is not None:
            spec = KerasObject(name=spec.name, **{**spec.kwargs, "learning_rate": learning_rate})
        optimizer = _resolve(config, ("optimizer",), spec, keras.optimizers, keras.optimizers.Optimizer, "optimizer")
        if isinstance(optimizer, str):
            optimizer = keras.optimizers.get(optimizer)
    losses = resolved_losses(config)
    metrics: dict[str | None, list] = {}
    for key, spec, output in config.metric_specs():
        metrics.setdefault(output, []).append(_resolve(config, key, spec, keras.metrics, keras.metrics.Metric, "metric"))
    named = config.keyed_outputs
    with warnings.catch_warnings():  # a refused jit_compile is said below, as an error
        warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile=True`")
        model.compile(
            optimizer=optimizer, loss=losses if named else next(iter(losses.values())),
            metrics=metrics if named else next(iter(metrics.values()), []),
            loss_weights={name: (config.loss_weights or {}).get(name, 1.0) for name in named} if named else None,
            jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        )
    if jit_compile is True and not model.jit_compile:
        unsupported = sorted({type(layer).__name__ for layer in _all_layers(model) if not layer.supports_jit})
        culprits = " and ".join(unsupported) + (" do" if len(unsupported) > 1 else " does") if unsupported else (
            "this platform does")
        raise config.error(
            ("training", "jit_compile"),
            f"Keras cannot compile this model with XLA ({culprits} not support it) and would train without it: "
            "set `jit_compile: false` or `auto`",
        )


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model`, those of nested models (a base) included."""
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers += _all_layers(layer)
    return layers


KERAS_DIRECTIONS = {"up": Direction.max, "down": Direction.min}


def metric_directions(config: ExperimentConfig) -> dict[str, str | None]:
    """'min' or 'max' for the loss and each configured metric, under the name Keras logs it.

    The direction is the one the Keras metric object declares, which is what Keras's own
    monitor callbacks (EarlyStopping, ModelCheckpoint) rank by; the loss is minimized. None:
    the metric's object declares none.
    """
    directions: dict[str, str | None] = {"loss": Direction.min}
    # Keras logs each output's loss too, and names its metrics after it
    directions.update({f"{output}_loss": Direction.min for output in config.keyed_outputs})
    for key, spec, output in config.metric_specs():
        metric = _resolve(config, key, spec, keras.metrics, keras.metrics.Metric, "metric")
        prefix = f"{output}_" if config.keyed_outputs else ""
        if isinstance(metric, str):
            if metric.lower() in COMPILE_ACCURACIES:
                directions[prefix + metric] = Direction.max
                continue
            name, metric = metric, keras.metrics.get(metric)
        else:
            name = metric.name
        directions[prefix + name] = KERAS_DIRECTIONS.get(getattr(metric, "_direction", None))
    return directions


def contradicted_direction(monitor: str, mode: str, keras_said: dict[str, str | None]) -> str | None:
    """Why `mode` cannot rank `monitor`, or None: Keras declares the other direction for its metric
    (a mode is for a value Keras does not rank; one against Keras watches the metric upside down)."""
    known = keras_said.get(metric_name(monitor))
    if known is None or known == mode:
        return None
    better = "lower" if known == Direction.min else "higher"
    return (f"'{mode}' ranks {monitor} upside down: a {better} {monitor} is better (Keras ranks it '{known}'); "
            f"set it to {known}, or auto")


def monitor_directions(config: ExperimentConfig) -> dict[str, str]:
    """The known `metric_directions`, with `training.monitor_mode` and `overfitting.mode` applied
    to the metrics they monitor; a monitor that is not logged, or whose direction is unknown,
    is an error at its key."""
    directions = metric_directions(config)
    keras_said = dict(directions)  # before a mode overrides one
    logged = [*directions, *(f"val_{name}" for name in directions)]
    training = config.training
    monitors = [(("training", "monitor"), training.monitor, "monitor_mode", training.monitor_mode)]
    if training.overfitting:
        overfitting = training.overfitting
        monitors.append((("training", "overfitting", "monitor"), overfitting.monitor, "mode", overfitting.mode))
    chosen: dict[str, str] = {}
    if training.overfitting and (problem := not_a_validation_metric(training.overfitting.monitor, list(keras_said))):
        raise config.error(("training", "overfitting", "monitor"), problem)  # a training metric under Keras's name
    for key, monitor, mode_key, mode in monitors:
        name, mode_setting = metric_name(monitor), f"`{'.'.join(key[:-1])}.{mode_key}: min` or `max`"
        if mode != "auto":  # any logged value, learning_rate too; whether it is logged shows at the first epoch
            if (problem := contradicted_direction(monitor, mode, keras_said)) is not None:
                raise config.error((*key[:-1], mode_key), problem)
            if chosen.setdefault(name, mode) != mode:
                raise config.error(
                    (*key[:-1], mode_key), f"the other monitor ranks '{name}' '{chosen[name]}': give both the same mode"
                )
            directions[name] = mode
        elif name not in directions:
            raise config.error(
                key,
                f"'{monitor}' is not logged; choose one of {', '.join(logged)}{did_you_mean(monitor, logged)} "
                f"(to monitor another logged value, set {mode_setting})",
            )
        elif directions[name] is None:
            raise config.error(
                key, f"Keras does not say whether a higher or a lower '{monitor}' is better: set {mode_setting}"
            )
    return {name: direction for name, direction in directions.items() if direction is not None}


CROSSENTROPY_LOSSES = {
    "sparsecategoricalcrossentropy": "sparse",
    "categoricalcrossentropy": "one_hot",
    "categoricalfocalcrossentropy": "one_hot",
    "binarycrossentropy": "binary",
    "binaryfocalcrossentropy": "binary",
}
REGRESSION_LOSSES = {
    "mse", "meansquarederror", "mae", "meanabsoluteerror", "huber", "logcosh", "msle",
    "meansquaredlogarithmicerror", "mape", "meanabsolutepercentageerror",
}


# Metrics that read the labels one way only: the labels must be encoded that way.
METRIC_LABELS = {
    "categoricalaccuracy": "one_hot", "topkcategoricalaccuracy": "one_hot",
    "sparsecategoricalaccuracy": "sparse", "sparsetopkcategoricalaccuracy": "sparse",
    # a crossentropy as a metric reads the labels as the loss of its name does
    **{name: labels for name, labels in CROSSENTROPY_LOSSES.items() if labels != "binary"},
}
SQUASHING = {"softmax", "sigmoid"}
# Metrics that count right answers (or score classes): a regression's number is never exactly its target
CLASS_METRICS = {
    "accuracy", "binaryaccuracy", "precision", "recall", "auc", "f1score", "fbetascore",
    *(name for name in METRIC_LABELS if "accuracy" in name),
}


# A classification whose classes all read as numbers, this many or more (or any a fraction), may be a quantity
QUANTITY_CLASSES = 20


@dataclass
class _Output:
    """One output of the model as the checks see it: the layer that gives it, its loss, metrics and labels."""

    name: str | None  # None: the model's one output of a dataset without named outputs
    shape: tuple
    activation: str
    path: KeyPath  # the config item of the layer that gives it
    loss_key: KeyPath
    loss: KerasObject
    metrics: list[tuple[KeyPath, KerasObject]]
    task: str
    labels: str  # 'sparse' or 'one_hot'
    class_names: list[str]
    data: str  # what gives its labels, in messages: the dataset, or the output and its column
    task_settable: bool = True  # its data takes a `task` option (a table's, not an image folder's)
    layer_class: str = ""  # the class of the layer that gives it, when that layer has no `units` (a Flatten, a pooling)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def maybe_a_quantity(self) -> str:
        """A hint, for a classification whose classes read as many numbers (or as fractions) and whose
        data takes a task: set it. Not for class numbers 0..K-1, which are how classes are often written."""
        numbers = sorted(float(name) for name in self.class_names if is_number(name))
        if not self.task_settable or len(numbers) < len(self.class_names) or not all(map(math.isfinite, numbers)):
            return ""
        if numbers == list(range(len(numbers))) or not (len(numbers) >= QUANTITY_CLASSES or any(n % 1 for n in numbers)):
            return ""
        key = f"dataset.outputs.{self.name}.task" if self.name else "dataset.task"
        return (f"; or, if its labels are a quantity ({', '.join(self.class_names[:3])}, ...), set `{key}: regression`, "
                "end in 1 unit and use loss: mse")

    @property
    def layer(self) -> str:
        return f"output '{self.name}'" if self.name else "the last layer"

    @property
    def units_key(self) -> KeyPath:
        """Where the size of the output is set: the layer's `units`, or the layer itself when it has none."""
        return self.path if self.layer_class else (*self.path, "units")

    def gives(self, units: int) -> str:
        if self.layer_class:
            return f"{self.layer}, a {self.layer_class}, gives {counted(units, 'value')} per example"
        return f"{self.layer} has {counted(units, 'unit')}"

    def ends_in(self, units: int, activation: str | None) -> str:
        """How to make the output `units` units wide: its layer's `units`, or a Dense layer after a
        layer that has none (a whole-list `--set model.layers=[Flatten]` leaves one last)."""
        if not self.layer_class:
            return f"set units: {units}"
        return f"end the model with `- Dense: {{units: {units}{f', activation: {activation}' if activation else ''}}}`"


def _without_units(layer) -> str:
    """The layer's class when it has no `units` to set (a Flatten, a pooling, a Dropout); '' when it has."""
    return "" if hasattr(layer, "units") else type(layer).__name__


def _activation(layer) -> str:
    return getattr(getattr(layer, "activation", None), "__name__", "")


def _model_outputs(config: ExperimentConfig, model: keras.Model, class_names: list[str], classes: dict | None) -> list[_Output]:
    if not config.output_names:
        last_index = len(config.model.layers) - 1
        ((last_class, _),) = config.model.layers[last_index].items()
        return [_Output(
            None, tuple(model.output_shape), _activation(model.layers[-1]), ("model", "layers", last_index, last_class),
            ("loss",), config.loss, [(key, spec) for key, spec, _ in config.metric_specs()], config.task,
            config.dataset.labels, class_names, config.dataset.name, "task" in DATASETS[config.dataset.name].options,
            _without_units(model.layers[-1]),
        )]
    items = {kwargs.get("name"): ("model", "layers", index, class_name)
             for index, item in enumerate(config.model.layers) for class_name, kwargs in item.items()}
    outputs = []
    layer_names = {layer.name for layer in model.layers}
    for (key, loss, name), tensor in zip(config.losses(), model.outputs):
        spec = config.dataset.outputs[name]
        if name in layer_names:  # a layer named by Keras, not by the config: said at model.layers
            layer, path = model.get_layer(name), items.get(name, ("model", "layers"))
        else:  # one output that no layer is named after: the last layer gives it
            ((class_name, _),) = config.model.layers[-1].items()
            layer, path = model.layers[-1], ("model", "layers", len(config.model.layers) - 1, class_name)
        outputs.append(_Output(
            name, tuple(tensor.shape), _activation(layer), path, key,
            loss, [(k, metric) for k, metric, output in config.metric_specs() if output == name], spec.task, spec.labels,
            list((classes or {}).get(name, [])),
            f"output '{name}' ({f'column {spec.label_column!r}' if spec.label_column else f'arrays {name}_train, {name}_test'})",
            layer_class=_without_units(layer),
        ))
    return outputs


def _check_logits(config: ExperimentConfig, output: _Output) -> None:
    """`from_logits` must be a boolean and say what the layer gives: probabilities
    after a softmax or sigmoid, logits (scores) after none. A mismatch trains without an error
    and predicts wrong probabilities."""
    loss, activation = output.loss, output.activation
    if "from_logits" not in loss.kwargs:
        logits = False
    else:
        logits = loss.kwargs["from_logits"]
        if not isinstance(logits, bool):
            raise config.error(
                (*output.loss_key, "from_logits"), f"must be true or false, not {logits!r} ({type(logits).__name__})"
            )
    if output.task == Task.regression or canonical(loss.name) not in CROSSENTROPY_LOSSES:
        return
    if logits and activation in SQUASHING:
        raise config.error(
            (*output.loss_key, "from_logits"),
            f"true, but {output.layer} applies a {activation}: its outputs are probabilities, not logits; "
            f"remove from_logits, or give {output.layer} no activation",
        )
    if not logits and activation == "linear":
        raise config.error(
            (*output.path, "activation"),
            f"{output.layer} has no activation, so its outputs are logits, which {loss.name} reads as "
            "probabilities: set activation: softmax (sigmoid for one unit), or `loss: {name: "
            f"{loss.name}, from_logits: true}}`",
        )


def _check_metric_labels(config: ExperimentConfig, output: _Output) -> None:
    """A metric that reads one-hot labels on integer ones (or the reverse) records nonsense quietly."""
    labels = output.labels
    for key, metric in output.metrics:
        wants = METRIC_LABELS.get(canonical(metric.name))
        if wants is not None and wants != labels and output.task != Task.regression:
            setting = f"`labels: sparse` for {output.data}" if output.name else "`dataset.labels: sparse`"
            fix = "accuracy" if wants == "one_hot" else f"accuracy, or {setting}"
            whose = f"the labels of {output.data}" if output.name else "the labels"
            raise config.error(
                key,
                f"{metric.name} reads {'one-hot' if wants == 'one_hot' else 'integer'} labels; {whose} are "
                f"{'integers' if labels == 'sparse' else 'one-hot'} ({'' if output.name else 'dataset.'}labels: "
                f"{labels}): use {fix}",
            )


def check_output(config: ExperimentConfig, model: keras.Model, class_names: list[str], classes: dict | None = None) -> None:
    """Catch a loss, label encoding and output layer that cannot work together, before training:
    for each output (`class_names`: the dataset's classes; `classes`: each named output's)."""
    for output in _model_outputs(config, model, class_names, classes):
        _check_one_output(config, output)


def _check_one_output(config: ExperimentConfig, output: _Output) -> None:
    loss = canonical(output.loss.name)
    kind = CROSSENTROPY_LOSSES.get(loss)
    units = output.shape[-1]
    last_path, activation, dataset, num_classes = output.path, output.activation, output.data, output.num_classes
    loss_name = output.loss.name
    if len(output.shape) != 2:
        raise config.error(
            last_path,
            f"the model's output is of shape {output.shape}, one per position of its input: add "
            "`- Flatten` (or GlobalAveragePooling) before the Dense layers, so that it gives one answer per example",
        )
    _check_logits(config, output)
    _check_metric_labels(config, output)
    if output.task == Task.regression:
        if kind is not None:
            raise config.error(
                output.loss_key, f"{loss_name} is a classification loss; {dataset} is a regression task: use mse",
                set_at=(*output.loss_key, "name"),  # a --set of `loss.name` is what chose it
            )
        if units != 1:
            raise config.error(output.units_key, f"a regression model ends in 1 unit; {output.gives(units)}: "
                               f"{output.ends_in(1, None)}")
        if activation == "softmax":
            raise config.error((*last_path, "activation"), "a softmax over one unit is always 1.0, whatever the "
                               "input: a regression ends in a unit with no activation (linear)")
        for key, metric in output.metrics:
            if canonical(metric.name) in CLASS_METRICS:
                raise config.error(key, f"{metric.name} counts right classes; {dataset} is a regression task, whose "
                                   "numbers are never exactly right: use mae (or mse)")
        return
    if loss in REGRESSION_LOSSES:
        raise config.error(
            output.loss_key,
            f"{loss_name} is a regression loss; {dataset} is a classification task: use "
            f"sparse_categorical_crossentropy (or binary_crossentropy with one sigmoid unit for 2 classes)"
            f"{output.maybe_a_quantity()}", set_at=(*output.loss_key, "name"),
        )
    if units == 1 and activation == "softmax":
        raise config.error(
            (*last_path, "activation"),
            "a softmax over one unit is always 1.0, whatever the input: use activation: sigmoid for one unit, "
            f"or softmax over {num_classes} units",
        )
    if kind == "binary":
        if num_classes != 2:
            raise config.error(
                output.loss_key,
                f"{loss_name} is for 2 classes; {dataset} has {num_classes}: use "
                f"sparse_categorical_crossentropy with a softmax of {num_classes} units{output.maybe_a_quantity()}",
            )
        if units != 1:
            other = "" if output.layer_class else f" (or use sparse_categorical_crossentropy with {units} softmax units)"
            raise config.error(output.units_key, f"binary classification ends in 1 sigmoid unit; {output.gives(units)}: "
                               f"{output.ends_in(1, 'sigmoid')}{other}")
        return
    if kind is None:
        return  # a loss dlcli has no rule for: Keras will say if it does not fit
    labels = output.labels
    if kind != labels:
        key = "labels" if output.name else "dataset.labels"
        fix = f"`{key}: one_hot`" if kind == "one_hot" else f"`{key}: sparse` (the default)"
        other = "sparse_categorical_crossentropy" if kind == "one_hot" else "categorical_crossentropy"
        where = ("dataset", "outputs", output.name, "labels") if output.name else ("dataset", "labels")
        raise config.error(
            where if labels == "one_hot" else output.loss_key,
            f"{loss_name} takes {'one-hot' if kind == 'one_hot' else 'integer'} labels: set {fix}"
            f"{' for ' + dataset if output.name else ''}, or use {other}",
        )
    if units != num_classes:
        raise config.error(
            output.units_key,
            f"{output.gives(units)} but {dataset} has {num_classes} classes; {output.ends_in(num_classes, 'softmax')}"
            f"{output.maybe_a_quantity()}",
        )
    if activation == "sigmoid" and num_classes > 2:
        raise config.error(
            (*last_path, "activation"),
            f"sigmoid scores each of the {num_classes} classes on its own; with {loss_name} "
            "use activation: softmax",
        )
