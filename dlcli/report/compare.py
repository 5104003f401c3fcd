"""Runs side by side: the config keys that differ between them, then what they did to the metrics.

Pure functions over run records; nothing here imports TensorFlow or matplotlib.
"""

from __future__ import annotations

import fnmatch
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli.choices import Direction
from dlcli.columns import DEFAULT_MONITOR, NOT_METRIC_COLUMNS, metric_name
from dlcli.curves.verdicts import minimizes
from dlcli.errors import DlcliError
from dlcli.keys import did_you_mean, flattened, names_spelled_out
from dlcli.report import COMPARED_RUNS
from dlcli.store.runs import DATA_CHANGED, RunRecord, plotted_history, resolve_run, run_config

_ABSENT = object()  # a key one config has and another has not: unlike any value, None included


# Differ between runs without being an experimental choice: the run id shows them.
NOT_COMPARED = {"name"}


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The flattened keys whose values are not the same in every config, in config order."""
    flat = [_flat(config) for config in configs]
    keys = list(dict.fromkeys(key for config in flat for key in config if key not in NOT_COMPARED))
    return [key for key in keys if len({repr(config.get(key, _ABSENT)) for config in flat}) > 1]


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    return dict(flattened(names_spelled_out(config)))


def read_config(record: RunRecord) -> dict[str, Any]:
    """The run's config.yaml as a mapping; {} when it is damaged (compared alone, without its config:
    it may be what damaged it, an alias bomb), read again, as the index may not know yet."""
    if record.damage:
        return {}
    return run_config(record.folder)[0] or {}


@dataclass
class Comparison:
    keys: list[str]  # the config keys that differ
    metrics: list[str]  # metric columns, each with a best value to highlight
    rows: list[dict[str, Any]]
    best: dict[str, Any] = field(default_factory=dict)  # metric column -> best value
    directions: dict[str, str] = field(default_factory=dict)  # recorded_directions of the runs
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> its config.yaml, as read
    damaged: dict[str, str] = field(default_factory=dict)  # run id -> what of it cannot be read: compared alone
    # what a reader must know of single runs: an unreadable test score (unscored_note), an edited config (edited_note)
    run_notes: list[str] = field(default_factory=list)

    def columns(self) -> list[str]:
        return ["run", "status", *self.keys, *self.metrics, "best_epoch", "overfitting_onset", "parameters", "duration_s"]


def _metric_columns(record: RunRecord) -> dict[str, float]:
    columns: dict[str, float] = {}
    summary = record.summary or {}
    validated = any(key.startswith("val_") for key in summary.get("final") or {})
    for kind in ("best", "final"):
        for key, value in (summary.get(kind) or {}).items():
            if key.startswith("val_"):
                columns[f"{kind} {key}"] = value
            elif not validated and kind == "final" and key not in NOT_METRIC_COLUMNS:  # trained on all the data
                columns[f"final {key}"] = value
    evaluation = record.evaluation or {}
    # a score on changed data is no score of the same data as the others': a column of its own
    split = evaluation.get("split", "test") + (f" {DATA_CHANGED}" if record.test_data_changed else "")
    for key, value in (evaluation.get("metrics") or {}).items():
        columns[f"{split} {key}"] = value
    return columns


def column_metric(column: str) -> str:
    """The metric a comparison column shows: "best val_loss" -> "val_loss", "test (data changed) loss" -> "loss"."""
    return column.rsplit(" ", 1)[-1]


def recorded_monitor(records: list[RunRecord]) -> str:
    """The metric most of these runs chose their best epoch by (`training.monitor`), the first
    one met on a tie: how a sweep's trials rank; the loss for runs without validation data."""
    monitors = Counter((record.summary or {}).get("monitor") for record in records)
    monitors.pop(None, None)  # runs without validation data keep their last epoch
    if monitors:
        return monitors.most_common(1)[0][0]
    validated = any(key.startswith("val_") for record in records for key in ((record.summary or {}).get("best") or {}))
    return DEFAULT_MONITOR if validated else metric_name(DEFAULT_MONITOR)


def recorded_directions(records: list[RunRecord]) -> dict[str, str]:
    """Each metric's direction as the runs recorded it from Keras ('min' or 'max'); a metric the
    runs disagree on (a `monitor_mode` that overrode Keras in one of them) is left out. The
    loss is minimized whatever was recorded, as Keras's own monitors decide it: runs from
    before directions were recorded still rank by it."""
    seen: dict[str, set[str]] = {"loss": {Direction.min}}
    for record in records:
        for metric, direction in ((record.summary or {}).get("directions") or {}).items():
            seen.setdefault(metric, set()).add(direction)
    return {metric: directions.pop() for metric, directions in seen.items() if len(directions) == 1}


def compare(records: list[RunRecord], sort: str | None = None) -> Comparison:
    """One row per run: its differing config keys, metrics, best epoch, overfitting onset, size, duration."""
    configs = [read_config(record) for record in records]
    keys = differing_keys([config for record, config in zip(records, configs) if not record.damage])
    flat_configs = [_flat(config) for config in configs]
    metric_values = [_metric_columns(record) for record in records]
    metrics = list(dict.fromkeys(column for values in metric_values for column in values))
    rows = []
    for record, flat, values in zip(records, flat_configs, metric_values):
        summary = record.summary or {}
        overfitting = summary.get("overfitting") or {}
        rows.append({
            "run": record.id,
            "status": record.status,
            **{key: flat[key] for key in keys if key in flat},  # absent, not a stand-in: JSON and CSV say so
            **{column: values.get(column) for column in metrics},
            "best_epoch": summary.get("best_epoch"),
            "overfitting_onset": overfitting.get("onset_epoch"),
            "parameters": summary.get("parameters"),
            "duration_s": record.info["duration_s"],
        })
    directions = recorded_directions(records)
    best = {}
    for column in metrics:
        present = [row[column] for row in rows if isinstance(row[column], (int, float))]
        minimize = minimizes(directions, column_metric(column))
        if present and minimize is not None:
            best[column] = (min if minimize else max)(present)
    comparison = Comparison(keys, metrics, rows, best, directions, {r.id: c for r, c in zip(records, configs)},
                            {record.id: record.damage for record in records if record.damage},
                            [record.unscored_note for record in records if record.unscored_note]
                            + [note for record, config in zip(records, configs) if config
                               and (note := record.edited_note(config))])
    if sort:
        _sort(comparison, sort, directions)
    return comparison


def _columns_named(metric: str) -> list[str]:
    """The comparison columns a metric's name may mean, in the order they are looked for; `best.M`,
    `final.M` and `test.M` (as `runs --sort` and `--where` spell them) mean that column."""
    source, dot, name = metric.partition(".")
    if dot and source in ("best", "final", "test"):
        return [f"{source} {name}"]
    return [metric, f"best {metric}", f"test {metric}", f"final {metric}"]


def headline_column(comparison: Comparison, sort: str | None, records: list[RunRecord]) -> str:
    """The metric column a comparison leads with: the sorted one, else the runs' monitor's best."""
    wanted = [*(_columns_named(sort) if sort else []), f"best {recorded_monitor(records)}"]
    fallback = comparison.metrics[0] if comparison.metrics else ""
    return next((column for column in wanted if column in comparison.metrics), fallback)


def _sort(comparison: Comparison, sort: str, directions: dict[str, str]) -> None:
    column = next((c for c in _columns_named(sort) if c in comparison.metrics or c in comparison.columns()), None)
    if column is None:
        sortable = [column.replace(" ", ".", 1) for column in comparison.metrics if DATA_CHANGED not in column]
        raise DlcliError(f"--sort {sort}: no such column{did_you_mean(sort, sortable)}; sortable: "
                         f"{', '.join([*sortable, 'duration_s'])}")
    descending = False  # durations, sizes: the smallest first
    if column in comparison.metrics:
        minimize = minimizes(directions, column_metric(column))
        if minimize is None:
            raise DlcliError(
                f"--sort {sort}: these runs do not record whether a higher or a lower {metric_name(column_metric(column))} "
                "is better (runs trained before dlcli recorded it from Keras, or runs whose monitor_mode "
                "disagree); compare runs that do, or sort by another metric"
            )
        descending = not minimize
    def sortable(row: dict[str, Any]) -> bool:
        # a NaN (a diverged run's loss) compares false with every number and would land anywhere: last, as a missing value
        return isinstance(row.get(column), (int, float)) and not math.isnan(row[column])

    present = [row for row in comparison.rows if sortable(row)]
    absent = [row for row in comparison.rows if not sortable(row)]
    comparison.rows = sorted(present, key=lambda row: row[column], reverse=descending) + absent


def select(records: list[RunRecord], last: int | None = None, pattern: str | None = None) -> list[RunRecord]:
    """The runs whose id or name matches `pattern` (a glob), then the `last` of them."""
    if pattern:
        records = [
            r for r in records
            if fnmatch.fnmatch(r.id, pattern) or fnmatch.fnmatch(r.info["name"], pattern)
        ]
    return records[-last:] if last else records


def records_to_compare(
    runs_dir: Path, references: list[str] | None = None, last: int | None = None, pattern: str | None = None,
    sweep: str | None = None, where: list[str] = (), status: str | None = None, every: bool = False,
) -> list[RunRecord]:
    """The runs `dlcli compare` shows: a sweep's trials, the runs named, or the last COMPARED_RUNS (`every`:
    all) — of those, the ones that match `pattern` (a glob), `where` and `status`; raises when
    there are none."""
    from dlcli.store.index import RunIndex, read_run

    if references and (sweep or last is not None or every):  # each chooses the runs: one would be dropped unsaid
        chooser = f"--sweep {sweep}" if sweep else f"--last {last}" if last is not None else "--all"
        raise DlcliError(f"{chooser} and runs named ({', '.join(references[:3])}{', ...' if len(references) > 3 else ''}) "
                         "each choose the runs to compare: give one of them")
    if sweep or references:
        if sweep:
            from dlcli.sweep.study import find_sweep, sweep_records

            records = sweep_records(runs_dir, find_sweep(runs_dir, sweep).name)
        else:
            records = [read_run(runs_dir, resolve_run(runs_dir, reference)) for reference in references]
            named: dict[str, str] = {}
            for reference, record in zip(references, records):
                if record.id in named:
                    same = f"the same run as {named[record.id]}" if named[record.id] != reference else "given twice"
                    raise DlcliError(f"{reference}: run {record.id} is {same}; name each run once")
                named[record.id] = reference
        if where or status:
            with RunIndex(runs_dir) as index:
                matching = set(index.selected_ids(where, status)[0])
            records = [record for record in records if record.id in matching]
        records = select(records, last, pattern)
    else:
        limit = None if pattern or every else (last or COMPARED_RUNS)
        with RunIndex(runs_dir) as index:
            records, _ = index.records(where, status, None, limit)
        records = select(records, None if every else (last or COMPARED_RUNS) if pattern else None, pattern)
    if not records:
        asked = [*(f"--where {condition}" for condition in where), *([f"--status {status}"] if status else []),
                 *([f"--filter {pattern}"] if pattern else [])]
        raise DlcliError(f"no runs to compare in {runs_dir}" + (f" that match {' '.join(asked)}" if asked else ""))
    return records


def trials_elsewhere(runs_dir: Path, sweep: str, records: list[RunRecord]) -> list[dict[str, Any]]:
    """The trials of the sweep's study that have no run here: taken by other processes or machines
    sharing its storage, or not taken yet. Reads the study's storage (Optuna, no TensorFlow)."""
    from dlcli.sweep.study import Plan, find_sweep, study_trials

    folder = find_sweep(runs_dir, sweep)
    here = {record.id for record in records}
    return [
        {"trial": trial["index"], "state": trial["state"], "host": trial["host"], "run": trial["run"],
         "value": trial["value"], **trial["values"]}
        for trial in study_trials(Plan.load(folder), folder) if trial["run"] not in here
    ]


def comparison_curves(
    comparison: Comparison, records: list[RunRecord], left_out: list[str],
) -> list[tuple[str, list[dict[str, float]]]]:
    """Each compared run's history, labelled by its values of the differing keys (else its id); a
    damaged one is drawn empty and said in `left_out`."""
    by_id = {record.id: record for record in records}
    curves = []
    for row in comparison.rows:
        label = ", ".join(f"{key}={row[key]}" for key in comparison.keys if key in row) or row["run"]
        curves.append((label, plotted_history(by_id[row["run"]].folder, left_out)))
    return curves
