"""Importing TensorFlow, only for the commands that train or evaluate, without its start-up noise."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ start-up log bypasses sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow and Keras once; `verbose` keeps TensorFlow's own log (`--debug`)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if verbose:
        import keras  # noqa: F401
        import tensorflow

        _limit_threads(tensorflow)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow
    _limit_threads(tensorflow)


def _limit_threads(tensorflow) -> None:
    """DLCLI_THREADS=N: this process's share of the cores (set by `dlcli sweep --jobs`)."""
    threads = os.environ.get("DLCLI_THREADS")
    if threads and threads.isdigit():
        tensorflow.config.threading.set_intra_op_parallelism_threads(int(threads))
        tensorflow.config.threading.set_inter_op_parallelism_threads(int(threads))
