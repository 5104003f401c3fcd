"""A whole sweep as `dlcli sweep` runs it: the plan (new or resumed) checked without TensorFlow
while the workers start, the study, the trials, and the end. The command line only prints."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from dlcli import stopping
from dlcli.choices import Pruner, SweepMethod
from dlcli.config import check_new_run, load_config
from dlcli.errors import DlcliError
from dlcli.store.runs import RunRecord
from dlcli.store.status import RunStatus
from dlcli.sweep import study as sweeping
from dlcli.sweep.study import Plan


def sweep(
    config: Path | None, *, grid: list[str], method: SweepMethod | None, trials: int | None, prune: Pruner | None,
    storage: str | None, seed: int | None, overrides: list[str], name: str | None, resume: str | None,
    retry_failed: bool, jobs: int, runs_dir: Path, say: Callable[[str], None],
    show_results: Callable[[list[RunRecord]], None], seeds: list[int] | None = None, repeat: int | None = None,
    repeats: int | None = None,
) -> Plan:
    """Run (or continue) a sweep to its end and return its plan; `say` gets the progress lines,
    `show_results` the trials' runs while the workers exit. A trial that did not complete or
    prune leaves the sweep unfinished: a DlcliError that says how to resume it. `seeds`, or
    `repeat` seeds from the config's own: the config trained once per seed instead (`dlcli
    train --seeds/--repeat`), its runs one group. `repeats`: each trial trained with that many
    seeds, the study told their mean."""
    if retry_failed and resume is None:  # a new sweep has no failed trials: the flag would do nothing, silently
        raise DlcliError("--retry-failed trains a sweep's failed trials again: give the sweep with --resume ID")
    # the workers import TensorFlow while this process reads the config and checks the values
    workers, answers = sweeping.start_workers(jobs)
    try:
        plan, folder, epochs = plan_sweep(
            config, grid, method, trials, prune, storage, seed, overrides, name, resume, runs_dir, seeds, repeat,
            repeats,
        )
    except BaseException:
        for worker in workers:
            worker.process.kill()  # nothing for them to do: they were only importing TensorFlow
        raise
    previous = stopping.install(stopping.interrupt, [signal.SIGTERM])
    opened = False
    try:
        if resume is None:
            answer = sweeping.check_with_worker(plan, workers[0], answers, runs_dir)
            plan.monitor, plan.direction = answer.monitor, answer.direction
            plan, folder, study = sweeping.create_sweep(plan, runs_dir, epochs)
            say(
                f"sweep {plan.id}: {plan.settings.total} trials ({plan.settings.method.value}"
                f"{', pruning: ' + plan.settings.prune.value if plan.settings.prune != Pruner.none else ''}"
                f"{_repeats_said(plan.settings.repeat_seeds)}), "
                f"{jobs} at a time ({folder})"
            )
        else:
            study = sweeping.open_study(plan, folder, epochs) if plan.settings is not None else None
        opened = True
        sweeping.run_sweep(plan, folder, runs_dir, study, workers, answers, retry_failed, say, epochs)
    except KeyboardInterrupt:
        if resume is not None:
            raise sweeping.SweepInterrupted(
                f"sweep {resume} interrupted while resuming; continue it with: {sweeping.resume_command(resume, runs_dir)}"
            ) from None
        raise sweeping.SweepInterrupted("sweep interrupted before its first trial; nothing was trained") from None
    finally:
        for worker in workers:
            if opened:
                worker.stop()  # they exit on their own; the results are shown meanwhile
            else:  # the study could not be made or opened: nothing for them to do, nothing of theirs to say
                worker.process.kill()
        stopping.restore_unless_stopping(previous)
    show_results(sweeping.sweep_records(runs_dir, plan.id))
    sweeping.stop_workers(workers)
    left = [t for t in plan.trials if t.status not in (RunStatus.completed, RunStatus.pruned)]
    if left:
        statuses = ", ".join(f"trial {t.index} {t.status}" for t in left)
        raise DlcliError(f"sweep {plan.id} finished with {statuses}; see `{sweeping.resume_command(plan.id, runs_dir)}`")
    return plan


def plan_sweep(
    config: Path | None, grid: list[str], method: SweepMethod | None, trials: int | None, prune: Pruner | None,
    storage: str | None, seed: int | None, overrides: list[str], name: str | None, resume: str | None, runs_dir: Path,
    seeds: list[int] | None = None, repeat: int | None = None, repeats: int | None = None,
) -> tuple[Plan, Path | None, int]:
    """(plan, folder, epochs) of a sweep to resume, or of a new one (its folder still to be made),
    its values validated without TensorFlow."""
    folder = None
    if storage is not None and not storage.strip():
        raise DlcliError("--storage '': give a journal file's path or a database URL, or leave --storage out")
    if resume is not None:
        if config is not None or grid or trials or method or prune or storage or overrides or repeats:
            raise DlcliError("--resume ID continues a sweep with its own plan; give no CONFIG, --grid, --random, "
                             "--trials, --method, --prune, --storage, --repeats or --set")
        folder = sweeping.find_sweep(runs_dir, resume)
        plan = sweeping.Plan.load(folder)
    else:
        if config is None:
            raise DlcliError("give a CONFIG to sweep, or --resume ID")
        base = load_config(config, overrides, name=name)
        check_new_run(base)
        if repeat is not None:
            settings = sweeping.repeat_settings(range(base.seed, base.seed + repeat), f"--repeat {repeat}")
        elif seeds is not None:
            settings = sweeping.repeat_settings(seeds, f"--seeds ({len(seeds)} listed)")
        else:
            settings = sweeping.sweep_settings(
                base, grid, method.value if method else None, trials, prune.value if prune else None, seed, repeats,
            )
        plan = sweeping.Plan(id="", config=str(config.resolve()), overrides=overrides, name=base.name,
                             study=base.name, storage=storage, settings=settings)
        sweeping.validate_trials(plan)
        sweeping.check_trial_names(base, settings)  # base: named as the trials will be, --name included
        if storage is not None:
            sweeping.open_storage(storage, runs_dir)  # one that cannot be reached fails now, in seconds
    return plan, folder, sweeping.trial_config(plan, {}, "the base config").training.epochs


def _repeats_said(seeds: list[int]) -> str:
    return f", each with seeds {seeds[0]}-{seeds[-1]}, the study told their mean" if seeds else ""
