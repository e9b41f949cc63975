"""Pre-binned event frames in an npz written by the test."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sresformer.data import DataError, open_dataset


def _frames(n=10, T=4, h=8, w=8, dtype=np.uint8, seed=0):
    return np.random.RandomState(seed).randint(0, 5, size=(n, T, 2, h, w)).astype(dtype)


@pytest.fixture()
def npz(tmp_path):
    frames, labels = _frames(), np.array([0, 1] * 5)
    path = tmp_path / "ev.npz"
    np.savez(path, frames=frames, labels=labels)
    return path, frames, labels


def test_channels_are_polarities_and_their_sum(npz):
    path, frames, labels = npz
    b = open_dataset(f"frames:{path}", augment=False)
    assert b.is_sequence and b.input_shape == (4, 3, 8, 8) and b.num_classes == 2 and b.name == "frames"
    assert len(b.train) == 8 and len(b.test) == 2
    assert sorted(b.test[i][1] for i in range(2)) == [0, 1]
    seen = set()
    for split in (b.train, b.test):
        for i in range(len(split)):
            x, y = split[i]
            assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32
            assert torch.equal(x[:, 2], x[:, 0] + x[:, 1])
            # the first two channels are the file's polarities, unscaled
            matches = [j for j in range(10) if np.array_equal(frames[j].astype(np.float32), x[:, :2].numpy())]
            assert len(matches) == 1 and labels[matches[0]] == y
            seen.add(matches[0])
    assert seen == set(range(10))  # no overlap, nothing lost


def test_T_must_match(npz):
    path, _, _ = npz
    assert open_dataset(f"frames:{path}", T=4).input_shape[0] == 4
    with pytest.raises(DataError) as e:
        open_dataset(f"frames:{path}", T=8)
    assert "T=4" in str(e.value) and "\n" not in str(e.value)


def test_resize_each_frame(npz):
    path, frames, _ = npz
    b = open_dataset(f"frames:{path}", img_size=16, augment=False)
    assert b.input_shape == (4, 3, 16, 16)
    x, _ = b.test[0]
    assert x.shape == (4, 3, 16, 16)
    assert torch.allclose(x[:, 2], x[:, 0] + x[:, 1], atol=1e-5)
    src = b.test.data[b.test.indices[0]].float()  # [T, 2, 8, 8]
    ref = F.interpolate(src, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(x[:, :2], ref, atol=1e-6)


def test_augment_moves_all_frames_together(npz):
    path, _, _ = npz
    aug = open_dataset(f"frames:{path}", augment=True)
    plain = open_dataset(f"frames:{path}", augment=False)
    base = plain.train[0][0]
    torch.manual_seed(3)
    for _ in range(6):
        x, _ = aug.train[0]
        assert torch.equal(x[:, 2], x[:, 0] + x[:, 1])
        found = False
        for flip in (False, True):
            src = base.flip(-1) if flip else base
            pad = F.pad(src, (1, 1, 1, 1))
            for dy in range(3):
                for dx in range(3):
                    if torch.equal(pad[..., dy:dy + 8, dx:dx + 8], x):
                        found = True
        assert found
    assert torch.equal(aug.test[0][0], plain.test[0][0])


def test_train_mask_and_split_arrays(tmp_path):
    frames, labels = _frames(n=6, dtype=np.int16), np.array([0, 1, 2, 0, 1, 2])
    mask = np.array([True, True, True, False, False, True])
    p1 = tmp_path / "mask.npz"
    np.savez_compressed(p1, frames=frames, labels=labels, train_mask=mask,
                        class_names=np.array(["a", "b", "c"]))
    b = open_dataset(f"frames:{p1}", augment=False)
    assert b.train.labels.tolist() == [0, 1, 2, 2] and b.test.labels.tolist() == [0, 1]
    assert b.class_names == ["a", "b", "c"]
    p2 = tmp_path / "split.npz"
    np.savez(p2, frames=frames.astype(np.uint16), labels=labels,
             split=np.array(["train", "test", "train", "val", "train", "train"]))
    b = open_dataset(f"frames:{p2}", augment=False)
    assert b.train.labels.tolist() == [0, 2, 1, 2] and b.test.labels.tolist() == [1, 0]
    assert b.test[0][0].dtype == torch.float32


@pytest.mark.parametrize("arrays, words", [
    ({"frames": _frames()}, "'labels'"),
    ({"labels": np.zeros(10, np.int64)}, "'frames'"),
    ({"frames": _frames()[:, :, :1], "labels": np.zeros(10, np.int64)}, "2 polarities"),
    ({"frames": _frames(), "labels": np.zeros(3, np.int64)}, "'labels' must be"),
    ({"frames": _frames(), "labels": np.zeros(10), }, "'labels' must be"),
    ({"frames": _frames(), "labels": np.zeros(10, np.int64), "train_mask": np.ones(10, bool)},
     "test set empty"),
])
def test_malformed_npz(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as e:
        open_dataset(f"frames:{path}")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_not_an_npz(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello")
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    for p in (junk, npy, tmp_path / "missing.npz", tmp_path):
        with pytest.raises(DataError) as e:
            open_dataset(f"frames:{p}")
        assert "\n" not in str(e.value)
