"""Every dataset a tf.data stream: image folders decoded on the fly, the file-list split, the
order of each epoch as a function of (seed, epoch), the decoded-image caches."""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CONFIG, encoded, read_json, run_folders
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.data.cache import PARTIAL_MARK, cached, choose_cache, images_cache_dir, stale_entries
from dlcli.data.examples import ArrayPool, FilePool
from dlcli.data.pipeline import EpochOrder, stream
from dlcli.errors import ConfigError, DataUnavailable

PHOTO_CONFIG = """\
name: photos
seed: 0
dataset:
  name: image_directory
  path: {path}
  image_size: [12, 12]
model:
  layers:
    - Flatten
    - Dense: {{units: 2, activation: softmax}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training:
  epochs: 2
  batch_size: 8
  tensorboard: false
"""


def write_photos(folder: Path, per_class: int = 25, classes=("cat", "dog")) -> Path:
    """JPEG photos of odd sizes in folder/<class>/: reddish cats, bluish dogs."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            height, width = rng.integers(16, 40, size=2)
            pixels = rng.integers(0, 120, size=(height, width, 3))
            pixels[..., 0 if label == 0 else 2] += 120
            Image.fromarray(pixels.astype("uint8")).save(folder / name / f"{name}.{index}.jpg")
    return folder


@pytest.fixture
def photos(tmp_path) -> Path:
    return write_photos(tmp_path / "photos")


@pytest.fixture
def photo_config(write_config, photos):
    def make(*overrides: str, path: Path | None = None):
        return load_config(write_config(PHOTO_CONFIG.format(path=path or photos)), list(overrides))

    return make


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_image_folder_is_a_list_of_files_split_stratified_and_seeded(photo_config):
    splits = load_dataset(photo_config())
    again = load_dataset(photo_config())
    other_seed = load_dataset(photo_config("seed=1"))

    assert isinstance(splits.train.pool, FilePool)  # nothing decoded yet
    assert splits.train.pool is splits.validation.pool  # the split is over one list of files
    assert splits.class_counts() == {"train": [16, 16], "validation": [4, 4], "test": [5, 5]}
    assert np.array_equal(splits.validation.indices, again.validation.indices)
    assert not np.array_equal(splits.validation.indices, other_seed.validation.indices)
    assert not set(splits.train.indices) & set(splits.validation.indices)


def test_streamed_images_are_decoded_resized_and_scaled(photo_config):
    splits = load_dataset(photo_config())

    x, y = encoded(splits, "train")

    assert splits.input_shape == (12, 12, 3) and x.shape == (32, 12, 12, 3) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1
    reddish = x[..., 0].mean(axis=(1, 2)) > x[..., 2].mean(axis=(1, 2))
    assert np.array_equal(reddish, y == 0)  # each image arrives with its own label


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_gif_and_bmp_decode_as_png_does_at_every_channel_count(channels):
    """tf.io.decode_image decodes a GIF only as RGB and a BMP as RGB or RGBA: a grey run read neither."""
    import io

    import tensorflow as tf
    from PIL import Image

    from dlcli.data.pipeline import decode_pixels

    pixels = (np.random.default_rng(0).random((6, 5, 3)) * 255).astype("uint8")
    files = {}
    for kind in ("PNG", "GIF", "BMP"):
        # a GIF holds at most 256 colours: every file holds the colours the GIF kept
        colours = Image.fromarray(pixels).quantize(256).convert("RGB")
        files[kind] = io.BytesIO()
        colours.save(files[kind], kind)
    decoded = {kind: decode_pixels(tf.constant(file.getvalue()), channels).numpy() for kind, file in files.items()}

    png = tf.io.decode_image(files["PNG"].getvalue(), channels=3).numpy()
    expected = {1: tf.image.rgb_to_grayscale(png).numpy(), 3: png, 4: np.concatenate([png, np.full((6, 5, 1), 255)], -1)}
    for kind in ("GIF", "BMP"):
        assert decoded[kind].shape == (6, 5, channels) and decoded[kind].dtype == np.uint8
        assert np.array_equal(decoded[kind], expected[channels]), kind


def test_a_cmyk_jpeg_decodes_in_grey_as_its_colours_do():
    """tf.io.decode_image decodes a CMYK JPEG in colour and fails on it asked for grey: a grey run
    called such a photo damaged."""
    import io

    import tensorflow as tf
    from PIL import Image

    from dlcli.data.pipeline import decode_pixels

    pixels = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype("uint8")
    cmyk, grey = io.BytesIO(), io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(cmyk, "JPEG")
    Image.fromarray(pixels).convert("L").save(grey, "JPEG")

    colour = decode_pixels(tf.constant(cmyk.getvalue()), 3)
    decoded = decode_pixels(tf.constant(cmyk.getvalue()), 1).numpy()

    assert decoded.shape == (16, 16, 1) and np.array_equal(decoded, tf.image.rgb_to_grayscale(colour).numpy())
    assert decode_pixels(tf.constant(grey.getvalue()), 1).shape == (16, 16, 1)  # a grey JPEG as before, directly


def _epoch_labels(splits, seed: int, epoch: int) -> list[int]:
    order = EpochOrder(seed, epoch)
    return [int(v) for _, y in stream(splits, "train", 4, order).as_numpy_iterator() for v in y]


@pytest.mark.parametrize("source", ["digits", "image_directory"])
def test_each_epoch_order_is_a_function_of_seed_and_epoch_alone(source, photo_config, write_config):
    config = photo_config() if source == "image_directory" else load_config(write_config(TINY_CONFIG))
    splits = load_dataset(config)

    orders = {epoch: _epoch_labels(splits, 0, epoch) for epoch in (3, 4)}

    assert _epoch_labels(load_dataset(config), 0, 3) == orders[3]  # a fresh stream, as after a resume
    assert orders[3] != orders[4]
    assert _epoch_labels(splits, 1, 3) != orders[3]
    assert sorted(orders[3]) == sorted(splits.train.labels.tolist())  # every example once an epoch


def test_every_cache_gives_the_same_examples(photo_config):
    splits = load_dataset(photo_config())
    streamed = encoded(splits, "train")

    for mode in ("memory", "disk"):
        (cached_splits,), report = cached([splits], mode)
        assert report.mode == mode
        kept = encoded(cached_splits, "train")
        assert np.array_equal(kept[0], streamed[0]) and np.array_equal(kept[1], streamed[1])
    assert isinstance(cached([splits], "memory")[0][0].train.pool, ArrayPool)


@pytest.mark.parametrize("mode, decoded, budget, chosen", [
    ("auto", 100, 1000, "memory"), ("auto", 1001, 1000, "disk"), ("memory", 10**12, 1, "memory"),
    ("none", 1, 1000, "none"), ("disk", 1, 1000, "disk"),
])
def test_auto_keeps_images_in_memory_only_within_the_budget(mode, decoded, budget, chosen):
    assert choose_cache(mode, decoded, budget) == chosen


def test_training_records_the_cache_and_its_budget(cli, photos, write_config, runs_dir):
    config = write_config(PHOTO_CONFIG.format(path=photos))

    result = cli("train", str(config))

    assert result.exit_code == 0, result.output
    (folder,) = run_folders(runs_dir)
    cache = read_json(folder / "summary.json")["data"]["cache"]
    assert cache["mode"] == "memory" and cache["requested"] == "auto"
    assert cache["decoded_bytes"] == 40 * 12 * 12 * 3 and cache["budget_fraction"] == 0.25
    assert cache["budget_bytes"] > cache["decoded_bytes"]


@pytest.mark.slow
def test_disk_cache_is_written_once_and_reused(cli, photos, write_config, runs_dir, private_cache):
    config = write_config(PHOTO_CONFIG.format(path=photos))

    assert cli("train", str(config), "--set", "training.cache=disk").exit_code == 0
    (entry,) = (images_cache_dir()).iterdir()
    written = {path.name: path.stat().st_mtime_ns for path in entry.glob("*.u8")}
    assert cli("train", str(config), "--set", "training.cache=disk").exit_code == 0

    assert list(images_cache_dir().iterdir()) == [entry] and len(written) == 40
    assert {path.name: path.stat().st_mtime_ns for path in entry.glob("*.u8")} == written
    first, second = (read_json(folder / "summary.json") for folder in run_folders(runs_dir))
    assert first["data"]["cache"]["entries"] == second["data"]["cache"]["entries"] == [str(entry)]
    assert first["final"] == second["final"]  # the same pixels, the same training

    (photos / "cat" / "cat.0.jpg").touch()  # a changed file is a new entry
    assert cli("train", str(config), "--set", "training.cache=disk").exit_code == 0
    assert len(list(images_cache_dir().iterdir())) == 2


def test_an_interrupted_cache_write_leaves_nothing_to_reuse(photo_config, monkeypatch):
    from dlcli.data import cache

    splits = load_dataset(photo_config())
    decode_all = cache._decode_all
    stored = []

    def interrupted_after_one_batch(pool, store):
        def store_then_stop(indices, pixels):
            store(indices, pixels)
            stored.extend(indices)
            raise KeyboardInterrupt

        decode_all(pool, store_then_stop)

    monkeypatch.setattr(cache, "_decode_all", interrupted_after_one_batch)
    with pytest.raises(KeyboardInterrupt):
        cached([splits], "disk")

    assert stored and not list(images_cache_dir().iterdir())  # neither an entry nor its unfinished folder
    monkeypatch.setattr(cache, "_decode_all", decode_all)
    (complete,), _ = cached([splits], "disk")
    assert np.array_equal(encoded(complete, "train")[0], encoded(splits, "train")[0])


def test_a_killed_writers_unfinished_cache_is_ignored_and_removed(photo_config):
    host = socket.gethostname()
    dead = images_cache_dir() / f"abc{PARTIAL_MARK}{host}-999999999"
    dead.mkdir(parents=True)
    (dead / "0.u8").write_bytes(b"\0" * 7)
    alive = images_cache_dir() / f"abd{PARTIAL_MARK}{host}-{os.getpid()}"
    elsewhere, abandoned = (images_cache_dir() / f"ab{n}{PARTIAL_MARK}other-host-1" for n in "ef")
    for folder in (alive, elsewhere, abandoned):
        folder.mkdir()
    os.utime(abandoned, (0, 0))  # another host's writer, silent for days

    assert sorted(stale_entries(images_cache_dir())) == sorted([dead, abandoned])
    (splits,), report = cached([load_dataset(photo_config())], "disk")

    assert not dead.exists() and not abandoned.exists() and alive.exists() and elsewhere.exists()
    assert Path(report.entries[0]).parent == images_cache_dir()
    assert encoded(splits, "train")[0].shape == (32, 12, 12, 3)


def test_an_entry_without_its_manifest_is_never_read(photo_config):
    splits = load_dataset(photo_config())
    (cached_splits,), report = cached([splits], "disk")
    (entry,) = report.entries
    (Path(entry) / "complete.json").unlink()  # as if written by a writer that died before its end
    (Path(entry) / "3.u8").write_bytes(b"")

    (again,), _ = cached([splits], "disk")

    assert np.array_equal(encoded(again, "train")[0], encoded(splits, "train")[0])


def test_auto_decodes_every_epoch_when_the_disk_cache_cannot_be_written(photo_config, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(blocker))
    splits = load_dataset(photo_config())

    (streamed,), report = cached([splits], "auto", budget=0)

    assert report.mode == "none" and "cannot write the image cache" in report.fallback
    assert streamed.train.pool is splits.train.pool


def test_unused_entries_age_out(tmp_path):
    old, recent = tmp_path / "old", tmp_path / "recent"
    for entry in (old, recent):
        entry.mkdir()
        (entry / "last_used").touch()
    os.utime(old / "last_used", (0, 0))

    assert stale_entries(tmp_path) == [old]


def test_a_file_that_is_no_image_is_named_before_training(cli, photos, write_config, runs_dir):
    bad = photos / "dog" / "notes.jpg"
    bad.write_text("not a photo")

    for cache in ("none", "memory"):
        result = cli("train", str(write_config(PHOTO_CONFIG.format(path=photos))), "--set", f"training.cache={cache}")

        assert result.exit_code == 2
        assert f"{bad} is not a JPEG, PNG, BMP or GIF image: remove or replace it" in result.output
        assert not run_folders(runs_dir)


def test_a_truncated_photo_is_named_before_training(cli, photos, write_config, runs_dir):
    damaged = photos / "cat" / "cat.3.jpg"
    damaged.write_bytes(damaged.read_bytes()[:200])

    result = cli("train", str(write_config(PHOTO_CONFIG.format(path=photos))), "--set", "training.cache=disk")

    assert result.exit_code == 2
    assert f"cannot decode {damaged} as an image (damaged or truncated?)" in result.output
    assert not run_folders(runs_dir) and not list(images_cache_dir().iterdir())


def test_an_empty_class_folder_is_named(photo_config, photos):
    (photos / "bird").mkdir()

    with pytest.raises(DataUnavailable, match=rf"{photos / 'bird'} holds no images .*leave the class out"):
        load_dataset(photo_config())


def test_an_unwritable_cache_is_one_line_and_leaves_no_run(cli, photos, write_config, runs_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(blocker))

    result = cli("train", str(write_config(PHOTO_CONFIG.format(path=photos))), "--set", "training.cache=disk")

    assert result.exit_code == 2
    assert f"cannot write the image cache in {blocker / 'images'}" in result.output
    assert "set DLCLI_CACHE_DIR to a writable folder" in result.output and "Traceback" not in result.output
    assert not run_folders(runs_dir)


def test_evaluate_streams_the_image_test_split(cli, photos, write_config, runs_dir):
    import keras

    config = write_config(PHOTO_CONFIG.format(path=photos))
    assert cli("train", str(config)).exit_code == 0
    (folder,) = run_folders(runs_dir)

    result = cli("evaluate", "latest")

    assert result.exit_code == 0, result.output
    evaluation = read_json(folder / "evaluation.json")
    splits = load_dataset(load_config(folder / "config.yaml"))
    x, y = encoded(splits, "test")
    predicted = keras.saving.load_model(folder / "model.keras").predict(x, verbose=0).argmax(axis=1)
    expected = np.zeros((2, 2), dtype=int)
    np.add.at(expected, (y, predicted), 1)
    assert evaluation["confusion_matrix"] == expected.tolist() and evaluation["samples"] == 10


def test_check_counts_classes_without_decoding_the_folder(cli, photos, write_config, monkeypatch):
    from dlcli.training import train

    streamed = []
    real_stream = train.stream

    def recorded(splits, name, batch_size, **options):
        streamed.append((name, batch_size))
        return real_stream(splits, name, batch_size, **options)

    monkeypatch.setattr("dlcli.training.train.stream", recorded)
    result = cli("check", str(write_config(PHOTO_CONFIG.format(path=photos))))

    assert result.exit_code == 0, result.output
    assert "16, 16" in result.output and "4, 4" in result.output
    assert streamed == [("train", 2)]  # the pre-flight's one batch of two photos is all that is decoded


def test_cache_aliases(write_config):
    text = textwrap.dedent(TINY_CONFIG)
    assert load_config(write_config(text), ["training.cache=true"]).training.cache == "auto"
    assert load_config(write_config(text), ["training.cache=false"]).training.cache == "none"


def test_datasets_cache_lists_and_cleans_the_disk_cache(cli, photos, write_config):
    from dlcli.data import cache

    config = write_config(PHOTO_CONFIG.format(path=photos))
    assert cli("train", str(config), "--set", "training.cache=disk").exit_code == 0
    (entry,) = images_cache_dir().iterdir()

    listed = cli("datasets", "cache", runs=False)
    assert listed.exit_code == 0 and entry.name in listed.output and "40" in listed.output

    kept = cli("datasets", "cache", "--clean", runs=False)
    assert kept.exit_code == 0 and "removed 0 entries" in kept.output and entry.exists()

    in_use = cli("datasets", "cache", "--clean", "--older-than", "0", runs=False)  # this process reads it
    assert in_use.exit_code == 0 and "removed 0 entries" in in_use.output and entry.exists()

    for marker in cache._READING:  # as when the training process ends
        marker.close()
    cache._READING.clear()
    cleaned = cli("datasets", "cache", "--clean", "--older-than", "0", runs=False)
    assert cleaned.exit_code == 0 and "removed 1 entries" in cleaned.output and not entry.exists()


def test_a_truncated_photo_streamed_undecoded_fails_the_run_naming_it_and_resume_finishes(
    cli, photos, write_config, runs_dir,
):
    damaged = photos / "cat" / "cat.3.jpg"
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[:200])  # a JPEG header: only decoding finds the damage
    config = write_config(PHOTO_CONFIG.format(path=photos))

    result = cli("train", str(config), "--set", "training.cache=none")

    (run,) = run_folders(runs_dir)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (f"cannot decode {damaged} as an image (damaged or truncated?): remove or replace it, "
            f"then continue run {run.name}") in result.output
    assert read_json(run / "run.json")["status"] == "failed"

    damaged.write_bytes(whole)
    assert cli("train", "--resume", run.name).exit_code == 0
    assert read_json(run / "run.json")["status"] == "completed"

    for photo in photos.rglob("*.jpg"):  # evaluation streams the test split's files too
        photo.write_bytes(photo.read_bytes()[:200])
    result = cli("evaluate", run.name)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "as an image (damaged or truncated?): remove or replace it, then evaluate again" in result.output


def test_image_files_that_cannot_be_read_as_asked_are_named_before_training(photo_config, photos):
    with pytest.raises(DataUnavailable, match=r"cat\.0\.jpg is a JPEG, which has no alpha channel for `color_mode: rgba`"):
        load_dataset(photo_config("dataset.color_mode=rgba"))

    odd = os.fsencode(photos / "dog") + b"/caf\xe9.jpg"  # a Latin-1 name, as older cameras and zips write them
    shutil.copyfile(photos / "dog" / "dog.0.jpg", odd)
    with pytest.raises(DataUnavailable, match=r"caf\\xe9\.jpg has a name that is not UTF-8 text"):
        load_dataset(photo_config())


def test_an_image_size_no_memory_holds_is_a_config_error(photo_config):
    with pytest.raises(ConfigError, match=r"dataset.image_size.0: input should be less than or equal to 4096"):
        photo_config("dataset.image_size=[100000, 100000]")


def test_cache_older_than_is_refused_without_clean_or_a_number_of_days(cli):
    alone = cli("datasets", "cache", "--older-than", "5", runs=False)  # it had been ignored: nothing said, nothing removed
    nan = cli("datasets", "cache", "--clean", "--older-than", "nan", runs=False)

    assert alone.exit_code == 2 and alone.stderr.strip() == "error: --older-than 5: it says what --clean removes: add --clean"
    assert nan.exit_code == 2 and nan.stderr.strip() == "error: --older-than nan: give a number of days"
