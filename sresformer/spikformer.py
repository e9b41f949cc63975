"""Spikformer (Zhou et al., ICLR 2023), as the official code defines it (ZK-Zhou/spikformer).

Spiking patch splitting (SPS: four conv-BN-LIF stages with max-pools, plus a spiking
relative-position conv added to its input), ``depth`` blocks of spiking self-attention
(SSA) and a spiking MLP with residuals that add spikes, then a linear head on the mean
over tokens. All neurons are multi-step LIF (tau 2, threshold 1, hard detached reset);
the attention LIF has threshold 0.5. SSA per head, without softmax::

    SSA(X) = LIF_proj(BN(W_p LIF_0.5(Q K^T V * 0.125))),   Q, K, V = LIF(BN(W X))

Two layouts, as the official code has two models:

- ``"conv"`` (``imagenet/model.py``): activations ``[T, B, C, H, W]``; SPS pools after
  every stage (H / 16); q/k/v/proj are 1x1 convs (q/k/v without bias), the MLP 1x1
  convs with bias; the products are ``Q (K^T V)`` (K^T V first).
- ``"token"`` (``cifar10/model.py``): tokens ``[T, B, N, C]``; SPS pools after stages 2
  and 3 only (H / 4); q/k/v/proj and the MLP are linear layers with bias; the products
  are ``(Q K^T) V``.

Parameter names equal the official ones (``patch_embed.proj_conv1.weight``,
``block.3.attn.q_bn.running_var``, ``head.bias``). One difference: the official ImageNet
SSA uses ``nn.Conv1d`` on ``[T*B, C, N]``; ours are the equivalent 1x1 ``nn.Conv2d``, so
those four weights per block are ``[C, C, 1, 1]`` here and ``[C, C, 1]`` there (an
importer appends one axis). The official blocks also own ``norm1`` / ``norm2``
LayerNorms that their forward never uses; they are kept (unused, no gradient) so that
parameter counts and state dicts agree.

Difference in training only: the official ``MultiStepLIFNode`` uses SpikingJelly's
default Sigmoid surrogate; ``sresformer.neurons.LIF`` uses ATan. Forward is identical.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import SeqConv2d, SeqMaxPool2d, SpikingMatmul, init_trunc_normal, seq_apply
from .neurons import LIF

LAYOUTS = ("conv", "token")


def _bn_tokens(bn: nn.Module):
    """BatchNorm1d over the channels of folded tokens ``[T*B, N, C]`` (the official transpose)."""
    return lambda z: bn(z.transpose(1, 2)).transpose(1, 2)


def _branch(owner: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """``owner.<name>_{conv|linear}`` -> ``<name>_bn`` -> ``<name>_lif`` on ``[T, B, ...]``."""
    if owner.layout == "conv":
        y = seq_apply(getattr(owner, f"{name}_bn"), getattr(owner, f"{name}_conv")(x))
    else:
        y = seq_apply(_bn_tokens(getattr(owner, f"{name}_bn")), getattr(owner, f"{name}_linear")(x))
    return getattr(owner, f"{name}_lif")(y)


def _add_unit(owner: nn.Module, name: str, cin: int, cout: int, bias: bool) -> None:
    """Register ``<name>_conv`` (1x1) + BN2d or ``<name>_linear`` + BN1d, and ``<name>_lif``."""
    if owner.layout == "conv":
        setattr(owner, f"{name}_conv", SeqConv2d(cin, cout, 1, bias=bias))
        setattr(owner, f"{name}_bn", nn.BatchNorm2d(cout))
    else:
        setattr(owner, f"{name}_linear", nn.Linear(cin, cout, bias=bias))
        setattr(owner, f"{name}_bn", nn.BatchNorm1d(cout))
    setattr(owner, f"{name}_lif", LIF(tau=2.0))


class SPS(nn.Module):
    """Spiking patch splitting: 3x3 conv-BN-LIF to widths C/8, C/4, C/2, C (max-pool 3/2 after
    the stages in ``pool_after``), then ``x + LIF(BN(conv3x3(x)))`` (relative position)."""

    SUFFIXES = ("", "1", "2", "3")

    def __init__(self, in_channels: int, embed_dim: int, pool_after=(0, 1, 2, 3)):
        super().__init__()
        widths = [in_channels, embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        for i, sfx in enumerate(self.SUFFIXES):
            setattr(self, f"proj_conv{sfx}", SeqConv2d(widths[i], widths[i + 1], 3, padding=1))
            setattr(self, f"proj_bn{sfx}", nn.BatchNorm2d(widths[i + 1]))
            setattr(self, f"proj_lif{sfx}", LIF(tau=2.0))
            if i in pool_after:
                setattr(self, f"maxpool{sfx}", SeqMaxPool2d(kernel_size=3, stride=2, padding=1))
        self.rpe_conv = SeqConv2d(embed_dim, embed_dim, 3, padding=1)
        self.rpe_bn = nn.BatchNorm2d(embed_dim)
        self.rpe_lif = LIF(tau=2.0)
        self.stride = 2 ** len(pool_after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for sfx in self.SUFFIXES:
            x = seq_apply(getattr(self, f"proj_bn{sfx}"), getattr(self, f"proj_conv{sfx}")(x))
            x = getattr(self, f"proj_lif{sfx}")(x)
            pool = getattr(self, f"maxpool{sfx}", None)
            if pool is not None:
                x = pool(x)
        return x + self.rpe_lif(seq_apply(self.rpe_bn, self.rpe_conv(x)))


class SSA(nn.Module):
    """Spiking self-attention, ``num_heads`` heads, scale 0.125, attention LIF threshold 0.5."""

    def __init__(self, dim: int, num_heads: int, layout: str = "conv"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.num_heads, self.layout, self.scale = dim, num_heads, layout, 0.125
        conv = layout == "conv"
        for name in ("q", "k", "v"):
            _add_unit(self, name, dim, dim, bias=not conv)
        self.attn_lif = LIF(tau=2.0, v_threshold=0.5)
        _add_unit(self, "proj", dim, dim, bias=True)
        # conv layout: K^T V (both spikes), then Q (K^T V) (Q spikes);
        # token layout: Q K^T (both spikes), then (Q K^T) V (V spikes) -- the official orders
        self.matmul1 = SpikingMatmul("both")
        self.matmul2 = SpikingMatmul("l" if conv else "r")

    def _heads(self, s: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, C, H, W]`` or ``[T, B, N, C]`` -> ``[T, B, heads, N, C / heads]``."""
        d = self.dim // self.num_heads
        if self.layout == "conv":
            return s.flatten(3).unflatten(2, (self.num_heads, d)).transpose(-1, -2)
        return s.unflatten(3, (self.num_heads, d)).transpose(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._heads(_branch(self, n, x)) for n in ("q", "k", "v"))
        if self.layout == "conv":
            y = self.matmul2(q, self.matmul1(k.transpose(-2, -1), v)) * self.scale
            y = y.transpose(-1, -2).flatten(2, 3).reshape(x.shape)
        else:
            y = self.matmul2(self.matmul1(q, k.transpose(-2, -1)) * self.scale, v)
            y = y.transpose(2, 3).flatten(3)
        return _branch(self, "proj", self.attn_lif(y))


class MLP(nn.Module):
    """Two (1x1 conv or linear, with bias)-BN-LIF units: ``dim -> hidden -> dim``."""

    def __init__(self, dim: int, hidden: int, layout: str = "conv"):
        super().__init__()
        self.layout = layout
        _add_unit(self, "fc1", dim, hidden, bias=True)
        _add_unit(self, "fc2", hidden, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _branch(self, "fc2", _branch(self, "fc1", x))


class Block(nn.Module):
    """``x + SSA(x)``, then ``+ MLP``. ``norm1`` / ``norm2`` are the official unused LayerNorms."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, layout: str = "conv",
                 norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SSA(dim, num_heads, layout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLP(dim, int(dim * mlp_ratio), layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class Spikformer(nn.Module):
    """Spikformer-``depth``-``embed_dim`` on ``[B, C, H, W]`` (repeated over T) or
    ``[T, B, C, H, W]`` -> logits ``[B, K]`` (mean over T of ``forward_steps``)."""

    def __init__(self, embed_dim: int = 512, depth: int = 8, num_heads: int = 8, mlp_ratio: float = 4.0,
                 img_size: int = 224, T: int = 4, in_channels: int = 3, num_classes: int = 1000,
                 layout: str = "conv", norm_eps: float = 1e-6):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if embed_dim % 8:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by 8 (SPS widths C/8 .. C)")
        self.T, self.num_classes, self.in_channels, self.img_size = T, num_classes, in_channels, img_size
        self.layout = layout
        self.patch_embed = SPS(in_channels, embed_dim, (0, 1, 2, 3) if layout == "conv" else (2, 3))
        if img_size % self.patch_embed.stride:
            raise ValueError(f"img_size {img_size} must be divisible by {self.patch_embed.stride} "
                             f"(the SPS down-sampling of the {layout!r} layout)")
        self.block = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, layout, norm_eps) for _ in range(depth))
        self.head = nn.Linear(embed_dim, num_classes)
        # the official _init_weights: linears truncated normal 0.02, LayerNorm to identity;
        # convs and BN keep PyTorch's defaults
        init_trunc_normal(self, (nn.Linear,), (nn.LayerNorm,))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Token features ``[T, B, C]``: SPS, blocks, mean over tokens."""
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(self.T, *x.shape)  # the official repeat over T
        elif x.dim() != 5:
            raise ValueError(f"expected input [B, C, H, W] or [T, B, C, H, W], got {tuple(x.shape)}")
        x = self.patch_embed(x)
        if self.layout == "token":
            x = x.flatten(3).transpose(-1, -2)  # [T, B, N, C]
        for blk in self.block:
            x = blk(x)
        return x.flatten(3).mean(3) if self.layout == "conv" else x.mean(2)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, K]``."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]``: the mean over T of the per-step logits (= the official head of the mean)."""
        return self.forward_steps(x).mean(0)

    def no_weight_decay(self) -> set[str]:
        """No parameter is exempt (the official model declares none)."""
        return set()
