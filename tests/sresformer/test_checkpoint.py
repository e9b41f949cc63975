"""load_checkpoint: safe loading and one-line errors for bad files."""

import pickle

import pytest
import torch

import sresformer
from sresformer.errors import CheckpointError


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.ckpt"
    sresformer.save_checkpoint(sresformer.create_model("spikingresformer_nano"), path)
    return path


def _one_line(exc):
    return "\n" not in str(exc.value)


def test_truncated(good, tmp_path):
    bad = tmp_path / "trunc.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated") as e:
        sresformer.load_checkpoint(bad)
    assert _one_line(e)


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        sresformer.load_checkpoint(tmp_path / "empty.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        sresformer.load_checkpoint(tmp_path / "nope.ckpt")


def test_unsafe_pickle_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / "pwned"),))

    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(CheckpointError):
        sresformer.load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_foreign_state_dict_points_to_import(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="import-official"):
        sresformer.load_checkpoint(path)


def test_mismatched_state_dict(good, tmp_path):
    ckpt = torch.load(good, weights_only=True)
    ckpt["state_dict"]["classifier.weight"] = torch.zeros(3, 3)
    path = tmp_path / "mismatch.ckpt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="does not match") as e:
        sresformer.load_checkpoint(path)
    assert _one_line(e)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "m.ckpt"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        sresformer.save_checkpoint(sresformer.create_model("spikingresformer_nano"), path)
    assert list(tmp_path.iterdir()) == []
