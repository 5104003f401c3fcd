"""train(config): seed, data, model, compile, fit, save — recorded in a run folder."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console

from dlcli.callbacks import BestModelCheckpoint, EpochRecorder, RichProgress, save_model_atomic
from dlcli.config import ExperimentConfig
from dlcli.data import load_dataset, load_folds
from dlcli.data.pipeline import make_pipeline
from dlcli.data.prepare import Splits
from dlcli.errors import DlcliError, TrainingFailed, TrainingInterrupted
from dlcli.models import ModelParts, build_model, compile_model, unfreeze
from dlcli.runs import HISTORY_FILE, MODEL_FILE, SUMMARY_FILE, RunFolder, write_json


@dataclass
class TrainResult:
    run: RunFolder
    summary: dict[str, Any]


def _metrics_of(row: dict[str, float] | None) -> dict[str, float]:
    return {key: value for key, value in (row or {}).items() if key not in ("epoch", "seconds", "fold", "phase")}


class _Session:
    """What the epochs of one run share: its folder, its history, its console."""

    def __init__(self, config: ExperimentConfig, run: RunFolder, console: Console | None):
        self.config = config
        self.run = run
        self.console = console
        self.recorder = EpochRecorder(run.file(HISTORY_FILE))
        self.samples_seen = 0
        self.fit_seconds = 0.0

    def fit(
        self, model: keras.Model, data: Splits, checkpoint: BestModelCheckpoint,
        epochs: int, initial_epoch: int = 0, label: str = "",
    ) -> None:
        """`model.fit` from `initial_epoch` up to epoch `epochs`, recorded and checkpointed."""
        batch_size = self.config.training.batch_size
        # The checkpoint goes first: an epoch in history.csv always has its model saved.
        callbacks: list[keras.callbacks.Callback] = [checkpoint, self.recorder]
        progress = None
        if self.console is not None:
            steps = math.ceil(len(data.x_train) / batch_size)
            progress = RichProgress(self.console, epochs, steps, checkpoint, label)
            callbacks.append(progress)
        started = time.perf_counter()
        try:
            model.fit(
                make_pipeline(data.x_train, data.y_train, batch_size, shuffle_seed=self.config.seed),
                validation_data=make_pipeline(data.x_val, data.y_val, batch_size),
                epochs=epochs,
                initial_epoch=initial_epoch,
                callbacks=callbacks,
                shuffle=False,  # the pipeline reshuffles, seeded
                verbose=0,
            )
        finally:
            if progress is not None:
                progress.close()
            self.fit_seconds += time.perf_counter() - started
        self.samples_seen += len(data.x_train) * (epochs - initial_epoch)


def _features(parts: ModelParts, data: Splits, batch_size: int) -> Splits:
    """`data` with its images replaced by the frozen base's features, computed once."""

    def extract(x: np.ndarray) -> np.ndarray:
        return parts.feature_extractor.predict(x, batch_size=batch_size, verbose=0)

    return Splits(
        extract(data.x_train), data.y_train, extract(data.x_val), data.y_val,
        extract(data.x_test), data.y_test, data.class_names, data.class_mapping,
    )


def _fold_result(checkpoint: BestModelCheckpoint, rows: list[dict[str, float]]) -> dict[str, Any]:
    best_row = next((row for row in rows if row["epoch"] == checkpoint.best_epoch), None)
    return {
        "best_epoch": checkpoint.best_epoch,
        "best": _metrics_of(best_row),
        "final": _metrics_of(rows[-1] if rows else None),
    }


def _train_single(session: _Session, parts: ModelParts, data: Splits) -> dict[str, Any]:
    config = session.config
    epochs, fine_tune = config.training.epochs, config.training.fine_tune
    checkpoint = BestModelCheckpoint(session.run.file(MODEL_FILE), config, model_to_save=parts.model)
    if parts.head is not None:
        compile_model(config, parts.head)
        session.fit(parts.head, _features(parts, data, config.training.batch_size), checkpoint, epochs)
    elif fine_tune is None:
        session.fit(parts.model, data, checkpoint, epochs)
    else:
        session.recorder.tags = {"phase": 1}
        total = epochs + fine_tune.epochs
        session.fit(parts.model, data, checkpoint, total - fine_tune.epochs, label="head  ")
        unfreeze(config, parts.base)
        compile_model(config, parts.model, learning_rate=fine_tune.learning_rate)
        session.recorder.tags = {"phase": 2}
        session.fit(parts.model, data, checkpoint, total, initial_epoch=epochs, label="fine-tune  ")
    if checkpoint.best_epoch is None:  # the monitor was never a number: keep the last model
        save_model_atomic(parts.model, session.run.file(MODEL_FILE))
    rows = session.recorder.rows
    return {
        "epochs_run": len(rows),
        **_fold_result(checkpoint, rows),
        "fine_tune_from_epoch": epochs + 1 if fine_tune is not None else None,
        "parameters": parts.model.count_params(),
        "trainable_parameters": int(sum(np.prod(w.shape) for w in parts.model.trainable_weights)),
    }


def _mean_and_std(results: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = [key for key in results[0] if all(key in result for result in results)]
    return {
        key: {"mean": float(np.mean([r[key] for r in results])), "std": float(np.std([r[key] for r in results]))}
        for key in keys
    }


def _train_folds(session: _Session, folds: list[Splits]) -> dict[str, Any]:
    """One model per fold, each from the same seed; the summary averages the folds."""
    config = session.config
    results = []
    parameters = 0
    for number, data in enumerate(folds, start=1):
        keras.utils.set_random_seed(config.seed)
        parts = build_model(config, data.input_shape)
        compile_model(config, parts.model)
        parameters = parts.model.count_params()
        checkpoint = BestModelCheckpoint(
            session.run.file(f"model-fold-{number}.keras"), config, model_to_save=parts.model
        )
        session.recorder.tags = {"fold": number}
        session.fit(parts.model, data, checkpoint, config.training.epochs, label=f"fold {number}/{len(folds)}  ")
        rows = [row for row in session.recorder.rows if row.get("fold") == number]
        results.append({"fold": number, "epochs_run": len(rows), **_fold_result(checkpoint, rows)})
    best, final = _mean_and_std([r["best"] for r in results]), _mean_and_std([r["final"] for r in results])
    return {
        "epochs_run": sum(r["epochs_run"] for r in results),
        "best_epoch": None,
        "best": {key: value["mean"] for key, value in best.items()},
        "final": {key: value["mean"] for key, value in final.items()},
        "kfold": {"k": len(folds), "best": best, "final": final, "folds": results},
        "parameters": parameters,
    }


def train(
    config: ExperimentConfig,
    runs_dir: Path,
    console: Console | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train `config` into a new run folder under `runs_dir` and return its summary.

    Config and data problems are raised before the folder exists; once it exists, a
    failure or an interrupt is recorded in its `run.json` before the error propagates.
    `console` shows live progress; `command` is recorded in run.json as what started the run.
    """
    keras.utils.set_random_seed(config.seed)
    folds = load_folds(config) if config.training.kfold else [load_dataset(config)]
    parts = build_model(config, folds[0].input_shape, runs_dir)
    compile_model(config, parts.model)

    run = RunFolder.create(runs_dir, config.name)
    run.start(
        config.to_yaml(), config.seed, config.name,
        versions={"tensorflow": tf.__version__, "keras": keras.__version__},
        command=command,
    )
    session = _Session(config, run, console)
    try:
        if config.training.kfold:
            summary = _train_folds(session, folds)
        else:
            summary = _train_single(session, parts, folds[0])
        summary = {
            "monitor": config.training.monitor,
            **summary,
            "fit_seconds": round(session.fit_seconds, 3),
            "samples_per_second": round(session.samples_seen / max(session.fit_seconds, 1e-9), 1),
            "data": {"dataset": config.dataset.name, **folds[0].describe()},
        }
        write_json(run.file(SUMMARY_FILE), summary)
    except KeyboardInterrupt:
        run.finish("interrupted", error="interrupted by Ctrl-C or SIGTERM")
        raise TrainingInterrupted(
            f"run {run.id} interrupted after {len(session.recorder.rows)} epochs; its folder keeps the "
            f"history and the best model so far ({run.path})"
        ) from None
    except DlcliError as error:
        run.finish("failed", error=str(error))
        raise
    except Exception as error:
        run.finish("failed", error=f"{type(error).__name__}: {error}")
        raise TrainingFailed(f"run {run.id} failed: {type(error).__name__}: {error}") from error
    run.finish("completed")
    return TrainResult(run, summary)
