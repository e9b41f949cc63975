"""Evaluation: top-1 / top-5 accuracy of a model on a dataset split, optionally keeping the logits.

The model runs in ``eval()`` mode under ``torch.no_grad()`` in float32 (no autocast, so
spikes, and therefore accuracies, do not depend on the device's reduced precision). DSSA
layers then use their frozen firing-rate buffers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .progress import track


def model_input(x: torch.Tensor) -> torch.Tensor:
    """A DataLoader batch in the model's layout: images ``[B, C, H, W]`` stay, sequences
    ``[B, T, C, H, W]`` become time-major ``[T, B, C, H, W]``."""
    return x.transpose(0, 1) if x.dim() == 5 else x


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> int:
    """How many rows of ``logits [B, K]`` have ``target`` among their ``k`` largest entries."""
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    return int((top == target.unsqueeze(1)).any(dim=1).sum())


def limited(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` samples of ``dataset`` in its order (all of them when None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return Subset(dataset, range(max(0, int(limit))))


@dataclass
class EvalResult:
    """Counts from one evaluation pass; ``logits`` ``[samples, K]`` float32 when asked for."""

    correct1: int
    correct5: int
    samples: int
    num_classes: int
    seconds: float
    logits: torch.Tensor | None = None

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy as a fraction in [0, 1] (0 for no samples)."""
        return self.correct1 / self.samples if self.samples else 0.0

    @property
    def top5(self) -> float | None:
        """Top-5 accuracy as a fraction, or None when the model has 5 classes or fewer."""
        if self.num_classes <= 5:
            return None
        return self.correct5 / self.samples if self.samples else 0.0


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset | DataLoader, *, batch_size: int = 128, limit: int | None = None,
             device: torch.device | str = "cpu", keep_logits: bool = False, workers: int = 0,
             progress: bool = False) -> EvalResult:
    """Top-1 / top-5 counts of ``model`` on ``data`` (a Dataset of ``(x, y)``, or a DataLoader).

    A Dataset is read in order (the first ``limit`` samples when given) in batches of
    ``batch_size``; a DataLoader is used as it is (``limit`` and ``batch_size`` do not
    apply). ``keep_logits`` returns the logits in reading order. The model's training
    mode is restored afterwards.
    """
    if isinstance(data, DataLoader):
        loader = data
    else:
        loader = DataLoader(limited(data, limit), batch_size=batch_size, shuffle=False, num_workers=workers)
    was_training = model.training
    model.eval()
    c1 = c5 = n = 0
    k = None
    kept = []
    start = time.perf_counter()
    bar = _bar(progress, len(loader))
    try:
        for x, y in loader:
            logits = model(model_input(x).to(device)).float()
            y = y.to(logits.device)
            k = logits.shape[1]
            c1 += topk_correct(logits, y, 1)
            c5 += topk_correct(logits, y, 5)
            n += y.shape[0]
            if keep_logits:
                kept.append(logits.cpu())
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"acc {c1 / n:.2%}")
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    num_classes = k if k is not None else int(getattr(model, "num_classes", 0) or 0)
    logits = None
    if keep_logits:
        logits = torch.cat(kept) if kept else torch.zeros(0, num_classes)
    return EvalResult(c1, c5, n, num_classes, time.perf_counter() - start, logits)


def _bar(enabled: bool, total: int):
    if not enabled:
        return None
    from .progress import bar
    return bar(total, "eval", unit="batch", show=True)


def open_eval_data(model: nn.Module, spec: str, *, split: str = "test"):
    """The ``split`` of dataset ``spec`` shaped for ``model`` (its img_size, in_channels, classes, T).

    Returns ``(dataset, bundle)``; no augmentation. Raises ``DataError`` (a UserError) for
    an unknown spec, a missing path, or data the model cannot take.
    """
    from .data import open_dataset

    bundle = open_dataset(spec, img_size=getattr(model, "img_size", None),
                          num_classes=getattr(model, "num_classes", None),
                          in_channels=getattr(model, "in_channels", 3), T=getattr(model, "T", None),
                          augment=False)
    return getattr(bundle, split), bundle


def save_logits(logits: torch.Tensor, path) -> None:
    """Write ``logits [N, K]`` as a float32 ``.npy`` file at exactly ``path``, atomically."""
    import numpy as np

    from .fileio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, logits.detach().cpu().to(torch.float32).numpy())


@dataclass
class CurveResult:
    """Top-1 counts of an SNN's output averaged over its first ``t`` steps, for each ``t`` in ``steps``."""

    steps: list[int]
    correct: list[int]
    samples: int
    seconds: float

    @property
    def accuracies(self) -> dict[int, float]:
        """``{t: top-1 accuracy (fraction) of the mean of the first t per-step outputs}``."""
        return {t: (c / self.samples if self.samples else 0.0) for t, c in zip(self.steps, self.correct, strict=True)}


@torch.no_grad()
def accuracy_curve(model: nn.Module, data: Dataset, steps, *, batch_size: int = 128, limit: int | None = None,
                   device: torch.device | str = "cpu") -> CurveResult:
    """Accuracy at every ``t`` in ``steps`` from one forward of ``max(steps)`` steps per batch.

    The model's per-step logits ``forward_steps(x) [T, B, K]`` are averaged over their first
    ``t`` steps (the SNN's readout after t steps; each step depends only on earlier ones).
    ``UserError`` for a model without per-step outputs or with one step only (an ANN).
    """
    from .errors import UserError

    name = getattr(model, "model_name", type(model).__name__)
    if not hasattr(model, "forward_steps") or not hasattr(model, "T"):
        raise UserError(f"--curve needs a spiking model with per-step outputs; {name} has none")
    if getattr(model, "snn", True) is False:
        raise UserError(f"{name} is a QCFS ANN (one step, no spikes): convert it with 'sresformer convert' "
                        "and evaluate the SNN checkpoint with --curve")
    steps = sorted(set(int(t) for t in steps))
    loader = DataLoader(limited(data, limit), batch_size=batch_size, shuffle=False)
    was_training, old_T = model.training, model.T
    model.eval()
    model.T = max(steps)
    correct = [0] * len(steps)
    n = 0
    start = time.perf_counter()
    try:
        for x, y in track(loader, "eval curve", unit="batch"):
            if x.dim() != 4:
                raise UserError("--curve runs static images for max(T) steps; this dataset holds event sequences")
            mean = model.forward_steps(x.to(device)).float().cumsum(0)   # [T, B, K]: sums over the first t steps
            y = y.to(mean.device)
            for i, t in enumerate(steps):
                correct[i] += topk_correct(mean[t - 1], y, 1)   # argmax of the sum = argmax of the mean
            n += y.shape[0]
    finally:
        model.T = old_T
        model.train(was_training)
    return CurveResult(steps, correct, n, time.perf_counter() - start)
