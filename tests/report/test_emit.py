"""What a reading command prints for a program is strict JSON, whatever the numbers."""

from __future__ import annotations

import io
import json

import numpy as np

from dlcli.report.emit import emit_json, emit_json_rows


def strict(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_run_s_numbers_print_as_null_not_bare_nan():
    summary = {"loss": float("nan"), "best": {"val_loss": float("inf")}, "history": [1.0, float("-inf")],
               "epochs": np.int64(3), "accuracy": np.float32(0.5)}
    stream = io.StringIO()

    emit_json(summary, stream)

    assert strict(stream.getvalue()) == {"loss": None, "best": {"val_loss": None}, "history": [1.0, None],
                                         "epochs": 3, "accuracy": 0.5}


def test_streamed_rows_are_strict_json_too():
    stream = io.StringIO()

    emit_json_rows(iter([{"id": "a", "val_loss": float("nan")}, {"id": "b", "val_loss": 0.25}]), stream)

    assert strict(stream.getvalue()) == [{"id": "a", "val_loss": None}, {"id": "b", "val_loss": 0.25}]
