"""The embedded default dataset: scikit-learn's bundled 8x8 handwritten digits, upsampled.

1,797 grey images of the digits 0-9, pixel values 0..16, shipped inside the
scikit-learn wheel (``sklearn/datasets/data/digits.csv.gz``, the file
``sklearn.datasets.load_digits`` reads), so it needs no download.

Pipeline: values / 16 -> [0, 1]; ``F.interpolate(bilinear, align_corners=False)``
from 8x8 to ``img_size`` (default 32); train augmentation (if asked) is a random
crop with zero padding ``max(1, img_size // 16)`` pixels (2 at 32; zero is the
background, and there are no flips: digits are not mirror-symmetric); then
``(x - mean) / std`` with the mean and the population std of every pixel of the
upsampled TRAIN split (at 32x32: mean 0.30581, std 0.32409; recomputed at each
size, deterministically); finally the one grey channel is repeated ``in_channels``
times.

Split: :func:`~sresformer.data.split.stratified_split` with test fraction 0.2
and the fixed seed 0, always: 1,437 train and 360 test images, every class in both.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .base import DatasetBundle, TensorSplit
from .split import SPLIT_SEED, stratified_split
from .transforms import Compose, Normalize, RandomCropPad

#: (train, test) sample counts of the fixed split.
DIGITS_SPLIT_SIZES = (1437, 360)
DEFAULT_IMG_SIZE = 32
_BASE = 8  # side of the original images, pixels
# Above this many bytes of upsampled train+test pixels, upsample per sample instead of up front.
_PRECOMPUTE_LIMIT = 64 * 2**20


@functools.lru_cache(maxsize=1)
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits: images ``[1797, 8, 8]`` float64 in 0..16 and labels ``[1797]`` int64.

    Reads scikit-learn's bundled csv directly (importing ``sklearn.datasets`` costs
    about a second); falls back to ``load_digits()`` if the file is not where it
    was. Cached: the arrays are read once per process. Treat them as read-only.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is not None and path.is_file():
        table = np.loadtxt(path, delimiter=",")
        images, labels = table[:, :-1].reshape(-1, _BASE, _BASE), table[:, -1].astype(np.int64)
    else:  # pragma: no cover - depends on the installed scikit-learn layout
        from sklearn.datasets import load_digits

        d = load_digits()
        images, labels = d.images.astype(np.float64), d.target.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def upsample_digits(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``[N, 1, 8, 8]`` images to ``[N, 1, size, size]``."""
    if size == images.shape[-1]:
        return images.clone()
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


class _Upsample:
    """Per-sample upsampling ``[1, 8, 8] -> [1, S, S]``, used when S is too large to precompute."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return upsample_digits(x.unsqueeze(0), self.size)[0]


class _Replicate:
    """Repeat a one-channel ``[1, H, W]`` image to ``[C, H, W]``."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(self.channels, 1, 1) if self.channels != 1 else x


def _train_stats(base_train: torch.Tensor, size: int, chunk: int = 256) -> tuple[float, float]:
    """Mean and population std (over every pixel) of the upsampled train images, in float64."""
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, base_train.shape[0], chunk):
        up = upsample_digits(base_train[start:start + chunk], size).to(torch.float64)
        total += float(up.sum())
        total_sq += float((up * up).sum())
        count += up.numel()
    mean = total / count
    return mean, (total_sq / count - mean * mean) ** 0.5


def load_digits_dataset(img_size: int | None = None, in_channels: int = 3,
                        augment: bool = True) -> DatasetBundle:
    """The digits bundle: samples ``[in_channels, img_size, img_size]`` float32, labels 0..9.

    ``img_size`` defaults to 32 pixels. Train and test splits are fixed (see the
    module docstring); ``augment`` adds the random padded crop to train only.
    """
    size = DEFAULT_IMG_SIZE if img_size is None else int(img_size)
    images, labels = load_digits_arrays()
    train_idx, test_idx = stratified_split(labels, 0.2, SPLIT_SEED)
    base = torch.from_numpy(images / 16.0).to(torch.float32).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    y = torch.tensor(labels, dtype=torch.int64)

    mean, std = _train_stats(base[train_idx], size)
    precompute = base.shape[0] * size * size * 4 <= _PRECOMPUTE_LIMIT
    if precompute:
        data = upsample_digits(base, size)
        first = []
    else:
        data = base
        first = [_Upsample(size)]
    tail = [Normalize([mean], [std]), _Replicate(in_channels)]
    aug = [RandomCropPad(size, padding=max(1, size // 16))] if augment else []
    tidx, vidx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    train = TensorSplit(data[tidx], y[tidx], Compose(first + aug + tail))
    test = TensorSplit(data[vidx], y[vidx], Compose(first + tail))
    return DatasetBundle(name="digits", train=train, test=test, num_classes=10,
                         input_shape=(in_channels, size, size), is_sequence=False,
                         class_names=[str(i) for i in range(10)])
