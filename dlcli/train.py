"""train(config): seed, data, model, compile, fit, save — recorded in a run folder."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from rich.console import Console

from dlcli.callbacks import BestModelCheckpoint, EpochRecorder, RichProgress, save_model_atomic
from dlcli.config import ExperimentConfig
from dlcli.data import load_dataset
from dlcli.data.pipeline import make_pipeline
from dlcli.errors import DlcliError, TrainingFailed, TrainingInterrupted
from dlcli.models import build_model, compile_model
from dlcli.runs import HISTORY_FILE, MODEL_FILE, SUMMARY_FILE, RunFolder, write_json


@dataclass
class TrainResult:
    run: RunFolder
    summary: dict[str, Any]


def _metrics_of(row: dict[str, float] | None) -> dict[str, float]:
    return {key: value for key, value in (row or {}).items() if key not in ("epoch", "seconds")}


def train(
    config: ExperimentConfig,
    runs_dir: Path,
    console: Console | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train `config` into a new run folder under `runs_dir` and return its summary.

    `console` shows live progress; `command` is recorded in run.json as what started the run.

    Config and data problems are raised before the folder exists; once it exists, a
    failure or an interrupt is recorded in its `run.json` before the error propagates.
    """
    keras.utils.set_random_seed(config.seed)
    splits = load_dataset(config)
    model = build_model(config, splits.input_shape)
    compile_model(config, model)

    run = RunFolder.create(runs_dir, config.name)
    run.start(
        config.to_yaml(), config.seed, config.name,
        versions={"tensorflow": tf.__version__, "keras": keras.__version__},
        command=command,
    )
    epochs, batch_size = config.training.epochs, config.training.batch_size
    recorder = EpochRecorder(run.file(HISTORY_FILE))
    checkpoint = BestModelCheckpoint(run.file(MODEL_FILE), config)
    # The checkpoint goes first: an epoch in history.csv always has its model saved.
    callbacks: list[keras.callbacks.Callback] = [checkpoint, recorder]
    progress = None
    if console is not None:
        progress = RichProgress(console, epochs, math.ceil(len(splits.x_train) / batch_size), checkpoint)
        callbacks.append(progress)
    try:
        started = time.perf_counter()
        model.fit(
            make_pipeline(splits.x_train, splits.y_train, batch_size, shuffle_seed=config.seed),
            validation_data=make_pipeline(splits.x_val, splits.y_val, batch_size),
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,  # the pipeline reshuffles, seeded
            verbose=0,
        )
        fit_seconds = time.perf_counter() - started
        if checkpoint.best_epoch is None:  # the monitor was never a number: keep the last model
            save_model_atomic(model, run.file(MODEL_FILE))
        rows = recorder.rows
        summary = {
            "epochs_run": len(rows),
            "epochs": epochs,
            "monitor": checkpoint.monitor,
            "best_epoch": checkpoint.best_epoch,
            "best": _metrics_of(rows[checkpoint.best_epoch - 1] if checkpoint.best_epoch else None),
            "final": _metrics_of(rows[-1] if rows else None),
            "parameters": model.count_params(),
            "fit_seconds": round(fit_seconds, 3),
            "samples_per_second": round(len(splits.x_train) * len(rows) / fit_seconds, 1),
            "data": {"dataset": config.dataset.name, **splits.describe()},
        }
        write_json(run.file(SUMMARY_FILE), summary)
    except KeyboardInterrupt:
        run.finish("interrupted", error="interrupted by Ctrl-C or SIGTERM")
        done = len(recorder.rows)
        raise TrainingInterrupted(
            f"run {run.id} interrupted after {done} of {epochs} epochs; its folder keeps the "
            f"history and the best model so far ({run.path})"
        ) from None
    except DlcliError as error:
        run.finish("failed", error=str(error))
        raise
    except Exception as error:
        run.finish("failed", error=f"{type(error).__name__}: {error}")
        raise TrainingFailed(f"run {run.id} failed: {type(error).__name__}: {error}") from error
    finally:
        if progress is not None:
            progress.close()
    run.finish("completed")
    return TrainResult(run, summary)
