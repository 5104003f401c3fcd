"""What a trained model needs to be used on new inputs, kept with its run, and the model that takes raw inputs.

Training writes, beside `model.keras`:
- `preprocessing.keras` (one per fold: `preprocessing-fold-N.keras`): a small Keras model
  from raw inputs to what the model was trained on — pixels 0–255 rescaled as the dataset
  was (digits hold 0–16), the normalization or standardization statistics of the training
  split, the text vectorizer with the vocabulary fitted on it. Keras saves its layers and
  vocabulary, so a run folder copied elsewhere still predicts.
- `inputs.json`: the kind of input (image, array, text), its shape, the table columns, the
  class names and mapping.

`inference_model(run)` joins them: one Keras model from raw inputs to outputs, which
`dlcli predict` runs and `dlcli export` exports.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from dlcli.build.saved import PUT_BACK, fitting_inputs, load_run_model, save_model_atomic
from dlcli.choices import InputKind, Task
from dlcli.config import ExperimentConfig, load_config
from dlcli.data.examples import Splits
from dlcli.errors import DlcliError, listed
from dlcli.store.documents import InputRecord, Inputs, OutputRecord, read_summary
from dlcli.store.runs import CONFIG_FILE, INPUTS_FILE, RunFolder, model_file, preprocessing_file

# Pixels of image files, whatever the dataset's own range: an image input always takes 0-255.
PIXEL_RANGE = 255.0


def input_kind(splits: Splits) -> str:
    """'table' (named inputs), 'text' (raw strings), 'image' (pixels of an image, 0-255) or 'array' (raw values)."""
    if splits.inputs:
        return "table"
    if splits.encoding.vectorizer is not None:
        return "text"
    return "image" if len(splits.input_shape) == 3 and splits.value_range else "array"


# The preprocessing's standardization layer (a named input's: <input>_standardization)
STANDARDIZATION = "standardization"
# The model of the preprocessing put before the trained model (preprocessing.keras)
PREPROCESSING = "preprocessing"
# Why inputs.json can disagree with the run's model or records, and what to do
INPUTS_NOT_THE_RUNS = ("the file was edited or comes from another run (delete it and dlcli writes it again from the run's "
                       "config and data), or the data's classes changed since training (train again)")


def _standardization(encoding, shape: tuple[int, ...], name: str) -> keras.layers.Layer:
    """(x - mean) / std per feature (every axis of an example), as the training stream standardizes.
    A Rescaling by 1/std and -mean/std, not a Normalization(mean=, variance=): tf2onnx turns a
    Normalization's statistics into inputs of the ONNX graph that nobody feeds, where Rescaling's
    arrays stay constants inside it."""
    std = encoding.std.reshape(shape)
    return keras.layers.Rescaling(1.0 / std, offset=-encoding.mean.reshape(shape) / std, dtype="float32", name=name)


def _table_preprocessing(splits: Splits) -> keras.Model:
    """A table's raw named inputs (texts; numbers; categorical cells as `column=value`) -> the model's."""
    raws, encoded = {}, {}
    for name, spec in splits.inputs.items():
        encoding = spec.encoding
        if spec.kind == InputKind.features:
            raw = x = keras.Input(shape=spec.shape, dtype="float32", name=name)
            if encoding.mean is not None:
                x = _standardization(encoding, spec.shape, f"{name}_{STANDARDIZATION}")(x)
        else:
            raw = keras.Input(shape=() if spec.kind == InputKind.text else (len(spec.columns),), dtype="string", name=name)
            x = keras.ops.cast(encoding.vectorizer(raw), encoding.dtype)
        raws[name], encoded[name] = raw, x
    return keras.Model(raws, encoded, name=PREPROCESSING)


def preprocessing_model(splits: Splits) -> keras.Model:
    """Raw inputs -> the model's inputs, as the training stream encoded them (`Encoding`)."""
    if splits.inputs:
        return _table_preprocessing(splits)
    encoding, kind = splits.encoding, input_kind(splits)
    if kind == "text":
        raw = keras.Input(shape=(), dtype="string", name="text")
        return keras.Model(raw, encoding.vectorizer(raw), name=PREPROCESSING)
    shape = tuple(splits.input_shape)
    if encoding.vocabulary_size is not None:  # token indices: passed on as integers
        raw = keras.Input(shape=shape, dtype="int32", name="tokens")
        return keras.Model(raw, raw, name=PREPROCESSING)
    raw = keras.Input(shape=shape, dtype="uint8" if kind == "image" else "float32", name=kind)
    # an image file's 0-255 pixels back in the dataset's own units, then the encoding's scale;
    # in float32 whatever the mixed-precision policy, as the training stream encodes
    units = splits.value_range / PIXEL_RANGE if kind == "image" else 1.0
    x = keras.layers.Rescaling(units / encoding.scale, dtype="float32", name="rescaling")(raw)
    if encoding.mean is not None:
        x = _standardization(encoding, shape, STANDARDIZATION)(x)
    return keras.Model(raw, x, name=PREPROCESSING)


def write_inference_files(run: RunFolder, config: ExperimentConfig, folds: list[Splits]) -> None:
    """`inputs.json` and each fold's `preprocessing.keras`, from the data the run trains on."""
    numbered = [(None, folds[0])] if not config.training.kfold else list(enumerate(folds, start=1))
    for fold, splits in numbered:
        save_model_atomic(preprocessing_model(splits), run.file(preprocessing_file(fold)))
    first = folds[0]
    task = config.task
    if first.outputs:  # a table's: each output has its own; a classifier when one output is
        task = Task.classification if any(output.class_names for output in first.outputs.values()) else Task.regression
    Inputs(
        kind=input_kind(first), input_shape=list(first.input_shape), columns=first.input_columns, task=task,
        class_names=first.class_names, class_mapping=first.class_mapping,
        folds=len(folds) if config.training.kfold else None, value_range=first.value_range,
        encoding=first.encoding.describe, outputs="logits" if outputs_are_logits(config) else "probabilities",
        table_inputs={
            name: InputRecord(kind=spec.kind, columns=spec.columns, shape=list(spec.shape), encoding=spec.encoding.describe)
            for name, spec in first.inputs.items()
        },
        table_outputs={
            name: OutputRecord(column=spec.column, class_names=spec.class_names,
                              outputs="logits" if outputs_are_logits(config, name) else "probabilities")
            for name, spec in first.outputs.items()
        },
        table_format=config.dataset.name if first.inputs else None,
    ).write(run.file(INPUTS_FILE))


def read_inputs(run: RunFolder) -> Inputs:
    """The run's `inputs.json`; written now, from its data, for a run trained before it existed."""
    path = run.file(INPUTS_FILE)
    try:
        inputs = Inputs.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, TypeError):  # missing, damaged, or not what Inputs says:
        from dlcli.data import load_dataset, load_folds  # made again from the run's config and data

        config = load_config(run.file(CONFIG_FILE))
        write_inference_files(run, config, load_folds(config) if config.training.kfold else [load_dataset(config)])
        inputs = Inputs.from_dict(json.loads(path.read_text(encoding="utf-8")))
    _check_recorded_classes(run, inputs)
    return inputs


def _check_recorded_classes(run: RunFolder, inputs: Inputs) -> None:
    """inputs.json names the classes summary.json recorded when the run was trained: an answer
    named by another class (a file edited or copied from another run) would be wrong without a word."""
    try:
        recorded = (read_summary(run).get("data") or {}).get("classes")
    except DlcliError:  # a damaged or missing summary.json: nothing recorded to compare
        return
    if recorded and inputs.class_names and list(inputs.class_names) != list(recorded):
        raise DlcliError(
            f"{run.file(INPUTS_FILE)} names the classes {listed(inputs.class_names)}, and run {run.id} was trained on "
            f"{listed(recorded)}: {INPUTS_NOT_THE_RUNS}"
        )


def outputs_are_logits(config: ExperimentConfig, output: str | None = None) -> bool:
    """Whether the model (its named `output`) was trained on logits (`loss: {from_logits: true}`): its
    outputs are no probabilities yet."""
    return any(bool(loss.kwargs.get("from_logits")) for _, loss, name in config.losses() if output in (None, name))


def class_probabilities(outputs: np.ndarray, logits: bool = False) -> np.ndarray:
    """A classifier's outputs (N, outputs) as one probability per class: a single sigmoid unit as
    [1 - p, p]; `logits` squashed first, by a sigmoid or a softmax, as `inference_model` does."""
    if logits:
        squash = keras.ops.sigmoid if outputs.shape[1] == 1 else keras.ops.softmax
        outputs = keras.ops.convert_to_numpy(squash(outputs))
    return np.concatenate([1 - outputs, outputs], axis=1) if outputs.shape[1] == 1 else outputs


def predicted_classes(outputs: np.ndarray, logits: bool = False) -> np.ndarray:
    """The class each row of a classifier's outputs names: the likeliest of `class_probabilities`
    (a single sigmoid unit: 1 above 0.5, a logit above 0). evaluate, predict, export's check and
    visualize all decide a class here, so they never disagree on an example."""
    return class_probabilities(outputs, logits).argmax(axis=-1)


def class_names(inputs: Inputs, count: int) -> list[str]:
    """The run's class names (inputs.json), or the class indices as text when it has none."""
    return [str(name) for name in (inputs.class_names or range(count))]


def check_class_names(run: RunFolder, names: list[str], units: int, output: str | None = None) -> None:
    """inputs.json names as many classes as the model has outputs (a single sigmoid unit: 2); a
    hand-edited or copied file would otherwise name answers by the wrong classes, or by none. A
    regression names none, and is not checked."""
    classes = 2 if units == 1 else units
    if names and len(names) != classes:
        given = f"output '{output}' of run {run.id}" if output else f"run {run.id}'s model"
        raise DlcliError(
            f"{run.file(INPUTS_FILE)} names {len(names)} classes, but {given} gives {classes}: {INPUTS_NOT_THE_RUNS}"
        )


def check_fold(run: RunFolder, inputs: Inputs, fold: int | None) -> None:
    """`--fold` names one of the run's folds, of a k-fold run."""
    folds = inputs.folds
    if fold is not None and not folds:
        raise DlcliError(f"--fold {fold}: run {run.id} is not a k-fold run")
    if fold is not None and not 1 <= fold <= folds:
        raise DlcliError(f"--fold {fold}: run {run.id} has folds 1 to {folds}")


def _named_apart(model: keras.Model) -> None:
    """A trained model named as the preprocessing before it (a run named `preprocessing`) renamed in
    memory: Keras takes no two layers of one name in one model."""
    if model.name == PREPROCESSING:
        model.name = f"{PREPROCESSING}_model"


def inference_model(run: RunFolder, fold: int | None = None) -> tuple[keras.Model, Inputs]:
    """One model from raw inputs to outputs: the preprocessing, then the trained model. A k-fold
    run's is the mean of its folds' models (each behind its own preprocessing), or fold `fold`'s."""
    inputs = read_inputs(run)
    if inputs.kind == "table":
        check_fold(run, inputs, fold)
        return _table_inference_model(run, inputs), inputs
    folds = inputs.folds
    check_fold(run, inputs, fold)
    chosen = [None] if not folds else ([fold] if fold is not None else list(range(1, folds + 1)))
    stages = []
    for number in chosen:  # each fold's preprocessing and model in a model of its own: their names repeat
        preprocessing, model = load_run_model(run, preprocessing_file(number)), load_run_model(run, model_file(number))
        _named_apart(model)
        entry = keras.Input(shape=preprocessing.input_shape[1:], dtype=preprocessing.inputs[0].dtype)
        with fitting_inputs(run, model_file(number)):
            given = model(preprocessing(entry))
            stages.append(keras.Model(entry, given, name=f"fold_{number}" if number else "model"))
    taken = list(stages[0].input_shape[1:])
    if inputs.kind in ("image", "array") and inputs.input_shape != taken:  # predict reads its inputs at this shape
        raise DlcliError(
            f"{run.file(INPUTS_FILE)} says the model takes inputs of shape {inputs.input_shape}, but run {run.id}'s "
            f"takes {taken}: {INPUTS_NOT_THE_RUNS}"
        )
    shape = tuple(stages[0].outputs[0].shape)
    if len(shape) != 2:  # classes or values: one row of them per input
        raise DlcliError(
            f"run {run.id}: its {model_file(chosen[0])} gives outputs of shape {shape}, not a row of scores per input: "
            f"it was replaced (by its preprocessing.keras?); {PUT_BACK}"
        )
    check_class_names(run, inputs.class_names, stages[0].outputs[0].shape[-1])
    raw = keras.Input(shape=stages[0].input_shape[1:], dtype=stages[0].inputs[0].dtype, name="raw")
    outputs = [stage(raw) for stage in stages]
    if inputs.outputs == "logits" and inputs.task == Task.classification:  # trained `from_logits`
        squash = keras.activations.sigmoid if stages[0].outputs[0].shape[-1] == 1 else keras.activations.softmax
        outputs = [keras.layers.Activation(squash, name=f"probabilities_{i}")(o) for i, o in enumerate(outputs)]
    output = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="mean_of_folds")(outputs)
    return keras.Model(raw, output, name=f"{run.id}_inference".replace("-", "_")), inputs


def _table_inference_model(run: RunFolder, inputs: Inputs) -> keras.Model:
    """A table's model from its raw named inputs to a dict of its named outputs (probabilities for
    a classification output trained on logits)."""
    preprocessing, model = load_run_model(run, preprocessing_file(None)), load_run_model(run, model_file(None))
    _named_apart(model)
    raw = {tensor.name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=tensor.name)
           for tensor in preprocessing.inputs}
    with fitting_inputs(run, model_file(None)):
        given = model(preprocessing(raw))
    given = given if isinstance(given, (list, tuple)) else [given]
    outputs = {}
    for (name, output), tensor in zip(inputs.table_outputs.items(), given):
        check_class_names(run, output.class_names, tensor.shape[-1], name)
        if output.outputs == "logits" and output.class_names:
            squash = keras.activations.sigmoid if tensor.shape[-1] == 1 else keras.activations.softmax
            tensor = keras.layers.Activation(squash, name=f"{name}_probabilities")(tensor)
        outputs[name] = tensor
    return keras.Model(raw, outputs, name=f"{run.id}_inference".replace("-", "_"))
