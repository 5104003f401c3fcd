"""Shared fixtures: a tiny config on bundled data, an isolated runs folder, the CLI runner."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlcli.cli import app

# Every dlcli process a test starts dumps its Python stacks should it die of a signal: a rare
# native crash (one SIGSEGV on SIGINT in 45 runs of test_watching's interrupt test) then
# shows where it happened in the failing test's stderr.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

# A dense net on scikit-learn's digits: trains 2 epochs in well under a second.
TINY_CONFIG = """\
name: tiny
seed: 0
dataset:
  name: digits
  validation_split: 0.2
model:
  layers:
    - Flatten
    - Dense: {units: 16, activation: relu}
    - Dense: {units: 10, activation: softmax}
optimizer: {name: adam, learning_rate: 0.01}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training:
  epochs: 2
  batch_size: 64
"""


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def write_config(tmp_path: Path):
    """write_config(text) -> path of a config file holding `text` (dedented)."""

    def write(text: str = TINY_CONFIG, filename: str = "config.yaml") -> Path:
        path = tmp_path / filename
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def tiny_config(write_config) -> Path:
    return write_config(TINY_CONFIG)


@pytest.fixture
def cli(runs_dir: Path):
    """cli(*args) runs `dlcli ARGS --runs-dir <tmp>` in-process and returns the result."""
    runner = CliRunner()

    def invoke(*args: str, runs: bool = True):
        extra = ["--runs-dir", str(runs_dir)] if runs else []
        return runner.invoke(app, [*args, *extra])

    return invoke


def run_folders(runs_dir: Path) -> list[Path]:
    return sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.exists() else []


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> Path:
    """scikit-learn's digits exported as PNG files in the image_directory layout (train/, test/)."""
    from dlcli.data.export import export_images

    folder = tmp_path_factory.mktemp("digits") / "png"
    export_images("digits", folder)
    return folder


@pytest.fixture(scope="session")
def few_digits_folder(digits_folder, tmp_path_factory) -> Path:
    """The exported digits cut to 12 images a class in each split, for runs whose numbers matter
    but not their size: an epoch of the full folder takes most of a minute in a wide network."""
    folder = tmp_path_factory.mktemp("few-digits")
    for image in sorted(digits_folder.glob("*/*/*.png")):
        kept = folder / image.relative_to(digits_folder)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if len(list(kept.parent.iterdir())) < 12:
            kept.write_bytes(image.read_bytes())
    return folder


def fake_run(runs_dir: Path, run_id: str, config_text: str = TINY_CONFIG, summary: dict | None = None,
             status: str = "completed", **info) -> Path:
    """A run folder as training leaves it (run.json, config.yaml, summary.json), made in an instant."""
    import socket

    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    record = {
        "id": run_id, "name": run_id[16:], "dataset": "digits", "status": status,
        "created": f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:{run_id[11:13]}:{run_id[13:15]}",
        "duration_s": 1.5, "host": socket.gethostname(), "pid": os.getpid(), "error": None, **info,
    }
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "config.yaml").write_text(textwrap.dedent(config_text))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def summary_with(val_loss: float, val_accuracy: float, epochs: int = 2, onset: int | None = None) -> dict:
    return {
        "epochs_run": epochs, "best_epoch": epochs, "monitor": "val_loss", "parameters": 1210,
        "directions": {"loss": "min", "accuracy": "max"},
        "best": {"loss": 0.1, "val_loss": val_loss, "val_accuracy": val_accuracy},
        "final": {"loss": 0.1, "val_loss": val_loss, "val_accuracy": val_accuracy},
        "overfitting": {"detected": onset is not None, "onset_epoch": onset},
    }


def encoded(splits, name: str):
    """Split `name`'s examples as the model receives them, and their labels, as NumPy arrays."""
    import numpy as np

    from dlcli.data.pipeline import stream

    batches = list(stream(splits, name, 512).as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
