"""Datasets: the catalog, the loaders and the preparation of train/validation/test splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlcli.data.catalog import DATASETS

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig
    from dlcli.data.prepare import Splits


def load_dataset(config: ExperimentConfig) -> Splits:
    """Load `config.dataset` and split it as the config asks (seeded by `config.seed`)."""
    from dlcli.data.prepare import prepare

    return prepare(DATASETS[config.dataset.name].load(), config)
