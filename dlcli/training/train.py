"""train(config) and resume(run): seed, data, model, compile, fit, save — in a run folder."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console
from rich.text import Text

from dlcli.build.inference import write_inference_files
from dlcli.build.models import (
    ModelParts,
    blame_metric,
    build_model,
    check_output,
    compile_model,
    monitor_directions,
    resolved_losses,
    unfreeze,
)
from dlcli.build.saved import save_model_atomic
from dlcli.choices import Direction, Distribution
from dlcli.columns import EPOCH_COLUMN, EPOCH_COLUMNS, FOLD_COLUMN, PHASE_COLUMN, metric_name
from dlcli.config import ExperimentConfig, check_new_run, load_config
from dlcli.curves.plots import plot_curves
from dlcli.curves.verdicts import OverfittingWatch, best_row, overfitting_advice, training_notes
from dlcli.data import load_dataset, load_folds
from dlcli.data.cache import cached, check_decodable
from dlcli.data.checks import dropped_line
from dlcli.data.examples import ArrayPool, Encoding, Split, Splits
from dlcli.data.pipeline import EpochOrder, samples_in_batches, stream
from dlcli.errors import ConfigError, DlcliError, TrainingDiverged, TrainingFailed, TrainingInterrupted, counted, reason_of
from dlcli.faults import kill_point
from dlcli.keys import KeyPath, flattened, read_yaml
from dlcli.outputs import write_atomic
from dlcli.stopping import stop_honoured, stop_pending, stops_at_batch_ends
from dlcli.store.documents import (
    CheckpointState,
    KFold,
    OverfittingVerdict,
    RunInfo,
    Summary,
    finish_run,
    read_info,
    read_summary,
    restart_run,
    start_run,
)
from dlcli.store.index import update_index
from dlcli.store.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    HOW_IT_RUNS,
    LOWER_THE_LEARNING_RATE,
    MODEL_FILE,
    STATE_FILE,
    SUMMARY_FILE,
    TENSORBOARD_DIR,
    TRAIN_AGAIN,
    RunFolder,
    config_edited,
    edited_after_training,
    effective_status,
    model_file,
    read_history,
    resolve_run,
    rows_to_csv,
)
from dlcli.store.status import RunStatus
from dlcli.training.callbacks import (
    BestModel,
    EpochClock,
    EpochCommit,
    OverfittingMonitor,
    ReportToSweep,
    RichProgress,
    StopOnRequest,
    keras_callbacks,
)
from dlcli.training.checkpoint import Checkpoint, RestoreCallbackState, check_readable, random_state, restore_random_state
from dlcli.training.devices import SpeedSettings, cluster_task, dtype_policy, gather_from_workers, speed_settings, strategy
from dlcli.training.plan import Stage, plan_stages, stage_of


@dataclass
class TrainResult:
    run: RunFolder
    summary: dict[str, Any]
    warned_live: bool = False  # the ⚠ overfitting line was shown while this process trained


def _metrics_of(row: dict[str, float] | None) -> dict[str, float]:
    return {key: value for key, value in (row or {}).items() if key not in EPOCH_COLUMNS}


def _diverged_row(rows: list[dict[str, float]]) -> dict[str, float] | None:
    return next((row for row in rows if not math.isfinite(row.get("loss", 0.0))), None)


class _Session:
    """What the stages of one run share: its folder, checkpoint, callbacks and console."""

    def __init__(
        self, config: ExperimentConfig, run: RunFolder, console: Console | None, speed: SpeedSettings,
        checkpoint: Checkpoint, state: CheckpointState | None = None,
        report: Callable[[int, float], bool] | None = None,
    ):
        self.config = config
        self.report = report  # a sweep's: hands it the monitored metric; True stops the trial (pruned)
        self.report_to_sweep: ReportToSweep | None = None
        self.order = EpochOrder(config.seed)
        self.run = run
        self.speed = speed
        self.console = console
        self.checkpoint = checkpoint
        self.state = state  # the committed state a resumed run starts from
        self.configured_callbacks = keras_callbacks(config)
        self.directions = monitor_directions(config)
        monitor = config.training.monitor
        # None: a validation metric with no validation data; the last epoch's model is kept
        self.monitor = monitor if config.validates or not monitor.startswith("val_") else None
        self.minimize = self.directions[metric_name(monitor)] == Direction.min
        self.notes = [] if config.validates else [
            "no validation data (`dataset.validation_split: 0`): nothing can watch for overfitting"
            + ("; the last epoch's model is kept" if self.monitor is None else "")
        ]
        self.samples_seen = 0
        self.fit_seconds = 0.0
        self.overfitting_monitors: list[OverfittingMonitor] = []

    @property
    def rows(self) -> list[dict[str, float]]:
        return self.checkpoint.rows

    def compile(self, model: keras.Model, learning_rate: float | None = None, optimizer=None) -> None:
        compile_model(
            self.config, model, learning_rate, self.speed.jit_compile, self.speed.steps_per_execution, optimizer
        )

    @property
    def pruned_at(self) -> int | None:
        return self.report_to_sweep.pruned_at if self.report_to_sweep is not None else None

    def best_model(self, fold: int | None) -> BestModel:
        best = BestModel(model_file(fold), self.monitor, self.minimize)
        best.restore([row for row in self.rows if row.get(FOLD_COLUMN) == fold])
        return best

    def watch(self, rows: list[dict[str, float]]) -> OverfittingWatch | None:
        """A fresh overfitting watch, caught up on `rows` (the epochs before this stage)."""
        settings = self.config.training.overfitting
        if settings is False or not self.config.validates:
            return None
        return OverfittingWatch.replayed(settings, self.directions[metric_name(settings.monitor)] == Direction.min, rows)

    def fit(
        self, stage: Stage, fitted: keras.Model, model_to_save: keras.Model, data: Splits,
        watch: OverfittingWatch | None, initial_epoch: int, epochs: int, resumed_arrays: dict | None,
    ) -> None:
        """`fitted.fit` from `initial_epoch` up to epoch `epochs`, each epoch committed; then the
        stage's end committed. `resumed_arrays`: the stage resumes from the session's state."""
        config, tags = self.config, stage.tags
        best = self.best_model(stage.fold)
        commit = EpochCommit(
            self.checkpoint, config, stage.index, tags, best, model_to_save, self.configured_callbacks
        )
        # Order matters: the commit sees the Keras callbacks after their epoch end, and a
        # resumed run's saved state goes into them after their own on_train_begin.
        callbacks: list[keras.callbacks.Callback] = [*self.configured_callbacks, keras.callbacks.TerminateOnNaN()]
        if resumed_arrays is not None and self.state.callbacks is not None:
            callbacks.append(RestoreCallbackState(self.configured_callbacks, self.state.callbacks, resumed_arrays))
        if watch is not None:
            self.overfitting_monitors.append(OverfittingMonitor(watch, config, self.console))
            callbacks.append(self.overfitting_monitors[-1])
        if self.report is not None and self.monitor is not None and stage.fold is None:
            self.report_to_sweep = ReportToSweep(self.report, self.monitor)
            callbacks.append(self.report_to_sweep)  # before the commit, which records its stop
        callbacks += [commit, StopOnRequest(), EpochClock(self.order)]
        if config.training.tensorboard:
            log_dir = self.run.file(TENSORBOARD_DIR) / (f"fold-{stage.fold}" if stage.fold else "")
            # no graph dump: it costs a fraction of a second per run and few look at it
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))
        self.order.epoch = initial_epoch
        batch_size, prefetch, steps = config.training.batch_size, self.speed.prefetch, config.training.steps_per_epoch
        progress = None
        if self.console is not None:
            progress = RichProgress(
                self.console, epochs, steps or math.ceil(len(data.train) / batch_size), best, stage.label, watch
            )
            callbacks.append(progress)
        started = time.perf_counter()
        epochs_before = len(self.rows)
        try:
            with stops_at_batch_ends():
                fitted.fit(
                    stream(data, "train", batch_size, self.order, prefetch, initial_epoch * steps if steps else None),
                    validation_data=stream(data, "validation", batch_size, prefetch=prefetch) if len(data.validation) else None,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    steps_per_epoch=steps,
                    callbacks=callbacks,
                    shuffle=False,  # the stream's order is the EpochOrder's
                    verbose=0,
                )
        finally:
            if progress is not None:
                progress.close()
            self.fit_seconds += time.perf_counter() - started
            done = len(self.rows) - epochs_before
            self.samples_seen += (
                samples_in_batches(len(data.train), batch_size, initial_epoch * steps, done * steps) if steps
                else len(data.train) * done
            )
        if _diverged_row(self.rows) is None:
            last = self.rows[-1][EPOCH_COLUMN] if self.rows else 0
            self.checkpoint.commit(stage.index, last, fitted, [], finished=True)
            kill_point("stage.finished")


def _features(parts: ModelParts, data: Splits, batch_size: int) -> Splits:
    """`data`'s training and validation images replaced by the frozen base's features, computed
    once, a batch at a time."""

    def extract(name: str) -> Split:
        split = data.split(name)
        if not len(split):  # no validation data: Keras cannot predict on nothing
            shape = tuple(parts.feature_extractor.output_shape[1:])
            return Split.whole(ArrayPool(np.empty((0, *shape), "float32"), split.labels))
        features = parts.feature_extractor.predict(stream(data, name, batch_size), verbose=0)
        return Split.whole(ArrayPool(features, split.labels))

    train, validation = extract("train"), extract("validation")
    shape = tuple(parts.feature_extractor.output_shape[1:])
    # The head never sees the test split: it stays images, evaluated through the whole model.
    return Splits(
        train, validation, data.test, data.class_names, shape, Encoding(describe="base features"),
        data.one_hot, data.class_mapping,
    )


def _result_of(
    session: _Session, rows: list[dict[str, float]], watch: OverfittingWatch | None,
    parameters: int, train_samples: int,
) -> Summary:
    """Best and final metrics, the verdicts and notes for one model's rows."""
    config = session.config
    best = best_row(rows, session.monitor, session.minimize) if session.monitor else (rows[-1] if rows else None)
    best_epoch = best[EPOCH_COLUMN] if best else None
    notes = [*session.notes, *training_notes(rows, config, session.minimize)]
    overfitting = None
    if watch is not None:
        verdict = watch.verdict()
        verdict["advice"] = overfitting_advice(config, verdict, len(rows), parameters, train_samples)
        overfitting = OverfittingVerdict.model_validate(verdict)
        if verdict["recovered"]:
            notes.append(verdict["recovered"])
        if verdict["stopped_at_epoch"] is not None:
            notes.append(
                f"training stopped at epoch {verdict['stopped_at_epoch']} on the overfitting warning "
                f"(training.overfitting.stop); {model_file(rows[-1].get(FOLD_COLUMN))} is the best epoch's ({best_epoch})"
            )
    diverged = _diverged_row(rows)
    return Summary(
        epochs_run=len(rows), best_epoch=best_epoch, best=_metrics_of(best), final=_metrics_of(rows[-1] if rows else None),
        notes=notes, **({"overfitting": overfitting} if overfitting is not None else {}),
        diverged={"epoch": diverged[EPOCH_COLUMN], "loss": diverged["loss"]} if diverged is not None else None,
    )


def _tagged(row: dict[str, float], tags: dict[str, int]) -> bool:
    return all(row.get(key) == value for key, value in tags.items())


def _stage_done(state: CheckpointState | None, stage: Stage) -> bool:
    return state is not None and (stage.index < state.stage or (stage.index == state.stage and state.finished))


def _run_stage(
    session: _Session, stage: Stage, fitted: keras.Model, model_to_save: keras.Model, data: Splits,
    watch: OverfittingWatch | None, previous_epoch: int,
) -> None:
    """Train one stage from where the run is: its start, or the session's committed state."""
    state = session.state
    end = (previous_epoch if stage.continues else 0) + stage.epochs
    if state is not None and state.stage == stage.index:
        arrays = session.checkpoint.load(state, fitted)
        if state.finished:
            return
        # stopped early: no more epochs, but the callbacks' train end still runs (restore_best_weights)
        session.fit(stage, fitted, model_to_save, data, watch, state.epoch, state.epoch if state.stopped else end, arrays)
    else:
        session.fit(stage, fitted, model_to_save, data, watch, previous_epoch if stage.continues else 0, end, None)


def _train_single(session: _Session, stages: list[Stage], parts: ModelParts, data: Splits) -> Summary:
    """The stages of one model: plain, fine-tune's two phases, or a head on precomputed features."""
    config, rows = session.config, session.rows
    watch = None
    for stage in stages:
        watch = session.watch(rows)
        previous = stages[stage.index - 1].tags if stage.index else None
        previous_epoch = max((row[EPOCH_COLUMN] for row in rows if previous and _tagged(row, previous)), default=0)
        if stage.on_features:
            session.compile(parts.head)
            # the saved whole model carries the head's optimizer state, so it reloads without a mismatch
            session.compile(parts.model, optimizer=parts.head.optimizer)
            if not _stage_done(session.state, stage):
                features = _features(parts, data, config.training.batch_size)
                _run_stage(session, stage, parts.head, parts.model, features, watch, previous_epoch)
            if watch is not None and watch.stops:
                break
            continue
        if stage.phase == 2:
            if _diverged_row(rows) is not None:
                break
            unfreeze(config, parts.base)
            session.compile(parts.model, learning_rate=stage.learning_rate)
        if session.state is not None and stage.index < session.state.stage:
            continue
        _run_stage(session, stage, parts.model, parts.model, data, watch, previous_epoch)
        if session.pruned_at is not None or (watch is not None and watch.stops):  # no later phase
            break
    if not session.run.file(MODEL_FILE).exists() and _diverged_row(rows) is None:
        save_model_atomic(parts.model, session.run.file(MODEL_FILE))  # the monitor was never a number: the last
    phase_two = [row[EPOCH_COLUMN] for row in rows if row.get(PHASE_COLUMN) == 2]
    return _result_of(session, rows, watch, parts.model.count_params(), len(data.train)).model_copy(update={
        "fine_tune_from_epoch": phase_two[0] if phase_two else None,
        "parameters": parts.model.count_params(),
        "trainable_parameters": int(sum(np.prod(w.shape) for w in parts.model.trainable_weights)),
    })


def _mean_and_std(results: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = [key for key in results[0] if all(key in result for result in results)]
    return {
        key: {"mean": float(np.mean([r[key] for r in results])), "std": float(np.std([r[key] for r in results]))}
        for key in keys
    }


def _train_folds(session: _Session, stages: list[Stage], folds: list[Splits]) -> Summary:
    """One model per fold, each from the same seed; the summary averages the folds."""
    config = session.config
    results = []
    parameters = 0
    for stage, data in zip(stages, folds):
        keras.utils.set_random_seed(config.seed)
        parts = build_model(config, data.input_shape, vocabulary_size=data.encoding.vocabulary_size,
                            named_inputs=data.inputs)
        session.compile(parts.model)
        parameters = parts.model.count_params()
        watch = session.watch([row for row in session.rows if row.get(FOLD_COLUMN) == stage.fold])
        if not _stage_done(session.state, stage):
            _run_stage(session, stage, parts.model, parts.model, data, watch, 0)
        rows = [row for row in session.rows if row.get(FOLD_COLUMN) == stage.fold]
        results.append(_result_of(session, rows, watch, parameters, len(data.train)).model_copy(update={"fold": stage.fold}))
        if results[-1].diverged:
            break
    best, final = _mean_and_std([r.best for r in results]), _mean_and_std([r.final for r in results])
    detected = [r for r in results if r.overfitting is not None and r.overfitting.detected]
    onsets = ", ".join(f"fold {r.fold} since epoch {r.overfitting.onset_epoch}" for r in detected)
    return Summary(
        epochs_run=sum(r.epochs_run for r in results),
        best_epoch=None,
        best={key: value["mean"] for key, value in best.items()},
        final={key: value["mean"] for key, value in final.items()},
        kfold=KFold(k=len(folds), best=best, final=final, folds=[r.part() for r in results]),
        overfitting=OverfittingVerdict(
            detected=bool(detected), folds=[r.fold for r in detected], monitor=config.training.monitor,
            message=f"overfitting in {len(detected)} of {len(folds)} folds: {onsets}" if detected else None,
        ),
        notes=sorted({note for r in results for note in r.notes}),
        diverged=next((r.diverged for r in results if r.diverged), None),
        parameters=parameters,
    )


def _record_end(run: RunFolder, status: str, error: str, resumable: bool = True) -> str:
    """Record how the run ended; when even run.json cannot be written, say so instead of failing twice."""
    try:
        finish_run(run, status, error=error, resumable=resumable)
        update_index(run)
    except OSError as failure:
        return f" (its run.json could not be updated either: {failure.strerror or failure})"
    return ""


def _execute(session: _Session, parts: ModelParts, folds: list[Splits], data: dict[str, Any]) -> TrainResult:
    """Train in the session's run folder and record how it ended, whatever happens."""
    config, run = session.config, session.run
    if session.console is not None:
        for note in session.notes:
            session.console.print(_note(note))
    try:
        write_inference_files(run, config, folds)  # what `dlcli predict` and `export` need besides the model
        stages = plan_stages(config)
        try:
            if config.training.kfold:
                summary = _train_folds(session, stages, folds)
            else:
                summary = _train_single(session, stages, parts, folds[0])
        except tf.errors.InvalidArgumentError:
            # files decoded as they stream (`training.cache: none`) were only checked by their header
            check_decodable(folds, f"continue run {run.id} with: {run.resume_command}")
            raise
        summary = summary.model_copy(update={
            "monitor": session.monitor,
            "directions": session.directions,
            "pruned": {"epoch": session.pruned_at} if session.pruned_at is not None else None,
            "fit_seconds": round(session.fit_seconds, 3),
            "samples_per_second": round(session.samples_seen / max(session.fit_seconds, 1e-9), 1),
            "speed": session.speed.as_dict(),
            "data": {"dataset": config.dataset.name, **data},
        })
        rows = session.rows
        if rows:
            onset = summary.overfitting.onset_epoch if summary.overfitting is not None else None
            plot_curves(
                rows, run.file(CURVES_FILE), f"{run.id}", onset, summary.fine_tune_from_epoch,
                config.training.plot.smooth, config.training.plot.from_epoch,
            )
        if config.training.tensorboard:
            _write_hparams(run, config, summary)
        # The end, in an order that leaves no crash window: once summary.json exists, training is
        # over, and a `--resume` of a run killed from here on only records how it ended.
        summary.write(run.file(SUMMARY_FILE))
        kill_point("end.summary")
        shutil.rmtree(run.file(CHECKPOINT_DIR), ignore_errors=True)  # only an unfinished run needs it
        kill_point("end.checkpoint")
    except KeyboardInterrupt:
        _interrupted(run, session)
    except DlcliError as error:
        # a config problem only training could reveal: resuming would meet it again
        unrecorded = _record_end(run, RunStatus.failed, str(error), resumable=not isinstance(error, ConfigError))
        if unrecorded:
            raise type(error)(f"{error}{unrecorded}") from error
        raise
    except OSError as error:  # the disk, not the model: say which file and what to do
        reason = f"cannot write {error.filename or 'a file'}: {error.strerror or error}"
        unrecorded = _record_end(run, RunStatus.failed, reason)
        advice = "free some disk space, then " if error.errno == errno.ENOSPC else ""
        raise TrainingFailed(
            f"run {run.id} failed: {reason}; {advice}continue it with: {run.resume_command}{unrecorded}"
        ) from error
    except Exception as error:
        if stop_pending() or _interrupt_behind(error):
            # the KeyboardInterrupt broke a context manager on its way out (TensorFlow's device
            # scope: "Exiting device scope without proper scope nesting"), which raised this instead
            _interrupted(run, session)
        unrecorded = _record_end(run, RunStatus.failed, f"{type(error).__name__}: {error}")
        raise TrainingFailed(
            f"run {run.id} failed: {type(error).__name__}: {error}; continue it with: "
            f"{run.resume_command}{unrecorded}"
        ) from error
    return _finish(run, summary.to_dict(), any(monitor.warned for monitor in session.overfitting_monitors))


def _interrupted(run: RunFolder, session: _Session) -> NoReturn:
    """Record a stop by Ctrl-C or SIGTERM, and say how to go on."""
    stop_honoured()
    unrecorded = _record_end(run, RunStatus.interrupted, "interrupted by Ctrl-C or SIGTERM")
    raise TrainingInterrupted(
        f"run {run.id} interrupted after {counted(len(session.rows), 'epoch')}; its history and best "
        f"model are kept; continue it with: {run.resume_command}{unrecorded}"
    ) from None


def _interrupt_behind(error: BaseException) -> bool:
    """Whether a KeyboardInterrupt is among the exceptions `error` was raised while handling."""
    seen = error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _write_hparams(run: RunFolder, config: ExperimentConfig, summary: Summary) -> None:
    """The run's flattened config and best and final metrics as TensorBoard HParams: `tensorboard
    --logdir runs` then compares every run and sweep trial in its HParams dashboard."""
    from tensorboard.plugins.hparams import api as hparams

    values = {
        key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
        for key, value in flattened(config.model_dump(mode="json", exclude_none=True)) if value is not None
    }
    writer = tf.summary.create_file_writer(str(run.file(TENSORBOARD_DIR)))
    with writer.as_default():
        hparams.hparams(values, trial_id=run.id)
        for prefix, metrics in (("best", summary.best), ("final", summary.final)):
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    tf.summary.scalar(f"{prefix}/{key}", value, step=summary.epochs_run)
    writer.close()


def _finish(run: RunFolder, summary: dict[str, Any], warned_live: bool = False) -> TrainResult:
    """Record the status summary.json implies: completed, or diverged (raised)."""
    if summary.get("diverged"):
        epoch, loss = summary["diverged"]["epoch"], summary["diverged"]["loss"]
        kept = run.file(MODEL_FILE).exists() or run.file(model_file(1)).exists()
        message = (
            f"run {run.id} diverged: the loss became {loss} in epoch {epoch}; "
            + ("the model of the best epoch before it is kept; " if kept else "no model was kept; ")
            + "lower the learning rate (optimizer.learning_rate) and train again"
        )
        finish_run(run, RunStatus.diverged, error=message)
        update_index(run)
        raise TrainingDiverged(message)
    finish_run(run, RunStatus.pruned if summary.get("pruned") else RunStatus.completed)
    update_index(run)
    return TrainResult(run, summary, warned_live)


def prepare_experiment(
    config: ExperimentConfig, runs_dir: Path, speed: SpeedSettings | None = None
) -> tuple[list[Splits], ModelParts]:
    """Data and model, so that every config problem surfaces before a run folder is touched.

    Call it inside `device_scope(config)` when the model is to be trained.
    """
    keras.utils.set_random_seed(config.seed)
    folds = load_folds(config) if config.training.kfold else [load_dataset(config)]
    return folds, checked_model(config, folds[0], runs_dir, speed)


def decoded_for_training(
    folds: list[Splits], speed: SpeedSettings, console: Console | None,
) -> tuple[list[Splits], dict[str, Any]]:
    """The folds with their image files decoded as `training.cache` says, and their record for
    summary.json; an undecodable file or an unwritable cache is raised here, before training."""
    record = folds[0].describe()
    announce = (lambda report: console.print(Text(report.describe()))) if console is not None else None
    folds, report = cached(folds, speed.cache, announce=announce)
    if report is not None:
        record["cache"] = report.as_dict()
    return folds, record


def checked_model(
    config: ExperimentConfig, data: Splits, runs_dir: Path, speed: SpeedSettings | None = None
) -> ModelParts:
    """The config's model for `data`: built, checked against its loss and labels, compiled,
    with the config's callbacks built too, so that each can fail here, before training."""
    speed = speed or speed_settings(config)
    parts = build_model(config, data.input_shape, runs_dir, data.encoding.vocabulary_size, data.inputs)
    check_output(config, parts.model, data.class_names, {name: spec.class_names for name, spec in data.outputs.items()})
    compile_model(config, parts.model, None, speed.jit_compile, speed.steps_per_execution)
    monitor_directions(config)
    keras_callbacks(config)
    _dry_step(config, parts.model, data)
    return parts


def _dry_step(config: ExperimentConfig, model: keras.Model, data: Splits) -> None:
    """Two training examples through the model, its loss and its metrics, as the first step of
    training will take them: what Keras would only say then (a loss argument it cannot use, a
    metric that does not fit the labels) is a config error now, before the run folder exists.
    Nothing is trained (training=False); the metrics are reset and the random generators put back,
    so that the run draws what it would have drawn without this step."""
    try:
        x, y = next(iter(stream(data, "train", min(config.training.batch_size, 2), prefetch=False)))
    except tf.errors.OpError:  # a file whose header looked right does not decode: name it
        check_decodable([data], "remove or replace it, then train again")
        raise
    generators = random_state(model)  # some Random* layers draw even when not training
    try:
        outputs = _at(config, ("model", "layers"), lambda: model(x, training=False))
        if config.keyed_outputs:  # each output's loss on its own first: an error names its output
            losses = resolved_losses(config)
            for (key, _, name), predicted in zip(config.losses(), outputs):
                loss = keras.losses.get(losses[name]) if isinstance(losses[name], str) else losses[name]
                _at(config, key, lambda loss=loss, name=name, predicted=predicted: loss(y[name], predicted))
        _at(config, ("loss",), lambda: model.compute_loss(x=x, y=y, y_pred=outputs))
        try:
            model.compute_metrics(x, y, outputs, sample_weight=None)
        except Exception as error:
            blame_metric(config, y, outputs)  # the metric that fails on its own, if one does
            raise _step_failed(config, ("metrics",), error) from error
    finally:
        model.reset_metrics()
        restore_random_state(model, generators)


def _at(config: ExperimentConfig, path: KeyPath, step: Callable[[], Any]) -> Any:
    """`step()`, any error it raises (Keras's and TensorFlow's, of every kind) one line at `path`."""
    try:
        return step()
    except Exception as error:
        raise _step_failed(config, path, error) from error


def _step_failed(config: ExperimentConfig, path: KeyPath, error: Exception) -> ConfigError:
    return config.error(path, f"the first training step fails on this data: {reason_of(error)[:300]}")


@contextlib.contextmanager
def device_scope(config: ExperimentConfig):
    """The distribution strategy's scope and the dtype policy; yields the speed settings."""
    task = cluster_task(config) if config.training.distribute == Distribution.multi_worker else None
    chosen = strategy(config)
    speed = speed_settings(config, replicas=chosen.num_replicas_in_sync, task=task)
    with chosen.scope(), dtype_policy(speed.mixed_precision):
        yield speed


def _versions() -> dict[str, str]:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def train(
    config: ExperimentConfig,
    runs_dir: Path,
    console: Console | None = None,
    command: str | None = None,
    sweep: dict[str, Any] | None = None,
    report: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train `config` into a new run folder under `runs_dir` and return its summary.

    Config and data problems are raised before the folder exists; once it exists, a
    failure, divergence or interrupt is recorded in its `run.json` before the error
    propagates. `console` shows live progress; `command` is recorded in run.json, and so
    is `sweep`, the tag of a sweep trial ({id, trial, values}). `report(epoch, value)` hears
    the monitored metric after each epoch, and stops the run as `pruned` when it returns True.
    """
    check_new_run(config)
    with device_scope(config) as speed:
        folds, parts = prepare_experiment(config, runs_dir, speed)
        if console is not None:
            for finding in folds[0].checks:
                console.print(Text(f"warning: {finding.message}", style="yellow"))
            if folds[0].dropped:
                console.print(Text(dropped_line(folds[0].dropped)))
        folds, data = decoded_for_training(folds, speed, console)
        # every worker of a cluster keeps its own run; the chief's carries the plain name
        run = RunFolder.create(runs_dir, config.name if speed.chief else f"{config.name}-{speed.task}")
        with run.owned():
            try:
                start_run(
                    run, config.to_yaml(), config.seed, config.name, versions=_versions(), command=command,
                    dataset=config.dataset.name, sweep=sweep,
                )
            except BaseException as error:  # a failed write, or a stop signal before run.json was whole
                shutil.rmtree(run.path, ignore_errors=True)  # nothing started: leave no half-made run behind
                if isinstance(error, OSError):
                    raise DlcliError(f"cannot write the run folder in {runs_dir}: {error.strerror or error}") from error
                raise
            update_index(run)
            session = _Session(config, run, console, speed, Checkpoint(run), report=report)
            return _execute(session, parts, folds, data)


def _check_workers_resume_together(run: RunFolder, state: CheckpointState | None) -> None:
    """Refuse a multi-worker resume whose workers saved different epochs: the copies would diverge."""
    point = [state.stage, state.epoch] if state else [0, 0]
    points = {tuple(p) for p in gather_from_workers(point)}
    if len(points) > 1:
        saved = ", ".join(f"epoch {epoch}" + (f" of stage {stage + 1}" if stage else "") for stage, epoch in sorted(points))
        raise DlcliError(
            f"run {run.id}: the workers saved different last epochs ({saved}; a worker stopped while "
            "saving), so resuming would train diverging copies of the model; train the config again"
        )


def resume(
    reference: str, runs_dir: Path, console: Console | None = None, command: str | None = None,
    report: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Continue an interrupted, failed or crashed run in its own folder from its last committed epoch.

    Resumed, a run ends with the history.csv and model an uninterrupted run would have.
    A run killed after its training ended (its summary.json written) is only marked so.
    """
    run = resolve_run(runs_dir, reference)
    with run.owned():  # before anything is read: two resumes of one run must not both train it
        return _resume_owned(run, runs_dir, console, command, report)


def _say(console: Console | None, message: str) -> None:
    if console is not None:
        console.print(_note(message), soft_wrap=True)


def _note(message: str) -> Text:
    """A note as the progress lines show it; Text, so that whatever console prints it shows the
    message as written (a path or name with brackets is no markup)."""
    return Text.assemble(("note:", "cyan"), f" {message}")


def _resume_owned(
    run: RunFolder, runs_dir: Path, console: Console | None, command: str | None,
    report: Callable[[int, float], bool] | None,
) -> TrainResult:
    info = read_info(run)
    status = effective_status(info.to_dict())  # not by owner.lock: this process holds it now
    if status == RunStatus.completed:
        raise DlcliError(f"run {run.id} is completed; nothing to resume ({TRAIN_AGAIN})")
    if status == RunStatus.pruned:
        raise DlcliError(f"run {run.id} was pruned by its sweep's pruner; nothing to resume")
    if status == RunStatus.running:
        raise DlcliError(f"run {run.id} is still running (pid {info.pid}); stop it before resuming")
    if status == RunStatus.diverged:
        raise DlcliError(
            f"run {run.id} diverged; resuming would diverge again: {LOWER_THE_LEARNING_RATE}"
        )
    if status == RunStatus.failed and not info.resumable:
        raise DlcliError(
            f"run {run.id} failed on its config ({info.error}); resuming would fail the same way: fix the config "
            "and train it again"
        )
    if run.file(SUMMARY_FILE).is_file():  # its training ended; the process died before saying so
        summary = read_summary(run)
        shutil.rmtree(run.file(CHECKPOINT_DIR), ignore_errors=True)
        _say(console, f"run {run.id} had finished training before its process ended; nothing to train")
        restart_run(run, command)
        update_index(run)
        return _finish(run, summary)
    if not run.file(CONFIG_FILE).is_file():
        raise DlcliError(f"run {run.id} is damaged: its {CONFIG_FILE} is missing, so it cannot continue; its folder is "
                         "left as it is: train the original config again for a new run")
    config = load_config(run.file(CONFIG_FILE))
    _check_config_unedited(run, info)
    with device_scope(config) as speed:
        checkpoint, state = Checkpoint.recover(run)
        if speed.task is not None:
            _check_workers_resume_together(run, state)
        if state is not None:
            check_readable(run, state)
        recorded = read_history(run.file(HISTORY_FILE))
        if state is not None and state.history is None:
            state = _from_older_checkpoint(run, config, state, recorded, console)
            checkpoint = Checkpoint(run, state.history, state.commit)
        elif state is None and recorded:
            raise DlcliError(
                f"run {run.id} recorded {counted(len(recorded), 'epoch')} but has no checkpoint to continue them from "
                f"({CHECKPOINT_DIR}/{STATE_FILE} is missing); its folder is left as it is: "
                f"{TRAIN_AGAIN}"
            )
        folds, parts = prepare_experiment(config, runs_dir, speed)
        folds, data = decoded_for_training(folds, speed, console)
        restart_run(run, command)
        update_index(run)
        return _execute(_Session(config, run, console, speed, checkpoint, state, report), parts, folds, data)


def _check_config_unedited(run: RunFolder, info: RunInfo) -> None:
    """Refuse to resume a run whose config.yaml was edited after it started, but for how it runs
    (HOW_IT_RUNS): its checkpoint holds the model, data split and epochs of the config it was
    trained with, and would go on under others (another shape fails to load; another split or
    epoch count trains silently). Runs of an older dlcli recorded nothing to compare."""
    if config_edited(read_yaml(run.file(CONFIG_FILE).read_text(encoding="utf-8")), info.checkpointed_as):
        raise edited_after_training(run, "a resume continues the checkpoint trained with the config it started with "
                                    f"(only training.{', training.'.join(HOW_IT_RUNS)} may change)")


def _from_older_checkpoint(
    run: RunFolder, config: ExperimentConfig, state: CheckpointState, recorded: list[dict[str, float]],
    console: Console | None,
) -> CheckpointState:
    """An older dlcli's checkpoint ({epoch, fold?, phase?}) as a state; its history cut back to it."""
    stage = stage_of(plan_stages(config), state.fold, state.phase)
    saved_at = (state.fold or 0, state.phase or 0, state.epoch)
    kept = [row for row in recorded if (row.get(FOLD_COLUMN) or 0, row.get(PHASE_COLUMN) or 0, row[EPOCH_COLUMN]) <= saved_at]
    if len(kept) < len(recorded):
        _say(console, f"history.csv's epochs after epoch {state.epoch} are trained again: the checkpoint was saved there")
    _say(console, "an older dlcli saved this checkpoint without the random state and the callbacks' state: "
         "the resumed epochs can differ slightly from an uninterrupted run's")
    write_atomic(run.file(HISTORY_FILE), rows_to_csv(kept))
    return state.model_copy(update={"stage": stage.index, "history": kept})
