"""Random images of a model's input size, for shape-only runs (smoke tests, export, simulation).

Sample ``i`` of a split is ``torch.randn(C, H, W)`` (``H = W = S`` unless a network asks for
``H x W``, as lava-dl's PilotNet does with 66 x 200) from a generator seeded with
``(seed * 1_000_003 + 2 * i + (0 for train, 1 for test)) mod 2**63``, so it is the same on
every call, machine and worker, and train and test never share an image. Its
label is ``i % num_classes``. There is nothing to learn; no augmentation, no
normalisation (the images are already zero-mean, unit-variance).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .base import DatasetBundle

SYNTHETIC_SIZES = (256, 64)  # (train, test) samples
DEFAULT_IMG_SIZE = 32
DEFAULT_NUM_CLASSES = 10


class SyntheticSplit(Dataset):
    """``n`` Gaussian images ``[channels, H, W]`` float32 (``size`` is ``S`` or ``(H, W)``), generated on
    demand from the index."""

    def __init__(self, n: int, channels: int, size: int | tuple[int, int], num_classes: int, seed: int,
                 offset: int) -> None:
        self.n, self.channels = n, channels
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.num_classes, self.seed, self.offset = num_classes, seed, offset
        self.labels = torch.arange(n, dtype=torch.int64) % num_classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for a split of {self.n} samples")
        index %= self.n
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + 2 * index + self.offset) % 2**63)
        x = torch.randn(self.channels, *self.size, generator=g, dtype=torch.float32)
        return x, int(self.labels[index])


def load_synthetic(img_size: int | tuple[int, int] | None = None, num_classes: int | None = None,
                   in_channels: int = 3, seed: int = 0) -> DatasetBundle:
    """256 train / 64 test random images ``[in_channels, H, W]`` (``img_size`` S gives S x S, a pair
    ``(H, W)`` gives H x W; default 32 x 32), labels ``i % K``."""
    size = (DEFAULT_IMG_SIZE,) * 2 if img_size is None else (
        (int(img_size),) * 2 if isinstance(img_size, int) else tuple(int(v) for v in img_size))
    k = DEFAULT_NUM_CLASSES if num_classes is None else int(num_classes)
    n_train, n_test = SYNTHETIC_SIZES
    return DatasetBundle(
        name="synthetic",
        train=SyntheticSplit(n_train, in_channels, size, k, seed, 0),
        test=SyntheticSplit(n_test, in_channels, size, k, seed, 1),
        num_classes=k, input_shape=(in_channels, *size), is_sequence=False,
        class_names=[str(i) for i in range(k)])
