"""A run's status: one word per state, shared by the run folder, the index, training, sweeps and
the command line. Nothing heavy to import: `dlcli --help` loads it."""

from __future__ import annotations

from dlcli.choices import Choice


class RunStatus(Choice):
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


# The statuses run.json records: `crashed` and `damaged` are judged when a run is read, never written.
RECORDED = tuple(status for status in RunStatus if status not in (RunStatus.crashed, RunStatus.damaged))
# Training is over for good: a sweep never trains these again, and they have a summary.json.
FINISHED = (RunStatus.completed, RunStatus.diverged, RunStatus.pruned)
# Ended early: `dlcli train --resume` continues them (a failed one when its run.json says so).
RESUMABLE = (RunStatus.interrupted, RunStatus.crashed, RunStatus.failed)
