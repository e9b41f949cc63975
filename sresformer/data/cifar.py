"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches in a local folder.

Layout (https://www.cs.toronto.edu/~kriz/cifar.html, extracted, never downloaded here):

- CIFAR-10: ``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``
  (every ``data_batch_N`` present is used, in order of N);
- CIFAR-100: ``train``, ``test``, ``meta`` (the 100 fine labels).

The path may be that folder itself or a folder holding ``cifar-10-batches-py`` /
``cifar-100-python``. Each batch is a pickled dict with ``b'data'``: ``[N, 3072]``
uint8, each row the R plane then the G plane then the B plane, each plane 32x32
row-major, and ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` (CIFAR-100).

Pickle is used only because these are the dataset's official files, and only on
files the user points us at; the unpickler admits nothing but plain containers and
numpy arrays (any other global in the file is refused), read with ``encoding='bytes'``.

Samples: ``[3, S, S]`` float32, S = ``img_size`` (default 32; other sizes are a
bilinear antialiased resize). Train augmentation: random crop with zero padding
``S // 8`` (4 at 32) and a random horizontal flip. Normalisation uses the
constants of the official SpikingResformer training code (below).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from .base import DataError, DatasetBundle, TensorSplit
from .transforms import Compose, Normalize, RandomCropPad, RandomHorizontalFlip, Resize, ToFloat

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_MEAN = (129.3 / 255, 124.1 / 255, 112.4 / 255)
CIFAR100_STD = (68.2 / 255, 65.4 / 255, 70.4 / 255)

_SIDE = 32
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays and builtin containers."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core."):]  # numpy 2 renamed the package
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, OSError) as e:
        raise DataError(f"cannot read CIFAR batch {path}: {e}; re-extract the official python "
                        f"version of the dataset") from None
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR batch {path} holds a {type(obj).__name__}, not a dict; "
                        f"re-extract the official python version of the dataset")
    # the official files have bytes keys; accept str keys written by a Python 3 script too
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one pickle batch: pixels ``[N, 3, 32, 32]`` uint8 (R, G, B planes) and labels ``[N]`` int64."""
    d = _read_pickle(path)
    missing = [k for k in ("data", label_key) if k not in d]
    if missing:
        raise DataError(f"CIFAR batch {path} has no {' or '.join(repr(k.encode()) for k in missing)} "
                        f"entry (keys: {sorted(map(str, d))}); is it the right dataset's file?")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key])
    if data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise DataError(f"CIFAR batch {path}: b'data' has shape {data.shape}, expected [N, 3072]")
    if data.dtype != np.uint8 and not (np.issubdtype(data.dtype, np.integer)
                                       and (data.size == 0 or (data.min() >= 0 and data.max() <= 255))):
        raise DataError(f"CIFAR batch {path}: b'data' is {data.dtype}, expected uint8 pixels 0..255")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"CIFAR batch {path}: {data.shape[0]} images but labels of shape {labels.shape} "
                        f"and type {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"CIFAR batch {path}: labels outside 0..{num_classes - 1}; "
                        f"is it the other CIFAR dataset?")
    pixels = torch.from_numpy(data.astype(np.uint8).reshape(-1, 3, _SIDE, _SIDE).copy())
    return pixels, torch.from_numpy(labels.astype(np.int64))


def _locate(path: Path, inner: str, marker: str, kind: str) -> Path:
    if not path.exists():
        raise DataError(f"{kind} folder {path} does not exist; pass the extracted python version "
                        f"({inner}/ or its parent)")
    if not path.is_dir():
        raise DataError(f"{kind} path {path} is a file; extract the archive and pass the folder "
                        f"({inner}/ or its parent)")
    for candidate in (path, path / inner):
        if (candidate / marker).is_file():
            return candidate
    raise DataError(f"no {kind} test file '{marker}' in {path} or {path / inner}; "
                    f"pass the extracted python version of {kind}")


def _names(meta_path: Path, key: str, num_classes: int) -> list[str] | None:
    if not meta_path.is_file():
        return None
    names = _read_pickle(meta_path).get(key)
    if not isinstance(names, (list, tuple)) or len(names) != num_classes:
        return None
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]


def _bundle(name: str, train, test, num_classes: int, mean, std, img_size: int | None,
            augment: bool, class_names) -> DatasetBundle:
    size = _SIDE if img_size is None else int(img_size)
    head = [ToFloat(1 / 255)] + ([Resize(size)] if size != _SIDE else [])
    aug = [RandomCropPad(size, padding=size // 8), RandomHorizontalFlip(0.5)] if augment else []
    norm = [Normalize(mean, std)]
    return DatasetBundle(
        name=name,
        train=TensorSplit(train[0], train[1], Compose(head + aug + norm)),
        test=TensorSplit(test[0], test[1], Compose(head + norm)),
        num_classes=num_classes, input_shape=(3, size, size), is_sequence=False,
        class_names=class_names)


def load_cifar10(path: str | Path, img_size: int | None = None, augment: bool = True) -> DatasetBundle:
    """CIFAR-10 from ``path``: 10 classes, samples ``[3, S, S]`` float32 (S = img_size or 32)."""
    root = _locate(Path(path).expanduser(), "cifar-10-batches-py", "test_batch", "CIFAR-10")
    batches = sorted((p for p in root.glob("data_batch_*") if re.fullmatch(r"data_batch_\d+", p.name)),
                     key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not batches:
        raise DataError(f"CIFAR-10 folder {root} has test_batch but no data_batch_1..5; "
                        f"re-extract cifar-10-python.tar.gz")
    parts = [read_batch(p, "labels", 10) for p in batches]
    train = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    test = read_batch(root / "test_batch", "labels", 10)
    names = _names(root / "batches.meta", "label_names", 10)
    return _bundle("cifar10", train, test, 10, CIFAR10_MEAN, CIFAR10_STD, img_size, augment, names)


def load_cifar100(path: str | Path, img_size: int | None = None, augment: bool = True) -> DatasetBundle:
    """CIFAR-100 (fine labels) from ``path``: 100 classes, samples ``[3, S, S]`` float32."""
    root = _locate(Path(path).expanduser(), "cifar-100-python", "test", "CIFAR-100")
    if not (root / "train").is_file():
        raise DataError(f"CIFAR-100 folder {root} has 'test' but no 'train' file; "
                        f"re-extract cifar-100-python.tar.gz")
    train = read_batch(root / "train", "fine_labels", 100)
    test = read_batch(root / "test", "fine_labels", 100)
    names = _names(root / "meta", "fine_label_names", 100)
    return _bundle("cifar100", train, test, 100, CIFAR100_MEAN, CIFAR100_STD, img_size, augment, names)
