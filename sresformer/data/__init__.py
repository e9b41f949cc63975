"""Datasets: ``open_dataset(spec)`` gives train and test splits of ``(x: float32 tensor, y: int)``.

Spec forms (the CLI's ``--data``): ``digits`` (the embedded default, no download),
``synthetic``, ``cifar10:PATH``, ``cifar100:PATH``, ``folder:PATH`` and
``frames:PATH.npz``. Nothing here downloads anything.
"""

from .base import DataError, DatasetBundle
from .registry import list_datasets, open_dataset, parse_spec
from .split import SPLIT_SEED, stratified_split

__all__ = ["DataError", "DatasetBundle", "list_datasets", "open_dataset", "parse_spec",
           "stratified_split", "SPLIT_SEED"]
