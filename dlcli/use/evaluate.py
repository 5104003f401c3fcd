"""Re-evaluate a finished run: reload its model, rebuild its split from its own config, score it."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlcli.build.inference import outputs_are_logits, predicted_classes, read_inputs
from dlcli.build.saved import fitting_inputs, load_run_model
from dlcli.config import load_config
from dlcli.data import load_dataset, load_folds
from dlcli.data.cache import check_decodable
from dlcli.data.examples import FINGERPRINT_VERSION, Splits
from dlcli.data.pipeline import stream
from dlcli.errors import DlcliError, listed
from dlcli.outputs import write_json
from dlcli.store.documents import SCHEMA, Evaluation, damaged_run, load_run
from dlcli.store.index import update_index
from dlcli.store.runs import (
    CONFIG_FILE,
    EVALUATION_FILES,
    MODEL_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    RunFolder,
    config_edited,
    edited_after_training,
    model_file,
    now,
    prepared_as,
)


def _classification_report(scores: np.ndarray, truth: np.ndarray, class_names: list[str], logits: bool) -> dict:
    """Confusion matrix (rows: true class, columns: predicted) and per-class accuracy; the classes
    as `dlcli predict` chooses them (a logit's boundary is 0, a probability's 0.5)."""
    predicted = predicted_classes(scores, logits)
    size = len(class_names)
    matrix = np.bincount(truth * size + predicted, minlength=size * size).reshape(size, size)
    totals = matrix.sum(axis=1)
    return {
        "class_names": class_names,
        "confusion_matrix": matrix.tolist(),
        "per_class_accuracy": {
            name: (float(matrix[i, i] / totals[i]) if totals[i] else None) for i, name in enumerate(class_names)
        },
    }


def _score(
    model: keras.Model, splits: Splits, split: str, batch_size: int, config, run: RunFolder, name: str,
) -> dict[str, Any]:
    """Metrics, and for classifiers the confusion matrix (each classification output's, for a table's
    named outputs), over the split streamed a batch at a time."""
    data = stream(splits, split, batch_size)
    classified = [name for name, output in splits.outputs.items() if output.class_names]
    try:
        with fitting_inputs(run, name):
            metrics = model.evaluate(data, verbose=0, return_dict=True)
            scores = model.predict(data, verbose=0) if splits.class_names or classified else None
    except tf.errors.InvalidArgumentError:
        check_decodable([splits], "evaluate again")  # image files are decoded as they stream
        raise
    chosen = splits.split(split)
    result: dict[str, Any] = {"samples": len(chosen), "metrics": {key: float(value) for key, value in metrics.items()}}
    if splits.outputs:
        given = dict(zip(splits.outputs, scores if isinstance(scores, (list, tuple)) else [scores]))
        result["outputs"] = {
            name: _classification_report(given[name], chosen.pool.targets[name][chosen.indices],
                                         splits.outputs[name].class_names, outputs_are_logits(config, name))
            for name in classified
        }
    elif scores is not None:
        result.update(_classification_report(scores, chosen.labels, splits.class_names, outputs_are_logits(config)))
    return result


def evaluate_run(run: RunFolder, split: str = "test") -> Evaluation:
    """Score the run's model (every fold's for k-fold) on `split`; write and return evaluation.json."""
    if split not in EVALUATION_FILES:
        raise DlcliError(f"--split {split}: choose one of {', '.join(EVALUATION_FILES)}")
    record = load_run(run)
    if record.damage:  # its config.yaml emptied or cut: said as every reading command says it
        raise damaged_run(run, record.damage)
    if config_edited(record.config, record.info["prepared_as"], prepared_as):
        raise edited_after_training(run, f"evaluating rebuilds the {split} split and its preparation from it, not from "
                                    "the config the model was trained with (only dataset.path may change)")
    config = load_config(run.file(CONFIG_FILE))
    if split == "validation" and not config.validates:
        raise DlcliError(f"run {run.id} trained on all the training data (`dataset.validation_split: 0`): "
                         "it has no validation split; evaluate it on the test split")
    batch_size = config.training.batch_size
    if config.training.kfold:
        folds = load_folds(config)
        _check_classes(run, folds[0])
        results = [
            {"fold": number, **_score(load_run_model(run, model_file(number), compile=True), data, split, batch_size,
                                      config, run, model_file(number))}
            for number, data in enumerate(folds, start=1)
        ]
        keys = results[0]["metrics"]
        scores = {
            "folds": results, "samples": results[0]["samples"],
            "metrics": {key: float(np.mean([r["metrics"][key] for r in results])) for key in keys},
            "metrics_std": {key: float(np.std([r["metrics"][key] for r in results])) for key in keys},
        }
        splits = folds[0]
    else:
        splits = load_dataset(config)
        _check_classes(run, splits)
        scores = _score(load_run_model(run, MODEL_FILE, compile=True), splits, split, batch_size, config, run, MODEL_FILE)
    fingerprint = splits.fingerprint(split)
    return Evaluation(
        schema_version=SCHEMA, run=run.id, split=split, evaluated=now().isoformat(timespec="seconds"), **scores,
        fingerprint=fingerprint, same_data_as_training=_same_data(run, fingerprint, split),
    )


def _check_classes(run: RunFolder, splits: Splits) -> None:
    """Refuse data whose labels now name other classes than the model was trained on (a label
    renamed, added or dropped in the file): the classes are the sorted labels, so each output
    unit would be scored as another class, without a word."""
    trained = read_inputs(run)
    compared = [(None, trained.class_names, splits.class_names)] + [
        (name, record.class_names, splits.outputs[name].class_names)
        for name, record in trained.table_outputs.items() if name in splits.outputs
    ]
    for name, trained_on, found in compared:
        if trained_on and list(trained_on) != list(found):
            labels = f"output {name}'s labels" if name else "the labels"
            raise DlcliError(
                f"run {run.id}: {labels} now name the classes {listed(found)}, and its model was trained on "
                f"{listed(trained_on)}: each would be scored as another; evaluate on the data it was trained on, "
                "or train again on this data"
            )


def save_evaluation(run: RunFolder, evaluation: Evaluation) -> None:
    """Keep the evaluation in the run folder: the test split's in evaluation.json, where `runs` and
    `compare` read its metrics; the validation split's beside it, so that it never takes their place.

    run.json's time is moved on, as dlcli does whenever it changes a run's files, so that the index
    reads the run again at the next command if this process could not update it (another writer
    held it for over a minute)."""
    write_json(run.file(EVALUATION_FILES[evaluation.split]), evaluation.shown())
    os.utime(run.file(RUN_FILE))
    update_index(run)


def _same_data(run: RunFolder, fingerprint: str, split: str) -> bool | None:
    """Whether the rebuilt split, by its fingerprint, is the one training saw (None: none was
    recorded, or one of another fingerprint version)."""
    import json

    try:
        data = json.loads(run.file(SUMMARY_FILE).read_text())["data"]
        recorded = data["fingerprints"][split]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("fingerprint_version") != FINGERPRINT_VERSION:
        return None
    return recorded == fingerprint
