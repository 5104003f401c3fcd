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
    """Load `config.dataset` and split it as the config asks (seeded by `config.seed`)."""
    from dlcli.data.prepare import prepare

    return prepare(load_raw(config), config)


def load_folds(config: ExperimentConfig) -> list[Splits]:
    """Load `config.dataset` as `training.kfold` train/validation folds sharing one test split."""
    from dlcli.data.prepare import prepare_folds

    return prepare_folds(load_raw(config), config)
