"""dlcli's own layers, and the one way to save and to load a run's models: the loader lives beside
the layers a saved model may hold, so that loading never depends on which module was imported first."""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import keras

from dlcli.errors import DlcliError, reason_of
from dlcli.store.documents import read_info
from dlcli.store.runs import LOWER_THE_LEARNING_RATE, TRAIN_AGAIN, RunFolder
from dlcli.store.status import RunStatus


@keras.saving.register_keras_serializable(package="dlcli")
class ApplicationPreprocessing(keras.layers.Layer):
    """`keras.applications.<module>.preprocess_input` as a layer: the saved model takes raw pixels."""

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        self.module = module
        self._preprocess = getattr(keras.applications, module).preprocess_input

    def call(self, inputs):
        return self._preprocess(inputs)

    def get_config(self):
        return {**super().get_config(), "module": self.module}


# What to do of a run's model file that is not the one its training saved
PUT_BACK = f"put back the run's own, or {TRAIN_AGAIN}"


def load_run_model(run: RunFolder, name: str, compile: bool = False) -> keras.Model:
    """The run's saved model `name`, or one line saying why it cannot be had: every reader of a
    run's .keras files goes through here."""
    path = run.file(name)
    if not path.is_file():
        status = read_info(run).status
        if status == RunStatus.diverged:
            raise DlcliError(
                f"run {run.id} diverged, and has no {name}: no good epoch of it was saved; {LOWER_THE_LEARNING_RATE}"
            )
        if status == RunStatus.completed:  # a completed run wrote it: moved or deleted since
            raise DlcliError(
                f"run {run.id} has no {name}, though it completed: it was moved or deleted; put it back, or "
                f"{TRAIN_AGAIN}"
            )
        raise DlcliError(
            f"run {run.id} has no {name}: it stopped before its first epoch ended; "
            f"train it on (`{run.resume_command}`) or choose another run"
        )
    if not zipfile.is_zipfile(path):  # Keras reports a truncated archive as "File not found"
        raise DlcliError(
            f"run {run.id}: {name} is damaged (not a whole .keras archive: truncated or overwritten); {TRAIN_AGAIN}"
        )
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=compile)
    except Exception as error:  # Keras raises what the archive makes it (a config of [] gives a TypeError)
        raise DlcliError(f"run {run.id}: cannot load {name} ({reason_of(error)})") from error
    if compile and not model.compiled:  # training saves its model compiled: this one is some other file
        raise DlcliError(
            f"run {run.id}: {name} holds no loss or metrics, as the model training saved does: it was replaced "
            f"(by preprocessing.keras, or a model saved elsewhere); {PUT_BACK}"
        )
    return model


@contextlib.contextmanager
def fitting_inputs(run: RunFolder, name: str) -> Iterator[None]:
    """Around the run's saved model `name` taking its inputs: Keras's shape check refusing them is
    one line (the data file changed since training, or the model file was replaced by another run's)."""
    try:
        yield
    except ValueError as error:
        if "shape" not in str(error):
            raise
        raise DlcliError(
            f"run {run.id}: its {name} does not take the inputs as prepared now ({reason_of(error)}): did the data "
            f"file change since training, or was the model or its preprocessing.keras replaced by another run's? {PUT_BACK}"
        ) from None


def saved_atomically(save, path: Path) -> None:
    """`save(temporary)`, then rename it to `path`: a kill mid-save never leaves half a file there."""
    # Keras picks the format from the file's ending (.keras, .weights.h5): the temporary keeps it
    temporary = path.with_name(f".{path.name.split('.')[0]}.{os.getpid()}.tmp{''.join(path.suffixes)}")
    try:
        save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """`model.save`, through a temporary file, so `path` always holds a whole model."""
    saved_atomically(model.save, path)
