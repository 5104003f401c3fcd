"""One commit per epoch: the history row, the best model and the resume state, consistent on disk.

The commit of an epoch writes, in this order (k numbers the commit):

1. `checkpoint/model-k.keras`, the whole model, when the epoch improved on the best;
2. `checkpoint/weights-k.weights.h5`, the fitted model's weights and optimizer state, and
   `checkpoint/callbacks-k.npz`, the arrays of the callbacks' state (EarlyStopping's best weights);
3. `checkpoint/state.json`, the commit itself: the stage and epoch, history.csv's rows, the
   Keras callbacks' numbers, the random generators' states and the names of the files above;
4. then it applies the commit: `model-k.keras` moved onto `model.keras`, `history.csv`
   rewritten from the rows, the previous commit's files removed.

A kill before 3 leaves the previous commit whole: the resumed run trains the epoch again,
to the same numbers. A kill after 3 is finished by `Checkpoint.recover`, which the next
process that owns the run calls. So the state on disk is always one epoch's, whole.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import keras
import numpy as np

from dlcli.build.saved import save_model_atomic, saved_atomically
from dlcli.errors import DlcliError, reason_of
from dlcli.faults import kill_point
from dlcli.outputs import write_atomic
from dlcli.store.documents import CheckpointState, read_run_file
from dlcli.store.runs import (
    CHECKPOINT_DIR,
    HISTORY_FILE,
    STATE_FILE,
    TRAIN_AGAIN,
    RunFolder,
    best_model_file,
    callback_arrays_file,
    remove_temporary_files,
    rows_to_csv,
    weights_file,
)


def _random_generators(model: keras.Model) -> list:
    # Layer.variables adds the SeedGenerator states (Dropout, Random* augmentation) to the
    # weights; save_weights leaves them out, so a resumed run would replay epoch 1's draws.
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def random_state(model: keras.Model) -> list[list[int]]:
    return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in _random_generators(model)]


def restore_random_state(model: keras.Model, values: list[list[int]]) -> None:
    generators = _random_generators(model)
    if len(generators) != len(values):
        raise ValueError(f"the checkpoint holds {len(values)} random generators' states, the model has {len(generators)}")
    for variable, value in zip(generators, values):
        variable.assign(np.asarray(value, dtype=variable.dtype))


# What each Keras callback dlcli allows changes as epochs pass; Keras saves it nowhere (no
# get_state/set_state), and its on_train_begin resets it. The others keep no state between
# epochs (SwapEMAWeights, TerminateOnNaN); dlcli refuses the rest.
# Their settings are not state: they are rebuilt from the config (and MonitorCallback
# changes min_delta's sign when it first runs, so it must not be copied).
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_weights", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
}
STATELESS_CALLBACKS = {"SwapEMAWeights", "TerminateOnNaN"}


def _callback_state(callback: keras.callbacks.Callback) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
    """A Keras callback's state: its numbers, and its lists of arrays (EarlyStopping's best weights)."""
    numbers, arrays = {}, {}
    for name in CALLBACK_STATE.get(type(callback).__name__, ()):
        value = getattr(callback, name, None)
        if isinstance(value, list):
            arrays[name] = [np.asarray(item) for item in value]
        else:
            numbers[name] = value.item() if isinstance(value, np.generic) else value
    return numbers, arrays


class RestoreCallbackState(keras.callbacks.Callback):
    """Puts the saved state back into the Keras callbacks when the resumed `fit` begins.

    It goes after them in the callback list: their `on_train_begin` resets their state first.
    """

    def __init__(self, callbacks: list[keras.callbacks.Callback], numbers: list[dict[str, Any]], arrays: dict):
        super().__init__()
        self.callbacks, self.numbers, self.arrays = callbacks, numbers, arrays

    def on_train_begin(self, logs=None):
        for index, (callback, numbers) in enumerate(zip(self.callbacks, self.numbers)):
            for name, value in numbers.items():
                setattr(callback, name, value)
            names = {key.split(".")[1] for key in self.arrays if key.startswith(f"{index}.")}
            for name in names:
                count = sum(1 for key in self.arrays if key.startswith(f"{index}.{name}."))
                setattr(callback, name, [self.arrays[f"{index}.{name}.{i}"] for i in range(count)])


def check_readable(run: RunFolder, state: CheckpointState) -> None:
    """Refuse a checkpoint whose files were damaged after their commit (a copy cut short, a bad
    disk) before the run is touched: found while training, it would fail the run, and the resume
    it advises would meet the same file."""
    import h5py

    name = state.weights
    try:
        with h5py.File(run.file(CHECKPOINT_DIR) / name, "r"):
            pass
        if state.callback_arrays:
            name = state.callback_arrays
            with np.load(run.file(CHECKPOINT_DIR) / name) as arrays:
                [arrays[key] for key in arrays.files]  # a member cut short fails only when read
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise _damaged(run, name, error) from None


def _check_pending_model(run: RunFolder, state: CheckpointState) -> None:
    """Refuse the best model a commit has not yet moved into place when it was damaged since:
    moved, it would be the run's model.keras, unread. A .keras file is a zip: its members'
    checksums are read."""
    path = run.file(CHECKPOINT_DIR) / state.best_model if state.best_model else None
    if path is None or not path.is_file():
        return
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile) as error:
        raise _damaged(run, path.name, error) from None
    if damaged is not None:
        raise _damaged(run, path.name, ValueError(f"its member {damaged} does not match its checksum"))


# What a run whose checkpoint cannot be used is told, after what is wrong with it
CANNOT_CONTINUE = f"so the run cannot continue; its folder is left as it is: {TRAIN_AGAIN}"


def _damaged(run: RunFolder, name: str, error: BaseException) -> DlcliError:
    return DlcliError(f"run {run.id}: {CHECKPOINT_DIR}/{name} is damaged ({reason_of(error)}), {CANNOT_CONTINUE}")


class Checkpoint:
    """A run's resume checkpoint and its history rows; `commit` is the only way either changes."""

    def __init__(self, run: RunFolder, rows: list[dict[str, float]] | None = None, commit: int = 0):
        self.run = run
        self.folder = run.file(CHECKPOINT_DIR)
        self.rows = list(rows or [])
        self.number = commit

    def record(self, row: dict[str, float]) -> None:
        """An epoch that is no state to resume from (its loss is not finite): history.csv only."""
        self.rows.append(row)
        write_atomic(self.run.file(HISTORY_FILE), rows_to_csv(self.rows))

    def commit(
        self, stage: int, epoch: int, fitted: keras.Model, callbacks: list[keras.callbacks.Callback],
        stopped: bool = False, finished: bool = False, best: tuple[keras.Model, str] | None = None,
    ) -> None:
        """Commit the rows so far and the state after `epoch` of `stage`; `best`: (model, its file)
        when this epoch's model is the best so far."""
        self.number += 1
        number, folder = self.number, self.folder
        folder.mkdir(exist_ok=True)
        best_model = None
        if best is not None:
            best_model = best_model_file(number)
            save_model_atomic(best[0], folder / best_model)
            kill_point("commit.model")
        saved_atomically(fitted.save_weights, folder / weights_file(number))
        states = [_callback_state(callback) for callback in callbacks]
        arrays = {
            f"{index}.{name}.{i}": array
            for index, (_, lists) in enumerate(states) for name, values in lists.items() for i, array in enumerate(values)
        }
        if arrays:
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            write_atomic(folder / callback_arrays_file(number), buffer.getvalue())
        kill_point("commit.weights")
        state = CheckpointState(
            commit=number, stage=stage, epoch=epoch, stopped=stopped, finished=finished,
            weights=weights_file(number), history=self.rows, callbacks=[numbers for numbers, _ in states],
            callback_arrays=callback_arrays_file(number) if arrays else None, random=random_state(fitted),
            best_model=best_model, best_model_target=best[1] if best else None,
        )
        state.write(folder / STATE_FILE)
        kill_point("commit.state")
        self.apply(state)

    def apply(self, state: CheckpointState) -> None:
        """The commit's last step, which `recover` redoes: the best model into place, history.csv
        from the rows, the older commits' files removed."""
        if state.best_model and (self.folder / state.best_model).is_file():
            os.replace(self.folder / state.best_model, self.run.file(state.best_model_target))
        kill_point("commit.model_moved")
        write_atomic(self.run.file(HISTORY_FILE), rows_to_csv(state.history or []))
        kill_point("commit.history")
        for path in self.folder.iterdir():
            if path.name != STATE_FILE and path.name not in state.files():
                path.unlink(missing_ok=True)

    @classmethod
    def recover(cls, run: RunFolder) -> tuple[Checkpoint, CheckpointState | None]:
        """The run's checkpoint as its last commit left it, that commit finished, and the temporary
        files of interrupted writes removed; the state is None when nothing was committed."""
        remove_temporary_files(run.path)
        remove_temporary_files(run.file(CHECKPOINT_DIR))
        path = run.file(CHECKPOINT_DIR) / STATE_FILE
        if not path.is_file():
            return cls(run), None
        state = read_run_file(
            CheckpointState, path, f"run {run.id}: {CHECKPOINT_DIR}",
            f"the run cannot continue from it; its folder is left as it is: {TRAIN_AGAIN}",
        )
        if not (run.file(CHECKPOINT_DIR) / state.weights).is_file():
            raise DlcliError(
                f"run {run.id}: {CHECKPOINT_DIR}/{STATE_FILE} names {state.weights}, which is missing, {CANNOT_CONTINUE}"
            )
        _check_pending_model(run, state)  # before apply moves it into place
        if state.history is not None:  # schema 0 kept no rows: the caller cuts history.csv
            checkpoint = cls(run, state.history, state.commit)
            checkpoint.apply(state)
            return checkpoint, state
        return cls(run), state

    def load(self, state: CheckpointState, fitted: keras.Model) -> dict[str, np.ndarray]:
        """Put the state's weights, optimizer state and random state into `fitted`; its callbacks' arrays."""
        fitted.optimizer.build(fitted.trainable_variables)
        fitted.load_weights(self.folder / state.weights)
        if state.random is not None:
            restore_random_state(fitted, state.random)
        if not state.callback_arrays:
            return {}
        with np.load(self.folder / state.callback_arrays) as arrays:
            return {key: arrays[key] for key in arrays.files}
