"""Exact synaptic-operation counts of a float model on real inputs, per layer.

A synaptic operation (SOP) is one weight added because one input was non-zero. For a
layer whose input is binary spikes it is an accumulate (AC): each spike costs its real
fan-out, so borders, strides and groups are counted exactly (a spike in a corner of a
3x3 'same' conv reaches 4 output positions, not 9). Layers that read real values (the
stem conv on pixels, the classifier on the pooled real-valued residual stream, Spikformer's
convs on its spike-count residual stream) do multiply-accumulates (MAC), with the same
fan-out rule: a zero graded value is not sent (as a graded spike on Loihi 2) and costs
nothing, so a dense real input costs its dense MACs and a sparse integer stream far fewer. DSSA's
dual-spike products ``Y @ S`` with
binary ``S`` are gated accumulations: every non-zero ``S[k, n]`` adds the column
``Y[:, k]``, i.e. ``M`` ACs. MA attention gates (``sresformer.ma_attention``) are dense
real-valued arithmetic: their MLP / conv / gate multiplies are MACs and their pooling adds
and comparisons ACs, per step (:meth:`MultiDimAttention.gate_ops`).

Counts are per image per inference (all T steps). A static image's stem runs once (the
model computes it once and broadcasts it over T): its MACs are for one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SpikingMatmul
from .ma_attention import MultiDimAttention


@dataclass
class LayerOps:
    """Counts for one layer, summed over the images seen; divide by ``images`` for per-image figures."""

    name: str
    kind: str               # "conv", "linear", "matmul" or "gate"
    binary_input: bool = True
    dense_macs: int = 0     # every connection at every step it ran, whatever the input
    ac: int = 0             # accumulates triggered by non-zero binary inputs (exact fan-out)
    mac: int = 0            # multiply-accumulates on real-valued inputs (dense)
    input_nonzero: int = 0
    input_elements: int = 0
    steps: int = 0          # time steps the layer ran per call (1 for a static stem)
    images: int = 0

    @property
    def firing_rate(self) -> float:
        """Fraction of non-zero input elements (the input spike rate for binary inputs)."""
        return self.input_nonzero / self.input_elements if self.input_elements else 0.0

    @property
    def sops(self) -> int:
        """Synaptic operations: ACs plus MACs."""
        return self.ac + self.mac


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def conv_fanout_count(x: torch.Tensor, conv: nn.Conv2d) -> int:
    """Sum over non-zero inputs of their real fan-out in ``conv`` (weights of ones, exact in float64)."""
    groups = conv.groups
    ones = torch.ones(groups, conv.in_channels // groups, *conv.kernel_size, dtype=torch.float64)
    hits = F.conv2d((x != 0).double(), ones, None, conv.stride, conv.padding, conv.dilation, groups)
    return int(hits.sum().item()) * (conv.out_channels // groups)


class OpCounter:
    """Forward hooks on every Conv2d, Linear and SpikingMatmul of a model that accumulate :class:`LayerOps`."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers: dict[str, LayerOps] = {}
        self._handles = []
        for name, m in model.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, SpikingMatmul, MultiDimAttention)):
                kind = "conv" if isinstance(m, nn.Conv2d) else "linear" if isinstance(m, nn.Linear) else \
                    "gate" if isinstance(m, MultiDimAttention) else "matmul"
                self.layers[name] = LayerOps(name, kind)
                self._handles.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def fn(mod, inputs, out):
            rec = self.layers[name]
            if isinstance(mod, MultiDimAttention):
                x = inputs[0]
                steps, batch = x.shape[0], x.shape[1]
                ops = mod.gate_ops(x.shape[2:])
                # a gate on the static stem output (broadcast over T: stride 0) runs once, as on the chip
                runs = 1 if mod.causal and steps > 1 and x.stride(0) == 0 else steps
                rec.binary_input = False
                rec.mac += ops["mac"] * runs * batch
                rec.ac += ops["ac"] * runs * batch
                rec.dense_macs += ops["mac"] * runs * batch
            elif isinstance(mod, SpikingMatmul):
                left, right = inputs
                gate, values = (right, left) if mod.spike in ("r", "both") else (left, right)
                # [.., M, K] @ [.., K, N]: a non-zero right[k, n] adds the M entries of left[:, k]
                fan = left.shape[-2] if gate is right else right.shape[-1]
                steps, batch = gate.shape[0], gate.shape[1]
                rec.ac += int((gate != 0).sum().item()) * fan
                rec.dense_macs += out.numel() * left.shape[-1]
                x = gate
            else:
                x = inputs[0]
                steps, batch = x.shape[0], x.shape[1]
                flat = x.flatten(0, 1) if x.dim() in (3, 5) else x
                k = (mod.in_channels // mod.groups) * math.prod(mod.kernel_size) if isinstance(mod, nn.Conv2d) \
                    else mod.in_features
                dense = out.numel() * k
                rec.dense_macs += dense
                binary = _is_binary(x)
                rec.binary_input = rec.binary_input and binary
                ops = conv_fanout_count(flat, mod) if isinstance(mod, nn.Conv2d) else \
                    int((flat != 0).sum().item()) * mod.out_features
                if binary:
                    rec.ac += ops
                else:
                    rec.mac += ops
            rec.input_nonzero += int((x != 0).sum().item())
            rec.input_elements += x.numel()
            rec.steps = steps
            rec.images += batch
        return fn

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@torch.no_grad()
def count_ops(model: nn.Module, batches) -> list[LayerOps]:
    """Run ``model`` (eval mode) on ``batches`` and return per-layer counts in forward order.

    Each layer's ``images`` is the number of images it saw; figures per image are the
    fields divided by it.
    """
    model.eval()
    with OpCounter(model) as counter:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
    return [rec for rec in counter.layers.values() if rec.images]
