"""A sweep's trial worker: imports TensorFlow once, then trains the trials its sweep sends.

`python -m dlcli.sweep.trials`, started by `dlcli.sweep.study.Worker`: one JSON request a line on
stdin, one JSON answer a line on stdout. Each trial is an ordinary run, trained in this
process by `dlcli.training.train` after Keras's state is cleared; it reports its monitored metric
to the sweep's study after every epoch, and the study hears how it ended.

stdin closing means the sweep's process is gone, however it died: a trial in training
stops as Ctrl-C would stop it (`interrupted`, resumable), and the worker exits.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from dlcli import stopping
from dlcli.choices import Direction, Distribution
from dlcli.errors import ConfigError, DlcliError, TrainingDiverged, TrainingInterrupted
from dlcli.store.runs import SWEEPS_DIR
from dlcli.store.status import RESUMABLE, RunStatus
from dlcli.sweep.study import (
    Answer,
    Plan,
    Request,
    Trial,
    _optuna,
    check_trial_names,
    open_storage,
    pruner,
    resume_command,
    seed_runs,
    sweep_records,
    swept_at,
    trial_config,
    validate_trials,
)


def _read_requests(requests: queue.Queue) -> None:
    for line in sys.stdin:
        requests.put(Request.model_validate_json(line))
    requests.put(None)
    os.kill(os.getpid(), signal.SIGTERM)  # the sweep is gone: stop the trial in training, if any


def check(plan: Plan, runs_dir: Path) -> Answer:
    """Build every trial's model (each grid point, each sampled key at its ends) before any trains."""
    from dlcli.build.models import monitor_directions
    from dlcli.columns import metric_name
    from dlcli.data import load_dataset, load_folds
    from dlcli.training.train import checked_model

    checked = validate_trials(plan)
    named = checked[0][1]  # the trials are named after the sweep's name (--name), not the config's own
    check_trial_names(named.model_copy(update={"name": plan.name}) if plan.name else named, plan.settings)
    data_by_dataset: dict[str, Any] = {}

    def training_data(config):
        """The data as training will load it (its checks and `dataset.leaks` included), once per dataset and seed."""
        key = json.dumps([config.dataset.model_dump(mode="json"), config.seed, config.training.kfold], sort_keys=True)
        if key not in data_by_dataset:
            data_by_dataset[key] = load_folds(config)[0] if config.training.kfold else load_dataset(config)
        return data_by_dataset[key]

    for label, config in checked:
        try:
            if config.training.distribute == Distribution.multi_worker:
                raise config.error(
                    ("training", "distribute"),
                    "a sweep trains its trials on this machine; start multi_worker training on each worker with `dlcli train`",
                )
            checked_model(config, training_data(config), runs_dir)
            for seed in plan.settings.repeat_seeds[1:]:  # each seed draws its own validation split
                try:
                    training_data(config.model_copy(update={"seed": seed}))
                except DlcliError as error:
                    raise type(error)(f"seed {seed}: {error}") from None
        except DlcliError as error:
            raise type(error)(f"{swept_at(plan, error)}{label}: {error}") from None
    config = checked[0][1]
    monitor = config.training.monitor
    direction = monitor_directions(config)[metric_name(monitor)]
    return Answer(op="checked", monitor=monitor, direction="minimize" if direction == Direction.min else "maximize")


class StudyTrial:
    """One trial of the sweep's study, seen from the worker that trains it."""

    def __init__(self, plan: Plan, trial: Trial, epochs: int, folder: Path):
        optuna = _optuna()
        self.optuna = optuna
        self.study = optuna.load_study(
            study_name=plan.study, storage=open_storage(plan.storage, folder), pruner=pruner(plan.settings, epochs)
        )
        self.number = trial.number
        trial_id = self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, trial.number)
        self.trial = optuna.trial.Trial(self.study, trial_id)
        self.monitor = plan.monitor
        self.epochs = epochs

    def report(self, epoch: int, value: float) -> bool:
        """Hand the study an epoch's value; True when the pruner stops the trial. Never at its
        last epoch: the trial has trained in full (Hyperband's last rung would still cut it)."""
        if not math.isfinite(value):
            return False
        self.trial.report(value, epoch)
        return epoch < self.epochs and self.trial.should_prune()

    def ended(self, status: str, run: str | None, best: dict[str, Any] | None, seed_values: list[float] = ()) -> None:
        """Record how the trial ended in the study; an interrupted one stays running there, to be resumed.
        A repeated trial's `best` is its seeds' mean, and `seed_values` each seed's."""
        TrialState = self.optuna.trial.TrialState
        try:
            if run:
                self.trial.set_user_attr("run", run)
            if seed_values:
                self.trial.set_user_attr("seed_values", list(seed_values))
            self.trial.set_user_attr("status", str(status))
            if status == RunStatus.interrupted:
                return
            value = (best or {}).get(self.monitor)
            if status == RunStatus.completed and value is not None and math.isfinite(value):
                self.study.tell(self.number, value)
            else:
                self.study.tell(self.number, state=TrialState.PRUNED if status == RunStatus.pruned else TrialState.FAIL)
        except (RuntimeError, ValueError):
            pass  # a trial the study already counts as finished (a failed one trained again): its run says how it ended


def train_trial(request: Request, runs_dir: Path) -> Answer:
    import keras

    from dlcli.training import train as training

    plan, trial = request.plan, request.trial
    folder = runs_dir / SWEEPS_DIR / plan.id
    # layer names and Keras's global state start afresh, as in a process of their own; without
    # Python's full collection, 0.2 s a trial (Keras's advice for short loops): the collector runs anyway
    keras.backend.clear_session(free_memory=False)
    study_trial = StudyTrial(plan, trial, request.epochs, folder) if trial.number is not None else None
    report = study_trial.report if study_trial else None
    console = Console(highlight=False, markup=False, emoji=False)
    run, status, message, best, seed_values = None, RunStatus.completed, None, None, []
    try:
        if plan.settings is not None and plan.settings.repeat_seeds:
            run, status, seed_values = _train_seeds(plan, trial, runs_dir, console, report)
            best = {plan.monitor: sum(seed_values) / len(seed_values)} if status == RunStatus.completed else None
        else:
            if request.op == "resume":
                result = training.resume(trial.run, runs_dir, console=console,
                                         command=resume_command(plan.id, runs_dir), report=report)
            else:
                config = trial_config(plan, trial.values, f"trial {trial.index} ({trial.label()})", plan.trial_name(trial))
                tag = {"id": plan.id, "trial": trial.index, "values": trial.values}
                result = training.train(config, runs_dir, console=console, command=f"dlcli sweep {plan.config}",
                                        sweep=tag, report=report)
            run, best = result.run.id, result.summary.get("best")
            status = RunStatus.pruned if result.summary.get("pruned") else RunStatus.completed
    except TrainingInterrupted as error:
        status, message = RunStatus.interrupted, str(error)
    except TrainingDiverged as error:
        status, message = RunStatus.diverged, str(error)
    except DlcliError as error:
        status, message = RunStatus.failed, str(error)
    except Exception as error:  # one trial's failure must not end the worker and the trials after it
        status, message = RunStatus.failed, f"{type(error).__name__}: {error}"
    if study_trial is not None:
        study_trial.ended(status, run or trial.run, best, seed_values)
    return Answer(op="done", status=status, run=run, message=message)


def _train_seeds(
    plan: Plan, trial: Trial, runs_dir: Path, console: Console, report,
) -> tuple[str | None, RunStatus, list[float]]:
    """A repeated trial, continued wherever it stopped: each seed's run that completed is kept, one that
    ended early is resumed, one not started is trained. Only the first seed reports to the pruner:
    a point it prunes trains no other seed. (the last run, the trial's status, each seed's monitored best)"""
    from dlcli.training import train as training

    done = seed_runs(sweep_records(runs_dir, plan.id), trial.index)
    label = f"trial {trial.index} ({trial.label()})"
    run, seed_values = None, []
    for position, seed in enumerate(plan.settings.repeat_seeds):
        record = done.get(seed)
        seed_report = report if position == 0 else None
        if record is not None and record.status == RunStatus.completed:
            run, summary = record.id, record.summary or {}
        elif record is not None and record.status == RunStatus.pruned:
            return record.id, RunStatus.pruned, seed_values
        else:
            if record is not None and record.status in RESUMABLE:
                result = training.resume(record.id, runs_dir, console=console,
                                         command=resume_command(plan.id, runs_dir), report=seed_report)
            else:
                config = trial_config(plan, {**trial.values, "seed": seed}, label, plan.trial_name(trial, seed))
                tag = {"id": plan.id, "trial": trial.index, "values": trial.values, "seed": seed}
                result = training.train(config, runs_dir, console=console, command=f"dlcli sweep {plan.config}",
                                        sweep=tag, report=seed_report)
            run, summary = result.run.id, result.summary
            if summary.get("pruned"):
                return run, RunStatus.pruned, seed_values
        value = (summary.get("best") or {}).get(plan.monitor)
        if value is None or not math.isfinite(value):
            raise DlcliError(f"seed {seed} (run {run}) has no finite best {plan.monitor}: the seeds' mean cannot be taken")
        seed_values.append(value)
    return run, RunStatus.completed, seed_values


@contextlib.contextmanager
def _output_to(log: str | None):
    """Everything the trial prints, Python's and TensorFlow's alike, into its log file (when it has one)."""
    if log is None:
        yield
        return
    saved = os.dup(2)
    with open(log, "a", encoding="utf-8") as file:
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved, 1)
            os.dup2(saved, 2)
            os.close(saved)


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever else is printed goes to the worker's log, not into the answers

    stopping.install(stopping.stop_training)
    requests: queue.Queue = queue.Queue()
    try:
        # inside the try: a sweep that has nothing for this worker closes its input at once, and
        # the reader's stop signal may come before the next line
        threading.Thread(target=_read_requests, args=(requests,), daemon=True).start()
        from dlcli.build.backend import import_tensorflow

        import_tensorflow(verbose=False, without_keras_extras=True)
        import tensorflow

        tensorflow.get_logger().setLevel("ERROR")  # each trial's new model is traced anew, as it must be
        while (request := requests.get()) is not None:
            runs_dir = Path(request.runs_dir)
            try:
                if request.op == "check":
                    answer = check(request.plan, runs_dir)
                else:
                    with _output_to(request.log):
                        answer = train_trial(request, runs_dir)
            except DlcliError as error:
                answer = Answer(op="error", message=str(error), config=isinstance(error, ConfigError))
            answers.write(answer.model_dump_json() + "\n")
            if answer.status == RunStatus.interrupted:
                break
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    # Every file a trial writes is whole and closed by now: skip TensorFlow's teardown (up to a
    # second), which the sweep would otherwise wait for before it can show its results.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
