"""Datasets: the catalog, the loaders and the preparation of train/validation/test splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcli.data.catalog import DATASETS

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig
    from dlcli.data.examples import Splits
    from dlcli.data.prepare import RawDataset


def load_raw(config: ExperimentConfig) -> RawDataset:
    """`config.dataset` as its source gives it, checked where it enters (`prepare.checked`)."""
    from dlcli.data.prepare import checked

    path = getattr(config.dataset, "path", None)
    return checked(DATASETS[config.dataset.name].load(config), str(path) if path is not None else config.dataset.name)


def load_dataset(config: ExperimentConfig) -> Splits:
    """Load `config.dataset` and split it as the config asks (seeded by `config.seed`), its splits
    checked for leaks and the like (`dlcli.data.checks`), as `dataset.leaks` says."""
    from dlcli.data.checks import acted_on, run_checks
    from dlcli.data.prepare import prepare

    splits = _prepared_ahead(config, kfold=False) or prepare(load_raw(config), config)
    return acted_on(splits, run_checks(splits, config), config.dataset.leaks, config.source.prefix(("dataset", "leaks")))


def load_folds(config: ExperimentConfig) -> list[Splits]:
    """Load `config.dataset` as `training.kfold` train/validation folds sharing one test split,
    checked as `load_dataset`'s are: the folds' pool as the training data."""
    from dlcli.data.checks import acted_on, run_checks
    from dlcli.data.prepare import prepare_folds

    folds = _prepared_ahead(config, kfold=True) or prepare_folds(load_raw(config), config)
    checks = run_checks(folds[0], config, kfold=True)
    at = config.source.prefix(("dataset", "leaks"))
    return [acted_on(fold, checks, config.dataset.leaks, at) for fold in folds]


def start_checks(config: ExperimentConfig) -> None:
    """Start the data checks' reading of an image folder's files in a process of its own, so that
    it overlaps what the caller does next (import TensorFlow); `load_dataset` takes what it read."""
    from dlcli.data.checks import read_ahead
    from dlcli.data.prepare import prepare, prepare_folds
    from dlcli.errors import DlcliError

    if config.dataset.name != "image_directory":
        return
    try:
        raw = load_raw(config)
        kfold = config.training.kfold is not None
        prepared = prepare_folds(raw, config) if kfold else prepare(raw, config)
        read_ahead(prepared[0] if kfold else prepared, config, kfold)
    except (DlcliError, OSError):
        return  # said again where the data is loaded (the reading ahead only saves time)
    _prepared.append((config, kfold, prepared))


# The splits `start_checks` prepared, for the load of the same config to take rather than make again.
_prepared: list = []


def _prepared_ahead(config: ExperimentConfig, kfold: bool):
    """What `start_checks` prepared for this very config (the same object), once; else None."""
    for entry in list(_prepared):
        if entry[0] is config and entry[1] == kfold:
            _prepared.remove(entry)
            return entry[2]
    return None
