"""The Lava lowering as numbers: which Lava process stands for each of our processes, with what parameters.

No Lava import here: :func:`plan_graph` checks that a :class:`ProcessGraph` maps exactly onto Lava's
fixed-point models (``SEMANTICS.md`` states every convention) and returns :class:`LavaNode` records
that :mod:`exporters.lava.build` instantiates. A graph that does not map exactly is refused in one
:class:`LavaError` line naming the process.

Layout: a value of shape ``[C, H, W]`` lives in Lava as ``[W, H, C]`` (Lava's ``Conv`` is XYC); a
flat value keeps, in ``order``, the flat index of ours that each Lava element holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw_sim.processes import ProcessGraph
from sresformer.errors import UserError

ACT_SHIFT = 6          # Lava PyLifModelBitAcc: a_in << 6 into u, spikes on v > vth << 6 (lif/models.py)
DECAY_BITS = 12        # Lava's LIF decays du, dv in 1/4096 (lif/models.py, decay_shift)
DS_OFFSET = 1          # Lava's LIF adds 1 to du (ds_offset, a 1-bit Loihi register) so du = 4095 clears u
BIAS_MANT_BITS = 13    # bias_mant: signed 13 bits (PyLifModelBitAcc docstring)
BIAS_EXP_MAX = 7       # bias_exp: unsigned 3 bits
VTH_MAX = 2 ** 17 - 1  # vth: unsigned 17 bits
MIXED_SIGN_SHIFT = 1   # Lava's Dense truncates mixed-sign weights to even values (utils/weightutils.py)
INT8_MAX = 127         # Lava's Conv model holds groups as int8 (conv/models.py), also against C_in
LAVA_KINDS = ("input", "synapse", "neuron", "flatten", "sumpool", "maxpool", "sum", "prodmm", "gate")
EXPORT_HINT = "export it with 'sresformer export SRC --target lava'"


class LavaError(UserError):
    """A process graph that Lava's fixed-point models cannot reproduce exactly, or a failed Lava run."""


@dataclass
class LavaNode:
    """One of our processes (or a delay stage) as Lava sees it.

    ``lava``: ``source`` (RingBuffer), ``dense``, ``conv``, ``lif`` (LIFReset), ``graded`` (GradedVec: a residual
    sum point), ``delay`` (identity ``Sparse`` stages), ``reshape`` (a port view) or ``alias`` (our pass-through
    sum); ``inputs``: the nodes whose ports connect to its input; ``delay``: how many steps Lava's value of this
    process lags ours (a synapse buffers one step); ``shape``: the Lava shape; ``order``: ours flat index per
    Lava flat element. ``offset`` (ours flat order), when not ``None``, marks a *synaptic* value: Lava carries
    ``L`` and our integer is ``64 L + offset`` (a synapse's ``a_out`` is its accumulation / 64 without the bias;
    the biases of a residual stream add up statically into ``offset``, and a neuron adds it as its bias).
    ``count`` marks a *count* value (a sum of spikes, a product of spikes, a pool of either): Lava carries our
    integer itself, with no offset (``SEMANTICS.md``, *counts*)."""

    name: str
    lava: str
    inputs: list[str]
    delay: int
    shape: tuple[int, ...]
    order: np.ndarray
    params: dict = field(default_factory=dict)
    offset: np.ndarray | None = None
    host: bool = False   # the offset depends on the image (a static value the host computes: SEMANTICS.md)
    count: bool = False   # Lava carries our integer itself (a sum, product or pool of spikes or counts)

    @property
    def synaptic(self) -> bool:
        """True when Lava carries ``(value - offset) / 64`` (a synapse's activation, a residual sum)."""
        return self.offset is not None


def lava_shape(shape) -> tuple[int, ...]:
    """Lava's shape of one of ours: ``[C, H, W]`` -> ``(W, H, C)``; other ranks unchanged."""
    return tuple(int(s) for s in (shape[::-1] if len(shape) == 3 else shape))


def lava_order(shape) -> np.ndarray:
    """Ours flat (C-order) index of each Lava flat element, for a value of our ``shape``."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    return (idx.transpose(2, 1, 0) if len(shape) == 3 else idx).ravel()


def to_ours(data: np.ndarray, shape, order: np.ndarray) -> np.ndarray:
    """Lava's recorded ``[*lava_shape, steps]`` as ours ``[steps, *shape]``."""
    steps = data.shape[-1]
    flat = np.moveaxis(data, -1, 0).reshape(steps, -1)
    out = np.empty_like(flat)
    out[:, order] = flat
    return out.reshape(steps, *shape)


def to_lava(x: np.ndarray, order: np.ndarray, shape) -> np.ndarray:
    """Ours ``[steps, ...]`` as Lava's ``[*lava_shape, steps]``."""
    flat = x.reshape(x.shape[0], -1)[:, order]
    return np.moveaxis(flat.reshape(x.shape[0], *shape), 0, -1)


def bias_format(b: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mant, exp)`` per element with ``mant << exp == b``: the smallest ``exp`` in 0..7 that fits 13 bits."""
    b = np.asarray(b, np.int64)
    lo, hi = -(1 << (BIAS_MANT_BITS - 1)), (1 << (BIAS_MANT_BITS - 1)) - 1
    mant, exp = b.copy(), np.zeros_like(b)
    for e in range(1, BIAS_EXP_MAX + 1):
        move = ((mant < lo) | (mant > hi)) & (b % (1 << e) == 0)
        mant = np.where(move, b >> e, mant)
        exp = np.where(move, e, exp)
    bad = (mant < lo) | (mant > hi)
    if bad.any():
        raise LavaError(f"{where}: a bias of {int(b[bad].flat[0])} (the sum of the biases on its way in) is not a "
                        f"13-bit mantissa << 0..7 (Lava's bias_mant, bias_exp); {EXPORT_HINT}")
    return mant, exp


def _refuse(p, why: str):
    raise LavaError(f"Lava cannot reproduce process {p.name!r} ({p.kind}) exactly: {why}")


def plan_graph(pg: ProcessGraph, check_bias: bool = True, static: dict | None = None) -> dict[str, LavaNode]:
    """The Lava node of every process of ``pg`` in graph order, with the delay stages it needs (named
    ``NAME@+k``); :class:`LavaError` for what does not map (``check_bias`` False: a neuron's bias outside
    Lava's format is kept whole in ``params['bias']``, for :mod:`exporters.lava.grid`). A static process that
    Lava cannot compute exactly (or that reads one) is a ``host`` node: the host computes it once per image and
    its integers (``static``: ours flat per process name, one image; zeros when ``None``) are its offset."""
    nodes: dict[str, LavaNode] = {}
    for p in pg:
        ins = [nodes[s] for s in p.sources]
        if p.static and p.kind != "input":
            try:
                if any(n.host for n in ins):
                    raise LavaError("it reads a value the host computes")
                nodes[p.name] = _node(p, pg, ins, nodes, check_bias)
                continue
            except LavaError:   # computed once per image on the host (the chip's embedded processor)
                value = np.zeros(int(np.prod(p.out_shape)), np.int64) if static is None else static[p.name]
                nodes[p.name] = LavaNode(p.name, "host", [], 0, lava_shape(p.out_shape), lava_order(p.out_shape),
                                         offset=np.asarray(value, np.int64).reshape(-1), host=True)
                continue
        nodes[p.name] = _node(p, pg, ins, nodes, check_bias)
    return nodes


def _node(p, pg, ins, nodes, check_bias: bool) -> LavaNode:
    """The node of one process (its sources planned), or :class:`LavaError`."""
    if p.kind not in LAVA_KINDS:
        _refuse(p, f"the Lava graph has no {p.kind} yet (kinds: {', '.join(LAVA_KINDS)})")
    if getattr(p.attrs, "reset", "zero") == "rate" or getattr(p.attrs, "running", "none") != "none":
        _refuse(p, "the cumulative product's rate-normalised neuron and spike counters are not built in Lava")
    if p.kind == "input":
        node = LavaNode(p.name, "source", [], 0, lava_shape(p.out_shape), lava_order(p.out_shape))
    elif p.kind in ("sum", "flatten") and len(ins) == 1:   # a pass-through (a folded scale) or a view
        src = ins[0]
        shape = src.shape if p.kind == "sum" else (int(np.prod(p.out_shape)),)
        node = LavaNode(p.name, "alias" if p.kind == "sum" else "reshape", [src.name], src.delay, shape,
                        src.order, offset=src.offset, host=src.host, count=src.count)
    elif p.kind == "sum":
        node = _sum(p, ins, nodes)
    elif p.kind == "synapse":
        node = _synapse(p, pg, ins, p.name == pg.output)
    elif p.kind == "sumpool":
        node = _sumpool(p, pg, ins)
    elif p.kind == "maxpool":
        node = _maxpool(p, pg, ins)
    elif p.kind == "prodmm":
        node = _prodmm(p, pg, nodes)
    elif p.kind == "gate":
        node = _gate(p, pg, ins)
    else:
        node = _neuron(p, ins, nodes, check_bias)
    return node


def _aligned(p, ins: list[LavaNode], nodes: dict) -> list[LavaNode]:
    """``ins`` brought to one delay: a shallower value passes through identity stages (one step each). Every
    source is synaptic (Lava carries ``(ours - offset) / 64``) or none is (spikes and counts: ours itself)."""
    if len({n.synaptic for n in ins}) != 1:
        _refuse(p, "it sums a synaptic value (a synapse's output, 64 L + offset in Lava) with spikes or counts "
                   "(our integer in Lava): the two scales do not add in one Lava port")
    if len({n.order.tobytes() for n in ins}) != 1:
        _refuse(p, "its sources are laid out differently in Lava")
    lava = [n for n in ins if not n.lava == "host"]   # a host value has no port: it is all offset
    depth = max((n.delay for n in lava), default=0)
    return [_delayed(n, depth, nodes) for n in lava]


def _offset(ins: list[LavaNode]) -> tuple[np.ndarray, bool]:
    """The summed offsets of ``ins`` and whether that depends on the image."""
    return sum(n.offset for n in ins), any(n.host for n in ins)


def _delayed(n: LavaNode, depth: int, nodes: dict) -> LavaNode:
    """``n`` at ``depth``: itself, or through ``depth - n.delay`` identity stages (a node ``NAME@+k``)."""
    if n.delay >= depth:
        return n
    k = depth - n.delay
    name = f"{n.name}@+{k}"
    if name not in nodes:
        nodes[name] = LavaNode(name, "delay", [n.name], depth, n.shape, n.order, {"steps": k}, n.offset,
                               count=n.count)
    return nodes[name]


def _prodmm(p, pg, nodes) -> LavaNode:
    from .products import plan_prodmm

    dyn, spk = (nodes[o] for o in p.operands)
    inputs, delay, params = plan_prodmm(p, pg, dyn, spk, lambda n, d: _delayed(n, d, nodes), _refuse)
    shape = lava_shape(p.out_shape)
    if not dyn.synaptic:   # a product of spikes or of a count with spikes: the count itself (products.py)
        return LavaNode(p.name, "prodmm", inputs, delay, shape, lava_order(p.out_shape), params, count=True)
    return LavaNode(p.name, "prodmm", inputs, delay, shape, lava_order(p.out_shape), params,
                    np.zeros(int(np.prod(shape)), np.int64))


def _gate(p, pg, ins) -> LavaNode:
    """Random spike masking (``gate``): the spike times the keep mask, in a ``ProdNeuron`` (``v = a_in1 * a_in2``,
    sent when ``v != 0``) whose second port the host feeds with the mask (``build._gate``): the mask is the
    model's, ``keep[t, i]`` of ``sresformer.spike_gate.keep_mask`` (the same for every sample), held per step
    ``t`` of each sample in a ``RingBuffer`` of ``T`` columns. Same step (no synapse): no delay."""
    from sresformer.spike_gate import keep_mask

    src = _one_input(p, ins)
    if src.synaptic or not pg.spikes_only(p.sources):
        _refuse(p, "a gate on a value that is not spikes")
    a = p.attrs
    keep = keep_mask(a.ratio, a.seed, a.gate_id, pg.T, (int(np.prod(p.out_shape)),)).numpy()   # [T, ours flat]
    return LavaNode(p.name, "gate", [src.name], src.delay, src.shape, src.order,
                    {"keep": keep[:, src.order].astype(np.int64)})


def _sum(p, ins, nodes) -> LavaNode:
    aligned = _aligned(p, ins, nodes)   # (refuses a synaptic value summed with spikes or counts)
    if not ins[0].synaptic:   # spikes and counts: GradedVec sums our integers themselves, a count
        return LavaNode(p.name, "graded", [n.name for n in aligned], aligned[0].delay, aligned[0].shape,
                        aligned[0].order, count=True)
    offset, host = _offset(ins)
    ins = aligned
    # GradedVec with vth = 0 sends its summed input as a graded spike every step (Loihi 2's residual point)
    return LavaNode(p.name, "graded", [n.name for n in ins], ins[0].delay, ins[0].shape, ins[0].order,
                    offset=offset, host=host)


def _one_input(p, ins) -> LavaNode:
    if len(ins) != 1:
        _refuse(p, "several sources summed into a synapse or pool (not built yet)")
    return ins[0]


def _broadcast(per_channel: np.ndarray, shape) -> np.ndarray:
    """A ``[C]`` vector over ``shape = [C, ...]``, flat (C order)."""
    b = np.asarray(per_channel, np.int64).reshape(-1, *([1] * (len(shape) - 1)))
    return np.broadcast_to(b, tuple(shape)).reshape(-1).copy()


def _synapse(p, pg, ins, output: bool = False) -> LavaNode:
    a = p.attrs
    src = _one_input(p, ins)
    w = np.asarray(p.params["weight"], np.int64)
    bias = _broadcast(p.params["bias"], p.out_shape)
    if output and a.op == "dense" and a.shift < (0 if src.synaptic else ACT_SHIFT):   # completed by the host
        return _readout(p, src, w, bias)
    if src.synaptic:
        # input 64 L + off: acc = 64 W.L + W.off; for shift >= 0 both terms scale exactly, so Lava carries
        # W.L * 2**shift and W.off * 2**shift + bias joins the offset
        if a.shift < 0:
            _refuse(p, f"shift {a.shift} < 0 on a graded synaptic input (the rounding would not split exactly)")
        exp = a.shift
        offset = _acc(p, src, w) * (1 << a.shift) + bias
    else:
        if a.shift < ACT_SHIFT:
            _refuse(p, f"shift {a.shift} < 6: Lava floors the accumulator at weight_exp {a.shift - ACT_SHIFT} "
                       f"before its 6-bit alignment, we round half up; {EXPORT_HINT}")
        exp, offset = a.shift - ACT_SHIFT, bias
    params = {"weight_exp": exp, "graded": src.synaptic or bool(a.graded_input) or not pg.spikes_only(p.sources)}
    if a.op == "dense":
        # Lava's bit-accurate Dense drops the LSB of mixed-sign 8-bit weights (weightutils.truncate_weights:
        # Loihi's mixed-sign weights step by 2), so it holds 2 w and one less weight exponent; 2 acc is even,
        # so its right shift at weight_exp = -1 (our shift 6) is exact
        params.update(weight=2 * w[:, src.order], weight_exp=exp - MIXED_SIGN_SHIFT)   # Lava's flat input order
        return LavaNode(p.name, "dense", [src.name], src.delay + 1, lava_shape(p.out_shape),
                        lava_order(p.out_shape), params, offset)
    if len(src.shape) != 3:
        _refuse(p, "a conv reading a flat value")
    if max(a.groups, *src.shape, p.out_shape[0]) > INT8_MAX:
        # Lava's Conv holds groups, kernel, stride, padding and dilation in int8 and its scipy path computes
        # C_in % groups and X + 2 padding in it (conv/utils.py, conv_scipy and output_shape; C_out too; numpy 2
        # refuses a Python int >= 128 there, PilotNet's 200-wide frame): the conv's taps as a Sparse, its
        # weights held as Dense's (2 w at weight_exp - 1)
        params.update(matrix=_sparse(p, src, 2 * w, (a.stride, a.padding, a.dilation, a.groups)),
                      weight_exp=exp - MIXED_SIGN_SHIFT)
        return LavaNode(p.name, "pool", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                        params, offset, host=src.host)
    # Lava's Conv is a true convolution in XYC: weight [C_out, kx, ky, C_in/g], flipped in space
    params["weight"] = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).copy()
    params.update(input_shape=src.shape, stride=tuple(a.stride[::-1]), padding=tuple(a.padding[::-1]),
                  dilation=tuple(a.dilation[::-1]), groups=int(a.groups))
    return LavaNode(p.name, "conv", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                    params, offset, host=src.host)


def _readout(p, src: LavaNode, w: np.ndarray, bias: np.ndarray) -> LavaNode:
    """The output synapse (the classifier) with a negative shift on a synaptic value, or a shift below 6 on spikes
    or a count: Lava's ``Dense`` sends the accumulation ``W . L`` exactly and the host reading it completes
    ``round(64 W . L + W . off) + bias`` (spikes, a count: ``round(W . L 2**shift) + bias``, ``scale`` 1), the
    round half up that does not split over the two terms (``params['readout']``, ``worker.collect``)."""
    if not src.synaptic:
        acc, scale = np.zeros(w.shape[0], np.int64), 1
    else:
        acc, scale = _acc(p, src, w), 1 << ACT_SHIFT
    params = {"weight": 2 * w[:, src.order], "weight_exp": -MIXED_SIGN_SHIFT, "graded": True,
              "readout": {"shift": p.attrs.shift, "acc": acc, "bias": bias, "scale": scale}}
    return LavaNode(p.name, "dense", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                    params, None, host=src.host)


def _acc(p, src: LavaNode, w: np.ndarray) -> np.ndarray:
    """``W . offset`` (ours flat, before the shift): the static part of a synapse reading a synaptic value."""
    import torch
    import torch.nn.functional as F

    a = p.attrs
    off = torch.from_numpy(src.offset.astype(np.float64))   # exact: |W . off| stays far below 2**53
    wt = torch.from_numpy(w.astype(np.float64))
    if a.op == "dense":
        acc = wt @ off
    else:
        in_shape = _in_shape(p, src)
        acc = F.conv2d(off.view(1, *in_shape), wt, None, a.stride, a.padding, a.dilation, a.groups)
    return acc.reshape(-1).numpy().astype(np.int64)


def _in_shape(p, src: LavaNode) -> tuple[int, ...]:
    """Our shape of a 3-D Lava value (``[W, H, C]`` -> ``[C, H, W]``)."""
    return tuple(src.shape[::-1])


def _sumpool(p, pg, ins) -> LavaNode:
    a = p.attrs
    src = _one_input(p, ins)
    if len(src.shape) != 3 or not (src.synaptic or src.count or pg.spikes_only(p.sources)):
        _refuse(p, "a sum pool of the input (built on spikes, counts and synaptic values)")
    offset = None
    if src.synaptic:   # the window sum of 64 L + off is 64 (window sum of L) + the window sum of off
        import torch
        import torch.nn.functional as F

        off = torch.from_numpy(src.offset.astype(np.float64)).view(1, *_in_shape(p, src))
        offset = F.avg_pool2d(off, a.kernel, a.stride, a.padding, divisor_override=1).reshape(-1).numpy()
        offset = offset.astype(np.int64)
    # a window sum is a depthwise conv with unit weights as a Sparse (Lava has no pooling process, and its Conv
    # holds groups in int8); unit positive weights are kept whole
    C = p.out_shape[0]
    w = np.ones((C, 1, *a.kernel), np.int64)
    params = {"matrix": _sparse(p, src, w, (a.stride, a.padding, (1, 1), C)), "weight_exp": 0,
              "graded": src.synaptic or src.count}
    return LavaNode(p.name, "pool", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                    params, offset, host=src.host, count=src.count)


def _maxpool(p, pg, ins) -> LavaNode:
    """A max-pool of spikes is the window's OR: the window count (unit-weight depthwise ``Sparse``, one step) into a
    ``LIFReset`` that fires iff the count is nonzero and keeps no state (``du = 4096``: Lava's ``4095 + 1``;
    ``dv = 4096``; ``v = 64 count > vth << 6`` with ``vth = 0``). Padding never wins a max of spikes (a window
    holds at least one element, every value is 0 or 1), so the Sparse's zero padding is exact. A max-pool of
    graded values has no exact Lava graph (no max process)."""
    a = p.attrs
    src = _one_input(p, ins)
    if src.synaptic or len(src.shape) != 3 or not pg.spikes_only(p.sources):
        _refuse(p, "a max-pool of a value that is not spikes (Lava has no max process)")
    C = p.out_shape[0]
    w = np.ones((C, 1, *a.kernel), np.int64)
    params = {"matrix": _sparse(p, src, w, (a.stride, a.padding, (1, 1), C)), "weight_exp": 0, "graded": False}
    return LavaNode(p.name, "or", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape), params)


def _sparse(p, src: LavaNode, w: np.ndarray, geometry) -> dict:
    """A conv's weights as Lava ``Sparse`` entries in Lava's flat orders (``convmat.py``)."""
    from .convmat import conv_entries

    rows, cols, vals = conv_entries(w, _in_shape(p, src), p.out_shape, *geometry)
    out_lava, in_lava = np.argsort(lava_order(p.out_shape)), np.argsort(src.order)
    shape = (int(np.prod(p.out_shape)), int(np.prod(src.shape)))
    return {"rows": out_lava[rows], "cols": in_lava[cols], "vals": vals, "shape": shape}


def _neuron(p, ins, nodes, check_bias: bool) -> LavaNode:
    a = p.attrs
    if a.decay_bits != DECAY_BITS:
        _refuse(p, f"{a.decay_bits}-bit decays (Lava's LIF has {DECAY_BITS})")
    if not ins:
        _refuse(p, "a neuron without input")
    aligned = _aligned(p, ins, nodes)   # (refuses a synaptic value mixed with spikes or counts)
    if not ins[0].synaptic:
        return _count_neuron(p, aligned)
    bias, host = _offset(ins)   # ours flat order: every bias on the way, added to v by Lava
    shape, order = ins[0].shape, ins[0].order
    ins = aligned
    if bias.any() and a.du != a.unity:
        _refuse(p, "a bias on a neuron whose current persists (du < 4096: our bias enters u, Lava's v)")
    if a.du < DS_OFFSET:
        _refuse(p, "du = 0 (Lava's LIF decays u by at least 1/4096: ds_offset)")
    vth = np.asarray(p.params["vth"], np.int64).reshape(-1)
    bad = ((vth - 1) % (1 << ACT_SHIFT) != 0) | ((vth - 1) >> ACT_SHIFT > VTH_MAX) | (vth < 1)
    if bad.any():
        _refuse(p, f"threshold {int(vth[bad][0])} is not 64 k + 1 with k < 2**17 (Lava spikes on v > vth << 6, we "
                   f"on v >= vth); {EXPORT_HINT}")
    k = (vth - 1) >> ACT_SHIFT
    # one threshold: Lava's LIFReset; one per neuron: LIFResetVth (lifvth.py), in Lava's flat order
    k = int(k[0]) if np.unique(k).size == 1 else np.broadcast_to(k, (order.size,))[order].copy()
    params = {"du": a.du - DS_OFFSET, "dv": a.dv, "vth": k, "bias": bias, "host": host}
    split = host   # a total that depends on the image, or one outside Lava's bias format, is split
    if check_bias and not host:
        try:
            params["bias_mant"], params["bias_exp"] = bias_format(bias[order], p.name)
        except LavaError:
            split = True
    if split:
        # the total 64 q + r (0 <= r < 64): the host sends q into a_in every step (a_in << 6) and r is the bias
        # (exp 0), written before each image when it depends on the image (SEMANTICS.md, host values)
        q = bias[order] >> ACT_SHIFT
        params.update(inject=q, bias_mant=bias[order] - (q << ACT_SHIFT), bias_exp=np.zeros_like(q))
    delay = max((n.delay for n in ins), default=0)
    return LavaNode(p.name, "lif", [n.name for n in ins], delay, shape, order, params)


def _count_neuron(p, ins: list[LavaNode]) -> LavaNode:
    """A neuron reading counts or spikes straight (no synapse: Spikformer's ``attn_lif`` on ``q k^T v``): Lava's
    ``a_in << 6`` and ``v > vth << 6`` would scale ours by 64, which Lava's decay (``dv = 2048`` floors ``v / 2``)
    does not commute with, so it runs as ``LIFResetCount`` (``lifvth.py``: Lava's bit-accurate LIF with both
    shifts 0), ``u`` and ``v`` our integers and ``v > vth - 1`` our ``v >= vth``. No bias reaches it (a count
    carries none)."""
    a = p.attrs
    if a.du < DS_OFFSET:
        _refuse(p, "du = 0 (Lava's LIF decays u by at least 1/4096: ds_offset)")
    if a.reset != "zero" or a.in_shift or any(k in p.params for k in ("bias", "v0")):
        _refuse(p, "a neuron reading counts with a soft reset, an input shift, a bias or an initial membrane "
                   "(not built yet)")
    vth = np.asarray(p.params["vth"], np.int64).reshape(-1)
    if (vth < 1).any() or (vth - 1 > VTH_MAX).any():
        _refuse(p, f"threshold {int(vth.flat[0])} outside 1..2**17 (Lava's 17-bit vth, compared as v > vth)")
    order = ins[0].order
    size = order.size
    params = {"du": a.du - DS_OFFSET, "dv": a.dv, "vth": np.broadcast_to(vth - 1, (size,))[order].copy(),
              "bias": np.zeros(size, np.int64), "host": False, "count": True,
              "bias_mant": np.zeros(size, np.int64), "bias_exp": np.zeros(size, np.int64)}
    return LavaNode(p.name, "lif", [n.name for n in ins], max(n.delay for n in ins), ins[0].shape, order, params)
