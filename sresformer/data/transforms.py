"""Sample transforms in plain torch, for one image ``[C, H, W]`` or one frame sequence ``[T, C, H, W]``.

Every random choice is drawn from torch's global generator (``torch.randint`` /
``torch.rand``), so ``torch.manual_seed`` and the DataLoader's per-worker seeding
make a run reproducible. A sequence gets ONE draw per call: every frame of a
sample is cropped at the same offset and flipped together.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_sample(x: torch.Tensor) -> None:
    if x.dim() not in (3, 4):
        raise ValueError(f"expected [C, H, W] or [T, C, H, W], got shape {tuple(x.shape)}")


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToFloat:
    """Cast to float32 and multiply by ``scale`` (``1/255`` turns uint8 pixels into [0, 1])."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        return x * self.scale if self.scale != 1.0 else x

    def __repr__(self) -> str:
        return f"ToFloat({self.scale})"


class Resize:
    """Resize the last two dims to ``size`` (pixels) with ``F.interpolate``.

    ``mode`` is an interpolate mode (default bilinear, ``align_corners=False``);
    ``antialias`` (default True) low-pass filters when shrinking, as
    ``torchvision.transforms.Resize(antialias=True)`` does. A sequence is resized
    frame by frame (T is the batch dimension). A sample already at ``size`` is
    returned unchanged.
    """

    def __init__(self, size, mode: str = "bilinear", antialias: bool = True) -> None:
        self.size = _pair(size)
        self.mode = mode
        self.antialias = antialias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_sample(x)
        if tuple(x.shape[-2:]) == self.size:
            return x
        if not x.is_floating_point():
            x = x.to(torch.float32)
        batch = x.unsqueeze(0) if x.dim() == 3 else x
        kwargs = {"align_corners": False} if self.mode in ("bilinear", "bicubic") else {}
        if self.mode in ("bilinear", "bicubic"):
            kwargs["antialias"] = self.antialias
        out = F.interpolate(batch, size=self.size, mode=self.mode, **kwargs)
        return out[0] if x.dim() == 3 else out

    def __repr__(self) -> str:
        return f"Resize({self.size}, mode={self.mode!r}, antialias={self.antialias})"


class RandomCropPad:
    """Pad every side by ``padding`` pixels with ``fill``, then crop ``size`` at a random offset.

    The offset is drawn as ``top = torch.randint(0, H + 2p - h + 1, (1,))`` and then
    ``left = torch.randint(0, W + 2p - w + 1, (1,))``, in that order. Output
    ``[..., h, w]``; with ``size == (H, W)`` this is a random translation by up to
    ``padding`` pixels in each direction.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0.0) -> None:
        self.size = _pair(size)
        self.padding = int(padding)
        self.fill = float(fill)
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_sample(x)
        p = self.padding
        if p:
            x = F.pad(x, (p, p, p, p), mode="constant", value=self.fill)
        th, tw = self.size
        H, W = x.shape[-2:]
        if H < th or W < tw:
            raise ValueError(f"cannot crop {self.size} from a padded {H}x{W} sample")
        top = int(torch.randint(0, H - th + 1, (1,)).item())
        left = int(torch.randint(0, W - tw + 1, (1,)).item())
        return x[..., top:top + th, left:left + tw]

    def __repr__(self) -> str:
        return f"RandomCropPad({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the last dim (width) with probability ``p``: flips when ``torch.rand(1) < p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_sample(x)
        if torch.rand(1).item() < self.p:
            return torch.flip(x, dims=(-1,))
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``(x - mean[c]) / std[c]`` per channel; ``mean`` and ``std`` have one entry per channel C."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape:
            raise ValueError("mean and std need the same number of channels")
        if bool((self.std <= 0).any()):
            raise ValueError("std must be positive")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_sample(x)
        if x.shape[-3] != self.mean.shape[0]:
            raise ValueError(f"Normalize has {self.mean.shape[0]} channels, sample has {x.shape[-3]}")
        return (x.to(torch.float32) - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"
