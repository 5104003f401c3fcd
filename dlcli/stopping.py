"""Stopping on Ctrl-C and SIGTERM, the same way in every process that trains: the CLI's and a
sweep's workers.

A stop request outlives the KeyboardInterrupt that the handler raises with it: should native
code swallow that exception, the next batch raises it again (training.callbacks.StopOnRequest),
so a stop is never lost. It stays pending until a run has stopped on it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The exit status of a process stopped by Ctrl-C or SIGTERM, as a shell reports SIGINT.
EXIT_INTERRUPTED = 130

_stop_requested = threading.Event()
# Inside Keras's fit a stop signal only asks: a KeyboardInterrupt raised at whatever bytecode
# TensorFlow's Python is running breaks its state (a device scope left unbalanced, a heap corrupted
# while an iterator was being made: the process aborted instead of exiting 130).
_stops_wait_for_a_batch = False


def request_stop() -> None:
    """Ask the training running in this process to stop as Ctrl-C would, at the next batch."""
    _stop_requested.set()


def stop_pending() -> bool:
    """Whether a stop was asked for and no run has stopped on it yet."""
    return _stop_requested.is_set()


def stop_honoured() -> None:
    _stop_requested.clear()


def _already_stopping(signum, frame):
    """Once is enough: a second Ctrl-C (or the sweep's SIGINT on top of the terminal's) must not
    break the recording of the first. Not SIG_IGN: a signal already pending when the handler
    becomes SIG_IGN makes CPython raise "OSError: Signal 15 ignored due to race condition"."""


def interrupt(signum, frame):
    """Stop what this process is doing with a KeyboardInterrupt, once."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _already_stopping)
    raise KeyboardInterrupt


def stop_training(signum, frame):
    """`interrupt`, with the request that the training in this process stop at its next batch;
    inside `stops_at_batch_ends`, only the request."""
    request_stop()
    if _stops_wait_for_a_batch:
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, _already_stopping)
        return
    interrupt(signum, frame)


@contextlib.contextmanager
def stops_at_batch_ends() -> Iterator[None]:
    """Let a stop signal take effect only where training checks for it (StopOnRequest's batch and
    epoch ends), or on the way out of this block."""
    global _stops_wait_for_a_batch
    outer, _stops_wait_for_a_batch = _stops_wait_for_a_batch, True
    try:
        yield
    finally:
        _stops_wait_for_a_batch = outer
    if stop_pending():  # asked after the last check
        raise KeyboardInterrupt


def install(handler: Callable[[Any, Any], Any], signals: Iterable[int] = STOP_SIGNALS) -> dict[int, Any]:
    """Handle `signals` with `handler`; returns the handlers it replaced, for `restore_unless_stopping`."""
    return {signum: signal.signal(signum, handler) for signum in signals}


def restore_unless_stopping(previous_handlers: dict[int, Any]) -> None:
    """Put the handlers back, unless a stop signal arrived: then this process is on its way out,
    and a later signal restored to its default (SIGTERM's ends the process) would cut short the
    recording and the message of the first."""
    if signal.getsignal(signal.SIGTERM) is not _already_stopping:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
