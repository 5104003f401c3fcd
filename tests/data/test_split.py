"""Seeded, stratified kept/held-out splits (dlcli.data.split)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dlcli.data.split import held_out_count, split_indices


def test_every_class_is_held_out_in_proportion_and_nothing_is_lost():
    labels = np.repeat([0, 1, 2], [500, 300, 200])

    kept, held = split_indices(len(labels), 0.2, seed=0, labels=labels)

    assert np.bincount(labels[held]).tolist() == [100, 60, 40]
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(1000))


def test_leftover_samples_go_to_the_classes_with_the_largest_remainders():
    labels = np.repeat([0, 1, 2], [5, 3, 2])

    _, held = split_indices(10, 4, seed=0, labels=labels)

    # quotas 2.0, 1.2, 0.8: floors 2, 1, 0 and the one left over to class 2 (0.8 > 0.2)
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 1, 1]


def test_same_seed_same_split_and_another_seed_another():
    labels = np.repeat(np.arange(10), 40)

    first = split_indices(400, 0.25, seed=3, labels=labels)
    again = split_indices(400, 0.25, seed=3, labels=labels)
    other = split_indices(400, 0.25, seed=4, labels=labels)

    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(np.sort(first[1]), np.sort(other[1]))


def test_held_out_samples_are_shuffled_not_grouped_by_class():
    labels = np.repeat(np.arange(10), 40)  # stored sorted by class, as mnist_5k is

    kept, held = split_indices(400, 0.25, seed=0, labels=labels)

    assert not np.all(np.diff(labels[held]) >= 0)
    assert not np.all(np.diff(labels[kept]) >= 0)


def test_unstratified_split_is_a_seeded_permutation():
    kept, held = split_indices(10, 0.3, seed=1)

    assert len(held) == 3 and len(kept) == 7
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(10))


@pytest.mark.parametrize(("total", "held_out", "count"), [(10, 0.25, 3), (10, 0.2, 2), (5000, 1000, 1000)])
def test_a_fraction_rounds_up_and_a_count_is_taken_as_is(total, held_out, count):
    assert held_out_count(total, held_out) == count


@pytest.mark.parametrize(("total", "held_out", "says"), [
    (1, 0.2, "1 sample cannot be split in two; use a larger dataset"),
    (5, 5, "holding out 5 of 5 samples leaves none to train on; hold out less"),
    (5, 0, "holding out 0 of 5 samples holds out none; hold out more"),
])
def test_a_split_that_leaves_one_side_empty_is_refused_with_the_way_out(total, held_out, says):
    with pytest.raises(ValueError, match=says):
        held_out_count(total, held_out)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_split_partitions_the_samples_and_keeps_each_class_within_one_of_its_share(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    total = len(labels)
    assume(0 < np.ceil(fraction * total) < total)

    kept, held = split_indices(total, fraction, seed=seed, labels=labels)

    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(total))
    shares = len(held) * np.array(counts) / total
    assert np.all(np.abs(np.bincount(labels[held], minlength=len(counts)) - shares) < 1)
