"""`keras.datasets`: used from the local Keras cache, downloaded only when the network is up.

Offline, `keras.datasets.*.load_data()` can wait for minutes on a download that never
comes; dlcli checks the cache and the download host first and fails in seconds instead.
"""

from __future__ import annotations

import socket
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from dlcli.data.catalog import DatasetInfo, keras_cache_dir
from dlcli.data.examples import ArrayPool
from dlcli.data.prepare import RawDataset
from dlcli.errors import DataUnavailable

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig

DOWNLOAD_HOSTS = {
    "cifar10": "www.cs.toronto.edu",
}
DEFAULT_DOWNLOAD_HOST = "storage.googleapis.com"
IMAGE_CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ],
}
REACHABILITY_TIMEOUT_S = 3.0
# keras.datasets.boston_housing's own split, applied to mlxtend's copy of the same houses.
BOSTON_SPLIT_SEED, BOSTON_TEST_FRACTION = 113, 0.2


def host_reachable(host: str, timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _download_host(info: DatasetInfo) -> str:
    return DOWNLOAD_HOSTS.get(info.name, DEFAULT_DOWNLOAD_HOST)


def _download_possible(info: DatasetInfo) -> bool:
    return info.is_cached() or host_reachable(_download_host(info))


def _load_data(info: DatasetInfo, **kwargs):
    """`keras.datasets.<name>.load_data(**kwargs)`, or DataUnavailable in seconds when offline."""
    advice = (
        f"use {info.offline_alternative}, or put {', '.join(info.cache_files)} "
        f"into {keras_cache_dir()} on a machine with network"
    )
    if not _download_possible(info):
        raise DataUnavailable(
            f"dataset '{info.name}' is not in the Keras cache ({keras_cache_dir()}) and "
            f"{_download_host(info)} cannot be reached to download it; {advice}"
        )
    module = _keras_module(info)
    try:
        return module.load_data(**kwargs)
    except Exception as error:  # a broken download surfaces as any of several types
        raise DataUnavailable(f"dataset '{info.name}' could not be loaded: {error}; {advice}") from error


def _keras_module(info: DatasetInfo) -> ModuleType:
    import keras

    return getattr(keras.datasets, info.name)


def load_images(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    (x_train, y_train), (x_test, y_test) = _load_data(info)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    return RawDataset(
        ArrayPool(x_train, y_train.reshape(-1).astype("int64")),
        ArrayPool(x_test, y_test.reshape(-1).astype("int64")),
        IMAGE_CLASS_NAMES[info.name], value_range=255.0,
    )


def encode_word_indices(sequences: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """Lists of word indices -> multi-hot or count vectors of `num_words`, or padded sequences.

    Vectors are kept in the smallest dtype that holds them (made float32 a batch at a time):
    25,000 IMDB reviews of 10,000 words take 250 MB as uint8, 1 GB as float32.
    """
    options = config.dataset
    if options.encoding == "sequence":
        import keras

        return keras.utils.pad_sequences(sequences, maxlen=options.sequence_length or 200)
    if options.encoding not in ("multi_hot", "count"):
        raise config.error(
            ("dataset", "encoding"),
            f"{options.name} comes as word indices: encoding is multi_hot, count or sequence "
            f"(tf_idf needs raw text, as in dataset 'csv')",
        )
    vectors = np.zeros((len(sequences), options.num_words), dtype="uint8" if options.encoding == "multi_hot" else "uint16")
    for row, sequence in enumerate(sequences):
        if options.encoding == "multi_hot":
            vectors[row, sequence] = 1.0
        else:
            np.add.at(vectors[row], sequence, 1.0)
    return vectors


def load_text(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    (x_train, y_train), (x_test, y_test) = _load_data(info, num_words=config.dataset.num_words)
    if info.name == "imdb":
        names = ["negative", "positive"]
    else:
        names = list(_keras_module(info).get_label_names())
    return RawDataset(
        ArrayPool(encode_word_indices(x_train, config), y_train.astype("int64")),
        ArrayPool(encode_word_indices(x_test, config), y_test.astype("int64")),
        names,
    )


def load_boston_housing(info: DatasetInfo, config: ExperimentConfig) -> RawDataset:
    if _download_possible(info):
        (x_train, y_train), (x_test, y_test) = _load_data(info)
    else:
        from mlxtend.data import boston_housing_data

        x, y = boston_housing_data()
        order = np.arange(len(x))
        np.random.RandomState(BOSTON_SPLIT_SEED).shuffle(order)
        cut = int(len(x) * (1 - BOSTON_TEST_FRACTION))
        x_train, y_train, x_test, y_test = x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]
    return RawDataset(
        ArrayPool(x_train.astype("float32"), y_train.astype("float32")),
        ArrayPool(x_test.astype("float32"), y_test.astype("float32")), [],
    )
