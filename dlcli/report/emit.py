"""The one way a reading command prints data for a program: `--format json` or `csv`, alone on
stdout (or a file), streamed row by row where the rows come as a stream. The tables for people
are in render.py."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from dlcli.choices import Choice


class Format(Choice):
    table = "table"
    json = "json"
    csv = "csv"


class NestedFormat(Choice):
    """The formats of data too nested for CSV rows (a verdict's evidence)."""

    table = "table"
    json = "json"


def plain(value: Any) -> Any:
    """A value as JSON holds it: NumPy scalars as numbers, NaN (an empty CSV cell) as null, the rest as text."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value != value:
        return None
    return value if isinstance(value, (int, float, str, bool, type(None), list, dict)) else str(value)


def _json_row(row: dict[str, Any]) -> str:
    return json.dumps({key: plain(value) for key, value in row.items()}, default=plain)


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    """One JSON document."""
    (stream or sys.stdout).write(json.dumps(data, indent=2, default=plain) + "\n")


def emit_json_rows(rows: Iterable[dict[str, Any]], stream: TextIO | None = None) -> None:
    """A JSON array written as its rows come, one a line: 100,000 runs start printing at once."""
    stream = stream or sys.stdout
    stream.write("[")
    for number, row in enumerate(rows):
        stream.write(("," if number else "") + "\n" + _json_row(row))
    stream.write("\n]\n")


def emit_csv(
    rows: Iterable[dict[str, Any]], columns: list[str] | None = None, stream: TextIO | None = None,
    cell: Callable[[Any], Any] = lambda value: value,
) -> None:
    """A header and the rows; `columns` (default: every key any row has) lets `rows` be a stream.
    A key a row gained after the header was written is left out."""
    if columns is None:
        rows = list(rows)
        columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(stream or sys.stdout, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: cell(value) for key, value in row.items()})
