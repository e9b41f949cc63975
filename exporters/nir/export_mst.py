"""torch -> NIR for the converted Masked Spiking Transformer (``sresformer.mst``, ``snn=True``).

Every value is written channel-major ``[D, h, w]``: the model's ``[N, D]`` tokens are the same numbers
with ``N = h * w`` (the patch map flattened row by row), so its linear layers are 1x1 ``Conv2d`` nodes
(BN already folded by ``sresformer.convert``) and its heads are channel blocks, as the product forms
(``hw_sim.products``) view them. Every neuron is the soft-reset IF with initial membrane ``theta / 2``
(``sresformer.soft_reset_if``, ``extension.py``); what the model adds before a neuron that no weight
multiplies (the position embedding ``E``, the attention bias ``B``) is that neuron's ``bias``.

- ``stem``: ``patch_embed`` (conv, its bias the folded BN), ``patch_act`` with ``bias = E``; its spikes
  have height ``lambda`` in the residual stream (``SoftIF.scale``): a depthwise 1x1 conv ``patch_height``
  of weight ``lambda`` makes the stream, and block 0's q / k / v read the spikes with ``lambda`` in
  their weights (accumulate-only, not a multiply of the stream).
- ``blocks.<i>``: ``q``/``k``/``v`` (1x1 conv + neuron), ``matmul1`` (``q@kT``: ``q_t k_t^T`` of this
  step's spikes, MST's per-step product), ``scale1`` (alpha), ``attn_act`` (``bias = B``), ``matmul2``
  (``qk@v``: ``A_t v_t``), ``scale2`` (gamma), ``out_act``, ``proj``, residual ``add``; ``fc1`` (+ neuron),
  ``fc2``, residual ``add2``.
- head: ``AvgPool2d`` over the map (the model's mean over tokens), ``Flatten``, ``Affine``.

With ``--product cumulative`` each product is ``_cumulative_attention``'s instead: running spike counters
(``sresformer.spike_counter``), two products of one side's spikes against the other side's counts
(``matmul<i>.spikes_a`` / ``.spikes_b``, forms ``sq@ckT`` / ``q@kT`` and ``sa@cv`` / ``qk@v``), each
behind its Scale, summed by a rate-normalised soft-reset IF (``rate_normalised``; ``hw_sim/ratenorm.py``).
"""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from sresformer.masking import spike_mask_of
from sresformer.mst import MST
from sresformer.qcfs import SoftIF

from . import convention as cv
from .export import close_with_readout
from .extension import dual_spike_matmul_graph, soft_reset_if_graph, spike_counter_graph, spike_mask_graph
from .graph_builder import GraphBuilder, add_conv, add_residual


def _as_conv1x1(linear: nn.Linear, in_scale: float = 1.0) -> nn.Conv2d:
    """The 1x1 conv that applies ``linear`` (its weight times ``in_scale``) at every position of ``[C, h, w]``."""
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    conv.weight.data = linear.weight.detach()[:, :, None, None] * float(in_scale)
    if linear.bias is not None:
        conv.bias.data = linear.bias.detach().clone()
    return conv.eval()


def _neuron(g: GraphBuilder, name: str, act: SoftIF, src, bias=0.0, rate: bool = False) -> str:
    """The soft-reset IF ``act`` after ``src`` (a node or several summed): threshold theta, initial membrane
    theta / 2, ``bias`` (``rate``: its rate-normalised form); then its random spike mask
    (``sresformer.masking``), if it has one, which every reader reads."""
    theta = float(act.theta)
    srcs = [src] if isinstance(src, str) else list(src)
    shape = g.shapes[srcs[0]]
    out = g.add(name, soft_reset_if_graph(shape, theta, theta / 2, bias, rate), shape, *srcs)
    gate = spike_mask_of(act)
    if gate is not None and gate.ratio > 0:
        g.extensions.add(cv.SPIKE_MASK)
        out = g.add(f"{name}.mask", spike_mask_graph(g.shapes[out], gate.ratio, gate.seed, gate.gate_id),
                    g.shapes[out], out)
    return out


def _unit(g: GraphBuilder, name: str, unit: nn.Module, src: str, in_scale: float = 1.0) -> str:
    """``unit.linear`` as a 1x1 conv ``name`` after ``src``, then its neuron ``<name>_act`` (if any)."""
    y = add_conv(g, name, _as_conv1x1(unit.linear, in_scale), None, src)
    return _neuron(g, f"{name}_act", unit.act, y) if isinstance(unit.act, SoftIF) else y


def _tokens_map(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    """``[N, D]`` per-token values as the channel-major ``[D, h, w]`` map (tokens row by row)."""
    return x.detach().T.reshape(-1, h, w).numpy().astype(np.float32)


def _block(blk, shape, height: float | None = None) -> GraphBuilder:
    """One block: ``x + Attention(x)``, then ``+ MLP``. With ``height`` (block 0) the input is the stem's
    binary spikes: the stream is their copy of that height, and q / k / v hold it in their weights."""
    att = blk.attn
    heads, (D, h, w) = att.heads, shape
    n_tok = h * w
    g = GraphBuilder(shape)
    stream = "input" if height is None else add_conv(g, "patch_height", _height_conv(D, height), None, "input")
    scale = 1.0 if height is None else height
    q, k, v = (_unit(g, n, getattr(att, n), "input", scale) for n in ("q", "k", "v"))
    attn_shape = (heads * n_tok, h, w)
    bias = att.bias.detach().reshape(heads * n_tok, h, w).numpy().astype(np.float32)   # B[h, n, m]
    if att.product == "cumulative":
        o = _cumulative_attention(g, att, q, k, v, shape, attn_shape, bias)
    else:
        # the first product's edges come from all of q, k, v (as Spikformer's: every node keeps an out-edge,
        # which NIR's type inference needs); v is the second product's operand
        mm1 = g.add("matmul1", dual_spike_matmul_graph("q@kT", heads, q, k, shape, attn_shape), attn_shape, q, k, v)
        sc1 = g.add("scale1", _scale(attn_shape, att.alpha), attn_shape, mm1)
        a = _neuron(g, "attn_act", att.attn_act, sc1, bias)
        mm2 = g.add("matmul2", dual_spike_matmul_graph("qk@v", heads, a, v, attn_shape, shape), shape, a)
        sc2 = g.add("scale2", _scale(shape, att.gamma), shape, mm2)
        o = _neuron(g, "out_act", att.out_act, sc2)
    x1 = add_residual(g, "add", stream, _unit(g, "proj", att.proj, o))
    hid = _unit(g, "fc1", blk.fc1, x1)
    add_residual(g, "add2", x1, _unit(g, "fc2", blk.fc2, hid))
    g.extensions |= {cv.DUAL_SPIKE_MATMUL, cv.SOFT_RESET_IF}
    if att.product == "cumulative":
        g.extensions.add(cv.SPIKE_COUNTER)
    return g


def _scale(shape, factor) -> nir.Scale:
    return nir.Scale(scale=np.full(shape, float(factor), np.float32))


def _product(g: GraphBuilder, name: str, a: str, b: str, forms: tuple[str, str], heads: int, shapes, factor) -> list:
    """The increments ``dP = s^a (C^b)^T + C^a_{t-1} (s^b)^T`` of ``a @ b`` (``sresformer.qcfs.cumulative_increment``)
    as two products of spikes against counters (``forms``: the spikes-of-``a`` term's, then the other's),
    each behind its own Scale ``factor``, for one rate-normalised neuron to sum. ``shapes``: ``a``'s, ``b``'s,
    the output's. Returns the two scaled terms."""
    sa, sb, out = shapes
    ca = g.add(f"{name}.count_a", spike_counter_graph(sa, inclusive=False), sa, a)   # C^a_{t-1}
    cb = g.add(f"{name}.count_b", spike_counter_graph(sb, inclusive=True), sb, b)    # C^b_t
    # edges: every node keeps an out-edge (NIR's type inference); the operands are named in the metadata
    t1 = g.add(f"{name}.spikes_a", dual_spike_matmul_graph(forms[0], heads, cb, a, sb, out), out, b, cb)
    t2 = g.add(f"{name}.spikes_b", dual_spike_matmul_graph(forms[1], heads, ca, b, sa, out), out, a, ca)
    return [g.add(f"{name}.scale_{i}", _scale(out, factor), out, t) for i, t in ((1, t1), (2, t2))]


def _cumulative_attention(g: GraphBuilder, att, q: str, k: str, v: str, shape, attn_shape, bias) -> str:
    """``A = RateIF(alpha P(q, k^T) + B)``, ``O = RateIF(gamma P(A, v))`` with cumulative products."""
    qk = _product(g, "matmul1", q, k, ("sq@ckT", "q@kT"), att.heads, (shape, shape, attn_shape), att.alpha)
    a = _neuron(g, "attn_act", att.attn_act, qk, bias, rate=True)
    av = _product(g, "matmul2", a, v, ("sa@cv", "qk@v"), att.heads, (attn_shape, shape, shape), att.gamma)
    return _neuron(g, "out_act", att.out_act, av, rate=True)


def _height_conv(channels: int, height: float) -> nn.Conv2d:
    """A depthwise 1x1 conv of weight ``height``: spikes into the real-valued residual stream."""
    conv = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
    conv.weight.data.fill_(float(height))
    return conv.eval()


def check_exportable(model: MST) -> None:
    """NIRError (one line) for an MST that is not a converted SNN."""
    name = getattr(model, "model_name", type(model).__name__)
    if not model.snn:
        raise cv.NIRError(f"{name} is a QCFS ANN: convert it first ('sresformer convert ANN.ckpt --out SNN.ckpt "
                          "--product per-step'), then export the SNN checkpoint")



@torch.no_grad()
def mst_to_nir(model: MST, dt: float = 1.0, T: int | None = None) -> nir.NIRGraph:
    """The converted MST (eval mode, per-step or cumulative products) as a NIR graph of one time step: input
    ``[C, H, W]``, per-step logits ``[K]`` (the logits are their mean over T, ``metadata['readout']``)."""
    check_exportable(model)
    model.eval()
    shape = (model.in_channels, model.img_size, model.img_size)
    top = GraphBuilder(shape)
    stem = GraphBuilder(shape)
    z = add_conv(stem, "patch_embed", model.patch_embed, None, "input")
    _, h, w = stem.shapes[z]
    _neuron(stem, "patch_act", model.patch_act, z, _tokens_map(model.pos_embed, h, w))
    stem.extensions.add(cv.SOFT_RESET_IF)
    src = top.add_graph("stem", stem, "input", {"sresformer.block": "MSTStem"})
    height = float(model.patch_act.scale)
    for i, blk in enumerate(model.blocks):
        sub = _block(blk, top.shapes[src], height=height if i == 0 else None)
        src = top.add_graph(f"blocks.{i}", sub, src, {"sresformer.block": "MSTBlock"})
    return close_with_readout(top, src, "head", model.head, model, T, dt)
