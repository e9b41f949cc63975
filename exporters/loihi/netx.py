"""``--target netx``: a lowered integer process graph as a lava-dl netx HDF5 network.

netx (``lava.lib.dl.netx.hdf5.Network``) describes a feed-forward chain of layers, each a
synapse (dense or conv) feeding CUBA neurons. It cannot say residual sums, pooling,
DSSA's dual-spike matmuls, branches or a graded (real-valued) synapse input after the
first layer; :func:`netx_chain` refuses those with one line naming the process.

netx's CUBA arithmetic (Lava's bit-accurate ``PyLifModelBitAcc``) is our neuron with a
fixed unit convention: the synaptic input and the threshold are MSB-aligned by 6 bits
(``u = a << 6``, spike when ``v > vThMant << 6``), the bias is ``bias_mant << 6``, and
netx stores no per-layer weight exponent. So one weight LSB is always 64 membrane LSBs.
Our lowering picks a free power-of-two ``shift`` per synapse instead;
:func:`to_netx_grid` re-expresses the graph on netx's grid (``shift = 6``, thresholds
``64 k + 1``, biases ``64 k``), keeping the 8-bit weight mantissas unchanged. The result is
still an ordinary :class:`ProcessGraph` with our semantics, so ``FakeQuantModel`` runs
exactly what the netx file says (see ``NETX.md`` for what differs in Lava's runtime).
"""

from __future__ import annotations

import copy
import dataclasses
import os

import h5py
import numpy as np

from hw_sim.arith import shift_round
from hw_sim.processes import PRODUCT_KINDS, ProcessGraph
from sresformer.errors import UserError
from sresformer.fileio import atomic_path

NETX_DECAY_BITS = 12   # netx's CUBA decays iDecay / vDecay are in 1/4096 (Lava PyLifModelBitAcc: 12-bit decays)
ACT_SHIFT = 6          # Loihi MSB-aligns synaptic input, threshold and (netx) bias by 6 bits
VTH_MANT_MAX = 2 ** 17 - 1   # vThMant: unsigned 17 bits (Lava PyLifModelBitAcc)
BIAS_MANT_MAX = 2 ** 12 - 1  # bias_mant: signed 13 bits
A_IN_MAX = 2 ** 15 - 1       # Lava's bit-accurate CUBA reads its synaptic input as int16 (a_in, precision 16)
FORMAT = "sresformer.netx"


class NetxError(UserError):
    """A process graph that netx cannot represent."""


def _why(p, producer_kind=None) -> str | None:
    """Why netx cannot represent process ``p`` (None when it can, as far as ``p`` alone goes)."""
    if p.kind == "sum" and len(p.sources) > 1:
        return "a residual sum of several values (netx cannot represent residuals)"
    if p.kind in PRODUCT_KINDS:
        return "an attention dual-spike matmul (netx cannot represent attention)"
    if p.kind == "gate":
        return "a random spike mask (netx has no spike gate)"
    if p.kind in ("sumpool", "maxpool"):
        return f"{'max-' if p.kind == 'maxpool' else ''}pooling (netx cannot represent pooling)"
    if len(p.sources) > 1:
        return "it sums several sources (netx layers are a single chain)"
    if p.kind == "synapse" and p.attrs.graded_input and producer_kind != "input":
        return "a synapse reading real values after the input layer (netx carries binary spikes between layers)"
    if p.kind == "neuron":
        if p.attrs.decay_bits != NETX_DECAY_BITS:
            return f"a neuron with {p.attrs.decay_bits}-bit decays (netx's are {NETX_DECAY_BITS}-bit)"
        if p.attrs.du != p.attrs.unity:
            return "a neuron with current decay du != 4096 (its bias would act on v, not u, in netx)"
        if p.attrs.reset != "zero":
            return f"a neuron with the {p.attrs.reset} reset (netx's CUBA neurons reset to 0)"
        if p.attrs.in_shift or any(k in p.params for k in ("bias", "v0")):
            return "a neuron with an input shift, a compartment bias or an initial membrane (netx writes none)"
        if np.unique(p.params["vth"]).size > 1:
            return "per-neuron thresholds (a netx CUBA layer has one vThMant)"
    return None


def netx_chain(pg: ProcessGraph) -> list[dict]:
    """The layers of ``pg`` as netx sees them, or a one-line :class:`NetxError`.

    Each layer is ``{"synapse": Process, "neuron": Process, "flatten": bool}``; the graph
    must be ``input -> [flatten] -> synapse -> neuron -> [flatten] -> synapse -> neuron ...``
    (single-source pass-through ``sum`` aliases are skipped; they cost nothing).
    """
    procs = list(pg)
    consumers: dict[str, list[str]] = {p.name: [] for p in procs}
    for p in procs:
        for s in list(p.sources) + list(p.operands):
            consumers[s].append(p.name)
    problems = []
    for p in procs:
        src = pg.processes[p.sources[0]].kind if p.sources else None
        why = _why(p, src)
        if why is None and len(consumers[p.name]) > 1:
            why = "its output feeds several processes (netx layers are a single chain)"
        if why:
            problems.append((p, why))
    if problems:
        p, why = problems[0]
        kinds = sorted({q.kind for q, _ in problems[1:]})
        more = f" (and {len(problems) - 1} more: {', '.join(kinds)})" if len(problems) > 1 else ""
        raise NetxError(f"netx cannot represent process {p.name!r} ({p.kind}): {why}{more}; "
                        "use --target lava (Lava processes) or --target loihi for this model")
    layers, pending, flatten = [], None, False
    for p in procs:
        if p.kind == "input" or (p.kind == "sum" and p.attrs.alias):
            continue
        if p.kind == "flatten":
            flatten = True
        elif p.kind == "synapse":
            if pending is not None:
                raise NetxError(f"netx cannot represent process {pending.name!r}: a synapse without a neuron "
                                "(netx layers are synapse + CUBA neuron pairs)")
            pending = p
        elif p.kind == "neuron":
            if pending is None:
                raise NetxError(f"netx cannot represent process {p.name!r}: a neuron without its own synapse")
            layers.append({"synapse": pending, "neuron": p, "flatten": flatten})
            pending, flatten = None, False
    if pending is not None or not layers or layers[-1]["neuron"].name != _unalias(pg, pg.output):
        last = pending.name if pending is not None else pg.output
        raise NetxError(f"netx cannot represent the output {last!r}: the graph must end in a spiking neuron "
                        "(netx layers are synapse + CUBA neuron pairs); add a LIF after the last layer")
    return layers


def _unalias(pg: ProcessGraph, name: str) -> str:
    p = pg.processes[name]
    while p.kind == "sum" and p.attrs.alias:
        p = pg.processes[p.sources[0]]
    return p.name


def _round_half_up(x: np.ndarray, k: int) -> np.ndarray:
    """``x / 2**k`` rounded half up (integers; ``k`` may be negative: an exact multiply)."""
    return shift_round(np.asarray(x, np.int64), -k)


def worst_input(syn) -> int:
    """The largest synaptic input (weight LSBs) one step can bring a neuron of ``syn`` from binary spikes."""
    w = syn.params["weight"].reshape(syn.params["weight"].shape[0], -1)
    return int(max(np.clip(w, 0, None).sum(1).max(), (-np.clip(w, None, 0)).sum(1).max()))


def _fit_input(out: ProcessGraph, syn) -> None:
    """Fewer input bits until the first layer's worst-case synaptic input fits ``A_IN_MAX``.

    ``|W x| <= sum|W| * max|x|``; each bit dropped coarsens the input unit by 2 (its
    exponent) and doubles the synapse's shift, so the graph's real values stay the same.
    """
    inp = out.processes[syn.sources[0]]
    w = np.abs(syn.params["weight"].reshape(syn.params["weight"].shape[0], -1)).sum(1).max()
    k = 0
    while inp.attrs.bits - k > 2 and w * (2 ** (inp.attrs.bits - k - 1) - 1) > A_IN_MAX:
        k += 1
    if w * (2 ** (inp.attrs.bits - k - 1) - 1) > A_IN_MAX:
        raise NetxError(f"netx cannot represent synapse {syn.name!r}: its weights sum to {int(w)} LSBs on one "
                        "neuron, too many for Lava's 16-bit synaptic input even with 2-bit input values")
    inp.attrs = dataclasses.replace(inp.attrs, bits=inp.attrs.bits - k)
    inp.exponent += k
    syn.attrs = dataclasses.replace(syn.attrs, shift=syn.attrs.shift + k)


def to_netx_grid(pg: ProcessGraph) -> ProcessGraph:
    """``pg`` re-expressed on netx's fixed grid (a copy); refuses what netx cannot represent.

    Per layer, the membrane unit becomes 1/64 of a weight LSB: ``shift = 6``, the bias
    rounds to whole weight LSBs (``bias_mant``), and the threshold rounds to whole weight
    LSBs as ``vth = 64 vThMant + 1`` (netx spikes on ``v > vThMant << 6``, we on ``v >= vth``).
    Weight mantissas, decays and the state width are unchanged; so is every spike wherever
    a threshold and bias are already multiples of the weight LSB and the leak truncates the
    same way (``dv`` 0 or 4096, or a membrane that stays a multiple of ``2**(shift-6)``).
    """
    layers = netx_chain(pg)
    out = copy.deepcopy(pg)
    first = out.processes[layers[0]["synapse"].name]
    if first.attrs.graded_input:
        _fit_input(out, first)
    for layer in layers:
        syn, neu = out.processes[layer["synapse"].name], out.processes[layer["neuron"].name]
        shift = int(syn.attrs.shift)
        bias_mant = _round_half_up(syn.params["bias"], shift)
        vth_mant = _round_half_up(neu.params["vth"].reshape(-1)[:1], shift)
        vth_mant = np.maximum(vth_mant, 0)
        if int(vth_mant[0]) > VTH_MANT_MAX:
            raise NetxError(f"netx cannot represent neuron {neu.name!r}: its threshold is {int(vth_mant[0])} "
                            f"weight LSBs, above vThMant's 17 bits")
        if np.abs(bias_mant).max(initial=0) > BIAS_MANT_MAX:
            raise NetxError(f"netx cannot represent synapse {syn.name!r}: a bias of "
                            f"{int(np.abs(bias_mant).max())} weight LSBs exceeds bias_mant's 13 bits")
        syn.params["bias"] = bias_mant * 2 ** ACT_SHIFT
        syn.attrs = dataclasses.replace(syn.attrs, shift=ACT_SHIFT)
        syn.exponent += shift - ACT_SHIFT  # one membrane LSB is now 2**(shift-6) old ones
        neu.params["vth"] = vth_mant * 2 ** ACT_SHIFT + 1
    return out


def _str(group, key: str, value: str) -> None:
    # netx's NetDict decodes ASCII bytes from a 1-element fixed-length string dataset (slayer's layout)
    group.create_dataset(key, (1,), f"S{len(value)}", [value.encode("ascii")])


def write_netx(pg: ProcessGraph, path: str | os.PathLike) -> dict:
    """Write ``pg`` (any lowered graph netx can represent) as a netx HDF5 file, atomically.

    The file holds :func:`to_netx_grid` of ``pg``: ``/layer/0`` is the input (shape only:
    the host sends graded spikes ``round(x / 2**input_exponent)``, ``input_bits`` signed), then per layer a
    ``dense`` or ``conv`` group (torch layouts: ``weight [out, in]`` or ``[out, in/groups, kh,
    kw]``, ``shape`` ``[C, H, W]``, ``stride``/``padding``/``dilation`` ``[y, x]``) with
    ``bias`` (bias_mant, weight LSBs) and ``neuron`` (``CUBA``: ``iDecay`` 4096, ``vDecay``
    = dv in 1/4096 per step, ``vThMant`` in weight LSBs, ``refDelay`` 1), and a ``flatten``
    group where a dense layer reads a conv layer. Returns a summary (layers, neurons).
    """
    grid = to_netx_grid(pg)
    layers = netx_chain(grid)
    inp = next(p for p in grid if p.kind == "input")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["sresformer.format"] = FORMAT
        f.attrs["sresformer.T"] = int(grid.T)
        f.attrs["sresformer.input_exponent"] = int(inp.exponent)
        f.attrs["sresformer.input_bits"] = int(inp.attrs.bits)
        f.attrs["sresformer.input_static"] = bool(grid.input_static)
        root = f.create_group("layer")
        g = root.create_group("0")
        _str(g, "type", "input")
        g.create_dataset("shape", data=np.asarray(grid.input_shape, np.int64))
        i = 1
        for layer in layers:
            syn, neu = layer["synapse"], layer["neuron"]
            if layer["flatten"] and syn.attrs.op == "dense" and i > 1:
                _str(root.create_group(str(i)), "type", "flatten")
                i += 1
            g = root.create_group(str(i))
            i += 1
            _str(g, "type", syn.attrs.op)
            g.create_dataset("shape", data=np.asarray(syn.out_shape, np.int64))
            g.create_dataset("weight", data=syn.params["weight"].astype(np.int64))
            g.create_dataset("bias", data=(syn.params["bias"] // 2 ** ACT_SHIFT).astype(np.int64))
            if syn.attrs.op == "conv":
                for key in ("stride", "padding", "dilation"):
                    g.create_dataset(key, data=np.asarray(getattr(syn.attrs, key), np.int64))
                g.create_dataset("groups", data=np.int64(syn.attrs.groups))
            n = g.create_group("neuron")
            _str(n, "type", "CUBA")
            n.create_dataset("iDecay", data=np.int64(1 << NETX_DECAY_BITS))   # u holds one step's input only
            n.create_dataset("vDecay", data=np.int64(neu.attrs.dv))
            n.create_dataset("vThMant", data=np.int64((int(neu.params["vth"][0]) - 1) // 2 ** ACT_SHIFT))
            n.create_dataset("refDelay", data=np.int64(1))
            n.create_dataset("gradedSpike", data=False)
    risky = [layer["synapse"].name for layer in layers[1 if layers[0]["synapse"].attrs.graded_input else 0:]
             if worst_input(layer["synapse"]) > A_IN_MAX]
    return {"layers": len(layers), "neurons": int(sum(np.prod(layer["neuron"].out_shape) for layer in layers)),
            "input_exponent": int(inp.exponent), "input_bits": int(inp.attrs.bits),
            # Lava run settings that reproduce our spikes (NETX.md): layer i's output lags i + 1 steps
            "lava_input_message_bits": int(inp.attrs.bits) if layers[0]["synapse"].attrs.graded_input else 0,
            "lava_reset_interval": int(grid.T), "lava_reset_offset": 1, "output_delay_steps": len(layers),
            "a_in_overflow_possible": risky}


def export_netx(source: str, out: str | os.PathLike, calib_data: str | None = None, T: int | None = None,
                **_unused) -> dict:
    """``--target netx``: checkpoint or NIR file -> calibrated integer graph -> netx HDF5 ``out``.

    Refuses (one line, nothing written) what netx cannot represent. The summary adds the
    accuracy of the float graph, of our integer graph and of its netx-grid version (what
    the file computes) on the calibration data's test split when it is labelled.
    """
    from exporters.quantize.fakequant import FakeQuantModel

    from .export import accuracy_report, lowered_graph

    low = lowered_graph(source, calib_data, T)  # 24-bit membrane: netx's CUBA
    info = write_netx(low.pg, out)
    summary = {"target": "netx", "out": str(out), **info, "T": low.T, "calibration": low.data_name}
    if low.labelled:
        ours = accuracy_report(low.fg, FakeQuantModel(low.pg), low.x_test, low.y_test, low.T)
        grid = accuracy_report(low.fg, FakeQuantModel(to_netx_grid(low.pg)), low.x_test, low.y_test, low.T)
        summary.update(accuracy_float=ours["accuracy_float"], accuracy_int=ours["accuracy_int"],
                       accuracy_netx=grid["accuracy_int"])
    return summary
