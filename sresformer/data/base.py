"""What every dataset returns: the error type, the bundle, and a split held as one tensor.

A dataset here is a pair of ``torch.utils.data.Dataset`` objects (train and test)
whose items are ``(x, y)``: ``x`` a float32 tensor, ``[C, H, W]`` for images or
``[T, C, H, W]`` for event frames, and ``y`` a Python ``int`` class index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.data import Dataset

from ..errors import UserError

#: Largest side length (pixels) a dataset will resize to; larger requests are refused.
MAX_IMG_SIZE = 2048


class DataError(UserError):
    """A dataset spec, path or file the user can fix; the message is one line saying what to do."""

    def __init__(self, message: str) -> None:
        # The CLI prints str(error) as one line on stderr: never let a newline through.
        super().__init__(" ".join(str(message).split()))


@dataclass
class DatasetBundle:
    """A train split, a test split and what a model needs to know about them.

    ``train`` and ``test`` yield ``(x: float32 tensor, y: int)``. ``test`` is
    deterministic (no augmentation). ``input_shape`` is ``(C, H, W)`` for images
    or ``(T, C, H, W)`` for event frames (then ``is_sequence`` is True), in pixels.
    """

    name: str
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    is_sequence: bool
    class_names: list[str] | None = None


class TensorSplit(Dataset):
    """One split held in memory: ``data[i]`` goes through ``transform``, the label comes out as int.

    ``data`` is any tensor ``[N, ...]`` (uint8 pixels, float images, integer event
    counts); ``transform`` maps one ``data[i]`` to the float32 sample. ``labels`` is
    ``[N]`` int64. ``indices`` (optional, ``[M]`` int64) selects the split's rows of a
    tensor shared with the other split, without copying it. Indexing is cheap: one
    slice and the transform, no file access.
    """

    def __init__(self, data: torch.Tensor, labels: torch.Tensor,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 indices: torch.Tensor | None = None) -> None:
        if data.shape[0] != labels.shape[0]:
            raise ValueError(f"{data.shape[0]} samples but {labels.shape[0]} labels")
        self.data = data
        self.transform = transform
        self.indices = None if indices is None else torch.as_tensor(indices, dtype=torch.int64)
        labels = labels.to(torch.int64)
        self.labels = labels if self.indices is None else labels[self.indices]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a split of {len(self)} samples")
        row = index if self.indices is None else int(self.indices[index])
        x = self.data[row]
        if self.transform is not None:
            x = self.transform(x)
        return x.to(torch.float32), int(self.labels[index])


def check_positive_int(value, what: str, *, hint: str = "") -> int:
    """Return ``value`` as int if it is a positive integer, else raise a one-line DataError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{what} must be a positive integer, got {value!r}{hint}")
    return int(value)


def check_img_size(img_size: int | None) -> int | None:
    """Validate a requested square side length in pixels (1..MAX_IMG_SIZE) or None."""
    if img_size is None:
        return None
    size = check_positive_int(img_size, "img_size")
    if size > MAX_IMG_SIZE:
        raise DataError(f"img_size {size} is larger than the supported {MAX_IMG_SIZE} pixels; "
                        f"pick a smaller img_size")
    return size
