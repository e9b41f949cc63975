"""NIR node -> torch module, each acting on whole sequences ``[T, B, *shape]``.

Stateless nodes fold T into the batch. Neurons step through T with forward Euler at the
reader's ``dt`` (NIR's equations in the node docstrings of the ``nir`` package)::

    LIF      v += (dt/tau) * ((v_leak - v) + r*I);  z = v > v_th;  v = v_reset where z
    CubaLIF  i += (dt/tau_syn) * (w_in*S - i);      then LIF on r*i with tau_mem
    LI       v += (dt/tau) * ((v_leak - v) + r*I);  output v
    IF       v += r*I (one charge per step, no dt: as norse reads it);  spike and reset as LIF
    Threshold z = I > v_th

The charge is written ``v + ((v_leak - v) + r*I) * k`` with ``k = dt/tau`` cast to float32;
for ``v_leak = 0, r = 1`` that is, bit for bit, the model's ``v + (x - v) / tau``.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .convention import NIRError
from .fold import groups_of_dense


def _param(name: str, node_name: str, value, shape) -> torch.Tensor:
    """A float32 neuron parameter that broadcasts against the per-sample ``shape``."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        # it must broadcast *to* the layer shape: a larger parameter would grow the layer
        fits = np.broadcast_shapes(arr.shape, tuple(shape)) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        raise NIRError(f"node {node_name!r}: parameter {name} of shape {arr.shape} does not fit "
                       f"the layer shape {tuple(shape)}")
    return torch.from_numpy(arr.astype(np.float32))


def _ratio(dt: float, tau, node_name: str) -> torch.Tensor:
    tau = np.asarray(tau, dtype=np.float64)
    if np.any(tau <= 0):
        raise NIRError(f"node {node_name!r}: time constants must be positive")
    return torch.from_numpy((dt / tau).astype(np.float32))  # float64 division, one rounding


class Stateless(nn.Module):
    """A per-sample function applied to every time step (T folded into the batch)."""

    def __init__(self, fn, label: str):
        super().__init__()
        self.fn, self.label = fn, label

    def forward(self, x):
        return self.fn(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def extra_repr(self):
        return self.label


class Neuron(nn.Module):
    """LIF / CubaLIF / LI / IF / Threshold over ``[T, B, ...]``, state starting at 0 each call."""

    def __init__(self, kind: str, params: dict[str, torch.Tensor]):
        super().__init__()
        self.kind = kind
        for k, v in params.items():
            self.register_buffer(k, v)

    def forward(self, x):
        out = torch.empty_like(x)
        v = torch.zeros_like(x[0])
        i = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            if self.kind == "Threshold":
                out[t] = x[t] > self.v_threshold
                continue
            if self.kind == "IF":
                v = v + self.r * x[t]
            else:
                drive = self.r * x[t]
                if self.kind == "CubaLIF":
                    i = i + ((0 - i) + self.w_in * x[t]) * self.k_syn
                    drive = self.r * i
                v = v + ((self.v_leak - v) + drive) * self.k
            if self.kind == "LI":
                out[t] = v
                continue
            z = v > self.v_threshold
            out[t] = z
            v = torch.where(z, self.v_reset, v)
        return out

    def extra_repr(self):
        return self.kind


def _pool_args(node, name):
    pair = lambda v: tuple(int(x) for x in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
    try:
        return pair(node.kernel_size), pair(node.stride), pair(node.padding)
    except ValueError:
        raise NIRError(f"node {name!r}: pooling kernel/stride/padding must have one or two entries") from None


def _conv2d(node: nir.Conv2d, name: str) -> Stateless:
    weight = np.asarray(node.weight, dtype=np.float32)
    if weight.ndim != 4:
        raise NIRError(f"node {name!r}: Conv2d weight must be 4-D [C_out, C_in/groups, kh, kw], got {weight.shape}")
    groups = int(np.asarray(node.groups))
    if groups < 1:
        raise NIRError(f"node {name!r}: Conv2d groups={groups} (an extension placeholder outside a marked subgraph?)")
    hint = (node.metadata or {}).get("sresformer.groups")
    if groups == 1 and hint is not None:
        # our dense form of a grouped conv: run it grouped (same sums, the model's rounding)
        grouped = groups_of_dense(weight, int(hint))
        if grouped is not None:
            weight, groups = grouped, int(hint)
    bias = np.zeros(weight.shape[0], np.float32) if node.bias is None else np.asarray(node.bias, np.float32)
    w, b = torch.from_numpy(weight.copy()), torch.from_numpy(np.broadcast_to(bias, (weight.shape[0],)).copy())
    padding = (node.padding if isinstance(node.padding, str)
               else tuple(int(p) for p in np.broadcast_to(node.padding, (2,))))
    stride = tuple(int(s) for s in np.broadcast_to(node.stride, (2,)))
    dilation = tuple(int(d) for d in np.broadcast_to(node.dilation, (2,)))
    mod = Stateless(lambda x: F.conv2d(x, mod.weight, mod.bias, stride, padding, dilation, groups),
                    f"Conv2d {tuple(weight.shape)} stride={stride} padding={padding} groups={groups}")
    mod.register_buffer("weight", w)
    mod.register_buffer("bias", b)
    return mod


def _dense(node, name: str) -> Stateless:
    weight = np.asarray(node.weight, dtype=np.float32)
    if weight.ndim != 2:
        raise NIRError(f"node {name!r}: {type(node).__name__} weight must be 2-D [out, in], got {weight.shape}")
    bias = torch.from_numpy(np.asarray(node.bias, np.float32).copy()) if isinstance(node, nir.Affine) else None
    mod = Stateless(lambda x: F.linear(x, mod.weight, mod.bias), f"{type(node).__name__} {tuple(weight.shape)}")
    mod.register_buffer("weight", torch.from_numpy(weight.copy()))
    mod.register_buffer("bias", bias)
    return mod


def _flatten(node: nir.Flatten, name: str) -> Stateless:
    start, end = int(node.start_dim), int(node.end_dim)

    def fn(x):  # NIR's dims exclude the batch (folded T*B is dim 0 here)
        s = start + 1 if start >= 0 else x.dim() + start
        e = end + 1 if end >= 0 else x.dim() + end
        return torch.flatten(x, s, e)
    return Stateless(fn, f"Flatten start_dim={start} end_dim={end} (per sample)")


def _neuron(node, name: str, shape, dt: float) -> Neuron:
    p = lambda key: _param(key, name, getattr(node, key), shape)  # noqa: E731
    if isinstance(node, nir.Threshold):
        return Neuron("Threshold", {"v_threshold": _param("threshold", name, node.threshold, shape)})
    if isinstance(node, nir.IF):
        return Neuron("IF", {"r": p("r"), "v_threshold": p("v_threshold"), "v_reset": p("v_reset")})
    if isinstance(node, nir.LI):
        return Neuron("LI", {"r": p("r"), "v_leak": p("v_leak"), "k": _ratio(dt, node.tau, name)})
    if isinstance(node, nir.LIF):
        return Neuron("LIF", {"r": p("r"), "v_leak": p("v_leak"), "v_threshold": p("v_threshold"),
                              "v_reset": p("v_reset"), "k": _ratio(dt, node.tau, name)})
    # CubaLIF
    return Neuron("CubaLIF", {"r": p("r"), "v_leak": p("v_leak"), "v_threshold": p("v_threshold"),
                              "v_reset": p("v_reset"), "w_in": p("w_in"), "k": _ratio(dt, node.tau_mem, name),
                              "k_syn": _ratio(dt, node.tau_syn, name)})


NEURONS = (nir.LIF, nir.CubaLIF, nir.LI, nir.IF, nir.Threshold)


def node_module(node, name: str, shape, dt: float) -> nn.Module:
    """The torch module for one non-graph NIR node; ``shape`` is its per-sample input shape."""
    if isinstance(node, (nir.Input, nir.Output)):
        return nn.Identity()
    if isinstance(node, nir.Conv2d):
        return _conv2d(node, name)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _dense(node, name)
    if isinstance(node, nir.Scale):
        mod = Stateless(lambda x: x * mod.scale, "Scale")
        mod.register_buffer("scale", _param("scale", name, node.scale, shape))
        return mod
    if isinstance(node, nir.Flatten):
        return _flatten(node, name)
    if isinstance(node, nir.SumPool2d):
        k, s, pad = _pool_args(node, name)
        return Stateless(lambda x: F.avg_pool2d(x, k, s, pad, divisor_override=1), f"SumPool2d k={k} s={s} p={pad}")
    if isinstance(node, nir.AvgPool2d):
        k, s, pad = _pool_args(node, name)
        return Stateless(lambda x: F.avg_pool2d(x, k, s, pad), f"AvgPool2d k={k} s={s} p={pad}")
    if isinstance(node, NEURONS):
        return _neuron(node, name, shape, dt)
    raise NIRError(f"node {name!r}: unsupported NIR node type {type(node).__name__} (supported: Input, Output, "
                   "NIRGraph, Conv2d, Affine, Linear, Scale, Flatten, SumPool2d, AvgPool2d, LIF, CubaLIF, LI, IF, "
                   "Threshold)")
