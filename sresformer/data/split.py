"""A seeded stratified train/test split that never changes between runs or library versions."""

from __future__ import annotations

import math

import numpy as np

#: The fixed seed for every split made here. It is NOT the training seed: training
#: with ``--seed 3`` and evaluating with the default must see the same test set.
SPLIT_SEED = 0


def stratified_split(labels, test_fraction: float = 0.2,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into (train, test) with every class in the same proportion.

    ``labels`` is ``[N]`` ints. The test split gets ``ceil(N * test_fraction)``
    samples in total (the rounding scikit-learn uses), shared out over the classes
    by largest remainder of ``n_class * n_test / N`` (ties to the lower class id),
    then clamped so that a class with at least 2 samples has at least one in each
    split (a class with a single sample stays in train). Within each class the
    samples are ordered by ``np.random.RandomState(seed).permutation`` (the legacy
    generator, whose stream numpy keeps stable) drawn class by class in increasing
    class order; the first ones go to test. Returns two sorted int64 index arrays.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n = labels.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    n_test = min(n, math.ceil(n * test_fraction - 1e-9))
    quota = counts * n_test / n
    take = np.floor(quota).astype(np.int64)
    remainder = quota - take
    # hand out the seats left over, largest remainder first (stable: lower class id wins ties)
    order = np.argsort(-remainder, kind="stable")
    for i in order[: n_test - int(take.sum())]:
        take[i] += 1
    take = np.where(counts >= 2, np.clip(take, 1, counts - 1), 0)

    rng = np.random.RandomState(seed)
    train_idx, test_idx = [], []
    for c, k in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(members.shape[0])]
        test_idx.append(members[:k])
        train_idx.append(members[k:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
