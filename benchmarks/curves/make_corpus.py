"""Regenerates the labelled corpus of learning curves that benchmarks/verdicts.py reads.

Each model below is trained by dlcli itself, offline, once per seed; its history.csv is
kept as benchmarks/curves/<model>/seed-<n>.csv beside the config it came from. The
labels are not stored: verdicts.py derives them from the seed-averaged curves.

    python benchmarks/curves/make_corpus.py [--only MODEL]...   (about 35 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
HELD_OUT_FOLDER = "held-out"
SEEDS = range(5)

# What each model is there to show; its config is trained for every seed (k-fold: every fold).
MODELS: dict[str, tuple[str, str, range]] = {
    "quickstart": ("noisy, still improving: the quick start's own run", """
name: quickstart
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 512, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 12, batch_size: 128}
""", range(10)),
    "dense-late-overfit": ("the quick start's model trained on: overfits after a long descent", """
name: dense-late-overfit
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 512, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 128}
""", SEEDS),
    "dense-clear-overfit": ("two wide layers, Adam, small batches: overfits within a few epochs", """
name: dense-clear-overfit
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 512, activation: relu}}, {Dense: {units: 512, activation: relu}},
                 {Dense: {units: 10, activation: softmax}}]}
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 25, batch_size: 32}
""", SEEDS),
    "small-data-overfit": ("800 training digits for a wide layer: the book's classic overfit", """
name: small-data-overfit
dataset: {name: mnist_5k, validation_split: 0.8}
model: {layers: [Flatten, {Dense: {units: 256, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 30, batch_size: 32}
""", SEEDS),
    "digits-dropout": ("dropout on a small net: noisy, slowly improving", """
name: digits-dropout
dataset: {name: digits, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 64, activation: relu}}, {Dropout: {rate: 0.5}},
                 {Dense: {units: 10, activation: softmax}}]}
optimizer: {name: adam, learning_rate: 0.0005}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 50, batch_size: 32}
""", SEEDS),
    "digits-noisy-sgd": ("small batches and plain SGD: the noisiest validation curve", """
name: digits-noisy-sgd
dataset: {name: digits, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 32, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: {name: sgd, learning_rate: 0.05}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 8}
""", SEEDS),
    "logistic-slow": ("a regularized linear model at a small learning rate: still improving, ever slower", """
name: logistic-slow
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 10, activation: softmax, kernel_regularizer: {class_name: L2, config: {l2: 0.001}}}}]}
optimizer: {name: sgd, learning_rate: 0.05}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 128}
""", SEEDS),
    "logistic-plateau": ("the same linear model at a high learning rate: converged, then flat", """
name: logistic-plateau
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 10, activation: softmax, kernel_regularizer: {class_name: L2, config: {l2: 0.001}}}}]}
optimizer: {name: sgd, learning_rate: 0.5}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 128}
""", SEEDS),
    "unstable": ("a learning rate far too high: validation jumps from epoch to epoch", """
name: unstable
dataset: {name: mnist_5k, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 512, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: {name: rmsprop, learning_rate: 0.1}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 15, batch_size: 128}
""", SEEDS),
    "divergence": ("momentum on a learning rate far too high: the training loss climbs back to chance", """
name: divergence
dataset: {name: digits, validation_split: 0.2}
model: {layers: [Flatten, {Dense: {units: 64, activation: relu}}, {Dense: {units: 64, activation: relu}},
                 {Dense: {units: 10, activation: softmax}}]}
optimizer: {name: sgd, learning_rate: 0.5, momentum: 0.9}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 15, batch_size: 32}
""", SEEDS),
    "digits-kfold": ("4-fold validation of a small net with dropout: still improving", """
name: digits-kfold
dataset: {name: digits}
model: {layers: [Flatten, {Dense: {units: 32, activation: relu}}, {Dropout: {rate: 0.2}},
                 {Dense: {units: 10, activation: softmax}}]}
optimizer: {name: adam, learning_rate: 0.0005}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 30, batch_size: 32, kfold: 4}
""", SEEDS),
    "mnist-kfold-overfit": ("3-fold validation of the quick start's model, trained on: each fold overfits", """
name: mnist-kfold-overfit
dataset: {name: mnist_5k}
model: {layers: [Flatten, {Dense: {units: 512, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 30, batch_size: 64, kfold: 3}
""", SEEDS),
    "finetune": ("a frozen convolutional base, then fine-tuned at a low learning rate", """
name: finetune
dataset: {name: mnist_5k, classes: [5, 6, 7, 8, 9]}
model:
  base: {run: corpus-base, until: features, trainable: false}
  layers: [{Dense: {units: 64, activation: relu}}, {Dense: {units: 5, activation: softmax}}]
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 8, batch_size: 64, fine_tune: {unfreeze: all, epochs: 12, learning_rate: 0.0001}}
""", SEEDS),
    # Tables, written by write_tables() into the scratch folder ({tables}) from scikit-learn's copies.
    "table-wide-overfit": ("a 256-256 net on 455 rows of a 569-row table: overfits within a few epochs", """
name: table-wide-overfit
dataset: {name: csv, path: {tables}/breast_cancer.csv, label_column: label, validation_split: 0.2}
model: {layers: [{Dense: {units: 256, activation: relu}}, {Dense: {units: 256, activation: relu}},
                 {Dense: {units: 2, activation: softmax}}]}
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 60, batch_size: 32}
""", SEEDS),
    "table-small-healthy": ("the same table, 8 units with dropout and plain SGD: still improving", """
name: table-small-healthy
dataset: {name: csv, path: {tables}/breast_cancer.csv, label_column: label, validation_split: 0.2}
model: {layers: [{Dense: {units: 8, activation: relu}}, {Dropout: {rate: 0.3}}, {Dense: {units: 2, activation: softmax}}]}
optimizer: {name: sgd, learning_rate: 0.01}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 32}
""", SEEDS),
    "table-noise-features": ("the table with 300 columns of pure noise beside its 30: memorizes the noise", """
name: table-noise-features
dataset: {name: csv, path: {tables}/breast_cancer_noise.csv, label_column: label, validation_split: 0.2}
model: {layers: [{Dense: {units: 128, activation: relu}}, {Dense: {units: 2, activation: softmax}}]}
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 32}
""", SEEDS),
    "shuffled-labels": ("digits whose labels were shuffled: nothing to learn but the training set itself", """
name: shuffled-labels
dataset: {name: npz, path: {tables}/digits_shuffled.npz, validation_split: 0.2}
model: {layers: [{Dense: {units: 256, activation: relu}}, {Dense: {units: 10, activation: softmax}}]}
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 32}
""", SEEDS),
    "regression-overfit": ("a 256-256 regression net on 282 patients (scikit-learn's diabetes): MSE rises again", """
name: regression-overfit
dataset: {name: csv, path: {tables}/diabetes.csv, label_column: target, task: regression, validation_split: 0.2}
model: {layers: [{Dense: {units: 256, activation: relu}}, {Dense: {units: 256, activation: relu}}, {Dense: {units: 1}}]}
optimizer: {name: adam, learning_rate: 0.003}
loss: mse
metrics: [mae]
training: {epochs: 80, batch_size: 16}
""", SEEDS),
    "regression-linear": ("a linear regression on the same patients: converged, then flat", """
name: regression-linear
dataset: {name: csv, path: {tables}/diabetes.csv, label_column: target, task: regression, validation_split: 0.2}
model: {layers: [{Dense: {units: 1}}]}
optimizer: {name: sgd, learning_rate: 0.01}
loss: mse
metrics: [mae]
training: {epochs: 60, batch_size: 16}
""", SEEDS),
    "table-kfold-overfit": ("4-fold validation of the wide table net: each fold overfits", """
name: table-kfold-overfit
dataset: {name: csv, path: {tables}/breast_cancer.csv, label_column: label}
model: {layers: [{Dense: {units: 256, activation: relu}}, {Dense: {units: 256, activation: relu}},
                 {Dense: {units: 2, activation: softmax}}]}
optimizer: adam
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 40, batch_size: 32, kfold: 4}
""", SEEDS),
    "regression-kfold": ("4-fold validation of a small regularized regression net: still improving or flat", """
name: regression-kfold
dataset: {name: csv, path: {tables}/diabetes.csv, label_column: target, task: regression}
model: {layers: [{Dense: {units: 16, activation: relu}}, {Dropout: {rate: 0.2}}, {Dense: {units: 1}}]}
optimizer: {name: rmsprop, learning_rate: 0.001}
loss: mse
metrics: [mae]
training: {epochs: 60, batch_size: 16, kfold: 4}
""", SEEDS),
}

# Models whose seeds disagree too much for a seed-averaged label: trained and shown apart by
# verdicts.py (benchmarks/curves/held-out/), not scored.
HELD_OUT: dict[str, tuple[str, str, range]] = {
    "boston-kfold": ("the book's k-fold regression: each fold's 101 validation houses", """
name: boston-kfold
dataset: {name: boston_housing, standardize: true}
model: {layers: [{Dense: {units: 64, activation: relu}}, {Dense: {units: 64, activation: relu}}, {Dense: {units: 1}}]}
optimizer: rmsprop
loss: mse
metrics: [mae]
training: {epochs: 100, batch_size: 16, kfold: 4}
""", SEEDS),
}

# The fine-tuned model's base: a small convnet trained once on the other five digits.
BASE = """
name: corpus-base
dataset: {name: mnist_5k, classes: [0, 1, 2, 3, 4]}
model:
  layers: [{Conv2D: {filters: 16, kernel_size: 3, activation: relu}}, {MaxPooling2D: {pool_size: 2}},
           {Conv2D: {filters: 32, kernel_size: 3, activation: relu}}, {MaxPooling2D: {pool_size: 2}},
           {Flatten: {name: features}}, {Dense: {units: 5, activation: softmax}}]
optimizer: rmsprop
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {epochs: 3, batch_size: 64}
"""


# The noise columns and the shuffled labels come from one fixed generator: the corpus is the same each time.
TABLE_SEED = 0
NOISE_COLUMNS = 300


def write_tables(folder: Path) -> None:
    """The tables the table models read, from scikit-learn's copies (offline)."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

    generator = np.random.default_rng(TABLE_SEED)
    cancer = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    cancer.to_csv(folder / "breast_cancer.csv", index=False)
    noise = pd.DataFrame(
        generator.normal(size=(len(cancer), NOISE_COLUMNS)), columns=[f"noise_{i}" for i in range(NOISE_COLUMNS)]
    )
    pd.concat([cancer, noise], axis=1).to_csv(folder / "breast_cancer_noise.csv", index=False)
    load_diabetes(as_frame=True).frame.to_csv(folder / "diabetes.csv", index=False)
    digits = load_digits()
    x, y = digits.data.astype("float32") / 16, generator.permutation(digits.target)
    split = len(x) * 4 // 5
    np.savez(folder / "digits_shuffled.npz", x_train=x[:split], y_train=y[:split], x_test=x[split:], y_test=y[split:])


def _train(text: str, seed: int, runs: Path) -> Path:
    from dlcli.config import load_config
    from dlcli.training.train import train

    path = runs / "config.yaml"
    path.write_text(text.replace("{tables}", str(runs)), encoding="utf-8")
    config = load_config(path, [f"seed={seed}", "training.tensorboard=false"])
    return train(config, runs).run.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=[*MODELS, *HELD_OUT], help="regenerate only this model")
    names = parser.parse_args().only or [*MODELS, *HELD_OUT]
    sys.path.insert(0, str(CORPUS.parent.parent))
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(scratch)
        write_tables(runs)
        if "finetune" in names:
            _train(BASE, 0, runs)
        for name in names:
            description, text, seeds = MODELS[name] if name in MODELS else HELD_OUT[name]
            folder = CORPUS / name if name in MODELS else CORPUS / HELD_OUT_FOLDER / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "config.yaml").write_text(f"# {description}\n{text.lstrip()}", encoding="utf-8")
            for seed in seeds:
                started = time.perf_counter()
                run = _train(text, seed, runs)
                shutil.copyfile(run / "history.csv", folder / f"seed-{seed}.csv")
                print(f"{name} seed {seed}: {time.perf_counter() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
