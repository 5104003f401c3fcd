"""Datasets: fixed test splits, seeded stratified validation splits, class selection, offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import encoded
from dlcli.config import load_config
from dlcli.data import load_dataset
from dlcli.data.catalog import DATASETS
from dlcli.errors import ConfigError, DataUnavailable


@pytest.fixture(scope="module")
def mnist_5k():
    return DATASETS["mnist_5k"].load(config=None)


def splits_for(tiny_config, *overrides):
    return load_dataset(load_config(tiny_config, list(overrides)))


def test_mnist_5k_is_real_mnist_with_a_fixed_stratified_test_split(mnist_5k):
    assert mnist_5k.train.x.shape == (4000, 28, 28, 1)
    assert mnist_5k.test.x.shape == (1000, 28, 28, 1)
    assert mnist_5k.train.x.dtype == np.uint8  # pixels are kept compact, made float per batch
    assert np.bincount(mnist_5k.test.labels).tolist() == [100] * 10
    assert np.bincount(mnist_5k.train.labels).tolist() == [400] * 10


def test_validation_split_is_shuffled_stratified_and_images_are_scaled(tiny_config):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k")

    assert (len(splits.train), len(splits.validation), len(splits.test)) == (3200, 800, 1000)
    # mnist_5k is stored sorted by class: the last 20% alone would hold two classes
    assert np.bincount(splits.validation.labels).tolist() == [80] * 10
    x_train, _ = encoded(splits, "train")
    assert x_train.dtype == np.float32 and x_train.shape[1:] == (28, 28, 1)
    assert 0.0 <= x_train.min() and x_train.max() == pytest.approx(1.0)


def test_split_depends_on_the_seed_but_the_test_split_does_not(tiny_config):
    first, again = splits_for(tiny_config), splits_for(tiny_config)
    other_seed = splits_for(tiny_config, "seed=1")

    assert np.array_equal(first.validation.indices, again.validation.indices)
    assert np.array_equal(first.train.labels, again.train.labels)
    assert not np.array_equal(first.validation.indices, other_seed.validation.indices)
    assert np.array_equal(encoded(first, "test")[0], encoded(other_seed, "test")[0])


def test_digits_shapes_and_sizes(tiny_config):
    splits = splits_for(tiny_config)

    assert splits.input_shape == (8, 8, 1)
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 1797
    assert encoded(splits, "train")[0].max() == pytest.approx(1.0)


def test_classes_keeps_those_and_relabels_them_in_the_given_order(tiny_config):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k", "dataset.classes=[9, 5, 7]")

    assert splits.class_names == ["9", "5", "7"]
    assert splits.class_mapping == {"9": 0, "5": 1, "7": 2}
    assert sorted(set(splits.train.labels.tolist())) == [0, 1, 2]
    assert np.bincount(splits.test.labels).tolist() == [100, 100, 100]
    assert len(splits.train) + len(splits.validation) == 1200


def test_relabelled_images_are_the_right_ones(tiny_config, mnist_5k):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k", "dataset.classes=[9, 5]")

    nines = mnist_5k.test.x[mnist_5k.test.labels == 9] / 255.0
    x_test, y_test = encoded(splits, "test")
    assert np.allclose(x_test[y_test == 0], nines)


def test_one_hot_labels(tiny_config):
    splits = splits_for(tiny_config, "dataset.labels=one_hot")

    _, y_train = encoded(splits, "train")
    assert y_train.shape == (len(splits.train), 10)
    assert np.all(y_train.sum(axis=1) == 1)


def test_unnormalized_images_keep_their_range(tiny_config):
    assert encoded(splits_for(tiny_config, "dataset.normalize=false"), "train")[0].max() == 16.0


def test_class_listed_twice(tiny_config):
    with pytest.raises(ConfigError, match=r"dataset\.classes\.1: class 3 is listed twice"):
        splits_for(tiny_config, "dataset.classes=[3, 3]")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_uncached_keras_dataset_fails_fast_offline(tiny_config, tmp_path, monkeypatch, name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    # simulate no network even where this machine happens to have it
    monkeypatch.setattr("dlcli.data.keras_datasets.host_reachable", lambda host: False)
    started = time.monotonic()

    with pytest.raises(DataUnavailable) as raised:
        splits_for(tiny_config, f"dataset.name={name}")

    assert time.monotonic() - started < 30  # no download tried, which would wait on the network far longer
    message = str(raised.value)
    assert f"dataset '{name}' is not in the Keras cache" in message
    assert DATASETS[name].offline_alternative in message


def test_unreachable_host_is_detected_within_the_timeout():
    from dlcli.data.keras_datasets import host_reachable

    started = time.monotonic()
    assert host_reachable("host.invalid", timeout=2.0) is False
    assert time.monotonic() - started < 5
