"""Data checks before training: duplicates and leaks across splits, conflicting labels, classes,
constant columns; cached by the data's fingerprint; `dataset.leaks: warn | error | drop`."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import read_json, run_folders
from dlcli.config import load_config
from dlcli.data import checks, load_dataset, pictures, start_checks
from dlcli.data import load_folds as load_dataset_folds
from dlcli.data.checks import close_pairs
from dlcli.data.pictures import PICTURE_SIDE, perceptual_hashes

PHOTO_CONFIG = """\
name: photos
seed: 0
dataset:
  name: image_directory
  path: {path}
  image_size: [32, 32]
  leaks: {leaks}
model:
  layers:
    - Flatten
    - Dense: {{units: 2, activation: softmax}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training:
  epochs: 1
  batch_size: 16
  tensorboard: false
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "cache"))


def _picture(rng) -> Image.Image:
    """A distinct photo-like picture: a smooth random colour field, a shape, fine grain."""
    from PIL import ImageDraw

    height, width = int(rng.integers(60, 110)), int(rng.integers(60, 110))
    field = Image.fromarray((rng.random((4, 4, 3)) * 255).astype("uint8")).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(field)
    x, y = rng.integers(0, width // 2), rng.integers(0, height // 2)
    draw.ellipse([x, y, x + rng.integers(15, width // 2), y + rng.integers(15, height // 2)],
                 fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    grain = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(field, dtype=float) + grain, 0, 255).astype("uint8"))


def _near_copy(path: Path, target: Path, rng) -> None:
    """The same picture resized to 50-80% and saved again as a JPEG of lower quality."""
    with Image.open(path) as image:
        scale = rng.uniform(0.5, 0.8)
        smaller = image.convert("RGB").resize((int(image.width * scale), int(image.height * scale)))
    smaller.save(target, quality=int(rng.integers(50, 80)))


def planted_folder(root: Path, per_class: int = 30, test_per_class: int = 10, seed: int = 0):
    """train/ and test/ class folders of distinct photos, with duplicates planted: exact copies of
    training photos in test, near copies (resized, re-encoded) in test, and copies filed under the
    other class. Returns the planted pairs of file names (relative to `root`), by kind."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for name in ("cat", "dog"):
            (root / split / name).mkdir(parents=True)
            for index in range(count):
                _picture(rng).save(root / split / name / f"{name}.{index}.jpg", quality=90)
    planted = {"exact_duplicate": set(), "near_duplicate": set(), "conflicting_label": set()}
    for index in range(4):
        source = f"train/cat/cat.{index}.jpg"
        copy = f"test/cat/copy.{index}.jpg"
        shutil.copy(root / source, root / copy)
        planted["exact_duplicate"].add(frozenset((source, copy)))
    for index in range(4, 9):
        source = f"train/dog/dog.{index}.jpg"
        copy = f"test/dog/near.{index}.jpg"
        _near_copy(root / source, root / copy, rng)
        planted["near_duplicate"].add(frozenset((source, copy)))
    for index in range(10, 12):
        source = f"train/cat/cat.{index}.jpg"
        copy = f"train/dog/relabelled.{index}.jpg"
        shutil.copy(root / source, root / copy)
        planted["conflicting_label"].add(frozenset((source, copy)))
        planted["exact_duplicate"].add(frozenset((source, copy)))
    return planted


def reported_pairs(checks: list[dict], kind: str) -> set[frozenset]:
    pairs = set()
    for finding in checks:
        if finding["kind"] != kind:
            continue
        for group in finding["examples"]:
            files = [entry.split(": ", 1)[1].split(" (")[0] for entry in group]
            pairs |= {frozenset(pair) for pair in itertools.combinations(files, 2)}
    return pairs


def photo_config(write_config, path: Path, leaks: str = "warn") -> Path:
    return write_config(PHOTO_CONFIG.format(path=path, leaks=leaks))


def test_planted_duplicates_in_a_photo_folder_are_found_each_by_its_kind(write_config, tmp_path):
    planted = planted_folder(tmp_path / "photos")
    splits = load_dataset(load_config(photo_config(write_config, tmp_path / "photos")))

    for kind, pairs in planted.items():
        found = reported_pairs(splits.describe()["checks"], kind)
        assert pairs <= found, (kind, pairs - found)
        assert found == pairs, (kind, found - pairs)  # no false pair
    kinds = {finding["kind"] for finding in splits.describe()["checks"]}
    assert kinds == {"exact_duplicate", "near_duplicate", "conflicting_label"}
    leaks = [finding for finding in splits.describe()["checks"] if finding["leak"]]
    # the copies filed under the other class may land in the validation split drawn from train
    assert "test" in {finding["splits"][0] for finding in leaks}
    assert {finding["splits"][0] for finding in leaks} <= {"test", "validation"}
    message = next(f["message"] for f in leaks if f["kind"] == "near_duplicate" and f["splits"] == ["test", "train"])
    assert "test examples have near-duplicates (the same picture resized or re-encoded) in train (first: test: " in message
    assert "the test score is inflated" in message


def test_repeated_rows_of_a_table_are_found_by_their_lines(write_config, tmp_path):
    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in rng.normal(size=3)) + f",{label}" for label in range(2) for _ in range(60)]
    repeated = {3: 100, 7: 101, 11: 102, 70: 103, 75: 104, 90: 105}  # row index -> index of its copy, appended
    table = ["a,b,c,label", *rows, *(rows[i] for i in repeated)]
    (tmp_path / "table.csv").write_text("\n".join(table) + "\n")
    config = write_config(
        "name: table\nseed: 0\ndataset: {name: csv, path: %s, label_column: label, test_split: 0.25}\n"
        "model:\n  layers:\n    - Dense: {units: 2, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\ntraining: {epochs: 1}\n" % (tmp_path / "table.csv")
    )

    splits = load_dataset(load_config(config))

    planted = {frozenset((f"line {i + 2}", f"line {len(rows) + position + 2}")) for position, i in enumerate(repeated)}
    assert reported_pairs(splits.describe()["checks"], "exact_duplicate") == planted
    assert not reported_pairs(splits.describe()["checks"], "conflicting_label")


def test_a_row_copied_many_times_is_one_short_line_of_its_first_copies(write_config, tmp_path):
    from dlcli.report.render import finding_lines

    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in rng.normal(size=3)) + f",{label}" for label in range(2) for _ in range(60)]
    (tmp_path / "table.csv").write_text("\n".join(["a,b,c,label", *rows, *[rows[0]] * 200]) + "\n")
    config = write_config(
        "name: table\nseed: 0\ndataset: {name: csv, path: %s, label_column: label}\n"
        "model:\n  layers:\n    - Dense: {units: 2, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\ntraining: {epochs: 1}\n" % (tmp_path / "table.csv")
    )

    splits = load_dataset(load_config(config))
    lines = finding_lines(splits.checks, {})

    assert lines and all(len(line) < 400 for line in lines), max(lines, key=len)
    assert any(line.endswith("more") and " ~ ... and " in line for line in lines), lines
    json_groups = [group for finding in splits.describe()["checks"] for group in finding["examples"]]
    assert max(len(group) for group in json_groups) > 100  # --format json still lists every one


def test_close_pairs_finds_every_pair_within_the_bits_and_no_other():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, size=400, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 400, dtype=np.uint64)
    for index in range(40):  # near copies: 0-10 bits flipped
        flipped = rng.choice(64, size=int(rng.integers(0, 11)), replace=False)
        hashes[200 + index] = hashes[index] ^ np.uint64(sum(1 << int(b) for b in flipped))
    everything = {(i, j) for i in range(400) for j in range(i + 1, 400)
                  if int(np.bitwise_count(hashes[i] ^ hashes[j])) <= 8}

    assert {tuple(pair) for pair in close_pairs(hashes, 8).tolist()} == everything
    assert any(j - i == 200 for i, j in everything)
    groups = np.arange(400) % 3
    across = {(i, j) for i, j in everything if groups[i] != groups[j]}
    assert {tuple(pair) for pair in close_pairs(hashes, 8, groups).tolist()} == across
    with pytest.MonkeyPatch.context() as patch:  # buckets too large to compare at once: a row at a time
        patch.setattr(checks, "BUCKET_AT_ONCE", 2)
        assert {tuple(pair) for pair in close_pairs(hashes, 8).tolist()} == everything


def test_thousands_of_identical_hashes_keep_few_pairs_and_a_partner_each():
    hashes = np.zeros(3000, dtype=np.uint64)  # near-blank pictures: every hash the same
    groups = (np.arange(3000) >= 2500).astype(int)  # 2,500 training pictures, 500 test ones

    pairs = close_pairs(hashes, 8, groups)

    assert len(pairs) <= 2 * checks.PARTNERS_KEPT * len(hashes)  # not the 1.25 million pairs there are
    assert set(pairs.ravel().tolist()) == set(range(3000))  # each still has a partner in the other split
    assert (groups[pairs[:, 0]] != groups[pairs[:, 1]]).all()


def test_pictures_held_as_float_arrays_of_any_range_are_checked_too(write_config, tmp_path):
    rng = np.random.default_rng(1)
    x_train = np.stack([np.asarray(_picture(rng).resize((40, 40)), dtype="float32") for _ in range(30)])
    x_test = np.stack([np.asarray(_picture(rng).resize((40, 40)), dtype="float32") for _ in range(10)])
    x_test[:3] = x_train[:3] * 0.8 + 20  # the same pictures, dimmer: near-duplicates
    x_test[3:5] = x_train[3:5]  # copies
    np.savez(tmp_path / "pictures.npz", x_train=x_train, y_train=np.arange(30) % 2,
             x_test=x_test, y_test=np.arange(10) % 2)
    config = write_config(
        "name: pictures\nseed: 0\ndataset: {name: npz, path: %s, validation_split: 0}\n"
        "model:\n  layers:\n    - Flatten\n    - Dense: {units: 2, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\ntraining: {epochs: 1}\n" % (tmp_path / "pictures.npz")
    )

    found = load_dataset(load_config(config)).describe()["checks"]

    assert reported_pairs(found, "exact_duplicate") == {frozenset((f"test[{i}]", f"train[{i}]")) for i in (3, 4)}
    assert reported_pairs(found, "near_duplicate") == {frozenset((f"test[{i}]", f"train[{i}]")) for i in range(3)}


def test_bundled_data_runs_its_checks(write_config):
    from conftest import TINY_CONFIG

    splits = load_dataset(load_config(write_config(TINY_CONFIG)))  # digits

    assert splits.describe()["checks"] == []  # scikit-learn's digits: no copies across or within splits
    assert splits.describe()["checks"] == []


@pytest.mark.slow
def test_leaks_error_stops_before_the_run_folder_and_drop_trains_on_the_cleaned_split(cli, write_config, tmp_path, runs_dir):
    planted_folder(tmp_path / "photos")

    refused = cli("train", str(photo_config(write_config, tmp_path / "photos", "error")))

    assert refused.exit_code == 2, refused.output
    assert re.search(r"dataset.leaks is error, and \d+ (validation|test) examples have exact copies in train", refused.stderr)
    assert "config.yaml:7" in refused.stderr and run_folders(runs_dir) == []

    trained = cli("train", str(photo_config(write_config, tmp_path / "photos", "drop")))

    assert trained.exit_code == 0, trained.output
    (run,) = run_folders(runs_dir)
    data = read_json(run / "summary.json")["data"]
    assert data["dropped"]["test"] == 9 and data["test"] == 29 - 9  # 20 photos and 9 copies, 4 exact and 5 near
    assert {finding["kind"] for finding in data["checks"]} >= {"exact_duplicate", "near_duplicate"}
    assert "dataset.leaks: drop removed" in trained.stdout and "left them out of test" in trained.stdout
    assert "set `dataset.leaks: drop`" not in trained.stdout

    checked = cli("check", str(photo_config(write_config, tmp_path / "photos", "warn")), "--format", "json")
    assert checked.exit_code == 0, checked.output
    document = json.loads(checked.stdout)
    assert {"data", "class_counts", "layers", "data_checks"} <= set(document)
    assert document["data"]["test"] == 29
    assert all({"kind", "splits", "count", "examples", "message", "leak"} <= set(f) for f in document["data_checks"])


def test_the_batched_perceptual_hash_is_imagehash_phash_bit_for_bit():
    imagehash = pytest.importorskip("imagehash")
    rng = np.random.default_rng(3)
    photos = [_picture(rng) for _ in range(100)]
    grey = np.stack([np.asarray(p.convert("L").resize((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.LANCZOS))
                     for p in photos])

    ours = perceptual_hashes(grey)

    for picture, words in zip(photos, ours):
        reference = imagehash.phash(picture, hash_size=16).hash.flatten()
        assert np.array_equal(np.unpackbits(words.astype(">u8").view(np.uint8)).astype(bool), reference)


def test_the_read_ahead_process_finds_what_the_checks_find_in_process(write_config, tmp_path, monkeypatch):
    planted_folder(tmp_path / "photos")
    config = load_config(photo_config(write_config, tmp_path / "photos"))

    start_checks(config)  # what check and train do before importing TensorFlow
    assert len(checks._read_ahead) == 1
    read = checks._read_ahead_results()
    assert len(read) == len(list((tmp_path / "photos").rglob("*.jpg")))  # every file, from the process
    assert not list(Path(tempfile.gettempdir()).glob("dlcli-checks-*"))  # its files removed
    read_ahead = load_dataset(config).describe()["checks"]
    assert not checks._read_ahead and not checks._read  # taken, every file of it

    start_checks(config)
    assert not checks._read_ahead  # checked before: nothing to read
    monkeypatch.setenv("DLCLI_CACHE_DIR", str(tmp_path / "another cache"))
    assert load_dataset(config).describe()["checks"] == read_ahead  # read in this process


def _table_config(write_config, path, extra=""):
    return write_config(
        "name: table\nseed: 0\ndataset: {name: csv, path: %s, label_column: label, test_split: 0.25%s}\n"
        "model:\n  layers:\n    - Dense: {units: 3, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\ntraining: {epochs: 1}\n" % (path, extra)
    )


def test_a_label_written_two_ways_is_said(write_config, tmp_path):
    rng = np.random.default_rng(0)
    labels = ["dog", "cat", "Dog ", "bird", "cafe\u0301", "caf\u00e9", "7", "07", "7.0", "70"] * 10  # café: e + accent, or é
    rows = [f"{rng.normal():.5f},{rng.normal():.5f},{label}" for label in labels]
    (tmp_path / "table.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")

    splits = load_dataset(load_config(_table_config(write_config, tmp_path / "table.csv")))
    (similar,) = [finding for finding in splits.describe()["checks"] if finding["kind"] == "similar_classes"]

    assert similar["examples"] == [["07", "7", "7.0"], ["Dog ", "dog"], ["cafe\u0301", "caf\u00e9"]]
    assert similar["count"] == 7
    assert "classes '07' and '7' and '7.0' (and 2 more such sets) differ only in case, spaces or how a letter or a " \
        "number is typed" in similar["message"]


def test_a_table_says_its_constant_columns_and_imbalanced_classes(write_config, tmp_path):
    rng = np.random.default_rng(0)
    labels = [0] * 60 + [1] * 60 + [2] * 8
    rows = [f"{rng.normal():.5f},{rng.normal():.5f},7,{label}" for label in labels]
    (tmp_path / "table.csv").write_text("a,b,constant,label\n" + "\n".join(rows) + "\n")

    splits = load_dataset(load_config(_table_config(write_config, tmp_path / "table.csv")))
    found = {finding["kind"]: finding for finding in splits.describe()["checks"]}

    assert set(found) == {"constant_column", "class_imbalance"}
    assert found["constant_column"]["examples"] == [["constant"]]
    assert "leave them out of feature_columns" in found["constant_column"]["message"]
    assert f"'2' {splits.class_counts()['train'][2]})" in found["class_imbalance"]["message"]


def test_a_class_missing_from_the_test_split_is_said(write_config, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "arrays.npz", x_train=rng.normal(size=(60, 4)), y_train=np.arange(60) % 3,
             x_test=rng.normal(size=(20, 4)), y_test=np.arange(20) % 2)
    config = write_config(
        "name: arrays\nseed: 0\ndataset: {name: npz, path: %s}\n"
        "model:\n  layers:\n    - Dense: {units: 3, activation: softmax}\n"
        "loss: sparse_categorical_crossentropy\ntraining: {epochs: 1}\n" % (tmp_path / "arrays.npz")
    )

    (finding,) = load_dataset(load_config(config)).describe()["checks"]

    assert finding["kind"] == "missing_class" and finding["splits"] == ["test"]
    assert "no example of 1 class (2): its scores say nothing of it" in finding["message"]


def test_drop_removes_from_a_drawn_validation_split_exactly_the_copies_of_training_rows(write_config, tmp_path):
    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in rng.normal(size=3)) + f",{label}" for label in range(2) for _ in range(60)]
    copies = [rows[i] for i in range(0, 120, 4)]  # 30 copies: some land in validation, some in test
    (tmp_path / "table.csv").write_text("a,b,c,label\n" + "\n".join(rows + copies) + "\n")
    config = load_config(_table_config(write_config, tmp_path / "table.csv", ", leaks: drop"))

    warned = load_dataset(load_config(_table_config(write_config, tmp_path / "table.csv")))
    dropped = load_dataset(config)

    def rows_of(split):
        return {row.tobytes() for row in split.pool.x[split.indices]}

    train = rows_of(dropped.train)
    held_in_train = [row for row in warned.validation.pool.x[warned.validation.indices] if row.tobytes() in train]
    assert held_in_train and dropped.dropped["validation"] == len(held_in_train)
    assert len(dropped.validation) == len(warned.validation) - len(held_in_train)
    assert not rows_of(dropped.validation) & train and not rows_of(dropped.test) & (train | rows_of(dropped.validation))
    # each leak says it was dropped, not to drop it
    warned_leaks = [f["message"] for f in warned.describe()["checks"] if f["leak"]]
    dropped_leaks = [f["message"] for f in dropped.describe()["checks"] if f["leak"]]
    assert warned_leaks and all(message.endswith("or set `dataset.leaks: drop`") for message in warned_leaks)
    assert len(dropped_leaks) == len(warned_leaks)
    assert all("left them out of" in m and "set `dataset.leaks" not in m for m in dropped_leaks)


def test_k_fold_checks_the_whole_pool_with_its_own_labels_even_shuffled(write_config, tmp_path):
    from conftest import TINY_CONFIG

    config = write_config(TINY_CONFIG + "  kfold: 3\n")
    shuffled = load_config(config, ["dataset.shuffle_labels=true"])

    plain = load_dataset_folds(load_config(config))
    assert all(fold.describe()["checks"] == [] for fold in plain)
    assert all(fold.describe()["checks"] == [] for fold in load_dataset_folds(shuffled))  # no conflict invented


def test_the_same_picture_in_another_format_or_in_grey_is_a_near_duplicate_and_an_edit_is_checked_again(
    write_config, tmp_path,
):
    root = tmp_path / "photos"
    planted_folder(root, per_class=12, test_per_class=4)
    with Image.open(root / "train/cat/cat.5.jpg") as image:
        image.save(root / "test/cat/as.png")  # the decoded pixels, losslessly
        image.convert("L").save(root / "test/cat/grey.jpg", quality=85)
        image.convert("RGBA").save(root / "test/cat/alpha.png")
    config = load_config(photo_config(write_config, root))

    near = reported_pairs(load_dataset(config).describe()["checks"], "near_duplicate")

    assert {frozenset(("train/cat/cat.5.jpg", f"test/cat/{name}")) for name in ("as.png", "grey.jpg", "alpha.png")} <= near

    shutil.copy(root / "train/cat/cat.6.jpg", root / "test/cat/as.png")  # edited in place: now an exact copy
    exact = reported_pairs(load_dataset(load_config(photo_config(write_config, root))).describe()["checks"], "exact_duplicate")
    assert frozenset(("train/cat/cat.6.jpg", "test/cat/as.png")) in exact


def test_a_picture_larger_than_pillow_decodes_unasked_is_compared_by_its_bytes(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.new("L", (80, 80)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 6,400 pixels: a "decompression bomb" to Pillow, as 14,000² is

    digest, picture = pictures.file_digest_and_picture(str(path))

    assert picture is None and digest == pictures.file_digest_and_picture(str(path))[0]


def test_another_split_of_the_same_files_reads_none_of_them_again(write_config, tmp_path, monkeypatch):
    planted = planted_folder(tmp_path / "photos", per_class=12, test_per_class=4)
    first = load_dataset(load_config(photo_config(write_config, tmp_path / "photos")))

    def no_reading(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(pictures, "file_digest_and_picture", no_reading)
    reseeded = load_dataset(load_config(photo_config(write_config, tmp_path / "photos"), ["seed=7"]))

    assert first.validation.indices.tolist() != reseeded.validation.indices.tolist()  # another split ...
    for kind in ("exact_duplicate", "near_duplicate"):  # ... the same pairs, from the files' kept hashes
        assert reported_pairs(reseeded.describe()["checks"], kind) == planted[kind]


def test_cleaning_the_cache_removes_unused_findings_and_the_hashes_of_changed_or_removed_files(
        cli, write_config, tmp_path):
    planted_folder(tmp_path / "photos", per_class=12, test_per_class=4)
    config = photo_config(write_config, tmp_path / "photos")
    load_dataset(load_config(config))
    load_dataset(load_config(config, ["seed=3"]))  # another split: findings of its own
    folder = checks.checks_cache_dir()
    findings = set(folder.glob("*.json"))
    assert len(findings) == 2
    old = time.time() - 40 * 86400
    for path in findings:
        os.utime(path, (old, old))
    load_dataset(load_config(config, ["seed=3"]))  # read back: in use again
    (used,) = [path for path in findings if path.stat().st_mtime > old]
    pictures = sorted(path for path in (tmp_path / "photos").rglob("*") if path.is_file())
    pictures[0].unlink()
    pictures[1].write_bytes(pictures[2].read_bytes())  # changed in place
    (folder / "files-0.db").write_bytes(b"an older version's")

    result = cli("datasets", "cache", "--clean", runs=False)

    assert result.exit_code == 0, result.output
    assert "removed 1 data checks' findings unused for 30 days and the hashes of 2 files" in result.output
    assert set(folder.glob("*.json")) == {used} and not (folder / "files-0.db").exists()
    with sqlite3.connect(folder / checks.FILES_DB) as connection:
        kept = {path for (path,) in connection.execute("SELECT path FROM files")}
    assert str(pictures[0]) not in kept and str(pictures[1]) not in kept and str(pictures[2]) in kept
