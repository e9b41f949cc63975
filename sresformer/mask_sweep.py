"""Accuracy against synaptic operations as the spike-mask ratio grows (the trade-off curve of MST).

For every ratio the model gets the deterministic spike gate (:mod:`sresformer.masking`,
evaluation mode, the same gate the chip uses) on the chosen modules, runs the data once,
and records top-1 accuracy and the exact per-layer counts of :mod:`sresformer.sops`
(per image). Pricing the counts in joules is the caller's business
(:func:`hw_sim.energy.price`), so this module stays free of chip descriptions.
"""

from __future__ import annotations

import torch
from torch import nn

from .evaluate import model_input
from .masking import MaskSpec, SpikeMaskError, apply_spike_mask
from .sops import OpCounter


def parse_ratios(text: str) -> list[float]:
    """``"0,0.25,0.5"`` -> ``[0.0, 0.25, 0.5]``; each in [0, 1); SpikeMaskError otherwise."""
    out = []
    for item in str(text).split(","):
        try:
            r = float(item)
        except ValueError:
            raise SpikeMaskError(f"--sweep-mask {text!r}: {item.strip()!r} is not a number; give ratios in [0, 1) "
                                 "separated by commas, e.g. 0,0.25,0.5,0.75") from None
        if not 0.0 <= r < 1.0:
            raise SpikeMaskError(f"--sweep-mask {text!r}: ratio {r:g} is outside [0, 1)")
        out.append(r)
    return out


@torch.no_grad()
def sweep_mask(model: nn.Module, loader, ratios: list[float], modules: tuple[str, ...], seed: int = 0) -> list[dict]:
    """One row per ratio: ``ratio``, ``accuracy``, ``samples`` and ``layers`` (per-image counts as
    :func:`hw_sim.energy.price` reads them: name, dense_macs, ac, mac, firing_rate).

    The model's own mask is replaced for the sweep and restored afterwards.
    """
    own = getattr(model, "spike_mask_spec", None)
    rows = []
    try:
        for r in ratios:
            apply_spike_mask(model, MaskSpec(r, tuple(modules), seed))
            model.eval()
            correct = n = 0
            with OpCounter(model) as counter:
                for x, y in loader:
                    logits = model(model_input(x))
                    correct += int((logits.argmax(1) == y).sum())
                    n += int(y.numel())
            layers = [{"name": rec.name, "dense_macs": rec.dense_macs / rec.images, "ac": rec.ac / rec.images,
                       "mac": rec.mac / rec.images, "firing_rate": rec.firing_rate}
                      for rec in counter.layers.values() if rec.images]
            rows.append({"ratio": r, "accuracy": correct / n if n else 0.0, "samples": n, "layers": layers})
    finally:
        apply_spike_mask(model, own)
    return rows


__all__ = ["parse_ratios", "sweep_mask"]
