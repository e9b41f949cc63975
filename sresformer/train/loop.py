"""One training epoch: forward, label-smoothed cross-entropy, backward, AdamW step, LR step."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..evaluate import model_input
from .progress import progress_bar
from .schedule import WarmupCosine


@dataclass
class EpochStats:
    """Sums over one epoch on this process (``loss_sum`` is per-sample loss summed)."""

    loss_sum: float
    correct: int
    samples: int
    seconds: float
    lr: float  # learning rate of the epoch's last optimizer step

    @property
    def loss(self) -> float:
        """Mean training loss per sample (nats)."""
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def accuracy(self) -> float:
        """Training top-1 accuracy (fraction) on the augmented batches, in training mode."""
        return self.correct / self.samples if self.samples else 0.0

    @property
    def images_per_s(self) -> float:
        """Training throughput in images (samples) per second of wall time."""
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def autocast_context(device: torch.device):
    """bf16 autocast on CUDA (no grad scaler needed for bf16); nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: WarmupCosine, criterion: nn.Module, *, device: torch.device,
                    progress: bool = False, desc: str = "train") -> EpochStats:
    """Train ``model`` for one pass over ``loader``; the LR schedule advances once per step.

    Running sums stay on the device (no host sync per step) except when a progress bar
    is drawn, which shows the running loss, accuracy and images per second.
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    lr = scheduler.get_lr()
    bar = progress_bar(len(loader), desc) if progress else None
    start = time.perf_counter()
    try:
        for x, y in loader:
            x = model_input(x).to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            with autocast_context(device):
                logits = model(x)
            loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lr = scheduler.get_lr()
            optimizer.step()
            scheduler.step()
            n = y.shape[0]
            samples += n
            loss_sum += loss.detach().to(torch.float64) * n
            correct += (logits.detach().argmax(1) == y).sum()
            if bar is not None:
                rate = samples / max(time.perf_counter() - start, 1e-9)
                bar.update(1)
                bar.set_postfix_str(f"loss {float(loss_sum) / samples:.3f}, acc {int(correct) / samples:.1%}, "
                                    f"{rate:.0f} img/s")
    finally:
        if bar is not None:
            bar.close()
    return EpochStats(float(loss_sum), int(correct), samples, time.perf_counter() - start, lr)
