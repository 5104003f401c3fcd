"""Datasets: fixed test splits, seeded stratified validation splits, class selection, offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

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
    assert mnist_5k.x_train.shape == (4000, 28, 28, 1)
    assert mnist_5k.x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(mnist_5k.y_test).tolist() == [100] * 10
    assert np.bincount(mnist_5k.y_train).tolist() == [400] * 10


def test_validation_split_is_shuffled_stratified_and_images_are_scaled(tiny_config):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k")

    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (3200, 800, 1000)
    # mnist_5k is stored sorted by class: the last 20% alone would hold two classes
    assert np.bincount(splits.y_val).tolist() == [80] * 10
    assert splits.x_train.dtype == np.float32 and splits.x_train.shape[1:] == (28, 28, 1)
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() == pytest.approx(1.0)


def test_split_depends_on_the_seed_but_the_test_split_does_not(tiny_config):
    first, again = splits_for(tiny_config), splits_for(tiny_config)
    other_seed = splits_for(tiny_config, "seed=1")

    assert np.array_equal(first.x_val, again.x_val) and np.array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.x_val, other_seed.x_val)
    assert np.array_equal(first.x_test, other_seed.x_test)


def test_digits_shapes_and_sizes(tiny_config):
    splits = splits_for(tiny_config)

    assert splits.input_shape == (8, 8, 1)
    assert len(splits.x_train) + len(splits.x_val) + len(splits.x_test) == 1797
    assert splits.x_train.max() == pytest.approx(1.0)


def test_classes_keeps_those_and_relabels_them_in_the_given_order(tiny_config):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k", "dataset.classes=[9, 5, 7]")

    assert splits.class_names == ["9", "5", "7"]
    assert splits.class_mapping == {"9": 0, "5": 1, "7": 2}
    assert sorted(set(splits.y_train.tolist())) == [0, 1, 2]
    assert np.bincount(splits.y_test).tolist() == [100, 100, 100]
    assert len(splits.x_train) + len(splits.x_val) == 1200


def test_relabelled_images_are_the_right_ones(tiny_config, mnist_5k):
    splits = splits_for(tiny_config, "dataset.name=mnist_5k", "dataset.classes=[9, 5]")

    nines = mnist_5k.x_test[mnist_5k.y_test == 9] / 255.0
    assert np.allclose(splits.x_test[splits.y_test == 0], nines)


def test_one_hot_labels(tiny_config):
    splits = splits_for(tiny_config, "dataset.labels=one_hot")

    assert splits.y_train.shape == (len(splits.x_train), 10)
    assert np.all(splits.y_train.sum(axis=1) == 1)


def test_unnormalized_images_keep_their_range(tiny_config):
    assert splits_for(tiny_config, "dataset.normalize=false").x_train.max() == 16.0


def test_class_listed_twice(tiny_config):
    with pytest.raises(ConfigError, match=r"dataset\.classes\[1\]: class 3 is listed twice"):
        splits_for(tiny_config, "dataset.classes=[3, 3]")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_uncached_keras_dataset_fails_fast_offline(tiny_config, tmp_path, monkeypatch, name):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    # simulate no network even where this machine happens to have it
    monkeypatch.setattr("dlcli.data.keras_datasets.host_reachable", lambda host: False)
    started = time.monotonic()

    with pytest.raises(DataUnavailable) as raised:
        splits_for(tiny_config, f"dataset.name={name}")

    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert f"dataset '{name}' is not in the Keras cache" in message
    assert DATASETS[name].offline_alternative in message


def test_unreachable_host_is_detected_within_the_timeout():
    from dlcli.data.keras_datasets import host_reachable

    started = time.monotonic()
    assert host_reachable("host.invalid", timeout=2.0) is False
    assert time.monotonic() - started < 5
