"""`dlcli visualize`: what a trained convnet learned, as *Deep Learning with Python* shows it
(first edition 5.4, second edition 9.4).

- `activations`: every channel of a layer's output for one image, as a grid of tiles;
- `filters`: the input pattern each filter responds to most, by gradient ascent from noise;
- `heatmap`: Grad-CAM, which part of the image made the model choose a class.

The image is read and prepared as `dlcli predict` reads it (decoded and resized by the run's
input pipeline, then its `preprocessing.keras`); the model is the run's `model.keras`.

A layer may sit inside a nested model (a `keras.applications` base is one layer of the
outer model), and Keras cannot make a model from the outer inputs to such a layer's output.
So the model is run as it is, with the chosen layers' calls recorded (`_recording`): one
way for stacks, graphs and nested bases alike. Nothing outside this command imports it.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dlcli.build.inference import check_class_names, check_fold, class_names, class_probabilities, read_inputs
from dlcli.build.saved import load_run_model
from dlcli.choices import Task
from dlcli.errors import DlcliError
from dlcli.keys import did_you_mean
from dlcli.outputs import write_atomic
from dlcli.store.documents import Inputs
from dlcli.store.runs import VISUALIZATIONS_DIR, RunFolder, model_file, preprocessing_file

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D,
                keras.layers.Conv2DTranspose)
POOLINGS = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)
TILES_PER_ROW = 16  # the book's activation grids
PATTERNS_PER_ROW = 8
FILTERS_AT_ONCE = 16  # patterns grown together in one batch: each its own image and loss


class _Recorded(Exception):
    """Raised by a recorded layer once every chosen output is in: the rest of the model need not run."""

    _keras_call_info_injected = True  # Keras re-raises an exception so marked as it is


@dataclass
class Inspected:
    """A run's trained model, opened to be looked inside."""

    run: RunFolder
    model: keras.Model
    preprocessing: keras.Model
    inputs: Inputs  # inputs.json
    fold: int | None = None  # the fold whose model it is, of a k-fold run

    def __post_init__(self):
        self.layers = named_layers(self.model)

    # --- choosing layers ------------------------------------------------------------------

    def spatial(self) -> list[str]:
        """The layers whose output is a grid of feature maps (height x width x channels), in order."""
        return [name for name, layer in self.layers.items() if _is_spatial(layer)]

    def convolutions(self) -> list[str]:
        return [name for name in self.spatial() if isinstance(self.layers[name], CONVOLUTIONS)]

    def chosen(self, names: list[str], default: list[str]) -> list[tuple[str, keras.layers.Layer]]:
        """The layers `names` (or `default`), each checked to exist and to output feature maps."""
        shown = self.spatial()
        if not shown or (not self.convolutions() and not names):  # a dense model, whatever --layer names
            every = ", ".join(f"{name} ({type(layer).__name__})" for name, layer in self.layers.items())
            can = f"the layers that can be shown: {', '.join(shown)}" if shown else "none of them outputs feature maps"
            raise DlcliError(f"run {self.run.id}: its model has no convolution layer ({every}); {can}. "
                             "visualize looks inside convnets: choose a run whose model has Conv2D layers")
        names = list(dict.fromkeys(names))  # a layer asked for twice is drawn once
        for name in names:
            if name not in self.layers:
                raise DlcliError(f"--layer {name}: run {self.run.id}'s model has no such layer"
                                 f"{did_you_mean(name, self.layers)}; the layers that can be shown: {', '.join(shown)}")
            if name not in shown:
                raise DlcliError(f"--layer {name}: its output {_shape(self.layers[name])} is not a grid of feature maps; "
                                 f"choose one of {', '.join(shown)}")
        return [(name, self.layers[name]) for name in names or default]

    def output(self, kind: str, name: str | None = None) -> Path:
        """runs/<id>/visualizations/<kind>[/fold-K][/<name>], the name made safe for a file system."""
        folder = self.run.file(VISUALIZATIONS_DIR) / kind
        folder = folder / f"fold-{self.fold}" if self.fold is not None else folder
        return folder / _file_name(name) if name else folder

    def picture_name(self, name: str) -> str:
        """`NN-<layer>.png`, NN the layer's place in the model: the same file whichever layers are asked."""
        digits = max(2, len(str(len(self.layers))))
        return f"{list(self.layers).index(name) + 1:0{digits}d}-{_file_name(name)}.png"

    # --- running it -----------------------------------------------------------------------

    def model_input(self, pixels: np.ndarray) -> tf.Tensor:
        """uint8 pixels (N, height, width, channels) -> what the model was trained on, in float32."""
        return tf.cast(self.preprocessing(tf.convert_to_tensor(pixels, tf.uint8), training=False), tf.float32)

    def probabilities(self, outputs: tf.Tensor) -> np.ndarray:
        """The model's outputs for one input as one probability per class."""
        logits = self.inputs.outputs == "logits"
        return class_probabilities(tf.cast(outputs, tf.float32).numpy(), logits)[0]


def open_run(run: RunFolder, fold: int | None = None) -> Inspected:
    """The run's model and preprocessing, when it is a run on images; a k-fold run's fold `fold`
    (default 1: a picture is of one model, where `predict` averages the folds)."""
    inputs = read_inputs(run)
    if inputs.kind != "image":
        raise DlcliError(f"run {run.id} was trained on {inputs.kind} inputs, not images; "
                         "visualize shows what a model trained on images sees")
    check_fold(run, inputs, fold)
    fold = (fold or 1) if inputs.folds else None
    model, preprocessing = load_run_model(run, model_file(fold)), load_run_model(run, preprocessing_file(fold))
    check_class_names(run, inputs.class_names, model.outputs[0].shape[-1])
    return Inspected(run, model, preprocessing, inputs, fold)


def check_image(path: Path) -> None:
    """An image file dlcli can read, by its name: checked before any model is loaded."""
    from dlcli.data.examples import IMAGE_EXTENSIONS
    from dlcli.data.files import check_image_files

    if path.is_dir():
        raise DlcliError(f"{path}: a folder; give one image file of it")
    if not path.is_file():
        raise DlcliError(f"{path}: no such image file")
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DlcliError(f"{path}: not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    check_image_files([path], then="visualize again")  # its name and first bytes, as training checks its images


def image_label(path: Path) -> str:
    """`<name>-<8 hex of its bytes>`, what a picture of this image is named by: two images of one
    name (`train/0/00006.png`, `test/1/00006.png`) get pictures of their own, the same image
    again replaces its own."""
    return f"{path.stem}-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"


def read_image(inspected: Inspected, path: Path) -> np.ndarray:
    """The image at the model's input size (1, height, width, channels), as `predict` reads it."""
    from dlcli.data.examples import FilePool
    from dlcli.data.pipeline import raw_examples

    check_image(path)
    pool = FilePool(np.array([str(path)]), np.zeros(1, "int64"), tuple(inspected.inputs.input_shape))
    batches = [pixels.numpy() for _, pixels in raw_examples(pool, 1)]
    if not batches:
        raise DlcliError(f"{path}: cannot be decoded as an image (damaged, or not what its name says)")
    return batches[0]


def image_at_own_size(inspected: Inspected, path: Path) -> np.ndarray:
    """The image at its own size, decoded as the pipeline decodes it (the run's channels), for display."""
    from dlcli.data.pipeline import decode_pixels

    channels = inspected.inputs.input_shape[2]
    image = decode_pixels(tf.constant(path.read_bytes()), channels).numpy()
    return image[:, :, :3] if channels == 4 else image  # an RGBA run's image shown without its alpha


@contextmanager
def _recording(layers: list[keras.layers.Layer], tape: tf.GradientTape | None = None,
               stop: bool = False) -> Iterator[dict[int, tf.Tensor]]:
    """While open, each call of `layers` records its output (by `id(layer)`; a shared layer's first
    call), watched by `tape`; with `stop`, the model stops once all are recorded."""
    outputs: dict[int, tf.Tensor] = {}

    def recorded(layer, call):
        def call_and_record(*args, **kwargs):
            output = call(*args, **kwargs)
            if id(layer) not in outputs:
                outputs[id(layer)] = output
                if tape is not None:
                    tape.watch(output)
            if stop and len(outputs) == len(layers):
                raise _Recorded
            return output
        return call_and_record

    layers = list({id(layer): layer for layer in layers}.values())
    for layer in layers:
        layer.call = recorded(layer, layer.call)  # the instance's call, before the class's
    try:
        yield outputs
    finally:
        for layer in layers:
            del layer.call


def layer_outputs(model: keras.Model, x: tf.Tensor, layers: list[keras.layers.Layer]) -> list[tf.Tensor]:
    """The outputs of `layers` for `x`, the model run only as far as they need."""
    with _recording(layers, stop=True) as outputs:
        try:
            model(x, training=False)
        except _Recorded:
            pass
    missing = [layer.name for layer in layers if id(layer) not in outputs]
    if missing:  # a layer on no path from the input to the output
        raise DlcliError(f"--layer {', '.join(missing)}: not on the model's path from its input to its output")
    return [tf.cast(outputs[id(layer)], tf.float32) for layer in layers]


# --- activations -------------------------------------------------------------------------


def activations(inspected: Inspected, image: Path, names: list[str], output: Path) -> list[Path]:
    """One grid PNG per layer: each channel of its output for `image`."""
    chosen = inspected.chosen(names, [name for name in inspected.spatial()
                                      if isinstance(inspected.layers[name], CONVOLUTIONS + POOLINGS)])
    pixels = read_image(inspected, image)
    maps = layer_outputs(inspected.model, inspected.model_input(pixels), [layer for _, layer in chosen])
    written = []
    for (name, _), values in zip(chosen, maps):
        values = values.numpy()[0]
        tiles = [_display(values[:, :, channel]) for channel in range(values.shape[-1])]
        path = output / inspected.picture_name(name)
        _save_grid(tiles, TILES_PER_ROW, f"{name}  {values.shape[0]}x{values.shape[1]}x{values.shape[2]}"
                   f"  ({image.name})", path, cmap="viridis")
        written.append(path)
    return written


def _display(values: np.ndarray) -> np.ndarray:
    """A feature map or a grown pattern as 0-255 for display, as the book does: centred, scaled
    by its spread, clipped (a pattern of one channel as a 2-D grey image)."""
    values = values - values.mean()
    spread = values.std()
    if spread > 0:
        values = values / spread
    shown = np.clip(values * 64 + 128, 0, 255).astype("uint8")
    return shown[:, :, 0] if shown.ndim == 3 and shown.shape[-1] == 1 else shown


# --- filters -----------------------------------------------------------------------------


@dataclass
class Ascent:
    """The book's gradient ascent: `steps` steps of `learning_rate` (in units of the pixel range)
    along the gradient normalized by its L2 norm (second edition) or its RMS (first edition)."""

    steps: int = 30
    learning_rate: float = 10.0
    normalize: str = "l2"

    def __post_init__(self):
        if not self.learning_rate > 0:  # a step of 0 would leave every pattern as noise
            raise DlcliError(f"--learning-rate {self.learning_rate:g}: the step must be above 0 (the book's is 10)")
        if not self.learning_rate <= float(np.finfo("float32").max):  # the image is float32: it would be all infinities
            raise DlcliError(f"--learning-rate {self.learning_rate:g}: a step float32 images cannot hold (the book's is 10)")
        if self.normalize not in ("l2", "rms"):
            raise DlcliError(f"--normalize {self.normalize}: choose l2 (the book's second edition) or rms (its first)")


def filters(inspected: Inspected, names: list[str], count: int, ascent: Ascent, output: Path) -> list[Path]:
    """One grid PNG per layer: the pattern that most excites each of its first `count` filters."""
    chosen = inspected.chosen(names, inspected.convolutions())
    written = []
    for name, layer in chosen:
        channels = _shape(layer)[-1]
        patterns, silent = grow_patterns(inspected, layer, list(range(min(count, channels))), ascent)
        # a filter silent on the noise has no gradient to climb: a flat grey tile, not the noise magnified
        tiles = [np.full_like(_display(pattern), 128) if still else _display(pattern)
                 for pattern, still in zip(patterns, silent)]
        title = f"{name}: the patterns filters 0-{len(patterns) - 1} respond to most (of {channels})"
        if silent.any():
            title += f"; {int(silent.sum())} grey: silent on the noise"
        path = output / inspected.picture_name(name)
        _save_grid(tiles, PATTERNS_PER_ROW, title, path, cmap="gray" if patterns.shape[-1] == 1 else None)
        written.append(path)
    return written


def grow_patterns(
    inspected: Inspected, layer: keras.layers.Layer, indices: list[int], ascent: Ascent,
) -> tuple[np.ndarray, np.ndarray]:
    """For each filter of `indices`, the model input (as the model sees it) grown from grey noise
    to excite it most, FILTERS_AT_ONCE at a time; and whether the filter stayed silent (its
    pattern never moved from the noise)."""
    shape = tuple(inspected.inputs.input_shape)
    # the model's inputs for black and white pixels: the range the patterns start in and step through
    black, white = (float(tf.reduce_mean(inspected.model_input(np.full((1, *shape), value, "uint8"))))
                    for value in (0, 255))
    step = _ascent_step(inspected.model, layer, ascent, abs(white - black) or 1.0)
    generator = tf.random.Generator.from_seed(0)
    patterns, silent = [], []
    for start in range(0, len(indices), FILTERS_AT_ONCE):
        part = indices[start:start + FILTERS_AT_ONCE]
        noise = generator.uniform((len(part), *shape), 0.4, 0.6)  # the book's grey noise
        start_image = black + noise * (white - black)
        image = tf.Variable(start_image)
        mine = tf.one_hot(part, _shape(layer)[-1])  # image i climbs filter part[i]
        for _ in range(ascent.steps):
            step(image, mine)
        patterns.append(image.numpy())
        silent.append(np.all(patterns[-1] == start_image.numpy(), axis=tuple(range(1, len(shape) + 1))))
    return np.concatenate(patterns), np.concatenate(silent)


def _ascent_step(model: keras.Model, layer: keras.layers.Layer, ascent: Ascent, pixel_range: float):
    """One step for a batch of images, each climbing the mean activation of its own filter
    (`mine`: one row per image, one-hot over the layer's filters)."""

    @tf.function(reduce_retracing=True, autograph=False)
    def step(image: tf.Variable, mine: tf.Tensor) -> None:
        with tf.GradientTape(watch_accessed_variables=False) as tape:  # the watched tensors only
            tape.watch(image)
            (activation,) = layer_outputs(model, image, [layer])
            if activation.shape[1] > 8 and activation.shape[2] > 8:  # the book leaves out the borders
                activation = activation[:, 2:-2, 2:-2, :]
            loss = tf.reduce_sum(tf.reduce_mean(activation, axis=[1, 2]) * mine)
        gradients = tape.gradient(loss, image)
        axes = list(range(1, len(image.shape)))
        mean_square = tf.reduce_mean(tf.square(gradients), axis=axes, keepdims=True)
        norm = tf.sqrt(mean_square * (1 if ascent.normalize == "rms" else float(np.prod(image.shape[1:]))))
        image.assign_add(ascent.learning_rate * pixel_range * gradients / (norm + 1e-5))

    return step


# --- heatmap -----------------------------------------------------------------------------


@dataclass
class Heatmap:
    """Grad-CAM for one image: the heat (image's own height x width, 0-1) of `class_name` (of
    "prediction" for a regression, `ranked` then holding its value)."""

    image: np.ndarray  # at its own size
    heat: np.ndarray
    layer: str
    class_name: str
    ranked: list[tuple[str, float]]  # every class, most probable first


def heatmap(inspected: Inspected, image: Path, class_name: str | None, layer_name: str | None) -> Heatmap:
    """Grad-CAM on `layer_name` (default: the last convolution layer) for `class_name` (default:
    the predicted class): the gradient of the class's score, averaged over each feature map,
    weighs the maps; their sum, positive part, resized to the image and scaled to 0-1."""
    ((name, layer),) = inspected.chosen([layer_name] if layer_name else [], inspected.convolutions()[-1:])
    x = inspected.model_input(read_image(inspected, image))
    outputs = inspected.model(x, training=False)
    if inspected.inputs.task == Task.classification:
        probabilities = inspected.probabilities(outputs)
        names = class_names(inspected.inputs, len(probabilities))
        chosen = _class_index(inspected, class_name, names) if class_name else int(np.argmax(probabilities))
    elif class_name is not None:
        raise DlcliError(f"--class {class_name}: run {inspected.run.id} is a regression; leave --class out")
    else:  # a regression: what raises the predicted value
        probabilities, names, chosen = np.asarray(outputs, "float32")[0, :1], ["prediction"], 0
    with tf.GradientTape(watch_accessed_variables=False) as tape:  # the watched tensors only
        with _scores_as_logits(inspected.model), _recording([layer], tape) as recorded:
            scores = tf.cast(inspected.model(x, training=False), tf.float32)[0]
        # a single sigmoid unit scores class 1; class 0 is its opposite
        score = (scores[0] if chosen == 1 else -scores[0]) if scores.shape[-1] == 1 else scores[chosen]
    if id(layer) not in recorded:
        raise DlcliError(f"--layer {name}: not on the model's path from its input to its output")
    feature_maps = tf.cast(recorded[id(layer)], tf.float32)
    gradients = tape.gradient(score, recorded[id(layer)])
    if gradients is None:
        raise DlcliError(f"--layer {name}: the model's output does not depend on it; choose a layer before the output")
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(0, 1, 2))
    heat = tf.nn.relu(tf.reduce_sum(feature_maps[0] * weights, axis=-1))
    original = image_at_own_size(inspected, image)
    heat = np.maximum(tf.image.resize(heat[:, :, None], original.shape[:2], method="bilinear").numpy()[:, :, 0], 0)
    if heat.max() > 0:  # 1 where the evidence is strongest (0 everywhere when there is none)
        heat = heat / heat.max()
    ranked = sorted(zip(names, probabilities.tolist()), key=lambda pair: -pair[1])
    return Heatmap(original, heat.astype("float32"), name, names[chosen], ranked)


@contextmanager
def _scores_as_logits(model: keras.Model) -> Iterator[None]:
    """While open, the model's last layer without its softmax or sigmoid (tf-keras-vis's
    ReplaceToLinear): a class is scored by its logit, whose gradient does not vanish where the
    model is sure (a probability of 1.0 in float32 has none)."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    replaced = activation in (keras.activations.softmax, keras.activations.sigmoid)
    if replaced:
        last.activation = keras.activations.linear
    try:
        yield
    finally:
        if replaced:
            last.activation = activation


def _class_index(inspected: Inspected, class_name: str, names: list[str]) -> int:
    if class_name in names:
        return names.index(class_name)
    raise DlcliError(f"--class {class_name}: not one of run {inspected.run.id}'s classes"
                     f"{did_you_mean(class_name, names)}; its classes: {', '.join(names)}")


def save_heatmap(result: Heatmap, path: Path) -> tuple[Path, Path]:
    """The heat over the image (PNG at `path`) and the raw heat (`.npy` beside it)."""
    from matplotlib.figure import Figure

    raw = path.with_suffix(".npy")
    buffer = io.BytesIO()
    np.save(buffer, result.heat)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(raw, buffer.getvalue())
    height, width = result.heat.shape
    figure = Figure(figsize=(max(4.0, width / 50), max(4.0, height / 50) + 0.4), dpi=100)
    axes = figure.add_axes([0, 0, 1, 0.92])
    image = result.image[:, :, 0] if result.image.shape[-1] == 1 else result.image
    axes.imshow(image, cmap="gray" if image.ndim == 2 else None)
    axes.imshow(result.heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)  # the book's overlay
    axes.axis("off")
    value = dict(result.ranked)[result.class_name]
    figure.suptitle(f"Grad-CAM of {result.layer} for {result.class_name!r} ({value:.2f})", fontsize=9)
    _write_figure(figure, path)
    return path, raw


# --- drawing and naming ------------------------------------------------------------------


def _write_figure(figure, path: Path) -> None:
    """The figure as a PNG, written atomically as every run file is."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def _save_grid(tiles: list[np.ndarray], per_row: int, title: str, path: Path, cmap: str | None) -> None:
    """`tiles` (equal sizes, 0-255) in rows of `per_row`, a pixel of margin between them, as a PNG."""
    from matplotlib.figure import Figure

    height, width = tiles[0].shape[:2]
    columns = min(per_row, len(tiles))
    rows = -(-len(tiles) // columns)
    # margins white: NaN (left undrawn) in a grid of one channel, 255 in a colour one
    grid = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1, *tiles[0].shape[2:]),
                   255 if tiles[0].ndim == 3 else np.nan, "uint8" if tiles[0].ndim == 3 else "float32")
    for number, tile in enumerate(tiles):
        row, column = divmod(number, columns)
        grid[row * (height + 1):row * (height + 1) + height, column * (width + 1):column * (width + 1) + width] = tile
    scale = max(2.0, 640 / grid.shape[1])  # small maps drawn large enough to see
    figure = Figure(figsize=(grid.shape[1] * scale / 100, grid.shape[0] * scale / 100 + 0.4), dpi=100)
    axes = figure.add_axes([0, 0, 1, grid.shape[0] * scale / 100 / (grid.shape[0] * scale / 100 + 0.4)])
    axes.imshow(grid, cmap=cmap, vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    axes.axis("off")
    figure.suptitle(title, fontsize=9)
    _write_figure(figure, path)


def named_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Every layer of `model` in order, those of nested models (a base) included, by their own
    names — as `base/name` where another layer has the same name (a head's `conv2d` after a
    base's); not the input layers or the nested models themselves."""
    found: list[tuple[str, keras.layers.Layer]] = []

    def collect(outer: keras.Model, prefix: str) -> None:
        for layer in outer.layers:
            if isinstance(layer, keras.Model):
                collect(layer, f"{prefix}{layer.name}/")
            elif not isinstance(layer, keras.layers.InputLayer):
                found.append((prefix, layer))

    collect(model, "")
    counts = Counter(layer.name for _, layer in found)
    return {(layer.name if counts[layer.name] == 1 else f"{prefix}{layer.name}"): layer for prefix, layer in found}


def _shape(layer: keras.layers.Layer) -> tuple | None:
    try:
        return tuple(layer.output.shape)  # of its first call, for a layer called more than once
    except (AttributeError, ValueError):  # a layer the model never calls has no output
        return None


def _is_spatial(layer: keras.layers.Layer) -> bool:
    shape = _shape(layer)
    return shape is not None and len(shape) == 4


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
