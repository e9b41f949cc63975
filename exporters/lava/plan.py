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
LAVA_KINDS = ("input", "synapse", "neuron", "flatten", "sumpool", "sum")
EXPORT_HINT = "export it with 'sresformer export SRC --target lava'"


class LavaError(UserError):
    """A process graph that Lava's fixed-point models cannot reproduce exactly, or a failed Lava run."""


@dataclass
class LavaNode:
    """One of our processes as Lava sees it.

    ``lava``: ``source`` (RingBuffer), ``dense``, ``conv``, ``lif`` (LIFReset), ``reshape`` (a port view) or
    ``alias`` (our pass-through sum); ``inputs``: the nodes whose ports connect to its input; ``delay``:
    how many steps Lava's value of this process lags ours (a synapse buffers one step);
    ``shape``: the Lava shape; ``order``: ours flat index per Lava flat element; ``host_bias``: what the host
    adds to a synapse's ``a_out`` (times 64) to get our integer when the synapse is read out."""

    name: str
    lava: str
    inputs: list[str]
    delay: int
    shape: tuple[int, ...]
    order: np.ndarray
    params: dict = field(default_factory=dict)
    synaptic: bool = False   # the value is Lava's a_out (our value = a_out * 64 + bias)


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
    if ((mant < lo) | (mant > hi)).any():
        raise LavaError(f"{where}: a bias of {int(np.abs(b).max())} is not a 13-bit mantissa << 0..7 (Lava's "
                        f"bias_mant, bias_exp); {EXPORT_HINT}")
    return mant, exp


def _refuse(p, why: str):
    raise LavaError(f"Lava cannot reproduce process {p.name!r} ({p.kind}) exactly: {why}")


def plan_graph(pg: ProcessGraph) -> dict[str, LavaNode]:
    """The Lava node of every process of ``pg``, in graph order; :class:`LavaError` for what does not map."""
    nodes: dict[str, LavaNode] = {}
    for p in pg:
        if p.kind not in LAVA_KINDS:
            _refuse(p, f"the Lava graph has no {p.kind} yet (kinds: {', '.join(LAVA_KINDS)})")
        ins = [nodes[s] for s in p.sources]
        if p.kind == "input":
            nodes[p.name] = LavaNode(p.name, "source", [], 0, lava_shape(p.out_shape), lava_order(p.out_shape))
        elif p.kind == "sum":
            if not p.attrs.alias or len(ins) != 1:
                _refuse(p, "a residual sum of several values (not built yet)")
            nodes[p.name] = LavaNode(p.name, "alias", [ins[0].name], ins[0].delay, ins[0].shape, ins[0].order,
                                     synaptic=ins[0].synaptic)
        elif p.kind == "flatten":
            src = ins[0]
            nodes[p.name] = LavaNode(p.name, "reshape", [src.name], src.delay, (int(np.prod(p.out_shape)),),
                                     src.order, synaptic=src.synaptic)
        elif p.kind == "synapse":
            nodes[p.name] = _synapse(p, pg, ins)
        elif p.kind == "sumpool":
            nodes[p.name] = _sumpool(p, pg, ins)
        elif p.kind == "neuron":
            nodes[p.name] = _neuron(p, pg, ins, nodes)
    return nodes


def _one_input(p, ins, synaptic_ok: bool = False) -> LavaNode:
    if len(ins) != 1:
        _refuse(p, "several sources summed into a synapse or pool (not built yet)")
    if ins[0].synaptic and not synaptic_ok:
        _refuse(p, "it reads a synapse's output directly (Lava's Dense / Conv send an activation, not a value "
                   "another synapse can read)")
    return ins[0]


def _synapse(p, pg, ins) -> LavaNode:
    a = p.attrs
    src = _one_input(p, ins)
    if a.shift < ACT_SHIFT:
        _refuse(p, f"shift {a.shift} < 6: Lava floors the accumulator at weight_exp {a.shift - ACT_SHIFT} "
                   f"before its 6-bit alignment, we round half up; {EXPORT_HINT}")
    w = np.asarray(p.params["weight"], np.int64)
    params = {"weight_exp": a.shift - ACT_SHIFT, "bias": np.asarray(p.params["bias"], np.int64),
              "graded": bool(a.graded_input) or not pg.spikes_only(p.sources), "out_shape": tuple(p.out_shape)}
    if a.op == "dense":
        # Lava's bit-accurate Dense drops the LSB of mixed-sign 8-bit weights (weightutils.truncate_weights:
        # Loihi's mixed-sign weights step by 2), so it holds 2 w and one less weight exponent; 2 acc is even,
        # so its right shift at weight_exp = -1 (our shift 6) is exact
        params["weight"] = 2 * w[:, src.order]      # Lava's flat input order
        params["weight_exp"] = a.shift - ACT_SHIFT - MIXED_SIGN_SHIFT
        return LavaNode(p.name, "dense", [src.name], src.delay + 1, lava_shape(p.out_shape),
                        lava_order(p.out_shape), params, synaptic=True)
    if len(src.shape) != 3:
        _refuse(p, "a conv reading a flat value")
    # Lava's Conv is a true convolution in XYC: weight [C_out, kx, ky, C_in/g], flipped in space
    params["weight"] = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1).copy()
    params.update(input_shape=src.shape, stride=tuple(a.stride[::-1]), padding=tuple(a.padding[::-1]),
                  dilation=tuple(a.dilation[::-1]), groups=int(a.groups))
    return LavaNode(p.name, "conv", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                    params, synaptic=True)


def _sumpool(p, pg, ins) -> LavaNode:
    a = p.attrs
    src = _one_input(p, ins)
    if len(src.shape) != 3 or not pg.spikes_only(p.sources):
        _refuse(p, "a sum pool of graded values (built only on spikes)")
    C = p.out_shape[0]
    kh, kw = a.kernel
    # a window sum is a depthwise conv with unit weights (Lava has no pooling process)
    params = {"weight": np.ones((C, kw, kh, 1), np.int64), "weight_exp": 0, "graded": False,
              "input_shape": src.shape, "stride": tuple(a.stride[::-1]), "padding": tuple(a.padding[::-1]),
              "dilation": (1, 1), "groups": C, "bias": np.zeros(C, np.int64), "out_shape": tuple(p.out_shape)}
    return LavaNode(p.name, "conv", [src.name], src.delay + 1, lava_shape(p.out_shape), lava_order(p.out_shape),
                    params, synaptic=False)


def _neuron(p, pg, ins, nodes) -> LavaNode:
    a = p.attrs
    if a.decay_bits != DECAY_BITS:
        _refuse(p, f"{a.decay_bits}-bit decays (Lava's LIF has {DECAY_BITS})")
    if not ins or not all(n.synaptic for n in ins):
        _refuse(p, "a neuron reading something other than synapses (graded sums are not built yet)")
    if len({n.delay for n in ins}) != 1:
        _refuse(p, "synapses of different depths into one neuron (delay alignment is not built yet)")
    bias = np.zeros(int(np.prod(p.out_shape)), np.int64)
    for n in ins:
        src = _base(nodes, n)
        b = src.params["bias"].reshape(-1, *([1] * (len(src.params["out_shape"]) - 1)))
        bias += np.broadcast_to(b, src.params["out_shape"]).reshape(-1)
    if bias.any() and a.du != a.unity:
        _refuse(p, "a bias on a neuron whose current persists (du < 4096: our bias enters u, Lava's v)")
    if a.du < DS_OFFSET:
        _refuse(p, "du = 0 (Lava's LIF decays u by at least 1/4096: ds_offset)")
    vth = np.unique(np.asarray(p.params["vth"], np.int64))
    if vth.size != 1:
        _refuse(p, "per-neuron thresholds (Lava's LIF has one vth)")
    vth = int(vth[0])
    if (vth - 1) % (1 << ACT_SHIFT) or (vth - 1) >> ACT_SHIFT > VTH_MAX:
        _refuse(p, f"threshold {vth} is not 64 k + 1 with k < 2**17 (Lava spikes on v > vth << 6, we on "
                   f"v >= vth); {EXPORT_HINT}")
    order = ins[0].order
    mant, exp = bias_format(bias[order], p.name)
    params = {"du": a.du - DS_OFFSET, "dv": a.dv, "vth": (vth - 1) >> ACT_SHIFT, "bias_mant": mant,
              "bias_exp": exp}
    return LavaNode(p.name, "lif", [n.name for n in ins], ins[0].delay, ins[0].shape, order, params)


def _base(nodes, n: LavaNode) -> LavaNode:
    """The synapse behind reshapes and aliases."""
    while n.lava in ("reshape", "alias"):
        n = nodes[n.inputs[0]]
    return n
