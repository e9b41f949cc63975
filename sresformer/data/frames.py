"""Pre-binned event-camera frames from one ``.npz`` file (e.g. CIFAR10-DVS, DVS128 Gesture).

The file holds (``np.savez`` / ``np.savez_compressed``, no pickled objects):

- ``frames``: ``[N, T, 2, H, W]``, any real numeric dtype: per sample, T time bins
  of event counts for the two polarities (the layout of spikingjelly's
  ``data_type='frame'`` datasets);
- ``labels``: ``[N]`` non-negative integers;
- optional split: ``train_mask`` ``[N]`` bool (True = train) or ``split`` ``[N]``
  (0 / 'train' for train, 1 / 'test' / 'val' for test); without either, a
  stratified 80/20 split with the fixed seed 0;
- optional ``class_names`` ``[num_classes]`` strings.

Samples: ``[T, 3, H', W']`` float32 (event counts, not normalised). The three
channels are ``cat([p0, p1, p0 + p1])``, as the official SpikingResformer DVS
pipeline builds them. ``img_size`` S resizes every frame to S x S (bilinear,
antialiased, like ``transforms.Resize(antialias=True)`` there). The file's T is
kept: asking for another T is an error, never a silent re-binning. Train
augmentation: one random horizontal flip per sample (all frames together), then a
random translation (crop with zero padding ``min(H', W') // 8``) shared by all frames.
The whole file is read into memory once; both splits share that one array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from .base import DataError, DatasetBundle, TensorSplit
from .split import SPLIT_SEED, stratified_split
from .transforms import Compose, RandomCropPad, RandomHorizontalFlip, Resize, ToFloat

_TORCH_DTYPES = (np.uint8, np.int8, np.int16, np.int32, np.int64,
                 np.float16, np.float32, np.float64, np.bool_)


class AddPolaritySum:
    """``[T, 2, H, W] -> [T, 3, H, W]``: append ``p0 + p1`` as a third channel."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.sum(dim=-3, keepdim=True)], dim=-3)

    def __repr__(self) -> str:
        return "AddPolaritySum()"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataError(f"frames file {path} does not exist")
    if not path.is_file():
        raise DataError(f"frames path {path} is not a file; expected an .npz with 'frames' and 'labels'")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise DataError(f"cannot open frames file {path}: {e.strerror or e}") from None
    if not magic.startswith(b"PK") and magic != b"\x93NUMPY":
        raise DataError(f"frames file {path} is not an .npz (zip) file; write it with "
                        f"np.savez(path, frames=..., labels=...)")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"frames file {path} is a single .npy array, not an .npz; save it with "
                            f"np.savez(path, frames=..., labels=...)")
        with z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read frames file {path}: {first}; write it with "
                        f"np.savez(path, frames=..., labels=...)") from None


def _split_of(arrays: dict[str, np.ndarray], labels: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    n = labels.shape[0]
    if "train_mask" in arrays:
        mask = arrays["train_mask"]
        if mask.shape != (n,) or mask.dtype != np.bool_:
            raise DataError(f"frames file {path}: 'train_mask' must be [N]={n} bool, "
                            f"got {mask.shape} {mask.dtype}")
    elif "split" in arrays:
        split = arrays["split"]
        if split.shape != (n,):
            raise DataError(f"frames file {path}: 'split' must have shape [{n}], got {split.shape}")
        if split.dtype.kind in "US":
            words = np.char.lower(split.astype(str))
            if not np.isin(words, ["train", "test", "val"]).all():
                raise DataError(f"frames file {path}: 'split' strings must be train, test or val")
            mask = words == "train"
        elif split.dtype.kind in "biu" and np.isin(split, [0, 1]).all():
            mask = split == 0
        else:
            raise DataError(f"frames file {path}: 'split' must hold 0 (train) / 1 (test) or strings")
    else:
        return stratified_split(labels, 0.2, SPLIT_SEED)
    train_idx, test_idx = np.flatnonzero(mask), np.flatnonzero(~mask)
    if train_idx.size == 0 or test_idx.size == 0:
        raise DataError(f"frames file {path}: the split leaves the "
                        f"{'train' if train_idx.size == 0 else 'test'} set empty")
    return train_idx, test_idx


def load_frames(path: str | Path, img_size: int | None = None, T: int | None = None,
                in_channels: int = 3, augment: bool = True) -> DatasetBundle:
    """The bundle for an event-frame npz; samples ``[T, 3, S, S]`` (or ``[T, 3, H, W]``) float32."""
    path = Path(path).expanduser()
    arrays = _read_npz(path)
    missing = [k for k in ("frames", "labels") if k not in arrays]
    if missing:
        raise DataError(f"frames file {path} has no {' or '.join(map(repr, missing))} array "
                        f"(has {sorted(arrays)}); save it with np.savez(path, frames=..., labels=...)")
    frames, labels = arrays["frames"], arrays["labels"]
    if frames.ndim != 5 or frames.shape[2] != 2:
        raise DataError(f"frames file {path}: 'frames' has shape {frames.shape}, expected "
                        f"[N, T, 2, H, W] (2 polarities)")
    if frames.dtype.kind not in "biuf":
        raise DataError(f"frames file {path}: 'frames' has dtype {frames.dtype}, expected numbers")
    if labels.shape != (frames.shape[0],) or labels.dtype.kind not in "iu":
        raise DataError(f"frames file {path}: 'labels' must be [N]={frames.shape[0]} integers, "
                        f"got {labels.shape} {labels.dtype}")
    if frames.shape[0] == 0:
        raise DataError(f"frames file {path} holds no samples")
    if labels.min() < 0:
        raise DataError(f"frames file {path}: labels must be >= 0")
    if in_channels != 3:
        raise DataError(f"event frames give 3 channels (p0, p1, p0+p1), not in_channels={in_channels}; "
                        f"use a model with 3 input channels")
    n, t_file, _, h, w = frames.shape
    if T is not None and T != t_file:
        raise DataError(f"frames file {path} has T={t_file} frames per sample but T={T} was asked; "
                        f"use T={t_file} or re-bin the events into {T} frames")

    labels = labels.astype(np.int64)
    num_classes = int(labels.max()) + 1
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or len(names) < num_classes:
            raise DataError(f"frames file {path}: 'class_names' has {names.size} names for labels up to "
                            f"{num_classes - 1}")
        class_names = [str(s) for s in names.tolist()]
        num_classes = len(class_names)
    train_idx, test_idx = _split_of(arrays, labels, path)

    if frames.dtype.type not in _TORCH_DTYPES:  # uint16 / uint32 / uint64 / float128
        frames = frames.astype(np.float32)
    data = torch.from_numpy(np.ascontiguousarray(frames))
    y = torch.from_numpy(labels)
    size = (h, w) if img_size is None else (int(img_size), int(img_size))
    head = [ToFloat()] + ([Resize(size)] if size != (h, w) else [])
    aug = [RandomHorizontalFlip(0.5), RandomCropPad(size, padding=min(size) // 8)] if augment else []
    tail = [AddPolaritySum()]
    tidx, vidx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return DatasetBundle(
        name="frames",
        train=TensorSplit(data, y, Compose(head + aug + tail), indices=tidx),
        test=TensorSplit(data, y, Compose(head + tail), indices=vidx),
        num_classes=num_classes, input_shape=(t_file, 3) + size, is_sequence=True,
        class_names=class_names)
