"""Importing TensorFlow, only for the commands that train or evaluate, without its start-up noise."""

from __future__ import annotations

import contextlib
import importlib.abc
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


# Keras imports these at start-up only for integrations a dlcli run never uses (its
# scikit-learn wrappers, pandas DataFrames as `fit` input, an image-gallery plot), and
# treats each as optional. Together they add more than a second to every `dlcli train`.
KERAS_EXTRAS = ("sklearn", "pandas", "matplotlib")


class _Unavailable(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages (and their submodules) fail to import."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"dlcli leaves {fullname} out of Keras's start-up", name=fullname)
        return None


@contextlib.contextmanager
def _unavailable(names: tuple[str, ...]):
    """While the block runs, importing `names` fails; those already imported stay as they are."""
    finder = _Unavailable({name for name in names if name not in sys.modules})
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_tensorflow(verbose: bool = False, without_keras_extras: bool = False) -> None:
    """Import TensorFlow and Keras once; `verbose` keeps TensorFlow's own log (`--debug`).

    `without_keras_extras` is for the dlcli process itself: Keras starts without its
    optional integrations (KERAS_EXTRAS). dlcli imports those packages later where it needs
    them, but Keras's integrations with them stay off for the rest of the process, so a
    library caller leaves this False.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(_native_stderr_silenced())
        if without_keras_extras:
            stack.enter_context(_unavailable(KERAS_EXTRAS))
        import keras  # noqa: F401
        import tensorflow
    _limit_threads(tensorflow)


def _limit_threads(tensorflow) -> None:
    """DLCLI_THREADS=N: this process's share of the cores (set by `dlcli sweep --jobs`)."""
    threads = os.environ.get("DLCLI_THREADS")
    if threads and threads.isdigit():
        tensorflow.config.threading.set_intra_op_parallelism_threads(int(threads))
        tensorflow.config.threading.set_inter_op_parallelism_threads(int(threads))
