"""The choices that both a config file and a command-line option offer, as `str` enums: Typer
lists and checks them, pydantic validates them, and the code compares against their members.
Kept apart from config.py so that the command line gets them without importing pydantic."""

from __future__ import annotations

from enum import Enum


class SweepMethod(str, Enum):
    """How a sweep picks its trials: Optuna's samplers."""

    grid = "grid"
    random = "random"
    tpe = "tpe"


class Pruner(str, Enum):
    """How a sweep stops hopeless trials early: Optuna's pruners."""

    none = "none"
    median = "median"
    hyperband = "hyperband"


class Direction(str, Enum):
    """Whether a lower (min) or a higher (max) value of a metric is better."""

    min = "min"
    max = "max"
