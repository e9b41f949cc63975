"""The embedded digits dataset against scikit-learn's own loader and an independent recomputation."""

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from sresformer.data import open_dataset, stratified_split
from sresformer.data.digits import DIGITS_SPLIT_SIZES


@pytest.fixture(scope="module")
def sk():
    return load_digits()


@pytest.fixture(scope="module")
def plain():
    return open_dataset("digits", augment=False)


def test_counts_and_shape(plain):
    assert (len(plain.train), len(plain.test)) == DIGITS_SPLIT_SIZES == (1437, 360)
    x, y = plain.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert plain.input_shape == (3, 32, 32) and plain.num_classes == 10 and not plain.is_sequence
    assert plain.name == "digits"


def test_stratified(plain, sk):
    tr = np.bincount(plain.train.labels.numpy(), minlength=10)
    te = np.bincount(plain.test.labels.numpy(), minlength=10)
    full = np.bincount(sk.target, minlength=10)
    assert np.array_equal(tr + te, full)
    assert (te > 0).all() and (tr > 0).all()
    # each class's test share is 20% up to one sample of rounding
    assert np.all(np.abs(te - 0.2 * full) <= 1.0)


def _upsampled(sk):
    return F.interpolate(torch.from_numpy(sk.images / 16.0).float().unsqueeze(1), size=(32, 32),
                         mode="bilinear", align_corners=False)


def test_split_is_the_seed0_stratified_split_without_overlap(plain, sk):
    """The splits hold exactly sklearn's images at the indices of the fixed seed-0 split."""
    tr, te = stratified_split(sk.target, 0.2, 0)
    assert len(set(tr) & set(te)) == 0
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(1797))
    up = _upsampled(sk)
    assert torch.equal(plain.train.data, up[torch.from_numpy(tr)])
    assert torch.equal(plain.test.data, up[torch.from_numpy(te)])
    assert np.array_equal(plain.train.labels.numpy(), sk.target[tr])
    assert np.array_equal(plain.test.labels.numpy(), sk.target[te])


def test_sample_equals_independent_recomputation(plain, sk):
    """Test sample j = normalise(interpolate(sklearn image / 16)) repeated on 3 channels."""
    tr, te = stratified_split(sk.target, 0.2, 0)
    up = _upsampled(sk)
    mean = up[tr].double().mean().item()
    std = up[tr].double().std(unbiased=False).item()
    assert abs(mean - 0.30581) < 1e-5 and abs(std - 0.32409) < 1e-5  # the numbers in the docstring
    for j in (0, 17, 359):
        i = te[j]
        x, y = plain.test[j]
        expected = ((up[i] - mean) / std).repeat(3, 1, 1)
        assert y == sk.target[i]
        assert torch.allclose(x, expected, atol=1e-5)


def test_same_split_across_calls_and_seeds(plain):
    other = open_dataset("digits", augment=True, seed=7)
    assert torch.equal(plain.train.labels, other.train.labels)
    assert torch.equal(plain.test.data, other.test.data)
    assert torch.equal(plain.test[5][0], other.test[5][0])


def test_train_is_normalised(plain):
    xs = torch.stack([plain.train[i][0] for i in range(len(plain.train))]).double()
    for c in range(3):
        assert abs(xs[:, c].mean().item()) < 1e-4
        assert abs(xs[:, c].std(unbiased=False).item() - 1.0) < 1e-4


def test_augmentation_is_a_shift_with_background_padding():
    torch.manual_seed(0)
    aug = open_dataset("digits", augment=True)
    plain = open_dataset("digits", augment=False)
    x_plain = plain.train[3][0]
    background = x_plain.min()  # pixel value 0 after normalisation
    moved = 0
    for _ in range(10):
        x = aug.train[3][0]
        assert x.shape == (3, 32, 32)
        # the augmented image is the plain one shifted by at most 2 pixels, background filled
        ok = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                pad = F.pad(x_plain, (2, 2, 2, 2), value=float(background))
                cand = pad[:, 2 + dy:34 + dy, 2 + dx:34 + dx]
                if torch.allclose(cand, x, atol=1e-6):
                    ok = True
                    moved += (dy, dx) != (0, 0)
        assert ok
    assert moved > 0
    # the test split is never augmented
    assert torch.equal(aug.test[3][0], plain.test[3][0])


def test_channels_and_size():
    b = open_dataset("digits", img_size=16, in_channels=1, augment=False)
    x, _ = b.test[0]
    assert x.shape == (1, 16, 16) and b.input_shape == (1, 16, 16)


def test_large_size_is_computed_per_sample_and_matches():
    big = open_dataset("digits", img_size=128, augment=False)
    assert big.train.data.shape[-1] == 8  # kept at 8x8, upsampled on access
    x, _ = big.test[0]
    assert x.shape == (3, 128, 128)
    assert torch.equal(x[0], x[2])


def test_loads_fast():
    open_dataset("digits")  # warm the cache of the raw arrays
    t = time.perf_counter()
    open_dataset("digits")
    assert time.perf_counter() - t < 1.0


def test_dataloader_batches(plain):
    loader = torch.utils.data.DataLoader(plain.test, batch_size=64)
    x, y = next(iter(loader))
    assert x.shape == (64, 3, 32, 32) and y.dtype == torch.int64
