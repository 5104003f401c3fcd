"""dlcli train on a folder of photos against the book's streaming script, as whole processes.

Generates a synthetic folder of JPEG photos in the book's cats-vs-dogs layout
(photo-like sizes, 300-480 px, two classes a small convnet can learn: a warm ellipse or a
cool rectangle over a textured background), then runs, alternating, the book-style
script (`image_dataset_from_directory`, streaming from disk, the `cats_dogs_scratch`
model, a best-model checkpoint) and `dlcli train configs/cats_dogs_scratch.yaml` with
the same image size, batch size and epochs. Prints the wall time, peak memory (the
child's `ru_maxrss`) and final validation accuracy of each; then `dlcli train` with
`training.cache=disk` on the same folder and on one with `--scale` times the photos.

    python benchmarks/image_folder.py [--train 2000] [--validation 1000] [--size 128]
        [--epochs 2] [--repeats 2] [--scale 4] [--photos DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CLASSES = ("cat", "dog")

BOOK_SCRIPT = '''
import sys
from pathlib import Path
import keras
from keras import layers

base, size, epochs, batch_size, checkpoint = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
keras.utils.set_random_seed(0)
train = keras.utils.image_dataset_from_directory(base / "train", image_size=(size, size), batch_size=batch_size)
validation = keras.utils.image_dataset_from_directory(base / "validation", image_size=(size, size), batch_size=batch_size)
inputs = keras.Input(shape=(size, size, 3))
x = layers.Rescaling(1.0 / 255)(inputs)
for filters in (32, 64, 128, 256):
    x = layers.Conv2D(filters, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
x = layers.Conv2D(256, 3, activation="relu")(x)
x = layers.Flatten()(x)
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.compile(loss="binary_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
callbacks = [keras.callbacks.ModelCheckpoint(checkpoint, save_best_only=True, monitor="val_loss")]
history = model.fit(train, epochs=epochs, validation_data=validation, callbacks=callbacks, verbose=0)
print(history.history["val_accuracy"][-1])
'''


def _photo(rng, label: int):
    """One photo-like RGB image: a textured gradient background and the class's object."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    width, height = (int(v) for v in rng.integers(300, 481, size=2))
    ys, xs = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height)[..., None]
    base_colour = rng.uniform(40, 200, size=3)
    pixels = base_colour + 60 * ramp + rng.normal(0, 18, size=(height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):  # distractors of both shapes and any colour
        x0, y0 = rng.integers(0, width - 40), rng.integers(0, height - 40)
        box = [x0, y0, x0 + rng.integers(15, 40), y0 + rng.integers(15, 40)]
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    side = int(min(width, height) * rng.uniform(0.35, 0.6))
    x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    box = [x0, y0, x0 + side, y0 + int(side * rng.uniform(0.7, 1.0))]
    if label == 0:  # "cat": a warm ellipse
        colour = (int(rng.integers(190, 256)), int(rng.integers(80, 160)), int(rng.integers(0, 70)))
        draw.ellipse(box, fill=colour)
    else:  # "dog": a cool rectangle
        colour = (int(rng.integers(0, 70)), int(rng.integers(80, 160)), int(rng.integers(190, 256)))
        draw.rectangle(box, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))


def make_photos(folder: Path, train: int, validation: int, test: int, seed: int = 0) -> Path:
    """The book's layout: {train,validation,test}/{cat,dog}/N.jpg; kept and reused once complete."""
    import numpy as np

    done = folder / "complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(seed)
    for subset, count in (("train", train), ("validation", validation), ("test", test)):
        for label, name in enumerate(CLASSES):
            target = folder / subset / name
            target.mkdir(parents=True, exist_ok=True)
            for index in range(count // 2):
                _photo(rng, label).save(target / f"{name}.{index}.jpg", quality=90)
    done.touch()
    return folder


def measured(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak RSS in GB, stdout) of `command` run in a fresh measuring process."""
    probe = (
        "import resource, subprocess, sys, time, json; started = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "seconds = time.perf_counter() - started; "
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
        "sys.stderr.write(done.stderr[-3000:] if done.returncode else ''); "
        "print(json.dumps([done.returncode, seconds, peak, done.stdout]))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env)
    returncode, seconds, peak_kb, stdout = json.loads(out.stdout)
    if returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({returncode}):\n{out.stderr}")
    return seconds, peak_kb / 1e6, stdout


def book(photos: Path, size: int, epochs: int, scratch: Path) -> tuple[float, float, float]:
    seconds, peak, stdout = measured([
        sys.executable, "-c", BOOK_SCRIPT, str(photos), str(size), str(epochs), "32", str(scratch / "book.keras"),
    ])
    return seconds, peak, float(stdout.strip().splitlines()[-1])


def dlcli(photos: Path, size: int, epochs: int, runs: Path, *overrides: str) -> tuple[float, float, float, dict]:
    settings = [f"dataset.path={photos}", f"dataset.image_size=[{size},{size}]", f"training.epochs={epochs}",
                "training.tensorboard=false", *overrides]
    command = [sys.executable, "-m", "dlcli", "train", str(REPOSITORY / "configs" / "cats_dogs_scratch.yaml"),
               "--runs-dir", str(runs)]
    for setting in settings:
        command += ["--set", setting]
    seconds, peak, _ = measured(command)
    latest = max((path for path in runs.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime)  # not the index
    summary = json.loads((latest / "summary.json").read_text())
    return seconds, peak, summary["final"]["val_accuracy"], summary["data"].get("cache", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "dlcli-benchmark-photos")
    args = parser.parse_args()

    started = time.perf_counter()
    one = make_photos(args.photos / f"x1-{args.train}-{args.validation}", args.train, args.validation, args.test)
    many = make_photos(args.photos / f"x{args.scale}-{args.train}-{args.validation}",
                       args.train * args.scale, args.validation * args.scale, args.test, seed=1)
    print(f"photos ready in {time.perf_counter() - started:.0f} s: {one}, {many}")

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        cache_dir = scratch / "cache"
        os.environ["DLCLI_CACHE_DIR"] = str(cache_dir)  # a cold disk cache, removed afterwards
        results: dict[str, list[tuple[float, float, float]]] = {"book": [], "dlcli": []}
        for repeat in range(args.repeats):
            results["book"].append(book(one, args.size, args.epochs, scratch))
            *measure, cache = dlcli(one, args.size, args.epochs, scratch / "runs")
            results["dlcli"].append(tuple(measure))
            print(f"round {repeat + 1}: book {results['book'][-1]}, dlcli {results['dlcli'][-1]} (cache {cache.get('mode')})")
        print(f"\n{args.train} train / {args.validation} validation photos at {args.size}x{args.size}, "
              f"{args.epochs} epochs, batch 32; medians of {args.repeats}:")
        print("| | wall time | peak memory (RSS) | val_accuracy |\n|---|---|---|---|")
        medians = {}
        for name, rows in results.items():
            seconds, peak, accuracy = (statistics.median(column) for column in zip(*rows))
            medians[name] = (seconds, peak, accuracy)
            print(f"| {name} | {seconds:.1f} s | {peak:.2f} GB | {accuracy:.3f} |")
        (book_s, book_gb, book_acc), (ours_s, ours_gb, ours_acc) = medians["book"], medians["dlcli"]
        print(f"time dlcli/book {ours_s / book_s:.2f}, memory dlcli/book {ours_gb / book_gb:.2f}, "
              f"val_accuracy difference {ours_acc - book_acc:+.3f}")

        print("\ntraining.cache=disk (the first run of each folder writes the cache):")
        print("| photos | wall time | peak memory (RSS) | val_accuracy |\n|---|---|---|---|")
        disk = {}
        for label, photos, count in (("1x", one, args.train), (f"{args.scale}x", many, args.train * args.scale)):
            for attempt in ("cold", "warm"):
                seconds, peak, accuracy, _ = dlcli(photos, args.size, args.epochs, scratch / f"runs-{label}",
                                                  "training.cache=disk")
                disk[(label, attempt)] = peak
                print(f"| {label} ({count} train), {attempt} cache | {seconds:.1f} s | {peak:.2f} GB | {accuracy:.3f} |")
        ratio = max(disk[(f"{args.scale}x", a)] for a in ("cold", "warm")) / max(disk[("1x", a)] for a in ("cold", "warm"))
        print(f"peak memory {args.scale}x / 1x with the disk cache: {ratio:.2f}")


if __name__ == "__main__":
    main()
