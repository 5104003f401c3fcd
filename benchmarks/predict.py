"""`dlcli predict` on a folder of images against `model.predict` over a tf.data pipeline of the same files.

Exports mnist_5k as PNG files (5,000; linked four times over: 20,000 inputs), trains a
small run on that folder (one epoch), then times,
as whole processes, `dlcli predict RUN FOLDER --format csv --output FILE` and a plain
script that loads the same model.keras, decodes the same files with tf.data and calls
`model.predict`, each on a quarter of the files and on all of them: the difference is
the throughput without the start-up. Then the peak memory of `dlcli predict` on both
(it must not grow with the number of inputs).

    python benchmarks/predict.py [--repeats 3]   (about 3 minutes)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
DLCLI = [sys.executable, "-m", "dlcli"]

PLAIN_SCRIPT = '''
import sys
from pathlib import Path
import keras, tensorflow as tf
model_path, folder = sys.argv[1], sys.argv[2]
model = keras.saving.load_model(model_path)
files = sorted(str(p) for p in Path(folder).rglob("*.png"))
def load(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
    return tf.image.resize(image, (28, 28)) / 255.0
data = tf.data.Dataset.from_tensor_slices(files).map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(256).prefetch(2)
predictions = model.predict(data, verbose=0)
print(len(predictions))
'''

CONFIG = """
name: predict-benchmark
dataset: {{name: image_directory, path: {folder}, image_size: [28, 28], color_mode: grayscale}}
model: {{layers: [Flatten, {{Dense: {{units: 256, activation: relu}}}}, {{Dense: {{units: 10, activation: softmax}}}}]}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {{epochs: 1, batch_size: 128, tensorboard: false}}
"""


def timed(command: list[str]) -> float:
    """Seconds of a whole process."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        folder, runs = root / "png", root / "runs"
        subprocess.run([*DLCLI, "datasets", "export", "mnist_5k", str(folder)], check=True, capture_output=True)
        (root / "config.yaml").write_text(CONFIG.format(folder=folder))
        subprocess.run([*DLCLI, "train", str(root / "config.yaml"), "--runs-dir", str(runs)], check=True,
                       capture_output=True)
        (run,) = [path for path in runs.iterdir() if path.is_dir()]  # beside the runs: their index
        # the 5,000 images as a quarter, and four times over (links) as the whole: start-up is then a
        # small part of the difference between the two
        images = sorted(folder.rglob("*.png"))
        quarter, whole = root / "quarter", root / "whole"
        for copy in range(4):
            for image in images:
                for target in ([quarter / image.relative_to(folder)] if copy == 0 else []) + [
                        whole / str(copy) / image.relative_to(folder)]:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(image)
        images = images * 4
        folder = whole
        (root / "plain.py").write_text(PLAIN_SCRIPT)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(repeats):  # alternating, so that a slow moment of the machine hits both
            for size, target in (("quarter", quarter), ("all", folder)):
                times.setdefault(("plain", size), []).append(
                    timed([sys.executable, str(root / "plain.py"), str(run / "model.keras"), str(target)]))
                times.setdefault(("dlcli", size), []).append(timed(
                    [*DLCLI, "predict", str(run), str(target), "--format", "csv", "--output", str(root / "out.csv")]))
        # peak memory: a fresh measuring process each, as getrusage keeps the largest child so far
        memory = {}
        for name, target in (("quarter", quarter), ("all", folder)):
            probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                     "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
            out = subprocess.run([sys.executable, "-c", probe, *DLCLI, "predict", str(run), str(target), "--format",
                                  "csv", "--output", str(root / "out.csv")], check=True, capture_output=True, text=True)
            memory[name] = int(out.stdout.strip()) / 1024
    count, few = len(images), len(images) // 4
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"{count} PNG images, 28x28, whole processes, median of {repeats}; throughput without start-up =")
    print(f"  ({count} - {few}) images / (time on {count} - time on {few}):")
    rates = {}
    for tool, label in (("plain", "plain model.predict over tf.data"), ("dlcli", "dlcli predict")):
        rates[tool] = (count - few) / (median[(tool, "all")] - median[(tool, "quarter")])
        print(f"  {label:34} {median[(tool, 'quarter')]:.2f} s / {median[(tool, 'all')]:.2f} s, "
              f"{rates[tool]:.0f} images/s")
    print(f"  dlcli's throughput: {rates['dlcli'] / rates['plain']:.2f}x the plain script's")
    print(f"  dlcli predict peak memory: {memory['quarter']:.0f} MB on {few} images, {memory['all']:.0f} MB on {count}")

if __name__ == "__main__":
    main()
