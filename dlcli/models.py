"""Config -> compiled Keras model, every name resolved through Keras's own modules.

A name or argument Keras does not accept becomes a ConfigError at the key path and line
that wrote it, with the nearest valid name.
"""

from __future__ import annotations

import inspect
import re
from types import ModuleType
from typing import Any

import keras

from dlcli.config import ExperimentConfig, KerasObject, KeyPath, did_you_mean

# Layers that would run code or load files named in a config: a config stays data.
REFUSED_LAYERS = {
    "Lambda": "runs Python code from the config",
    "TFSMLayer": "loads a SavedModel from an arbitrary path",
}
# The input shape comes from the dataset, never from a layer's arguments.
INPUT_ARGUMENTS = {"input_shape", "input_dim", "batch_input_shape"}
# Helpers exported next to the objects in keras.losses/metrics/optimizers/activations.
NOT_OBJECT_NAMES = {"get", "serialize", "deserialize", "Loss", "Metric", "Optimizer", "Reduction"}


def _public_classes(module: ModuleType, base: type) -> dict[str, type]:
    return {
        name: value
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, base) and value is not base
        and not name.startswith("_")
    }


def _canonical(name: str) -> str:
    """'sparse_categorical_crossentropy' and 'SparseCategoricalCrossentropy' compare equal."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _object_names(module: ModuleType) -> list[str]:
    """The names Keras's `module.get` accepts, in snake case, for suggestions."""
    return [
        _snake_case(name) for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and name not in NOT_OBJECT_NAMES
    ]


def _accepted_arguments(cls: type) -> tuple[set[str], list[str]]:
    """(every keyword the constructor accepts, the ones it requires), following **kwargs up the MRO."""
    accepted: set[str] = set()
    required: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[1:]
        named = [p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if klass is cls:
            required = [p.name for p in named if p.default is p.empty]
        accepted |= {p.name for p in named}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return accepted, required


def _check_arguments(config: ExperimentConfig, path: KeyPath, cls: type, kwargs: dict[str, Any]) -> None:
    accepted, required = _accepted_arguments(cls)
    for key in kwargs:
        if key in INPUT_ARGUMENTS:
            raise config.error(
                (*path, key), f"remove '{key}': the input shape comes from the dataset"
            )
        if key not in accepted:
            hint = did_you_mean(key, accepted) or f"; {cls.__name__} takes {', '.join(sorted(accepted))}"
            raise config.error(path, f"unexpected argument '{key}'{hint}")
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise config.error(path, f"missing required argument '{missing[0]}'")


def _construct(config: ExperimentConfig, path: KeyPath, cls: type, kwargs: dict[str, Any]) -> Any:
    """cls(**kwargs), with Keras's complaint located at the argument it names."""
    _check_arguments(config, path, cls, kwargs)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        message = str(error).strip().splitlines()[0]
        named = [key for key in kwargs if re.search(rf"\b{re.escape(key)}\b", message)]
        if "activation" in kwargs and "activation" in message:
            named = ["activation"]
            message += did_you_mean(str(kwargs["activation"]), _object_names(keras.activations))
        where = (*path, named[0]) if named else path
        raise config.error(where, message) from error


def build_layer(config: ExperimentConfig, path: KeyPath, class_name: str, kwargs: dict[str, Any]):
    if class_name in REFUSED_LAYERS:
        raise config.error(
            path, f"{class_name} {REFUSED_LAYERS[class_name]} and is refused; use Keras's built-in layers"
        )
    layers = {
        name: cls
        for name, cls in _public_classes(keras.layers, keras.layers.Layer).items()
        if name not in REFUSED_LAYERS
    }
    if class_name not in layers:
        raise config.error(path, f"unknown layer '{class_name}'{did_you_mean(class_name, layers)}")
    return _construct(config, (*path, class_name), layers[class_name], kwargs)


def build_model(config: ExperimentConfig, input_shape: tuple[int, ...]) -> keras.Sequential:
    """The Sequential stack of `model.layers` on the dataset's input shape (not compiled)."""
    model = keras.Sequential([keras.Input(shape=input_shape)], name=re.sub(r"\W", "_", config.name))
    shape: tuple = (None, *input_shape)
    for index, item in enumerate(config.model.layers):
        ((class_name, kwargs),) = item.items()
        path = ("model", "layers", index)
        layer = build_layer(config, path, class_name, kwargs)
        try:
            model.add(layer)
        except (TypeError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0]
            advice = (
                "; convolution and pooling layers need images (batch, height, width, channels), "
                "so put Flatten after them, not before"
                if re.match(r"(Conv|MaxPool|AveragePool|GlobalM|GlobalA)", class_name) and len(shape) == 2
                else ""
            )
            raise config.error(
                (*path, class_name), f"cannot take the previous output of shape {shape}: {first_line}{advice}"
            ) from error
        shape = model.output_shape
    return model


def _resolve(config: ExperimentConfig, path: KeyPath, spec: KerasObject, module: ModuleType, base: type, kind: str):
    """A loss/metric/optimizer: its name as Keras's `get` takes it, or an instance when configured."""
    if not spec.kwargs:
        try:
            module.get(spec.name)
        except (ValueError, TypeError):
            pass
        else:
            return spec.name
    classes = {_canonical(name): cls for name, cls in _public_classes(module, base).items()}
    cls = classes.get(_canonical(spec.name))
    if cls is None:
        try:  # an alias such as 'mse': find the class of the function it stands for
            cls = classes.get(_canonical(module.get(spec.name).__name__))
        except (ValueError, TypeError, AttributeError):
            cls = None
    if cls is None:
        # Optimizers are written in lower case ('rmsprop'), losses and metrics in snake case.
        names = [cls.__name__.lower() for cls in classes.values()] if kind == "optimizer" else _object_names(module)
        raise config.error(path, f"unknown {kind} '{spec.name}'{did_you_mean(spec.name, names)}")
    return _construct(config, path, cls, spec.kwargs)


def compile_model(config: ExperimentConfig, model: keras.Model) -> None:
    optimizer = _resolve(config, ("optimizer",), config.optimizer, keras.optimizers, keras.optimizers.Optimizer, "optimizer")
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    loss = _resolve(config, ("loss",), config.loss, keras.losses, keras.losses.Loss, "loss")
    metrics = [
        _resolve(config, ("metrics", index), metric, keras.metrics, keras.metrics.Metric, "metric")
        for index, metric in enumerate(config.metrics)
    ]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
