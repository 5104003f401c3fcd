"""Kill points: where a test may have a training process SIGKILL itself, as a power cut would.

`DLCLI_KILL_AT=<point>[:<n>]` kills the process the n-th time (the first by default) it
passes `kill_point("<point>")`. The points sit between the writes of an epoch's commit
and of a run's end (see dlcli.training.checkpoint), so tests can show that a run killed at each
one resumes to the uninterrupted run's numbers. Unset, a kill point costs a dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

KILL_AT = "DLCLI_KILL_AT"
_passes: Counter[str] = Counter()


def kill_point(name: str) -> None:
    wanted = os.environ.get(KILL_AT)
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point == name:
        _passes[name] += 1
        if _passes[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
