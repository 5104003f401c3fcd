"""Seeded splits into kept and held-out samples, stratified when the samples have classes.

Written here rather than taken from scikit-learn's `train_test_split`: importing
`sklearn.model_selection` costs about a second, as much as several epochs of the small
curriculum models, and a split is a seeded shuffle and a count per class.
"""

from __future__ import annotations

import math

import numpy as np


def held_out_count(total: int, held_out: int | float) -> int:
    """`held_out` as a number of samples: a fraction rounds up, as scikit-learn's does."""
    count = held_out if isinstance(held_out, int) else math.ceil(held_out * total)
    if total < 2:
        raise ValueError(f"{total} sample{'' if total == 1 else 's'} cannot be split in two; use a larger dataset")
    if count >= total:
        raise ValueError(f"holding out {held_out} of {total} samples leaves none to train on; hold out less")
    if count <= 0:
        raise ValueError(f"holding out {held_out} of {total} samples holds out none; hold out more")
    return count


def _per_class_counts(counts: np.ndarray, held: int) -> np.ndarray:
    """Split `held` over the classes in proportion to their sizes; the largest remainders get the rest."""
    quotas = held * counts / counts.sum()
    allotted = np.floor(quotas).astype(int)
    short = held - allotted.sum()
    allotted[np.argsort(-(quotas - allotted), kind="stable")[:short]] += 1
    return allotted


def split_indices(
    total: int, held_out: int | float, seed: int, labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), each in shuffled order; with `labels`, every class is held out
    in proportion to its size. The same arguments always give the same split."""
    held = held_out_count(total, held_out)
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(total)
        return order[held:], order[:held]
    classes, counts = np.unique(labels, return_counts=True)
    kept_parts, held_parts = [], []
    for cls, count in zip(classes, _per_class_counts(counts, held)):
        members = rng.permutation(np.flatnonzero(labels == cls))
        held_parts.append(members[:count])
        kept_parts.append(members[count:])
    return rng.permutation(np.concatenate(kept_parts)), rng.permutation(np.concatenate(held_parts))

