"""CIFAR-10/100 pickle batches written by the test, in the official layout."""

import pickle

import numpy as np
import pytest
import torch

from sresformer.data import DataError, open_dataset
from sresformer.data.cifar import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD


def _write(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _rows(n, seed):
    return np.random.RandomState(seed).randint(0, 256, size=(n, 3072)).astype(np.uint8)


@pytest.fixture()
def cifar10_dir(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = []
    for k in (1, 2):
        data, labels = _rows(5, k), [(k * 5 + i) % 10 for i in range(5)]
        _write(root / f"data_batch_{k}", {b"batch_label": b"x", b"data": data, b"labels": labels,
                                          b"filenames": [b"f"] * 5})
        batches.append((data, labels))
    test = (_rows(4, 9), [3, 1, 4, 1])
    _write(root / "test_batch", {b"data": test[0], b"labels": test[1]})
    names = [f"class{i}".encode() for i in range(10)]
    _write(root / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return tmp_path, batches, test


def _pixel(row, c, r, col):
    """CIFAR row layout: R plane, then G, then B; each 32x32 row-major."""
    return row[c * 1024 + r * 32 + col]


def test_cifar10_labels_and_pixel_layout(cifar10_dir):
    parent, batches, test = cifar10_dir
    for path in (parent, parent / "cifar-10-batches-py"):  # the parent or the folder itself
        b = open_dataset(f"cifar10:{path}", augment=False)
        assert b.name == "cifar10" and b.num_classes == 10 and b.input_shape == (3, 32, 32)
        assert len(b.train) == 10 and len(b.test) == 4
        assert b.class_names == [f"class{i}" for i in range(10)]
        assert [b.train[i][1] for i in range(10)] == batches[0][1] + batches[1][1]
        assert [b.test[i][1] for i in range(4)] == test[1]
        # train sample 7 is batch 2's row 2
        x, _ = b.train[7]
        row = batches[1][0][2]
        for c, r, col in [(0, 0, 0), (1, 5, 17), (2, 31, 3), (0, 12, 31)]:
            expected = (_pixel(row, c, r, col) / 255.0 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
            assert x[c, r, col].item() == pytest.approx(expected, abs=1e-5)
        # the whole test image against a numpy reshape of the row
        x, _ = b.test[2]
        ref = (test[0][2].reshape(3, 32, 32) / 255.0 - np.array(CIFAR10_MEAN)[:, None, None]) \
            / np.array(CIFAR10_STD)[:, None, None]
        assert np.allclose(x.numpy(), ref, atol=1e-5)


def test_cifar10_augment_and_resize(cifar10_dir):
    parent, _, _ = cifar10_dir
    b = open_dataset(f"cifar10:{parent}", augment=True)
    torch.manual_seed(1)
    a = [b.train[0][0] for _ in range(4)]
    torch.manual_seed(1)
    c = [b.train[0][0] for _ in range(4)]
    assert all(torch.equal(u, v) for u, v in zip(a, c, strict=True))
    assert all(u.shape == (3, 32, 32) for u in a)
    plain = open_dataset(f"cifar10:{parent}", augment=False)
    assert torch.equal(b.test[1][0], plain.test[1][0])
    big = open_dataset(f"cifar10:{parent}", img_size=48, augment=False)
    assert big.test[0][0].shape == (3, 48, 48) and big.input_shape == (3, 48, 48)


def test_cifar100(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    train, test = _rows(6, 1), _rows(3, 2)
    fine_tr, fine_te = [0, 99, 42, 7, 7, 55], [98, 1, 64]
    _write(root / "train", {b"data": train, b"fine_labels": fine_tr, b"coarse_labels": [0] * 6})
    _write(root / "test", {b"data": test, b"fine_labels": fine_te, b"coarse_labels": [1] * 3})
    _write(root / "meta", {b"fine_label_names": [f"n{i}".encode() for i in range(100)],
                           b"coarse_label_names": [b"c"] * 20})
    b = open_dataset(f"cifar100:{tmp_path}", augment=False)
    assert b.num_classes == 100 and b.class_names[99] == "n99"
    assert [b.train[i][1] for i in range(6)] == fine_tr
    assert [b.test[i][1] for i in range(3)] == fine_te
    x, _ = b.train[1]
    expected = (_pixel(train[1], 2, 30, 9) / 255.0 - CIFAR100_MEAN[2]) / CIFAR100_STD[2]
    assert x[2, 30, 9].item() == pytest.approx(expected, abs=1e-5)


def test_cifar_num_classes_check(cifar10_dir):
    parent, _, _ = cifar10_dir
    with pytest.raises(DataError, match="10 classes"):
        open_dataset(f"cifar10:{parent}", num_classes=5)
    assert open_dataset(f"cifar10:{parent}", num_classes=10).num_classes == 10


def test_cifar_refuses_foreign_pickle_globals(tmp_path):
    _write(tmp_path / "data_batch_1", {b"data": _rows(2, 0), b"labels": [0, 1]})
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": print, b"labels": [0]}, f, protocol=2)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}")
    assert "test_batch" in str(e.value) and "\n" not in str(e.value)
