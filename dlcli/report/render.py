"""Rich renderings of runs, comparisons, evaluations and model layouts for the terminal."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Group
from rich.table import Table
from rich.text import Text

from dlcli.errors import counted
from dlcli.report.emit import Format, emit_csv, emit_json_rows
from dlcli.store.index import shown
from dlcli.store.runs import DATA_CHANGED, EVALUATION_FILE, RunRecord
from dlcli.store.status import RunStatus

if TYPE_CHECKING:
    from dlcli.data.checks import Finding
    from dlcli.report import groups  # annotations only: groups_table imports it, so listing runs does not
    from dlcli.report.compare import Comparison
    from dlcli.store.documents import Evaluation

STATUS_STYLES = {
    RunStatus.completed: "green", RunStatus.running: "cyan", RunStatus.interrupted: "yellow", RunStatus.failed: "red",
    RunStatus.diverged: "red", RunStatus.pruned: "dim yellow", RunStatus.crashed: "bold red",
    RunStatus.damaged: "bold magenta",
}


MISSING = "—"  # in a comparison's row, a config key this run has not and another has


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return shown(value)
    return str(value)


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def _headline_metric(record: RunRecord, source: dict[str, Any] | None, prefix: str = "") -> str:
    metrics = source or {}
    for key in (f"{prefix}accuracy", f"{prefix}mae", f"{prefix}loss"):
        if isinstance(metrics.get(key), (int, float)):
            return f"{key} {shown(metrics[key])}"
    return ""


def runs_table(records: list[RunRecord]) -> Table:
    table = Table(title=f"{len(records)} runs")
    for column in ("id", "name", "group", "status", "dataset", "epochs", "best", "test", "started", "duration"):
        table.add_column(
            column, justify="right" if column in ("epochs", "duration") else "left", no_wrap=column == "id"
        )
    for record in records:
        info = record.info
        duration = info["duration_s"]
        status = _status(record.status)
        if record.damage:
            status.append(f" ({record.damage})", style="dim")
        table.add_row(
            record.id, info["name"], info["group"] or "", status, info["dataset"],
            str(record.epochs_done()) if not record.damage else "",
            _headline_metric(record, (record.summary or {}).get("best"), "val_"),
            Text(f"{EVALUATION_FILE} damaged", style="magenta") if record.evaluation_damage else
            _headline_metric(record, (record.evaluation or {}).get("metrics"))
            + (f" {DATA_CHANGED}" if record.test_data_changed else ""),
            str(info["created"] or "")[:19].replace("T", " "),
            f"{duration:.0f}s" if isinstance(duration, (int, float)) else "",
        )
    return table


def comparison_table(comparison: Comparison) -> Table:
    table = Table(title="differing config keys, then results (best in green)")
    for column in comparison.columns():
        key = column in comparison.keys
        table.add_column(
            column,
            justify="left" if column in ("run", "status") or key else "right",
            no_wrap=column == "run",
            min_width=len(column) if key else None,  # the differing keys are the point: never cut them
        )
    for row in comparison.rows:
        cells = []
        for column in comparison.columns():
            value = row.get(column, MISSING)
            if column == "status":
                cells.append(_status(value))
            elif column in comparison.best and value == comparison.best[column]:
                cells.append(Text(_number(value), style="bold green"))
            else:
                cells.append(Text(_number(value)))
        table.add_row(*cells)
    if not comparison.keys and (not comparison.damaged or len(comparison.rows) - len(comparison.damaged) >= 2):
        table.caption = "the configs are identical" + (" (of the runs that can be read)" if comparison.damaged else "")
    return table


def groups_table(found: list[groups.Group], metrics: list[str], headline: str) -> Table:
    """One row per group: its runs, each metric's mean ± std, and on `headline` the difference
    from the best group with its interval (95% for all the pairs together) and the verdict."""
    from dlcli.report import groups  # with YAML and the verdicts: only when groups are drawn

    table = Table(title=f"{counted(len(found), 'group')} (runs that differ only in their seed): mean ± std over seeds")
    table.add_column("group")
    table.add_column("n", justify="right")
    for column in metrics:
        table.add_column(column, justify="right")
    table.add_column(f"{headline}: vs best (95% CI, all pairs)", justify="right")
    table.add_column("verdict")
    for group in found:
        cells = [Text(group.label), Text(str(group.n))]
        for column in metrics:
            spread = group.spreads.get(column)
            text = "" if spread is None else _number(spread.mean) + (f" ± {spread.std:.2g}" if spread.std is not None else "")
            cells.append(Text(text))
        difference = group.differences.get(headline)
        if difference is None or difference.best_group == group.id:
            cells.append(Text("best" if difference else ""))
        else:
            interval = "" if difference.low is None else f" [{difference.low:+.3g}, {difference.high:+.3g}]"
            cells.append(Text(f"{difference.difference:+.3g}{interval}"))
        verdict = difference.verdict if difference else ""
        style = {groups.BETTER: "bold green", groups.WORSE: "red", groups.ONE_RUN: "dim"}.get(verdict, "")
        cells.append(Text(verdict, style=style))
        table.add_row(*cells)
    return table


def rows_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Rows of plain values, one column per key any row has."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in ("trial", "value") else "left")
    for row in rows:
        table.add_row(*(_status(row[c]) if c == "state" else _number(row.get(c)) for c in columns))
    return table


def evaluation_view(evaluation: Evaluation) -> Group:
    parts: list[Any] = []
    metrics = Table(title=f"{evaluation.run} on its {evaluation.split} split ({evaluation.samples} samples)")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    std = evaluation.metrics_std
    for key, value in evaluation.metrics.items():
        metrics.add_row(key, shown(value) + (f" ± {std[key]:.2g}" if key in std else ""))
    parts.append(metrics)
    if evaluation.confusion_matrix is not None:
        parts.append(_confusion_table(evaluation.class_names, evaluation.confusion_matrix, evaluation.per_class_accuracy))
    for output, report in evaluation.outputs.items():
        parts.append(_confusion_table(report["class_names"], report["confusion_matrix"], report["per_class_accuracy"],
                                      f"output '{output}': "))
    if evaluation.same_data_as_training is False:
        parts.append(Text("the rebuilt split differs from the one training saw: the data changed", style="bold red"))
    return Group(*parts)


def _confusion_table(names: list[str], confusion: list[list[int]], accuracies: dict, title: str = "") -> Table:
    matrix = Table(title=f"{title}confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("true \\ predicted")
    for name in names:
        matrix.add_column(name, justify="right")
    matrix.add_column("accuracy", justify="right")
    for row, (name, counts) in enumerate(zip(names, confusion)):
        accuracy = accuracies[name]
        cells = [Text(str(c), style="bold" if i == row else "dim") for i, c in enumerate(counts)]
        matrix.add_row(name, *cells, "" if accuracy is None else f"{accuracy:.3f}")
    return matrix


def layers_table(rows: list[tuple[str, str, str, str, int, bool]], title: str) -> Table:
    """One row per layer: name, class, the layers it takes (`model.layers` only), output shape, size."""
    table = Table(title=title)
    for column in ("layer", "class", "inputs", "output shape", "parameters", "trainable"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name, cls, inputs, shape, parameters, trainable in rows:
        table.add_row(name, cls, inputs, shape, f"{parameters:,}", "yes" if trainable else "no")
    return table


EXAMPLES_SHOWN = 5  # sets of examples `dlcli check` shows under a finding


def finding_lines(checks: list[Finding], dropped: dict[str, int]) -> list[str]:
    """What `dlcli check` says of the data checks: each finding with the first few sets of examples
    under it, what `dataset.leaks: drop` removed, or one line when nothing was found."""
    from dlcli.data.checks import dropped_line, group_text  # numpy: not for the reading commands

    lines = []
    for finding in checks:
        lines.append(f"warning: {finding.message}")
        shown = finding.examples[:EXAMPLES_SHOWN]
        lines += [f"  {group_text(group)}" for group in shown]
        if len(finding.examples) > len(shown):
            lines.append(f"  ... and {len(finding.examples) - len(shown)} more (--format json lists every one)")
    if dropped:
        lines.append(dropped_line(dropped))
    if not checks:
        lines.append("data checks: no duplicates, leaks, conflicting labels, missing classes or imbalance found")
    return lines


def named_table(description: dict[str, Any]) -> Table:
    """A table's named inputs and outputs: the columns each reads or predicts, and how."""
    table = Table(title="inputs and outputs")
    for column in ("name", "", "columns", "shape", "encoding or classes"):
        table.add_column(column)
    for name, spec in description["inputs"].items():
        columns = spec["columns"]
        shown = ", ".join(columns[:4]) + (f" ... ({len(columns)} columns)" if len(columns) > 4 else "")
        table.add_row(name, "input", shown, str(tuple(spec["shape"])), spec["encoding"])
    for name, spec in description["outputs"].items():
        classes = spec.get("classes")
        table.add_row(name, "output", spec["column"], "", ", ".join(classes) if classes else "a value (regression)")
    return table


def data_table(description: dict[str, Any], counts: dict[str, list[int]]) -> Table:
    shape = "named inputs and outputs" if description.get("inputs") else f"input shape {tuple(description['input_shape'])}"
    table = Table(title=f"data: {shape}")
    table.add_column("split")
    table.add_column("samples", justify="right")
    table.add_column("per class", justify="left")
    for split in ("train", "validation", "test"):
        per_class = counts.get(split)
        table.add_row(split, str(description[split]), ", ".join(map(str, per_class)) if per_class else "")
    if description["classes"]:
        table.caption = f"classes: {', '.join(description['classes'])}"
    return table


def _prediction_cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):  # --top: [[class, probability], ...]
        return " ".join(f"{name}:{p:.3f}" if isinstance(p, float) else str(name) for name, p in value) \
            if value and isinstance(value[0], list) else str(value)
    return str(value)


def write_predictions(rows: Iterator[dict[str, Any]], output_format: Format, stream: TextIO) -> None:
    """Rows as they come: csv (a header, then rows), json (one array), or aligned text lines."""
    first = next(rows, None)
    if output_format == Format.json:
        return emit_json_rows(itertools.chain([first], rows) if first is not None else [], stream)
    if first is None:
        return
    columns = list(first)
    if output_format == Format.csv:
        emit_csv(itertools.chain([first], rows), columns, stream)
    else:
        widths = {key: max(len(key), 12) for key in columns}
        widths["input"] = max(len(str(first["input"])), 20)
        stream.write("  ".join(key.ljust(widths[key]) for key in columns).rstrip() + "\n")
        for row in itertools.chain([first], rows):
            stream.write("  ".join(_prediction_cell(row.get(key, "")).ljust(widths[key]) for key in columns).rstrip() + "\n")
