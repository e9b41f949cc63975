"""Our process graph and placement as a SANA-FE network on SANA-FE's own Loihi architecture.

``build_network(pg, mapping, frames)`` returns a ``sanafe.Network`` (built with SANA-FE's Python
API) in which every compartment of ours is one SANA-FE neuron on the same tile and core, with the
same integer weights and thresholds, and the architecture it targets: SANA-FE's bundled
``loihi.yaml`` (``sanafe.load_loihi()``), unmodified.

What SANA-FE's Loihi model computes exactly, and so what is accepted (anything else is refused with
:class:`SanafeExportError`, one line):

- an ``input`` of binary frames (0/1 per step; SANA-FE input neurons send spikes, not values), each
  input compartment on its own ``loihi_inputs[k]`` soma unit (SANA-FE's input model holds one spike
  train per unit, ``k`` the compartment's place in its core);
- ``synapse`` processes on binary spikes (no graded input: Loihi 1 has binary spikes only), shift 0
  and no bias, so a membrane adds plain integer weights;
- ``neuron`` processes that are integrate-and-fire: ``du = 2**decay_bits`` (``u = in``; SANA-FE's
  ``input_decay = 0``) and ``dv = 0`` (SANA-FE's ``leak_decay = 1``): our ``v >= vth`` is SANA-FE's
  ``v > vth - 1`` for integers (``loihi_threshold_and_reset`` in SANA-FE's ``src/models.cpp``), hard
  reset to 0 in both;
- ``flatten`` (an index map, no hardware).

Placement. Our core ``c`` sits in tile ``c // CORES_PER_TILE`` at offset ``c % CORES_PER_TILE``, our
tile ``t`` at mesh ``x = t % MESH_W, y = t // MESH_W`` (row-major). SANA-FE numbers its tiles
column-major: tile ``i`` at ``x = i // height, y = i % height`` (``Architecture::
calculate_tile_coordinates``, SANA-FE ``src/arch.cpp``), so our tile ``t`` is SANA-FE tile
``x * height + y``: the same mesh position, hence the same hops. SANA-FE's global core id is
``tile * 4 + offset``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_sim.processes import ProcessGraph
from sresformer.errors import UserError

# Loihi 1: 4 cores per tile on an 8 x 4 mesh of tiles (Davies et al., IEEE Micro 2018, Fig. 3; SANA-FE
# loihi.yaml: loihi_tile[0..31] of loihi_core[0..3], width 8, height 4)
CORES_PER_TILE = 4
MESH_W = 8
MESH_H = 4    # SANA-FE loihi.yaml: architecture.attributes.height (its tiles are numbered along it)
SYNAPSE_HW = {"conv": "loihi_conv_synapse", "dense": "loihi_dense_synapse"}   # loihi.yaml synapse units
LIF_HW = "loihi_lif"          # loihi.yaml soma unit: leaky_integrate_fire
INPUT_HW = "loihi_inputs"     # loihi.yaml soma units loihi_inputs[0..1023]: model input


# SANA-FE loihi.yaml: architecture.attributes.latency_sync, seconds per step by tiles in use (sync_model:
# table; SANA-FE takes the entry of the largest key <= the tiles mapped, LookupTable::get, src/utils.hpp)
SYNC_S = {1: 0.6e-6, 2: 1.0e-6, 4: 1.4e-6, 29: 1.8e-6}


def sync_s(tiles: int) -> float:
    """SANA-FE's time-step synchronisation (s) with ``tiles`` tiles in use (``SYNC_S``)."""
    return SYNC_S[max((k for k in SYNC_S if k <= tiles), default=min(SYNC_S))]


def tiles_used(mapping) -> int:
    """Tiles holding at least one of the mapping's cores (``CORES_PER_TILE`` cores per tile)."""
    groups = mapping.groups.values()
    return len({c // CORES_PER_TILE for g in groups for c in range(g.first_core, g.first_core + g.cores)})


class SanafeExportError(UserError):
    """A graph SANA-FE's Loihi model cannot express exactly (graded values, leaks, biases, shifts)."""


@dataclass
class Built:
    """A SANA-FE network ready to load, and where our values live in it."""

    net: object                      # sanafe.Network
    arch: object                     # sanafe.Architecture (loihi.yaml)
    groups: list[str]                # our neuron and input processes: SANA-FE groups of the same names
    edges: dict[str, int]            # our synapse process -> SANA-FE connections made (non-zero weights)
    lif_groups: list[str]            # the groups of LIF neurons (the others are input neurons)


def _sender(pg: ProcessGraph, name: str) -> str:
    """The neuron or input whose spikes ``name`` carries (through flattens)."""
    while pg.processes[name].kind == "flatten":
        name = pg.processes[name].sources[0]
    return name


def check_expressible(pg: ProcessGraph) -> None:
    """Raise :class:`SanafeExportError` naming the first process SANA-FE's Loihi model cannot run exactly."""
    for p in pg:
        if p.kind == "synapse":
            src = pg.processes[_sender(pg, p.sources[0])]
            if p.attrs.graded_input or src.kind not in ("neuron", "input") or len(p.sources) != 1:
                raise SanafeExportError(f"SANA-FE's Loihi model has binary spikes only: synapse {p.name!r} reads "
                                        "graded values; export a graph whose synapses read neuron spikes")
            if p.attrs.shift != 0 or np.any(p.params["bias"] != 0):
                raise SanafeExportError(f"synapse {p.name!r} has a shift or a bias; the SANA-FE export takes "
                                        "plain integer weights (shift 0, bias 0)")
        elif p.kind == "neuron":
            if p.attrs.du != p.attrs.unity or p.attrs.dv != 0:
                raise SanafeExportError(f"neuron {p.name!r} has du = {p.attrs.du}, dv = {p.attrs.dv}; the SANA-FE "
                                        f"export takes integrate-and-fire neurons (du = {p.attrs.unity}, dv = 0), "
                                        "whose integers SANA-FE's float64 model reproduces exactly")
            if p.attrs.reset != "zero" or p.attrs.in_shift or any(k in p.params for k in ("bias", "v0")):
                raise SanafeExportError(f"neuron {p.name!r} resets by subtraction or has an input shift, a bias or "
                                        "an initial membrane; SANA-FE takes a hard reset to 0 from rest")
        elif p.kind not in ("input", "flatten"):
            raise SanafeExportError(f"process {p.name!r} is a {p.kind}; the SANA-FE export takes input, synapse, "
                                    "neuron and flatten processes only")
        elif p.kind == "input" and p.static:
            raise SanafeExportError("the SANA-FE export needs a frames input (one spike frame per step)")


def check_binary(frames: np.ndarray) -> None:
    """Raise :class:`SanafeExportError` unless every value of ``frames`` is 0 or 1 (SANA-FE input spikes)."""
    bad = ~np.isin(frames, (0.0, 1.0))
    if bad.any():
        raise SanafeExportError(f"SANA-FE input neurons send binary spikes: the frames hold the graded value "
                                f"{float(frames[bad].flat[0]):g}; give 0/1 frames")


def sanafe_core(core: int, height: int = MESH_H) -> int:
    """SANA-FE's global core id of our core ``core`` (module docstring: same tile position and offset)."""
    tile, offset = divmod(int(core), CORES_PER_TILE)
    x, y = tile % MESH_W, tile // MESH_W
    return (x * height + y) * CORES_PER_TILE + offset


def conv_edges(weight: np.ndarray, in_shape, out_shape, stride, padding, dilation, groups):
    """``(src, dst, w)`` flat C-order indices and weights of every non-zero tap of a 2-D cross-correlation
    (torch ``conv2d``'s), ``weight`` ``[Co, Ci / groups, kh, kw]``."""
    ci, h, w = in_shape
    co, ho, wo = out_shape
    cig, cog = ci // groups, co // groups
    o, i, ky, kx, oy, ox = np.meshgrid(np.arange(co), np.arange(cig), np.arange(weight.shape[2]),
                                       np.arange(weight.shape[3]), np.arange(ho), np.arange(wo), indexing="ij")
    iy = oy * stride[0] - padding[0] + ky * dilation[0]
    ix = ox * stride[1] - padding[1] + kx * dilation[1]
    c_in = (o // cog) * cig + i
    wt = weight[o, i, ky, kx]
    keep = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (wt != 0)
    src = (c_in * h + iy) * w + ix
    dst = (o * ho + oy) * wo + ox
    return src[keep], dst[keep], wt[keep]


def dense_edges(weight: np.ndarray):
    """``(src, dst, w)`` of every non-zero weight of a dense synapse ``weight`` ``[out, in]``."""
    dst, src = np.nonzero(weight)
    return src, dst, weight[dst, src]


def thresholds(p) -> np.ndarray:
    """Per-compartment integer thresholds of neuron ``p`` (flat C order) from its scalar, per-channel or
    per-compartment ``vth``."""
    vth = np.asarray(p.params["vth"]).reshape(-1)
    n = int(np.prod(p.out_shape))
    if vth.size == n:
        return vth
    if vth.size == 1:
        return np.full(n, vth[0])
    return np.repeat(vth, n // vth.size)   # one per channel


def _edges(p, pg: ProcessGraph):
    if p.attrs.op == "dense":
        return dense_edges(np.asarray(p.params["weight"]))
    src_shape = pg.processes[_sender(pg, p.sources[0])].out_shape
    a = p.attrs
    return conv_edges(np.asarray(p.params["weight"]), src_shape, p.out_shape, a.stride, a.padding, a.dilation,
                      a.groups)


def _readers(pg: ProcessGraph) -> dict[str, list[str]]:
    """Process -> the processes that read it."""
    out: dict[str, list[str]] = {p.name: [] for p in pg}
    for p in pg:
        for src in p.sources:
            out[src].append(p.name)
    return out


def _check_wiring(pg: ProcessGraph, mapping, frames: np.ndarray) -> None:
    """One synapse into each neuron, each synapse read by one neuron (SANA-FE prices a synapse by its
    post-neuron's one synapse unit), one chip, frames of the input's shape."""
    readers = _readers(pg)
    for p in pg:
        if p.kind == "synapse" and [pg.processes[r].kind for r in readers[p.name]] != ["neuron"]:
            raise SanafeExportError(f"synapse {p.name!r} must be read by one neuron for the SANA-FE export")
        if p.kind == "neuron" and (len(p.sources) != 1 or pg.processes[p.sources[0]].kind != "synapse"):
            raise SanafeExportError(f"neuron {p.name!r} must read one synapse for the SANA-FE export")
    if mapping.cores > MESH_W * MESH_H * CORES_PER_TILE:
        raise SanafeExportError(f"the mapping takes {mapping.cores} cores; SANA-FE's loihi.yaml is one chip of "
                                f"{MESH_W * MESH_H * CORES_PER_TILE}")
    if tuple(frames.shape[1:]) != tuple(pg.input_shape):
        raise SanafeExportError(f"frames of shape {tuple(frames.shape)}; the graph takes [T, "
                                f"{', '.join(map(str, pg.input_shape))}]")


def _add_input(net, p, g, frames: np.ndarray, extra_steps: int):
    """The input neurons, each on its own input soma unit of its core, with its spike train."""
    n = int(np.prod(p.out_shape))
    grp = net.create_neuron_group(p.name, n, soma_hw_name=f"{INPUT_HW}[0]", log_spikes=True)
    trains = frames.reshape(frames.shape[0], n).T.astype(bool)
    for k, neuron in enumerate(grp):
        neuron.set_attributes(soma_hw_name=f"{INPUT_HW}[{k % g.chunk}]",
                              model_attributes={"spikes": trains[k].tolist() + [False] * extra_steps})
    return grp


def _add_lif(net, p, synapse_hw: str):
    """The IF neurons of ``p`` on SANA-FE's Loihi LIF soma (no leak, no current memory, hard reset)."""
    grp = net.create_neuron_group(p.name, int(np.prod(p.out_shape)), soma_hw_name=LIF_HW, log_spikes=True,
                                  default_synapse_hw_name=synapse_hw,
                                  model_attributes={"leak_decay": 1.0, "input_decay": 0.0, "reset_mode": "hard",
                                                    "reset": 0.0})
    for neuron, vth in zip(grp, thresholds(p), strict=True):
        # ours fires on v >= vth, SANA-FE on v > threshold: for integers, threshold = vth - 1
        neuron.set_attributes(model_attributes={"threshold": float(vth - 1)})
    return grp


def build_network(pg: ProcessGraph, mapping, frames: np.ndarray, extra_steps: int = 0) -> Built:
    """The SANA-FE network of ``pg`` placed as ``mapping`` places it, driven by ``frames`` ``[T, *input]``
    (0/1), each input neuron's spike train followed by ``extra_steps`` silent steps."""
    import sanafe

    frames = np.asarray(frames)
    check_expressible(pg)
    _check_wiring(pg, mapping, frames)
    check_binary(frames)
    arch = sanafe.load_loihi()
    cores = arch.cores()
    net = sanafe.Network()
    readers = _readers(pg)
    for p in pg:
        if p.kind not in ("input", "neuron"):
            continue
        g = mapping.groups[mapping.placement[p.name]]
        grp = (_add_input(net, p, g, frames, extra_steps) if p.kind == "input"
               else _add_lif(net, p, SYNAPSE_HW[pg.processes[p.sources[0]].attrs.op]))
        for k, neuron in enumerate(grp):
            neuron.map_to_core(cores[sanafe_core(g.first_core + k // g.chunk)])
    edges: dict[str, int] = {}
    for p in pg:
        if p.kind == "synapse":
            src, dst, w = _edges(p, pg)
            net[_sender(pg, p.sources[0])].connect_neurons_sparse(
                net[readers[p.name][0]], {"weight": [float(v) for v in w]}, list(zip(src.tolist(), dst.tolist(),
                                                                                     strict=True)))
            edges[p.name] = len(w)
    return Built(net, arch, [p.name for p in pg if p.kind in ("input", "neuron")], edges,
                 [p.name for p in pg if p.kind == "neuron"])
