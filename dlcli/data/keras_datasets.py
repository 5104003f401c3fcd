"""`keras.datasets`: used from the local Keras cache, downloaded only when the network is up.

Offline, `keras.datasets.*.load_data()` can wait for minutes on a download that never
comes; dlcli checks the cache and the download host first and fails in seconds instead.
"""

from __future__ import annotations

import socket

import numpy as np

from dlcli.data.catalog import DatasetInfo, keras_cache_dir
from dlcli.data.prepare import RawDataset
from dlcli.errors import DataUnavailable

DOWNLOAD_HOSTS = {
    "mnist": "storage.googleapis.com",
    "fashion_mnist": "storage.googleapis.com",
    "cifar10": "www.cs.toronto.edu",
}
CLASS_NAMES = {
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


def host_reachable(host: str, timeout: float = REACHABILITY_TIMEOUT_S) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load(info: DatasetInfo) -> RawDataset:
    host = DOWNLOAD_HOSTS[info.name]
    advice = (
        f"use dataset '{info.offline_alternative}' (ships offline), or put "
        f"{', '.join(info.cache_files)} into {keras_cache_dir()} on a machine with network"
    )
    if not info.is_cached() and not host_reachable(host):
        raise DataUnavailable(
            f"dataset '{info.name}' is not in the Keras cache ({keras_cache_dir()}) and "
            f"{host} cannot be reached to download it; {advice}"
        )
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, info.name).load_data()
    except Exception as error:  # a broken download surfaces as any of several types
        raise DataUnavailable(f"dataset '{info.name}' could not be loaded: {error}; {advice}") from error
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    return RawDataset(
        x_train, y_train.reshape(-1).astype("int64"),
        x_test, y_test.reshape(-1).astype("int64"),
        CLASS_NAMES[info.name], value_range=255.0,
    )
