"""The stratified split: sizes, proportions, determinism, tiny classes."""

import numpy as np

from sresformer.data.split import stratified_split


def test_partition_and_sizes():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    tr, te = stratified_split(labels, 0.2, 0)
    assert len(te) == 20 and len(tr) == 80
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(100))
    assert np.bincount(labels[te]).tolist() == [2, 4, 6, 8]
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)


def test_deterministic_and_seed_dependent():
    labels = np.tile(np.arange(5), 40)
    a, b = stratified_split(labels), stratified_split(labels)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = stratified_split(labels, seed=1)
    assert not np.array_equal(a[1], c[1])


def test_tiny_classes_keep_one_each_side():
    labels = np.array([0, 0, 1, 1, 1, 2])  # class 2 has a single sample
    tr, te = stratified_split(labels, 0.2)
    assert set(labels[te]) == {0, 1}
    assert set(labels[tr]) == {0, 1, 2}


def test_empty():
    tr, te = stratified_split(np.zeros(0, np.int64))
    assert tr.size == 0 and te.size == 0
