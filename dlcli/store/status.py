"""A run's status: one word per state, shared by the run folder, the index, training, sweeps and
the command line. No import beyond the standard library: `dlcli --help` loads it."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """A run's status: the one run.json records, or, for `crashed` and `damaged`, the one its
    folder is judged to have when read."""

    running = "running"
    completed = "completed"
    interrupted = "interrupted"
    failed = "failed"
    diverged = "diverged"
    pruned = "pruned"  # a sweep's pruner stopped it
    crashed = "crashed"  # recorded running, its process gone
    damaged = "damaged"  # its files cannot be read

    def __str__(self) -> str:  # the word itself in f-strings and messages, on every Python
        return self.value


# Training is over for good: a sweep never trains these again, and they have a summary.json.
FINISHED = (RunStatus.completed, RunStatus.diverged, RunStatus.pruned)
# Ended early: `dlcli train --resume` continues them (a failed one when its run.json says so).
RESUMABLE = (RunStatus.interrupted, RunStatus.crashed, RunStatus.failed)
