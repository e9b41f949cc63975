"""Calibration: the largest magnitude every value of a flat graph takes on real data."""

from __future__ import annotations

import torch

from exporters.loihi.flatgraph import FlatGraph
from sresformer.progress import track


@torch.no_grad()
def value_ranges(fg: FlatGraph, batches, T: int) -> dict[str, float]:
    """``max |value|`` of every node's output (and of the input) over ``batches``.

    Each batch is images ``[B, C, H, W]`` (repeated over ``T`` steps) or frames
    ``[T, B, C, H, W]``. Neuron outputs (spikes) are recorded too (as 1 or 0).
    """
    peak: dict[str, float] = {}

    def observe(fn, inp, out):
        peak[fn.name] = max(peak.get(fn.name, 0.0), float(out.abs().max()))

    seen = 0
    for x in track(batches, "calibrate", unit="batch"):
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(T, *x.shape)
        peak["input"] = max(peak.get("input", 0.0), float(x.abs().max()))
        fg.run(x, observe)
        seen += 1
    if not seen:
        raise ValueError("calibration needs at least one batch")
    return peak
