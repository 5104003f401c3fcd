"""Datasets: the catalog, the loaders and the preparation of train/validation/test splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcli.data.catalog import DATASETS

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig
    from dlcli.data.examples import Splits


def load_dataset(config: ExperimentConfig) -> Splits:
    """Load `config.dataset` and split it as the config asks (seeded by `config.seed`)."""
    from dlcli.data.prepare import prepare

    return prepare(DATASETS[config.dataset.name].load(config), config)


def load_folds(config: ExperimentConfig) -> list[Splits]:
    """Load `config.dataset` as `training.kfold` train/validation folds sharing one test split."""
    from dlcli.data.prepare import prepare_folds

    return prepare_folds(DATASETS[config.dataset.name].load(config), config)
