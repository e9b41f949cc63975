"""A CPU-sized Masked Spiking Transformer (Wang et al., ICCV 2023, arXiv 2210.01208): QCFS ANN and its SNN.

MST trains a transformer as an ANN with BatchNorm in place of every LayerNorm and QCFS
activations (:mod:`sresformer.qcfs`), then converts every QCFS to a soft-reset IF
neuron. Ours is ViT-style on ``N`` tokens of width ``D`` (layout ``[T, B, N, D]``)::

    stem    x0 = QCFS(BN(Conv_p x) + E)                     patches p x p -> tokens, E [N, D] learnt
    block   y  = BN1(x);  q, k, v = QCFS(BN(W y))           per head, width d = D / heads
            A  = QCFS(alpha q k^T + B)                      alpha = d^-1/2, B [heads, N, N] learnt
            O  = QCFS(gamma A v)                            gamma = 1/N (a softmax row sums to 1)
            x  = x + BN(W_o O)
            x  = x + BN(W_2 QCFS(BN(W_1 BN2(x))))
    head    logits = W_h mean_tokens(BN(x))

``softmax=True`` is MST's own attention, ``A = softmax(alpha q k^T + B)`` (host only: a
chip has no softmax). With ``snn=False`` (the ANN) the model runs one step on an image
(its output is the same at every step, whatever ``T``); with
``snn=True`` (built by :mod:`sresformer.convert`) there are no BN layers (folded into the
linears), every QCFS is a :class:`~sresformer.qcfs.SoftIF`, the image enters at every one
of ``T`` steps (direct input) and the logits are the mean over steps. ``product`` picks
the SNN's attention products: ``"cumulative"`` (the product of running spike counts fed
to a rate-normalised neuron, :func:`~sresformer.qcfs.rate_input`) or ``"per-step"``
(MST's ``q_t k_t^T`` of each step's spikes).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import SpikingMatmul
from .qcfs import QCFS, QCFS_LAMBDA0, QCFS_LEVELS, SoftIF, cumulative_increment, rate_input

PRODUCTS = ("cumulative", "per-step")


def _act(snn: bool, levels: int) -> nn.Module:
    return SoftIF() if snn else QCFS(levels, QCFS_LAMBDA0)


def _norm(snn: bool, dim: int) -> nn.Module:
    # BN over the channels of tokens; folded away in the SNN
    return nn.Identity() if snn else nn.BatchNorm1d(dim)


def tokens_apply(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A per-channel module on the last axis of ``[..., D]`` (BatchNorm1d over all other axes)."""
    return bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class Unit(nn.Module):
    """``act(BN(W x))`` on ``[..., D]``; no activation when ``act`` is False (a residual branch's end)."""

    def __init__(self, cin: int, cout: int, snn: bool, levels: int, act: bool = True):
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=snn)   # the SNN's bias is the folded BN
        self.bn = _norm(snn, cout)
        self.act = _act(snn, levels) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(tokens_apply(self.bn, self.linear(x)))


class Attention(nn.Module):
    """Softmax-free QCFS attention (or MST's softmax) over ``[T, B, N, D]`` tokens; see the module doc."""

    def __init__(self, dim: int, heads: int, tokens: int, snn: bool, levels: int, softmax: bool, product: str):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.snn, self.softmax, self.product = heads, snn, softmax, product
        self.norm = _norm(snn, dim)
        self.q, self.k, self.v = (Unit(dim, dim, snn, levels) for _ in range(3))
        self.bias = nn.Parameter(torch.zeros(heads, tokens, tokens))
        # Vaswani et al.'s 1/sqrt(d) (MST keeps Swin's qk scale); the SNN holds it times lambda_q lambda_k
        self.register_buffer("alpha", torch.tensor((dim // heads) ** -0.5))
        # 1/N keeps A v the size of a weighted mean of v, as a softmax row (summing to 1) would;
        # with 1 the sum over N tokens saturates every QCFS at lambda (no gradient)
        self.register_buffer("gamma", torch.tensor(1.0 if softmax else 1.0 / tokens))
        self.attn_act = None if softmax else _act(snn, levels)
        # the SNN's per-step products as modules the SOP counter finds (sresformer.sops): q_t k_t^T of two
        # spike trains, A_t v_t with v_t spikes (A_t spikes too without softmax)
        self.qk, self.av = SpikingMatmul("both"), SpikingMatmul("r" if softmax else "both")
        self.out_act = _act(snn, levels)
        self.proj = Unit(dim, dim, snn, levels, act=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(-2, -3)   # [T, B, heads, N, d]

    def _product(self, a: torch.Tensor, b: torch.Tensor, mm: SpikingMatmul) -> torch.Tensor:
        """The ANN's ``a @ b``; in the SNN its cumulative or per-step (``mm``) spiking form."""
        if not self.snn:
            return a @ b
        if self.product == "per-step":
            return mm(a, b)
        return rate_input(cumulative_increment(a, b))

    def _attention_map(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        z = self.alpha * self._product(q, k.transpose(-1, -2), self.qk)
        if not self.softmax:
            return self.attn_act(z + self.bias)
        if not self.snn or self.product == "per-step":
            return torch.softmax(z + self.bias, dim=-1)
        # cumulative: softmax of the rate estimate sum_{tau<=t} z / t, emitted as increments
        # t S[t] - (t-1) S[t-1] so that the running sum of A is t S[t] (rate S[t])
        t = torch.arange(1, z.shape[0] + 1, dtype=z.dtype, device=z.device).view(-1, 1, 1, 1, 1)
        total = t * torch.softmax(z.cumsum(0) / t + self.bias, dim=-1)
        return total - torch.cat([torch.zeros_like(total[:1]), total[:-1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = tokens_apply(self.norm, x)
        q, k, v = (self._split(m(y)) for m in (self.q, self.k, self.v))
        o = self.out_act(self.gamma * self._product(self._attention_map(q, k), v, self.av))
        return self.proj(o.transpose(-2, -3).flatten(-2))


class Block(nn.Module):
    """``x + Attention(x)``, then ``x + MLP(BN2(x))`` with a QCFS hidden layer."""

    def __init__(self, dim: int, heads: int, tokens: int, mlp_ratio: float, snn: bool, levels: int,
                 softmax: bool, product: str):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.attn = Attention(dim, heads, tokens, snn, levels, softmax, product)
        self.norm2 = _norm(snn, dim)
        self.fc1 = Unit(dim, hidden, snn, levels)
        self.fc2 = Unit(hidden, dim, snn, levels, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.fc2(self.fc1(tokens_apply(self.norm2, x)))


class MST(nn.Module):
    """MST on ``[B, C, H, W]`` -> logits ``[B, K]``; ``forward_steps`` gives the per-step logits ``[T, B, K]``."""

    def __init__(self, embed_dim: int = 64, depth: int = 2, num_heads: int = 2, mlp_ratio: float = 2.0,
                 patch: int = 4, img_size: int = 32, T: int = 1, in_channels: int = 3, num_classes: int = 10,
                 levels: int = QCFS_LEVELS, softmax: bool = False, snn: bool = False, product: str = "cumulative"):
        super().__init__()
        if product not in PRODUCTS:
            raise ValueError(f"product must be one of {PRODUCTS}, got {product!r}")
        if img_size % patch:
            raise ValueError(f"img_size {img_size} is not divisible by the patch size {patch}")
        if not 1 <= levels <= 1024:
            raise ValueError(f"levels (QCFS L) must be in [1, 1024], got {levels}")
        self.T, self.img_size, self.in_channels, self.num_classes = T, img_size, in_channels, num_classes
        self.snn, self.softmax, self.product, self.levels = snn, softmax, product, levels
        tokens = (img_size // patch) ** 2
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch, stride=patch, bias=snn)
        self.patch_bn = _norm(snn, embed_dim)
        # a learnt position embedding (ViT's): the blocks' per-token layers see only one patch each
        self.pos_embed = nn.Parameter(torch.zeros(tokens, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=1.0)   # the scale of the BN-normalised patch features
        self.patch_act = _act(snn, levels)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, tokens, mlp_ratio, snn, levels, softmax, product)
                                    for _ in range(depth))
        self.norm = _norm(snn, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward_steps(self, x: torch.Tensor) -> torch.Tensor:
        """Per-step logits ``[T, B, K]``: images ``[B, C, H, W]`` enter at every one of ``T`` steps
        (one step for the ANN); frames ``[T, B, C, H, W]`` one a step."""
        if x.dim() == 5:
            z = self.patch_embed(x.flatten(0, 1)).flatten(2).transpose(1, 2).unflatten(0, x.shape[:2])
            z = tokens_apply(self.patch_bn, z) + self.pos_embed
        elif x.dim() == 4:
            z = self.patch_embed(x).flatten(2).transpose(1, 2)        # [B, N, D], the same at every step
            steps = self.T if self.snn else 1
            z = (tokens_apply(self.patch_bn, z) + self.pos_embed).unsqueeze(0).expand(steps, *z.shape)
        else:
            raise ValueError(f"expected input [B, C, H, W] or [T, B, C, H, W], got {tuple(x.shape)}")
        h = self.patch_act(z.contiguous())
        for blk in self.blocks:
            h = blk(h)
        return self.head(tokens_apply(self.norm, h).mean(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K]``: the mean over steps of :meth:`forward_steps`."""
        return self.forward_steps(x).mean(0)
