"""Image folders of PNGs written with Pillow."""

import numpy as np
import pytest
import torch
from PIL import Image

from sresformer.data import DataError, open_dataset
from sresformer.data.folder import IMAGENET_MEAN, IMAGENET_STD


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _solid(path, rgb, size=(6, 5)):
    _png(path, np.broadcast_to(np.array(rgb, np.uint8), (size[1], size[0], 3)))


def _norm(value, c):
    return (value / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]


def test_flat_folder_split_labels_and_colours(tmp_path):
    for i in range(5):
        _solid(tmp_path / "dog" / f"{i}.png", (200, 10 * i, 0))
        _solid(tmp_path / "cat" / "sub" / f"{i}.PNG", (0, 10 * i, 200))  # nested, upper-case suffix
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    b = open_dataset(f"folder:{tmp_path}", img_size=8, augment=False)
    assert b.class_names == ["cat", "dog"] and b.num_classes == 2
    assert len(b.train) == 8 and len(b.test) == 2
    assert sorted(b.test[i][1] for i in range(2)) == [0, 1]
    assert b.input_shape == (3, 8, 8)
    for split in (b.train, b.test):
        for i in range(len(split)):
            x, y = split[i]
            assert x.shape == (3, 8, 8)
            # a solid image stays solid through the resize; its colour tells the class
            red = 0 if y == 0 else 200
            assert torch.allclose(x[0], torch.full((8, 8), _norm(red, 0)), atol=1e-4)
    again = open_dataset(f"folder:{tmp_path}", img_size=8, augment=False)
    assert again.test.files == b.test.files


def test_pixel_layout_without_resize(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[1, 3] = (255, 0, 0)  # row 1, column 3: red
    for k in ("train", "test"):
        _png(tmp_path / k / "a" / "x.png", img)
        _png(tmp_path / k / "b" / "y.png", 255 - img)
    b = open_dataset(f"folder:{tmp_path}", img_size=4, augment=False)
    assert len(b.train) == 2 and len(b.test) == 2
    x, y = b.test[0]
    assert y == 0
    assert x[0, 1, 3].item() == pytest.approx(_norm(255, 0), abs=1e-5)
    assert x[1, 1, 3].item() == pytest.approx(_norm(0, 1), abs=1e-5)
    assert x[0, 3, 1].item() == pytest.approx(_norm(0, 0), abs=1e-5)


def test_val_folder_and_grey(tmp_path):
    for k in ("train", "val"):
        for c in ("x", "y", "z"):
            _solid(tmp_path / k / c / "0.png", (30, 60, 90))
    b = open_dataset(f"folder:{tmp_path}", img_size=16, in_channels=1, augment=True)
    x, _ = b.train[0]
    assert x.shape == (1, 16, 16) and len(b.test) == 3
    grey = round(0.299 * 30 + 0.587 * 60 + 0.114 * 90)  # Pillow's L conversion
    mean, std = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    assert b.test[0][0][0, 0, 0].item() == pytest.approx((grey / 255 - mean) / std, abs=1e-4)


def test_default_size_is_224(tmp_path):
    for c in ("a", "b"):
        for i in range(2):
            _solid(tmp_path / c / f"{i}.png", (1, 2, 3))
    b = open_dataset(f"folder:{tmp_path}")
    assert b.input_shape == (3, 224, 224) and b.train[0][0].shape == (3, 224, 224)


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [empty]
    no_images = tmp_path / "noimg"
    (no_images / "a").mkdir(parents=True)
    (no_images / "a" / "readme.txt").write_text("x")
    cases.append(no_images)
    mismatch = tmp_path / "mismatch"
    _solid(mismatch / "train" / "a" / "0.png", (0, 0, 0))
    _solid(mismatch / "test" / "q" / "0.png", (0, 0, 0))
    cases.append(mismatch)
    only_test = tmp_path / "onlytest"
    _solid(only_test / "test" / "a" / "0.png", (0, 0, 0))
    cases.append(only_test)
    for path in cases:
        with pytest.raises(DataError) as e:
            open_dataset(f"folder:{path}")
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="channels"):
        open_dataset(f"folder:{mismatch}", in_channels=2)


def test_unreadable_image_is_a_data_error(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            (tmp_path / c).mkdir(exist_ok=True)
            (tmp_path / c / f"{i}.png").write_bytes(b"not a png")
    b = open_dataset(f"folder:{tmp_path}", img_size=8)
    with pytest.raises(DataError) as e:
        b.train[0]
    assert "cannot read image" in str(e.value) and "\n" not in str(e.value)
