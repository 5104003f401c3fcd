"""`dlcli export`: a run's model, its preprocessing inside, as a SavedModel, ONNX or TFLite file,
checked against the Keras model it came from by the artifact's own runtime.

Keras 3's `Model.export` writes each format (ONNX through tf2onnx, TFLite through the
LiteRT converter). The artifact takes raw inputs, as `dlcli predict` does: an image's
pixels 0-255 at the run's image size, a table's raw feature values.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlcli import __version__
from dlcli.build.inference import PREPROCESSING, STANDARDIZATION, inference_model, predicted_classes
from dlcli.choices import ExportFormat, InputKind, Task
from dlcli.errors import DlcliError, ExportMismatch, reason_of
from dlcli.outputs import unusable_output, write_atomic
from dlcli.store.documents import Inputs
from dlcli.store.runs import EXPORT_DIR, RunFolder

# format -> (Keras's name for it, the artifact's file suffix, packages it needs)
FORMATS: dict[ExportFormat, tuple[str, str, tuple[str, ...]]] = {
    ExportFormat.saved_model: ("tf_saved_model", "", ()),
    ExportFormat.onnx: ("onnx", ".onnx", ("tf2onnx", "onnx", "onnxruntime")),
    ExportFormat.tflite: ("litert", ".tflite", ()),
}
# The largest difference allowed between the artifact's outputs and the Keras model's,
# relative to the outputs' size (probabilities: absolute; a regression's values: relative).
TOLERANCE = 1e-4
SAMPLE_SIZE = 256


@dataclass
class ExportReport:
    path: Path
    largest_difference: float
    same_prediction: float | None  # a classifier's: the share of the sample whose predicted class agrees
    sample: int
    sample_source: str


# What a model or an artifact takes and gives: one array, or (a table's) named arrays.
Arrays = np.ndarray | dict[str, np.ndarray]


def _run_saved_model(path: Path) -> Callable[[Arrays], Any]:
    loaded = tf.saved_model.load(str(path))  # kept: its functions need its variables alive
    return lambda x: loaded.serve(tf.nest.map_structure(tf.convert_to_tensor, x))


def _run_onnx(path: Path) -> Callable[[Arrays], Any]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, x if isinstance(x, dict) else {name: x})


def _run_tflite(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai_edge_litert
        warnings.simplefilter("ignore")
        # without the default XNNPACK delegate, whose "INFO: Created ... delegate" line TensorFlow's
        # log level does not silence; the check needs no speed
        interpreter = tf.lite.Interpreter(
            str(path), experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(source, x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(target))

    return run


RUNTIMES: dict[ExportFormat, Callable[[Path], Callable[[np.ndarray], np.ndarray]]] = {
    ExportFormat.saved_model: _run_saved_model, ExportFormat.onnx: _run_onnx, ExportFormat.tflite: _run_tflite,
}


def _sample(run: RunFolder, model: keras.Model, inputs: Inputs) -> tuple[np.ndarray, str]:
    """Raw inputs to check the artifact on: the run's test split when its data is here, else random ones."""
    from dlcli.config import load_config
    from dlcli.data import load_dataset
    from dlcli.store.runs import CONFIG_FILE

    shape, dtype = tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype
    try:
        splits = load_dataset(load_config(run.file(CONFIG_FILE)))
    except DlcliError:
        splits = None
    if inputs.kind == "table":
        return _table_sample(splits, inputs)
    if splits is not None:
        from dlcli.data.examples import ArrayPool
        from dlcli.data.pipeline import raw_examples

        test = splits.test
        chosen = test.indices[:SAMPLE_SIZE]
        if isinstance(test.pool, ArrayPool):
            x = test.pool.x[chosen]
            if inputs.kind == "text":
                return x.astype(object), "the test split"
            if inputs.kind == "image":  # the dataset's units -> an image's 0-255 pixels
                x = np.clip(np.rint(x * (255.0 / splits.value_range)), 0, 255)
            return x.astype(dtype), "the test split"
        pixels = [p for _, p in raw_examples(test.pool.subset(chosen), SAMPLE_SIZE)]
        if pixels:
            return np.asarray(pixels[0]), "the test split"
    if inputs.kind == "text":
        return np.array(["a test sentence", "another one", ""], dtype=object), "three made-up texts (no data here)"
    rng = np.random.default_rng(0)
    high = 256 if inputs.kind == "image" else 1.0
    x = rng.integers(0, high, (64, *shape)) if inputs.kind == "image" else rng.random((64, *shape))
    return x.astype(dtype), "random inputs (the run's data is not on this machine)"


def _table_sample(splits, inputs: Inputs) -> tuple[dict[str, np.ndarray], str]:
    """A table's raw named inputs to check the artifact on: its test split's, else made up."""
    if splits is not None:
        test = splits.test
        chosen = test.indices[:SAMPLE_SIZE]
        return {name: test.pool.inputs[name][chosen] for name in inputs.table_inputs}, "the test split"
    rng = np.random.default_rng(0)
    made_up = {}
    for name, spec in inputs.table_inputs.items():
        if spec.kind == InputKind.text:
            made_up[name] = np.array(["a test sentence", "another one", ""], dtype=object)
        elif spec.kind == InputKind.categorical:  # blank cells, as training would read them
            import pandas as pd

            from dlcli.data.files import categorical_cells

            made_up[name] = categorical_cells(pd.DataFrame({column: [None] * 3 for column in spec.columns}), spec.columns)
        else:
            made_up[name] = rng.random((3, *spec.shape)).astype("float32")
    return made_up, "three made-up rows (the run's data is not on this machine)"


def _listed(outputs: Any, names: list[str]) -> list[np.ndarray]:
    """A model's or an artifact's outputs as arrays in the order of `names` (a table's outputs)."""
    if isinstance(outputs, dict):
        return [np.asarray(outputs[name]) for name in names] if set(names) <= set(outputs) else [
            np.asarray(value) for value in outputs.values()]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(value) for value in outputs]
    return [np.asarray(outputs)]


def export_run(
    run: RunFolder, export_format: ExportFormat | str, output: Path | None = None, fold: int | None = None,
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Write the artifact, load it with its own runtime, compare it with the Keras model on a
    sample; past `tolerance` remove it and raise ExportMismatch."""
    if export_format not in FORMATS:
        raise DlcliError(f"--format {export_format}: choose one of {', '.join(FORMATS)}")
    keras_format, suffix, packages = FORMATS[export_format]
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise DlcliError(
            f"exporting to {export_format} needs {', '.join(missing)}: pip install 'dlcli[export]'"
        )
    default_name = f"model{suffix or '_saved_model'}"
    if output is not None and (output / "saved_model.pb").is_file():
        raise DlcliError(f"--output {output}: a SavedModel exists there; remove it or give another --output")
    if output is not None and (not output.name or output.is_dir()):
        raise DlcliError(f"--output {output}: a folder; name the artifact to write in it, e.g. {output / default_name}")
    if output is not None and output.suffix.lower() == ".json":
        raise DlcliError(f"--output {output}: .json names the description written beside the artifact "
                         f"({output.with_suffix('')}{suffix}.json); name the artifact itself, e.g. {output.with_suffix(suffix)}")
    path = output or run.file(EXPORT_DIR) / default_name
    if why := unusable_output(path, folder=not suffix):  # a SavedModel is a folder
        raise DlcliError(f"--output {path}: {why}")
    other = next((s for _, s, _ in FORMATS.values() if s and s != suffix and path.suffix.lower() == s), None)
    if other:
        raise DlcliError(f"--output {path}: a {other} name for a {export_format} export; name it for what it holds")
    for taken in (path, Path(f"{path}.json")):  # the artifact, and what it takes and gives beside it
        if taken.exists():
            raise DlcliError(f"{taken} exists; remove it or give another --output")
    model, inputs = inference_model(run, fold)
    if inputs.kind == "text" and export_format != ExportFormat.saved_model:
        raise DlcliError(
            f"run {run.id} reads text: its vectorizer exports only as a SavedModel (`--format saved_model`)"
        )
    table = inputs.kind == "table"
    if table and export_format == ExportFormat.tflite:
        raise DlcliError(f"run {run.id} has named inputs and outputs: export it as saved_model or onnx")
    preprocessing_inside = not (table and export_format != ExportFormat.saved_model and any(
        spec.kind != InputKind.features for spec in inputs.table_inputs.values()))
    earlier = preprocessing_inside and any(_earlier_standardization(layer) for layer in _every_layer(model))
    if export_format == ExportFormat.onnx and earlier:
        raise DlcliError(
            f"run {run.id} standardizes its inputs with a Keras Normalization layer (an earlier dlcli's), which "
            "tf2onnx cannot convert (its statistics become inputs of the ONNX graph): export it as saved_model or "
            "tflite, or train it again"
        )
    x, source = _sample(run, model, inputs)
    if not preprocessing_inside:
        # tf2onnx takes no string tensors: the trained model goes on its encoded inputs, and the
        # text and category encodings stay outside (<artifact>.json says so)
        from dlcli.build.saved import load_run_model
        from dlcli.store.runs import model_file, preprocessing_file

        encoded = load_run_model(run, preprocessing_file(None))(x)
        x = {name: np.asarray(value) for name, value in encoded.items()}
        model = load_run_model(run, model_file(None))
    names = list(inputs.table_outputs)
    called = model(tf.nest.map_structure(tf.convert_to_tensor, x), training=False)  # a called model exports
    expected = _listed(called, names)
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    try:
        with _written(path, export_format), warnings.catch_warnings():
            # Keras's tf2onnx shim asks NumPy for np.object, which warns of NumPy's future, not of this export
            warnings.filterwarnings("ignore", category=FutureWarning, module="keras.src.export.tf2onnx_lib")
            path.parent.mkdir(parents=True, exist_ok=True)
            model.export(str(path), format=keras_format, verbose=False)
        actual = _listed(RUNTIMES[export_format](path)(x), names)
        largest = max((float(np.max(np.abs(a - e))) for a, e in zip(actual, expected) if e.size), default=0.0)
        scale = max([1.0, *(float(np.max(np.abs(e))) for e in expected if e.size)])
        classified = [position for position, name in enumerate(names) if inputs.table_outputs[name].class_names] if table \
            else ([0] if inputs.task == Task.classification else [])
        same = min((float(np.mean(predicted_classes(actual[i]) == predicted_classes(expected[i]))) for i in classified),
                   default=None)
        if not largest <= tolerance * scale:
            raise ExportMismatch(
                f"the {export_format} export of run {run.id} differs from its Keras model by {largest:.3g} "
                f"(tolerance {tolerance * scale:g}) on {len(x)} inputs from {source}; it was removed"
            )
        with _written(path, export_format):
            if table:
                _describe_table(path, export_format, inputs, preprocessing_inside)
            else:
                _describe(path, export_format, model, inputs)
    except BaseException:  # nothing half written is left to block the next export
        _remove(path)
        for folder in made:  # the folders this export made, left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return ExportReport(path, largest, same, len(next(iter(x.values()))) if isinstance(x, dict) else len(x), source)


@contextlib.contextmanager
def _written(path: Path, export_format: str) -> Iterator[None]:
    """Around writing the export: a full disk or a folder that cannot be written is one line about
    `path`, not TensorFlow's traceback. (Running the export to check it is not writing it.)"""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else reason_of(error)
        full = isinstance(error, tf.errors.ResourceExhaustedError) or getattr(error, "errno", None) == errno.ENOSPC
        raise DlcliError(f"{path}: the {export_format} export could not be written ({why}); nothing of it was "
                         f"kept: {'free some space, or ' if full else ''}give another --output") from None


def _earlier_standardization(layer: keras.layers.Layer) -> bool:
    """The preprocessing's standardization as dlcli saved it before it was a Rescaling (a model's
    own Normalization layers are the user's, named otherwise, and exported as Keras can)."""
    named = layer.name == STANDARDIZATION or layer.name.endswith(f"_{STANDARDIZATION}")
    return named and isinstance(layer, keras.layers.Normalization)


def _every_layer(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _every_layer(layer)


def _remove(path: Path) -> None:
    """The artifact and its description, gone; what cannot be there (a path under a file) is no error."""
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else _unlink(path)
    _unlink(Path(f"{path}.json"))


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _describe(path: Path, export_format: str, model: keras.Model, inputs: dict[str, Any]) -> None:
    """`<artifact>.json`: what the artifact takes and gives, and what made it."""
    stage = model.layers[1]  # the first (or only) fold's preprocessing, then its model
    preprocessing = [layer.name for layer in stage.get_layer(PREPROCESSING).layers[1:]]
    trained = stage.layers[-1]
    preprocessing += [
        layer.name for layer in getattr(trained, "layers", []) if type(layer).__name__ == "ApplicationPreprocessing"
    ]
    write_atomic(Path(f"{path}.json"), json.dumps({
        "format": export_format,
        "input": {"kind": inputs.kind, "shape": [None, *model.inputs[0].shape[1:]], "dtype": str(model.inputs[0].dtype),
                  "columns": inputs.columns},
        "output": {"shape": [None, *model.outputs[0].shape[1:]], "task": inputs.task},
        "class_names": inputs.class_names,
        "class_mapping": inputs.class_mapping,
        "preprocessing_inside": preprocessing,
        "encoding": inputs.encoding,
        "value_range": inputs.value_range,
        "versions": {"dlcli": __version__, "keras": keras.__version__, "tensorflow": tf.__version__},
    }, indent=2) + "\n")


def _describe_table(path: Path, export_format: str, inputs: Inputs, preprocessing_inside: bool) -> None:
    """`<artifact>.json` of a table's model: its named inputs (raw, or encoded when the encodings
    stay outside) and outputs, and what made it."""
    write_atomic(Path(f"{path}.json"), json.dumps({
        "format": export_format,
        "inputs": {name: {**spec.model_dump(), "given": "raw" if preprocessing_inside else "encoded"}
                   for name, spec in inputs.table_inputs.items()},
        "outputs": {name: spec.model_dump() for name, spec in inputs.table_outputs.items()},
        "preprocessing_inside": preprocessing_inside,
        "versions": {"dlcli": __version__, "keras": keras.__version__, "tensorflow": tf.__version__},
    }, indent=2) + "\n")
