"""Multi-dimensional attention (MA) of MA-SNN: temporal-, channel- and spatial-wise gates.

Yao et al., "Attention Spiking Neural Networks", IEEE TPAMI 45(8), 2023 (MA-SNN). The MA
module refines a layer's *membrane input* ``X`` (``[T, B, C, H, W]``) before its spiking
neurons, one gate after another (the authors' order: temporal, channel, spatial; the same
order as SpikingJelly's ``MultiDimensionalAttention``, contributed from that work)::

    X1 = TA(X)  * X      TA: [T] gate   = sigmoid(MLP_T(avg_{C,H,W} X) + MLP_T(max_{C,H,W} X))
    X2 = CA(X1) * X1     CA: [C] gate   = sigmoid(MLP_C(avg X1) + MLP_C(max X1))       (CBAM channel)
    X3 = SA(X2) * X2     SA: [H,W] gate = sigmoid(Conv_kxk([avg_C X2 ; max_C X2]))      (CBAM spatial)
    out = ReLU(X3)

Each MLP is shared between the avg and max paths: ``Linear(n, n//r) -> ReLU -> Linear(n//r, n)``;
the spatial conv has 2 input channels, 1 output, padding ``k//2``.

One deviation from the authors' code (which has no biases): every gate's score gets a
learnable bias ``b`` (per step, per channel, or one for SA), ``sigmoid(score + b)``,
initialised to ``GATE_BIAS_INIT = 4`` so a fresh gate is almost open (sigmoid(4) = 0.98).
Without it each gate starts at 0.5, the gated membrane input of the first blocks is a
quarter of the residual stream, their neurons stay silent on the first batch, and
DSSA's firing-rate scaling (``1/sqrt(rate)``, the official rule) divides by zero. With
``b = 0`` the module is exactly SpikingJelly's ``MultiDimensionalAttention`` (tested).

Where the squeeze looks (``pool``):

- ``"sequence"`` (the authors' code, SpikingJelly's layer): CA pools over ``T, H, W`` and SA
  over ``T, C``, so every gate depends on all T steps of the input;
- ``"step"`` (default; our chip-runnable form): CA pools over ``H, W`` and SA over ``C``
  *per time step*, so the gate of step t depends on step t only. A chip (and our executor)
  runs step by step, so only this form of CA and SA can be lowered. TA is always
  non-causal (its MLP mixes the T steps) and is never lowered.

Spec strings name the gates: ``"t"``, ``"c"``, ``"s"`` and any combination (``"cs"``,
``"tcs"``); the paper's names ``"ta"``, ``"ca"``, ``"sa"``, ``"csa"``, ``"tcsa"`` are
accepted too (a trailing ``a`` is dropped).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GATES = ("t", "c", "s")
GATE_BIAS_INIT = 4.0
POOLS = ("step", "sequence")


def parse_attention(spec: str | None) -> str:
    """The canonical gate letters of ``spec`` in t, c, s order (``""`` for none); ValueError if invalid."""
    if spec is None:
        return ""
    s = str(spec).strip().lower()
    if s in ("", "none"):
        return ""
    if len(s) > 1 and s.endswith("a"):
        s = s[:-1]
    if not s or any(ch not in GATES for ch in s) or len(set(s)) != len(s):
        raise ValueError(f"attention {spec!r}: use letters from t (temporal), c (channel), s (spatial), "
                         "e.g. 'cs' or 'tcsa'")
    return "".join(g for g in GATES if g in s)


def _mlp_params(n: int, hidden: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Two bias-free linear layers ``n -> hidden -> n``, initialised as ``nn.Linear`` is."""
    w1, w2 = nn.Parameter(torch.empty(hidden, n)), nn.Parameter(torch.empty(n, hidden))
    for w in (w1, w2):
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return w1, w2


def shared_mlp(v: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """``W2 ReLU(W1 v)`` over the last dimension of ``v``."""
    return F.relu(v @ w1.T) @ w2.T


class TemporalAttention(nn.Module):
    """TA: a gate per time step ``[T, B, 1, 1, 1]`` from the whole sequence (non-causal)."""

    def __init__(self, T: int, reduction: int = 2):
        super().__init__()
        self.T, self.hidden = T, max(1, T // reduction)
        self.w1, self.w2 = _mlp_params(T, self.hidden)
        self.bias = nn.Parameter(torch.full((T,), GATE_BIAS_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.T:
            raise ValueError(f"temporal attention was built for T={self.T}, got {x.shape[0]} steps")
        avg = x.mean((2, 3, 4)).T                     # [B, T]
        mx = x.amax((2, 3, 4)).T
        score = shared_mlp(avg, self.w1, self.w2) + shared_mlp(mx, self.w1, self.w2) + self.bias
        return torch.sigmoid(score).T[:, :, None, None, None]

    def extra_repr(self) -> str:
        return f"T={self.T}, hidden={self.hidden}"


class ChannelAttention(nn.Module):
    """CA: a gate per channel ``[T or 1, B, C, 1, 1]`` (CBAM's channel attention)."""

    def __init__(self, channels: int, reduction: int = 16, pool: str = "step"):
        super().__init__()
        self.channels, self.hidden, self.pool = channels, max(1, channels // reduction), pool
        self.w1, self.w2 = _mlp_params(channels, self.hidden)
        self.bias = nn.Parameter(torch.full((channels,), GATE_BIAS_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (3, 4) if self.pool == "step" else (0, 3, 4)
        avg = x.mean(dims, keepdim=True).squeeze(-1).squeeze(-1)     # [T or 1, B, C]
        mx = x.amax(dims, keepdim=True).squeeze(-1).squeeze(-1)
        score = shared_mlp(avg, self.w1, self.w2) + shared_mlp(mx, self.w1, self.w2) + self.bias
        return torch.sigmoid(score)[..., None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}, pool={self.pool!r}"


class SpatialAttention(nn.Module):
    """SA: a gate per position ``[T or 1, B, 1, H, W]`` (CBAM's spatial attention)."""

    def __init__(self, kernel_size: int = 3, pool: str = "step"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"spatial attention kernel must be odd, got {kernel_size}")
        self.kernel_size, self.pool = kernel_size, pool
        self.weight = nn.Parameter(torch.empty(1, 2, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.full((1,), GATE_BIAS_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (2,) if self.pool == "step" else (0, 2)
        pooled = torch.cat([x.mean(dims, keepdim=True), x.amax(dims, keepdim=True)], 2)  # [T or 1, B, 2, H, W]
        score = F.conv2d(pooled.flatten(0, 1), self.weight, self.bias, 1, self.kernel_size // 2)
        return torch.sigmoid(score).unflatten(0, pooled.shape[:2])

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, pool={self.pool!r}"


class MultiDimAttention(nn.Module):
    """The MA module on ``[T, B, C, H, W]``: the chosen gates in t, c, s order, then ReLU."""

    def __init__(self, spec: str, channels: int, T: int, reduction_t: int = 2, reduction_c: int = 16,
                 kernel_size: int = 3, pool: str = "step"):
        super().__init__()
        gates = parse_attention(spec)
        if not gates:
            raise ValueError("MultiDimAttention needs at least one gate")
        if pool not in POOLS:
            raise ValueError(f"attention pool must be one of {POOLS}, got {pool!r}")
        self.gates, self.pool = gates, pool
        self.ta = TemporalAttention(T, reduction_t) if "t" in gates else None
        self.ca = ChannelAttention(channels, reduction_c, pool) if "c" in gates else None
        self.sa = SpatialAttention(kernel_size, pool) if "s" in gates else None

    @property
    def causal(self) -> bool:
        """True when the gate of step t depends on step t only (what a step-by-step chip can run)."""
        return self.ta is None and self.pool == "step"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for gate in (self.ta, self.ca, self.sa):
            if gate is not None:
                out = gate(out) * out
        return F.relu(out)

    def gate_ops(self, shape) -> dict[str, int]:
        """Operations of one evaluation on one sample ``[C, H, W]`` at one step.

        ``mac``: real multiplications (the MLPs on both pooled vectors, the spatial conv on
        both pooled maps, the elementwise gate multiplies); ``ac``: the pooling adds and
        max comparisons (one per input element per pooled statistic). TA's per-step share
        is counted as if its MLP ran once per step (its T-step MLP divided by T).
        """
        C, H, W = (int(s) for s in shape)
        n = C * H * W
        mac = ac = 0
        if self.ta is not None:
            mac += 2 * 2 * self.ta.T * self.ta.hidden // self.ta.T + n
            ac += 2 * n
        if self.ca is not None:
            mac += 2 * 2 * C * self.ca.hidden + n
            ac += 2 * n
        if self.sa is not None:
            mac += 2 * self.sa.kernel_size ** 2 * H * W + n
            ac += 2 * n
        return {"mac": mac, "ac": ac}

    def extra_repr(self) -> str:
        return f"gates={self.gates!r}, pool={self.pool!r}"


class GatedNeuron(nn.Sequential):
    """``neuron(attn(x))``: an MA module on a spiking neuron's membrane input (children ``attn``, ``neuron``)."""

    def __init__(self, attn: MultiDimAttention, neuron: nn.Module):
        super().__init__()
        self.add_module("attn", attn)
        self.add_module("neuron", neuron)


def add_attention(model: nn.Module, spec: str | None, T: int, pool: str = "step", **options) -> nn.Module:
    """Gate the membrane input of every DSSA's and GWSFFN's first neuron with an MA module (in place).

    The gate sits between the block input (the real-valued residual stream) and the
    block's first LIF, so the residual path itself stays ungated: ``S = LIF(MA(X))``,
    ``out = branch(S) + X``. Returns ``model``; ``spec`` None or ``""`` changes nothing.
    """
    from .attention import DSSA
    from .blocks import GWFFN

    gates = parse_attention(spec)
    if not gates:
        return model
    for m in model.modules():
        if isinstance(m, DSSA):
            m.activation_in = GatedNeuron(MultiDimAttention(gates, m.dim, T, pool=pool, **options), m.activation_in)
        elif isinstance(m, GWFFN):
            channels = m.up[1].in_channels
            m.up[0] = GatedNeuron(MultiDimAttention(gates, channels, T, pool=pool, **options), m.up[0])
    return model
