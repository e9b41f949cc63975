"""An image folder: one sub-folder per class, images read with Pillow when a sample is asked for.

Layouts accepted for ``folder:PATH``:

- ``PATH/train/<class>/...`` with ``PATH/test/<class>/...`` (or ``PATH/val/...``):
  the given split; class ids come from the sorted train class names, and every
  test class must also be a train class.
- ``PATH/<class>/...``: every image, split 80/20 per class by
  :func:`~sresformer.data.split.stratified_split` with the fixed seed 0.

Class folders are searched recursively for files ending in one of
:data:`IMAGE_EXTENSIONS` (any case); names starting with '.' are skipped.

Samples: ``[C, S, S]`` float32 with S = ``img_size`` (default 224) and C = 3 (RGB)
or 1 (grey). Each image is converted, scaled to [0, 1] and resized to S x S
(bilinear, antialiased; the aspect ratio is not kept). Train augmentation: random
crop with zero padding ``S // 8`` and a random horizontal flip. Normalised with the
ImageNet mean/std (grey: their channel averages).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import DataError, DatasetBundle
from .split import SPLIT_SEED, stratified_split
from .transforms import Compose, Normalize, RandomCropPad, RandomHorizontalFlip, Resize

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMG_SIZE = 224


def _visible_dirs(path: Path) -> list[Path]:
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _images_under(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
    return found


def scan_classes(path: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """List ``path/<class>/**/image`` files: (class names, file paths, class ids), sorted by name.

    With ``classes`` given (the train classes), ids follow that list and a class
    folder not in it is an error.
    """
    class_dirs = _visible_dirs(path)
    if not class_dirs:
        raise DataError(f"image folder {path} has no class sub-folders; expected {path}/<class>/<images>")
    names = [d.name for d in class_dirs]
    if classes is None:
        classes = names
    else:
        extra = sorted(set(names) - set(classes))
        if extra:
            raise DataError(f"image folder {path} has classes {extra[:5]} that the train folder lacks; "
                            f"give train/ and test/ the same class sub-folders")
    index = {c: i for i, c in enumerate(classes)}
    files, labels, empty = [], [], []
    for d in class_dirs:
        found = _images_under(d)
        if not found:
            empty.append(d.name)
        files += found
        labels += [index[d.name]] * len(found)
    if empty:
        raise DataError(f"image folder {path}: class folder(s) {empty[:5]} hold no images "
                        f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...); add images or remove the folder")
    return list(classes), files, labels


class ImageFileSplit(Dataset):
    """Image files read on demand: item ``i`` is ``transform(image_i)`` and its class id.

    The image is converted to ``mode`` ('RGB' or 'L') and handed to ``transform``
    as ``[C, H, W]`` float32 in [0, 1].
    """

    def __init__(self, files: list[Path], labels: list[int], mode: str, transform) -> None:
        self.files = [str(f) for f in files]
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.mode = mode
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert(self.mode), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"cannot read image {path}: {e}; remove or replace the file") from None
        x = torch.from_numpy(arr.copy()).to(torch.float32).div_(255)
        x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
        return self.transform(x).to(torch.float32), int(self.labels[index])


def load_image_folder(path: str | Path, img_size: int | None = None, in_channels: int = 3,
                      augment: bool = True) -> DatasetBundle:
    """The bundle for an image folder; samples ``[in_channels, S, S]`` float32 (S = img_size or 224)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"image folder {path} does not exist")
    if not path.is_dir():
        raise DataError(f"image folder path {path} is not a folder; expected {path}/<class>/<images>")
    if in_channels not in (1, 3):
        raise DataError(f"an image folder gives 3 (RGB) or 1 (grey) channels, not in_channels={in_channels}")
    size = DEFAULT_IMG_SIZE if img_size is None else int(img_size)

    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if (path / "train").is_dir():
        if test_dir is None:
            raise DataError(f"image folder {path} has train/ but no test/ or val/; add one, "
                            f"or put the class folders directly in {path}")
        classes, train_files, train_labels = scan_classes(path / "train")
        _, test_files, test_labels = scan_classes(test_dir, classes)
    elif test_dir is not None:
        raise DataError(f"image folder {path} has {test_dir.name}/ but no train/; add train/<class>/ "
                        f"folders, or put the class folders directly in {path}")
    else:
        classes, files, labels = scan_classes(path)
        train_idx, test_idx = stratified_split(labels, 0.2, SPLIT_SEED)
        train_files, train_labels = [files[i] for i in train_idx], [labels[i] for i in train_idx]
        test_files, test_labels = [files[i] for i in test_idx], [labels[i] for i in test_idx]

    mode = "RGB" if in_channels == 3 else "L"
    mean = IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3,)
    std = IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3,)
    aug = [RandomCropPad(size, padding=size // 8), RandomHorizontalFlip(0.5)] if augment else []
    resize, norm = [Resize(size)], [Normalize(mean, std)]
    return DatasetBundle(
        name="folder",
        train=ImageFileSplit(train_files, train_labels, mode, Compose(resize + aug + norm)),
        test=ImageFileSplit(test_files, test_labels, mode, Compose(resize + norm)),
        num_classes=len(classes), input_shape=(in_channels, size, size), is_sequence=False,
        class_names=classes)
