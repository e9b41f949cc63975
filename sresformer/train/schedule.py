"""Learning rate: linear warm-up, then cosine decay, set at every optimizer step.

The shape is the official SpikingResformer recipe (timm ``CosineLRScheduler`` with
``warmup_lr=1e-5``, ``warmup_epochs=3``, ``min_lr=1e-5``, ``warmup_prefix=False``), but
evaluated per optimizer step, with ``t`` = steps taken so far, instead of once per
epoch: short runs (the digits default has about 20 epochs) then get a smooth warm-up
instead of three flat plateaus. With ``W`` warm-up steps and ``N`` total steps::

    lr(t) = warmup_lr + (base_lr - warmup_lr) * t / W                       for t < W
    lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(t, N) / N)) / 2  for t >= W

As in timm without ``warmup_prefix``, the cosine is measured from step 0 (not from the
end of the warm-up), so the warm-up hands over to a value slightly below ``base_lr``.
Step ``t`` is the learning rate of the ``(t+1)``-th optimizer step.
"""

from __future__ import annotations

import math

import torch


def warmup_cosine_lr(step: int, *, base_lr: float, total_steps: int, warmup_steps: int,
                     warmup_lr: float, min_lr: float) -> float:
    """The learning rate (same unit as ``base_lr``) of optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return warmup_lr + (base_lr - warmup_lr) * step / warmup_steps
    t = min(step, total_steps) / max(total_steps, 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * t))


class WarmupCosine:
    """Sets every param group's ``lr`` to :func:`warmup_cosine_lr` of the step count.

    Call :meth:`step` after each ``optimizer.step()``. Its ``state_dict`` holds only the
    step count, so a resumed run may change ``total_steps`` (more epochs) and continues
    from the same step on the new curve.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, base_lr: float, total_steps: int,
                 warmup_steps: int, warmup_lr: float, min_lr: float):
        self.optimizer = optimizer
        self.params = dict(base_lr=float(base_lr), total_steps=int(total_steps), warmup_steps=int(warmup_steps),
                           warmup_lr=float(warmup_lr), min_lr=float(min_lr))
        self.step_count = 0
        self._apply()

    def get_lr(self) -> float:
        """The learning rate the next optimizer step uses."""
        return warmup_cosine_lr(self.step_count, **self.params)

    def _apply(self) -> None:
        lr = self.get_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """Advance one optimizer step and set the next learning rate."""
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        """``{'step': n}`` plus the curve's parameters (for the record; not restored)."""
        return {"step": self.step_count, **self.params}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state['step']`` on this scheduler's own curve."""
        self.step_count = int(state["step"])
        self._apply()
