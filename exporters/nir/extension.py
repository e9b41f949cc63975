"""The extension convention: operations NIR 1.0 cannot say, as marked nested graphs.

NIR has no node for the product of two dynamic signals (DSSA's dual-spike matmuls, Spikformer's SSA),
none for max-pooling (the ImageNet stem), none for MA-SNN's attention gates and none for a
random spike gate (masked spiking transformers). Each such operation is written as a nested
``NIRGraph`` whose

- ``metadata['sresformer.extension']`` names the operation and carries its parameters
  (operands are named by sibling node names in the enclosing graph);
- body is ``Input -> Conv2d -> Output`` where the Conv2d is a *placeholder*: it carries
  the operation's input and output types (so ``nir.read`` type-checks the file) but has
  all-NaN weight and bias and ``groups = 0``. Any torch-based reader that does not know
  the extension fails when it builds the conv (``groups must be a positive integer``);
  a reader that somehow runs it gets NaN, never a plausible wrong answer.

The root graph also lists every extension it uses in ``metadata['extensions_required']``.
See FORMAT.md for the exact semantics of each operation.
"""

from __future__ import annotations

import math

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hw_sim.products import FORMS, PRODUCT_FORMS  # the chip's product forms; NIR metadata names them
from sresformer.qcfs import rate_input
from sresformer.spike_gate import apply_gate

from . import validate as v
from .convention import (
    ATTENTION_GATE,
    DUAL_SPIKE_MATMUL,
    KEY_EXTENSION,
    KNOWN_EXTENSIONS,
    MAX_POOL2D,
    SOFT_RESET_IF,
    SPIKE_COUNTER,
    SPIKE_MASK,
    NIRError,
    meta_str,
)


def _placeholder_geometry(n_in: int, n_out: int) -> tuple[int, int]:
    """(kernel, padding) with stride 1 that turn a spatial size ``n_in`` into ``n_out``.

    NIR's conv shape rule is ``n_out = n_in + 2 p - k + 1``; the kernel stays >= 1.
    """
    if n_out >= n_in:
        pad = math.ceil((n_out - n_in) / 2)
        return n_in + 2 * pad + 1 - n_out, pad
    return n_in - n_out + 1, 0


def _unit_kernel_geometry(n_in: int, n_out: int) -> tuple[int, int]:
    """(stride, padding) with kernel 1 that turn ``n_in`` into ``n_out``: ``(n_in + 2p - 1) // s + 1``.

    For the SSA products, whose output maps are not square: nir 1.0's Conv2d type inference
    applies the kernel's first size to both axes, so the placeholder's kernel must be square.
    """
    for s in range(1, n_in + 2 * n_out + 2):
        for p in range(0, n_out + 1):
            if (n_in + 2 * p - 1) // s + 1 == n_out:
                return s, p
    raise ValueError(f"no kernel-1 placeholder geometry maps {n_in} to {n_out}")  # pragma: no cover


def placeholder_conv(in_shape, out_shape, kernel=None, stride=None, padding=None) -> nir.Conv2d:
    """The poison Conv2d of an extension body: NIR types ``in_shape -> out_shape`` ([C, H, W])."""
    if kernel is None:
        geo = [_placeholder_geometry(int(a), int(b)) for a, b in zip(in_shape[1:], out_shape[1:], strict=False)]
        kernel, padding, stride = tuple(k for k, _ in geo), tuple(p for _, p in geo), (1, 1)
    weight = np.full((int(out_shape[0]), int(in_shape[0]), *kernel), np.nan, dtype=np.float32)
    return nir.Conv2d(input_shape=tuple(int(s) for s in in_shape[1:]), weight=weight, stride=tuple(stride),
                      padding=tuple(padding), dilation=(1, 1), groups=0,
                      bias=np.full(int(out_shape[0]), np.nan, dtype=np.float32))


def extension_graph(in_shape, out_shape, metadata: dict, **geometry) -> nir.NIRGraph:
    """A marked nested graph ``Input -> placeholder Conv2d -> Output`` with ``metadata``."""
    nodes = {"input": nir.Input(np.array(in_shape)), "placeholder": placeholder_conv(in_shape, out_shape, **geometry),
             "output": nir.Output(np.array(out_shape))}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "placeholder"), ("placeholder", "output")],
                        metadata=dict(metadata))


def dual_spike_matmul_graph(form: str, heads: int, dynamic: str, spikes: str, in_shape, out_shape) -> nir.NIRGraph:
    """DSSA's ``y1^T @ S`` (``form='y1T@s'``) or ``y2 @ A`` (``'y2@a'``), per head.

    ``dynamic`` names the sibling node whose output is ``y`` ([2C, h, w], both halves);
    ``spikes`` the sibling with the binary operand (``S`` [C, H, W] or ``A`` [heads*N, H, W]).
    ``in_shape`` is the shape of the operand that arrives by the edge.
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    meta = {KEY_EXTENSION: DUAL_SPIKE_MATMUL, "form": form, "heads": int(heads), "dynamic": dynamic, "spikes": spikes,
            "equation": PRODUCT_FORMS[form].equation}
    if PRODUCT_FORMS[form].family in ("SSA", "MST"):   # non-square output maps: a square kernel-1 placeholder
        geo = [_unit_kernel_geometry(int(a), int(b)) for a, b in zip(in_shape[1:], out_shape[1:], strict=False)]
        return extension_graph(in_shape, out_shape, meta, kernel=(1, 1), stride=tuple(g[0] for g in geo),
                               padding=tuple(g[1] for g in geo))
    return extension_graph(in_shape, out_shape, meta)


def max_pool2d_graph(shape, kernel, stride, padding) -> nir.NIRGraph:
    """Max-pooling over ``[C, H, W]``; the placeholder conv has the pool's own geometry."""
    pair = lambda v: tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v)))  # noqa: E731
    kernel, stride, padding = pair(kernel), pair(stride), pair(padding)
    out = [int(shape[0])] + [(n + 2 * p - k) // s + 1
                             for n, k, s, p in zip(shape[1:], kernel, stride, padding, strict=True)]
    meta = {KEY_EXTENSION: MAX_POOL2D, "kernel_size": np.array(kernel), "stride": np.array(stride),
            "padding": np.array(padding), "equation": "out[c, i, j] = max over the window (padding never wins)"}
    return extension_graph(shape, out, meta, kernel=kernel, stride=stride, padding=padding)


def attention_gate_graph(shape, attn) -> nir.NIRGraph:
    """MA-SNN's per-step channel / spatial attention gates (``sresformer.ma_attention``) on ``[C, H, W]``.

    Metadata: ``gates`` (``"c"``, ``"s"`` or ``"cs"``, applied in that order, then ReLU) and
    the float32 weights: ``ca_w1`` [C/r, C], ``ca_w2`` [C, C/r], ``ca_bias`` [C];
    ``sa_weight`` [1, 2, k, k], ``sa_bias`` [1]. Only the causal (per-step) form exists here.
    """
    if not attn.causal:
        raise ValueError("only per-step channel / spatial attention has a NIR form")
    f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    meta = {KEY_EXTENSION: ATTENTION_GATE, "gates": attn.gates, "relu": 1,
            "equation": ("per step: x1 = x * sigmoid(W2 relu(W1 avg_hw x) + W2 relu(W1 max_hw x) + b_c)  (if c); "
                         "x2 = x1 * sigmoid(conv_kxk([mean_c x1; max_c x1]) + b_s)  (if s); out = relu(x2)")}
    if attn.ca is not None:
        meta.update(ca_w1=f32(attn.ca.w1), ca_w2=f32(attn.ca.w2), ca_bias=f32(attn.ca.bias))
    if attn.sa is not None:
        meta.update(sa_weight=f32(attn.sa.weight), sa_bias=f32(attn.sa.bias))
    return extension_graph(shape, shape, meta)


def spike_mask_graph(shape, ratio: float, seed: int, gate_id: int) -> nir.NIRGraph:
    """The random spike gate on ``[C, H, W]`` spikes: each passes unless its hash says drop."""
    shape = tuple(int(s) for s in shape)
    meta = {KEY_EXTENSION: SPIKE_MASK, "ratio": float(ratio), "seed": int(seed), "gate_id": int(gate_id),
            "equation": "out[t, i] = in[t, i] * (lowbias32 chain(seed, gate_id, t, i) >= round(ratio * 2**32)); "
                        "i the flat C-order element index (sresformer/spike_gate.py)"}
    if len(shape) != 3:
        raise NIRError(f"a spike mask needs spikes of shape [C, H, W], got {list(shape)}")
    return extension_graph(shape, shape, meta, kernel=(1, 1), stride=(1, 1), padding=(0, 0))


def soft_reset_if_graph(shape, v_threshold, v_init, bias, rate: bool = False) -> nir.NIRGraph:
    """The converted QCFS neuron on ``[C, H, W]``: NIR's IF resets to ``v_reset``, this one
    subtracts its threshold, starts at ``v_init`` and adds a constant ``bias`` every step. The three
    parameters (float32, broadcast to ``shape``) sit in the metadata. ``rate``: the rate-normalised
    form (``rate_normalised = 1``), fed the running rate of its summed input ``P[t] / t - P[t-1] / (t-1)``
    with ``P[t]`` the input summed so far (a cumulative product's increments; ``hw_sim/ratenorm.py``)."""
    shape = tuple(int(s) for s in shape)
    arr = lambda a: np.broadcast_to(np.asarray(a, np.float32), shape).copy()  # noqa: E731
    meta = {KEY_EXTENSION: SOFT_RESET_IF, "v_threshold": arr(v_threshold), "v_init": arr(v_init), "bias": arr(bias),
            "equation": "v[-1] = v_init; v[t] = v[t-1] + I[t] + bias; s[t] = v[t] >= v_threshold; "
                        "v[t] = v[t] - s[t] * v_threshold (one step per evaluation, no dt)"}
    if rate:
        meta["rate_normalised"] = 1
        meta["equation"] += "; I[t] = P[t] / t - P[t-1] / (t-1), P[t] the input summed over steps 1..t"
    if len(shape) != 3:
        raise NIRError(f"a soft-reset IF layer needs values of shape [C, H, W], got {list(shape)}")
    return extension_graph(shape, shape, meta, kernel=(1, 1), stride=(1, 1), padding=(0, 0))


def spike_counter_graph(shape, inclusive: bool) -> nir.NIRGraph:
    """Running spike counts on ``[C, H, W]``: ``out[t] = sum_{tau <= t} in[tau]`` (``inclusive``) or
    ``sum_{tau < t}`` (the cumulative product's ``C_t`` and ``C_{t-1}``, ``sresformer.qcfs``)."""
    shape = tuple(int(s) for s in shape)
    mode = "inclusive" if inclusive else "exclusive"
    meta = {KEY_EXTENSION: SPIKE_COUNTER, "mode": mode,
            "equation": f"out[t] = sum of in[tau] over tau {'<=' if inclusive else '<'} t (steps from 0)"}
    if len(shape) != 3:
        raise NIRError(f"a spike counter needs values of shape [C, H, W], got {list(shape)}")
    return extension_graph(shape, shape, meta, kernel=(1, 1), stride=(1, 1), padding=(0, 0))


def extension_name(graph: nir.NIRGraph) -> str | None:
    """The extension a nested graph implements, or None for an ordinary subgraph."""
    meta = getattr(graph, "metadata", None) or {}
    return meta_str(meta[KEY_EXTENSION]) if KEY_EXTENSION in meta else None


def is_placeholder(node) -> bool:
    """True for the poison Conv2d of an extension body (groups 0)."""
    return isinstance(node, nir.Conv2d) and int(np.asarray(node.groups)) == 0


class ExtensionOp(nn.Module):
    """An extension operation: reads its operands from the enclosing graph's values by name."""

    operands: tuple[str, ...] = ()

    def run(self, x: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover
        """``x``: the summed edge input; ``values``: outputs of the enclosing graph's nodes so far."""
        raise NotImplementedError


class DualSpikeMatmul(ExtensionOp):
    """DSSA's dual-spike products on ``[T, B, ...]`` tensors, exactly as the model computes them."""

    def __init__(self, form: str, heads: int, dynamic: str, spikes: str):
        super().__init__()
        self.form, self.heads, self.operands = form, heads, (dynamic, spikes)

    def run(self, x, values):
        """Per head ``L @ R`` of channel-split operand views (``hw_sim.products.PRODUCT_FORMS``): the same
        views and ``torch.matmul`` calls as the models (``sresformer.attention``), so bit-exact."""
        f = PRODUCT_FORMS[self.form]
        ops = {"dyn": values[self.operands[0]], "spk": values[self.operands[1]]}
        T = max(v.shape[0] for v in ops.values())

        def view(name, transpose):
            v = ops[name]
            v = v.expand(T, *v.shape[1:]).reshape(T, v.shape[1], self.heads, v.shape[2] // self.heads, -1)
            if name == "dyn" and f.dyn_half is not None:   # DSSA: y = [y1; y2] per head
                half = v.shape[3] // 2
                v = v[:, :, :, f.dyn_half * half:(f.dyn_half + 1) * half, :]
            return v.transpose(-1, -2) if transpose else v

        # SSA: every entry is an integer (spike counts) or a count times 0.125: float32 sums are exact
        out = torch.matmul(view(f.left, f.transpose_left), view(f.right, f.transpose_right))
        spk = ops["spk"]
        spatial = spk.shape[3:] if f.out_maps == "spk" else (out.shape[-1], 1)
        return out.reshape(T, spk.shape[1], -1, *spatial)

    def extra_repr(self):
        return f"form={self.form!r}, heads={self.heads}, operands={self.operands}"


class MaxPool2d(ExtensionOp):
    """Max-pooling of the edge input, per time step (``nn.MaxPool2d``: padding never wins)."""

    def __init__(self, kernel, stride, padding):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def run(self, x, values):
        y = F.max_pool2d(x.flatten(0, 1), self.kernel, self.stride, self.padding)
        return y.unflatten(0, x.shape[:2])


class AttentionGate(ExtensionOp):
    """The per-step MA gates of the edge input, computed by the model's own module (bit-exact)."""

    def __init__(self, gates: str, meta: dict):
        super().__init__()
        from sresformer.ma_attention import MultiDimAttention

        w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in meta.items()
             if k.startswith(("ca_", "sa_"))}
        channels = int(w["ca_w1"].shape[1]) if "ca_w1" in w else 1
        kernel = int(w["sa_weight"].shape[-1]) if "sa_weight" in w else 3
        hidden = int(w["ca_w1"].shape[0]) if "ca_w1" in w else 1
        self.attn = MultiDimAttention(gates, channels, T=1, reduction_c=max(1, channels // hidden),
                                      kernel_size=kernel, pool="step")
        if self.attn.ca is not None:
            self.attn.ca.hidden = hidden
            self.attn.ca.w1, self.attn.ca.w2 = nn.Parameter(w["ca_w1"]), nn.Parameter(w["ca_w2"])
            self.attn.ca.bias = nn.Parameter(w["ca_bias"])
        if self.attn.sa is not None:
            self.attn.sa.weight, self.attn.sa.bias = nn.Parameter(w["sa_weight"]), nn.Parameter(w["sa_bias"])
        self.gates = gates

    def run(self, x, values):
        return self.attn(x)

    def extra_repr(self):
        return f"gates={self.gates!r}"


class SpikeGate(ExtensionOp):
    """The deterministic random spike gate on ``[T, B, ...]`` (steps counted from 0)."""

    def __init__(self, ratio: float, seed: int, gate_id: int):
        super().__init__()
        self.ratio, self.seed, self.gate_id = float(ratio), int(seed), int(gate_id)

    def run(self, x, values):
        return apply_gate(x, self.ratio, self.seed, self.gate_id)

    def extra_repr(self):
        return f"ratio={self.ratio}, seed={self.seed}, gate_id={self.gate_id}"


class SoftResetIF(ExtensionOp):
    """The soft-reset IF with initial membrane and bias over ``[T, B, ...]`` (float32, as the model)."""

    def __init__(self, v_threshold: np.ndarray, v_init: np.ndarray, bias: np.ndarray, rate: bool = False):
        super().__init__()
        self.rate = bool(rate)
        for k, a in (("v_threshold", v_threshold), ("v_init", v_init), ("bias", bias)):
            self.register_buffer(k, torch.from_numpy(np.asarray(a, np.float32).copy()))

    def run(self, x, values):
        if self.rate:   # the same float operations as the converted model (sresformer.mst, cumulative)
            x = rate_input(x)
        v = torch.zeros_like(x[0]) + self.v_init
        out = torch.empty_like(x)
        for t in range(x.shape[0]):
            v = v + x[t] + self.bias
            s = (v >= self.v_threshold).to(x.dtype)
            out[t] = s
            v = v - s * self.v_threshold
        return out

    def extra_repr(self):
        return f"shape={tuple(self.v_threshold.shape)}"


def _soft_reset_if(meta: dict, where: str) -> SoftResetIF:
    arrs = [v.real_array(meta[k], f"{where} {k}") for k in ("v_threshold", "v_init", "bias")]
    if len({a.shape for a in arrs}) != 1:
        raise NIRError(f"{where}: v_threshold, v_init and bias must have one shape, got {[a.shape for a in arrs]}")
    if np.any(arrs[0] <= 0):
        raise NIRError(f"{where}: v_threshold must be positive")
    return SoftResetIF(*arrs, rate=bool(int(np.asarray(meta.get("rate_normalised", 0)))))


class SpikeCounter(ExtensionOp):
    """Running spike counts over ``[T, B, ...]`` (``spike_counter_graph``)."""

    def __init__(self, inclusive: bool):
        super().__init__()
        self.inclusive = inclusive

    def run(self, x, values):
        count = x.cumsum(0)
        return count if self.inclusive else count - x


def build_extension(name: str, graph: nir.NIRGraph) -> ExtensionOp:
    """The torch operation for the marked nested graph ``name``; NIRError if it is malformed."""
    ext = extension_name(graph)
    if ext not in KNOWN_EXTENSIONS:
        raise NIRError(f"node {name!r}: unknown extension {ext!r} (this reader knows {', '.join(KNOWN_EXTENSIONS)})")
    body = [n for n in graph.nodes.values() if not isinstance(n, (nir.Input, nir.Output))]
    if len(body) != 1 or not is_placeholder(body[0]):
        raise NIRError(f"node {name!r}: extension {ext} must have one placeholder Conv2d (groups 0) as its body")
    meta = graph.metadata
    where = f"node {name!r}: {ext}"
    try:
        if ext == DUAL_SPIKE_MATMUL:
            form = v.text(meta["form"], f"{where} form", FORMS)
            heads = v.integer(meta["heads"], f"{where} heads", 1, v.MAX_ELEMENTS)
            return DualSpikeMatmul(form, heads, v.text(meta["dynamic"], f"{where} dynamic"),
                                   v.text(meta["spikes"], f"{where} spikes"))
        if ext == ATTENTION_GATE:
            gates = v.text(meta["gates"], f"{where} gates")
            if not gates or any(g not in "cs" for g in gates):
                raise NIRError(f"{where} gates {gates!r} must be 'c', 's' or 'cs'")
            shapes = {"ca_w1": 2, "ca_w2": 2, "ca_bias": 1, "sa_weight": 4, "sa_bias": 1}
            for key in (["ca_w1", "ca_w2", "ca_bias"] if "c" in gates else []) + \
                       (["sa_weight", "sa_bias"] if "s" in gates else []):
                v.real_array(meta[key], f"{where} {key}", ndim=shapes[key])  # a missing one: KeyError below
            return AttentionGate(gates, dict(meta))
        if ext == SOFT_RESET_IF:
            return _soft_reset_if(meta, where)
        if ext == SPIKE_COUNTER:
            return SpikeCounter(v.text(meta["mode"], f"{where} mode", ("inclusive", "exclusive")) == "inclusive")
        if ext == SPIKE_MASK:
            ratio = v.real(meta["ratio"], f"{where} ratio", 0.0, 1.0)
            return SpikeGate(ratio, v.integer(meta["seed"], f"{where} seed"),
                             v.integer(meta["gate_id"], f"{where} gate_id"))
        pair = lambda key, low: v.pair(meta[key], f"{where} {key}", low)  # noqa: E731
        return MaxPool2d(pair("kernel_size", 1), pair("stride", 1), pair("padding", 0))
    except KeyError as e:
        raise NIRError(f"node {name!r}: extension {ext} metadata lacks {e.args[0]!r}") from None
    except (RuntimeError, ValueError, TypeError) as e:   # weights that do not fit the gate's own module
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NIRError(f"{where}: malformed parameters ({first})") from None
