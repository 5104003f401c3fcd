"""The one way a reading command prints data for a program: `--format json` or `csv`, alone on
stdout (or a file), streamed row by row where the rows come as a stream. The tables for people
are in render.py."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from dlcli.choices import Choice


class Format(Choice):
    table = "table"
    json = "json"
    csv = "csv"


class NestedFormat(Choice):
    """The formats of data too nested for CSV rows (a verdict's evidence, a check's findings)."""

    table = "table"
    json = "json"


def plain(value: Any) -> Any:
    """A value as JSON holds it: NumPy scalars as numbers, NaN (an empty CSV cell, a diverged
    loss) and infinities as null, containers walked, the rest as text."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def _json_row(row: dict[str, Any]) -> str:
    return json.dumps(plain(row), allow_nan=False)


def emit_json(data: Any, stream: TextIO | None = None) -> None:
    """One JSON document: strict JSON, which has no NaN."""
    (stream or sys.stdout).write(json.dumps(plain(data), indent=2, allow_nan=False) + "\n")


def emit_json_rows(rows: Iterable[dict[str, Any]], stream: TextIO | None = None) -> None:
    """A JSON array written as its rows come, one a line: 100,000 runs start printing at once."""
    stream = stream or sys.stdout
    stream.write("[")
    for number, row in enumerate(rows):
        stream.write(("," if number else "") + "\n" + _json_row(row))
    stream.write("\n]\n")


def _csv_cell(value: Any) -> Any:
    """A value at full precision; a list or a mapping (a config's `metrics`, predict's --top
    [[class, probability], ...]) as JSON, which a program reads back and a name with a comma,
    a space or a colon cannot break apart (Python's repr is neither)."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(plain(value), ensure_ascii=False)
    return value


def emit_csv(rows: Iterable[dict[str, Any]], columns: list[str] | None = None, stream: TextIO | None = None) -> None:
    """A header and the rows; `columns` (default: every key any row has) lets `rows` be a stream.
    A key a row gained after the header was written is left out; one a row lacks is an empty cell."""
    if columns is None:
        rows = list(rows)
        columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(stream or sys.stdout, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
