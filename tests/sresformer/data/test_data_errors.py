"""Every user mistake gives a one-line DataError (a UserError) that says what to do."""

import pickle

import numpy as np
import pytest

from sresformer.data import DataError, list_datasets, open_dataset
from sresformer.errors import UserError


def _one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg and "\r" not in msg
    assert isinstance(exc_info.value, UserError)
    return msg


def test_list_datasets():
    assert list_datasets() == ["digits", "synthetic", "cifar10:PATH", "cifar100:PATH", "folder:PATH",
                               "frames:PATH.npz"]


@pytest.mark.parametrize("spec", ["mnist", "", "   ", "cifar:foo", "imagenet:/x"])
def test_unknown_spec_lists_forms(spec):
    with pytest.raises(DataError) as e:
        open_dataset(spec)
    msg = _one_line(e)
    for form in list_datasets():
        assert form in msg


def test_existing_path_without_kind_gets_a_hint(tmp_path):
    with pytest.raises(DataError) as e:
        open_dataset(str(tmp_path))
    assert f"folder:{tmp_path}" in _one_line(e)


@pytest.mark.parametrize("spec, words", [
    ("digits:/x", "takes no path"),
    ("cifar10:", "needs a path"),
    ("frames:", "needs a path"),
])
def test_spec_shape(spec, words):
    with pytest.raises(DataError) as e:
        open_dataset(spec)
    assert words in _one_line(e)


@pytest.mark.parametrize("kind", ["cifar10", "cifar100", "folder", "frames"])
def test_missing_path(tmp_path, kind):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as e:
        open_dataset(f"{kind}:{missing}")
    msg = _one_line(e)
    assert str(missing) in msg and "does not exist" in msg


@pytest.mark.parametrize("kwargs, words", [
    ({"img_size": 0}, "img_size"),
    ({"img_size": -3}, "img_size"),
    ({"img_size": 10**6}, "img_size"),
    ({"img_size": 32.5}, "img_size"),
    ({"in_channels": 0}, "in_channels"),
    ({"T": 0}, "T must"),
    ({"num_classes": 5}, "10 classes"),
])
def test_bad_options(kwargs, words):
    with pytest.raises(DataError) as e:
        open_dataset("digits", **kwargs)
    assert words in _one_line(e)


def test_cifar_folder_without_batches(tmp_path):
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}")
    assert "test_batch" in _one_line(e)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar100:{tmp_path}")
    assert "'test'" in _one_line(e)
    # test_batch alone, no training batches
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, f)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}")
    assert "data_batch" in _one_line(e)


@pytest.mark.parametrize("content, words", [
    ({b"data": np.zeros((2, 3072), np.uint8)}, "b'labels'"),
    ({b"labels": [0, 1]}, "b'data'"),
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "[N, 3072]"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside"),
    ([1, 2, 3], "not a dict"),
])
def test_cifar_malformed_batch(tmp_path, content, words):
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(good, f)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}")
    assert words in _one_line(e)


def test_cifar_truncated_and_file_path(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as f:
        f.write(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})[:50])
    (tmp_path / "test_batch").write_bytes(b"")
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}")
    assert "cannot read" in _one_line(e)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path / 'test_batch'}")
    assert "is a file" in _one_line(e)
    with pytest.raises(DataError) as e:
        open_dataset(f"cifar10:{tmp_path}", in_channels=1)
    assert "3 channels" in _one_line(e)


def test_npz_missing_labels(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, frames=np.zeros((2, 3, 2, 4, 4), np.uint8))
    with pytest.raises(DataError) as e:
        open_dataset(f"frames:{path}")
    assert "'labels'" in _one_line(e)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError) as e:
        open_dataset(f"folder:{tmp_path}")
    assert "no class sub-folders" in _one_line(e)


def test_message_newlines_are_flattened():
    assert str(DataError("a\nb\n  c")) == "a b c"
