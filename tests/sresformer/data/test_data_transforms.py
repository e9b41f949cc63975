"""Transforms against hand-worked examples."""

import pytest
import torch

from sresformer.data.transforms import Compose, Normalize, RandomCropPad, RandomHorizontalFlip, Resize, ToFloat


def _fixed_randint(monkeypatch, values):
    """Make torch.randint return the given values in order, recording the (low, high) asked."""
    calls, it = [], iter(values)

    def fake(low, high, size, **kw):
        calls.append((low, high))
        return torch.tensor([next(it)])

    monkeypatch.setattr(torch, "randint", fake)
    return calls


def test_crop_with_padding_hand_worked(monkeypatch):
    x = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)
    # padded is 6x6; top=0, left=2 -> rows -1..2, cols 1..4 of the original (zero outside)
    calls = _fixed_randint(monkeypatch, [0, 2])
    out = RandomCropPad(4, padding=1)(x)
    assert calls == [(0, 3), (0, 3)]
    expected = torch.tensor([[0, 0, 0, 0],
                             [1, 2, 3, 0],
                             [5, 6, 7, 0],
                             [9, 10, 11, 0]], dtype=torch.float32)
    assert torch.equal(out[0], expected)


def test_crop_centre_offset_is_identity(monkeypatch):
    x = torch.randn(3, 5, 5)
    _fixed_randint(monkeypatch, [2, 2])
    assert torch.equal(RandomCropPad(5, padding=2)(x), x)


def test_crop_fill_value_and_smaller_size(monkeypatch):
    x = torch.ones(1, 3, 3)
    _fixed_randint(monkeypatch, [0, 0])
    out = RandomCropPad(2, padding=1, fill=-5.0)(x)
    assert torch.equal(out[0], torch.tensor([[-5.0, -5.0], [-5.0, 1.0]]))


def test_crop_sequence_uses_one_offset_for_all_frames():
    torch.manual_seed(0)
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4).repeat(5, 1, 1, 1)
    out = RandomCropPad(4, padding=2)(x)
    assert out.shape == (5, 2, 4, 4)
    for t in range(1, 5):
        assert torch.equal(out[t], out[0])


def test_crop_is_reproducible_with_manual_seed():
    x = torch.randn(3, 8, 8)
    torch.manual_seed(123)
    a = [RandomCropPad(8, padding=3)(x) for _ in range(5)]
    torch.manual_seed(123)
    b = [RandomCropPad(8, padding=3)(x) for _ in range(5)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    # and it does move: some crop differs from the input
    assert any(not torch.equal(u, x) for u in a)


def test_flip_matches_torch_flip(monkeypatch):
    x = torch.randn(2, 3, 4, 5)
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([0.2]))
    assert torch.equal(RandomHorizontalFlip(0.5)(x), torch.flip(x, dims=(-1,)))
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.tensor([0.7]))
    assert torch.equal(RandomHorizontalFlip(0.5)(x), x)


def test_flip_probabilities():
    x = torch.randn(1, 2, 2)
    assert torch.equal(RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(x), x)


def test_normalize_equals_formula():
    x = torch.rand(3, 4, 4)
    m, s = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    out = Normalize(m, s)(x)
    for c in range(3):
        assert torch.allclose(out[c], (x[c] - m[c]) / s[c])
    seq = torch.rand(4, 3, 2, 2)
    out = Normalize(m, s)(seq)
    assert torch.allclose(out[2, 1], (seq[2, 1] - 0.2) / 0.25)


def test_normalize_channel_mismatch():
    with pytest.raises(ValueError):
        Normalize((0.5,), (0.5,))(torch.rand(3, 2, 2))


def test_resize_per_frame_equals_interpolate():
    seq = torch.rand(3, 2, 8, 8)
    out = Resize(16)(seq)
    assert out.shape == (3, 2, 16, 16)
    ref = torch.nn.functional.interpolate(seq[1:2], size=(16, 16), mode="bilinear",
                                          align_corners=False, antialias=True)
    assert torch.allclose(out[1], ref[0])
    img = torch.rand(3, 8, 8)
    assert Resize(8)(img) is img
    assert Resize((4, 6))(img).shape == (3, 4, 6)


def test_resize_constant_image_stays_constant():
    img = torch.full((1, 40, 40), 0.25)
    assert torch.allclose(Resize(7)(img), torch.full((1, 7, 7), 0.25))


def test_compose_and_tofloat():
    x = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    out = Compose([ToFloat(1 / 255), Normalize((0.5,), (0.5,))])(x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([[[-1.0, 1.0]]]))
