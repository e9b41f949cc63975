"""Place a process graph on neuromorphic cores and chips (described as data in ``hw_sim/profiles``).

What takes cores:

- a *compartment group* for every process whose values live on the chip: neurons, graded
  integrators (residual ``sum`` points, pools, a synapse read by several processes, the
  readout). A synapse or dual-spike matmul read by exactly one such group is co-located
  with it: its weights (or its dynamic operand) sit in that group's cores and its output is
  the compartments' input current, so it sends no messages of its own;
- a random spike gate (``gate``) lives with the neurons it gates: their core draws the
  gate and sends only the spikes that pass;
- static processes (the input and a static image's stem) run once per inference on the
  chip's embedded processors, not on neuro cores; so do, at every step, the processes of
  ``HOST_KINDS`` (the MA attention gates: data-dependent multiplications that a neuro core
  cannot do). A synapse whose only reader runs there keeps a compartment group of its own
  (it integrates the current and sends the graded value to the embedded processor).

Each group is cut into consecutive chunks (compartments in C, H, W order), one per core,
each within the chip's limits as :mod:`hw_sim.resources` charges them (the one memory budget
shared by neuron state, synapses in their encodings, dynamic operands and input axons; the
distinct input axons; the compartments); a map is cut the way Intel's compiler cuts it (a
chunk of whole power-of-two column slabs). Then every core's distinct destination cores
are counted from the real connectivity and held to ``max_fan_out``. On a chip without graded
spikes (``graded_spike_bits = 0``) a graded value that crosses cores is refused.

Objectives: ``cores`` takes the fewest cores; ``latency`` then splits the group whose core is
slowest (stored synapses x ``synop_ns`` + compartments x ``neuron_update_active_ns`` of the
chip's energy profile: every input firing) while that time improves, within the chips the
``cores`` mapping needs (or ``max_chips``). Cores fill chips in order; chips sit on a 2-D grid
``system_cols`` chips wide; each chip is a mesh ``mesh_cols`` tiles wide of ``cores_per_tile`` cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sresformer.errors import UserError
from sresformer.progress import track

from .chips import Chip, load_energy_profile
from .processes import HOST_KINDS, PRODUCT_KINDS, Process, ProcessGraph
from .prodneuron import ProdGeometry, attention_lowering, attention_of
from .products import form_dims
from .resources import GroupCost

if TYPE_CHECKING:
    import torch

#: the columns of :meth:`Mapping.route`, per message: inside the sender's tile (no hop), to another tile,
#: east-west mesh hops, north-south mesh hops, chip-to-chip link crossings
ROUTE = ("in_tile", "other", "hops_ew", "hops_ns", "chip_links")


# the fan-out count pushes one mask per core through the connectivity: seconds up to a few thousand
# cores (nano's 106: well under 1 s), many minutes at Ti's tens of thousands
FAN_OUT_COUNTED_CORES = 4096


def add_routes(cc: dict[str, torch.Tensor], where, per: torch.Tensor) -> None:
    """Add messages with their routes (``per[..., ROUTE]``, :meth:`hw_sim.mapping.Mapping.route`) into the
    per-core counts ``cc`` at index ``where``: ``msgs`` every delivery, and each route column its own key."""
    cc["msgs"][where] += per[..., 0] + per[..., 1]
    for i, key in enumerate(ROUTE):
        if key != "other":
            cc[key][where] += per[..., i]


OBJECTIVES = ("cores", "latency")


class MappingError(UserError):
    """The graph does not fit the chip: a layer breaks a hard limit, or too many chips are needed."""


@dataclass
class Group:
    """Compartments of one process and the co-located processes that feed them (per-core figures: the fullest core)."""

    name: str
    size: int
    members: list[str]                  # the process itself plus co-located synapses / matmuls
    synapses_per_compartment: float     # average stored synapses per compartment
    operand_row_entries: int = 0        # dynamic-operand entries one output row (one token / channel) reads
    row_len: int = 1                    # compartments per output row (H * W)
    chunk: int = 0                      # compartments per core
    first_core: int = 0
    cores: int = 0
    words_per_core: int = 0             # memory words (neuron state + synapses + operands + axons)
    axons_per_core: int = 0             # distinct input axons
    synapses_per_core: int = 0          # stored synapses (ops per step when every input fires)
    fan_out_per_core: int = 0           # distinct destination cores


@dataclass
class Mapping:
    """Where every compartment group lives; ``core_of(name, index)`` gives an element's core."""

    chip: dict
    groups: dict[str, Group]
    host: list[str]
    placement: dict[str, str] = field(default_factory=dict)  # process -> group it belongs to
    objective: str = "cores"
    step_ns: float = 0.0                # predicted critical-core time of one step (every input firing)
    attention: str = ""                 # how products run: prodneuron / operand-memory / none ("": not set)
    _pos: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        # the chip dict also comes back from an artifact file: the numbers this class divides
        # by must be positive integers, or `chips` / `core_xy` would divide by zero
        for key in ("cores_per_chip", "mesh_cols", "system_cols", "cores_per_tile"):
            v = self.chip.get(key, 1 if key == "cores_per_tile" else None) if isinstance(self.chip, dict) else None
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MappingError(f"the mapping's chip has {key} = {v!r}; it must be an integer >= 1")

    @property
    def cores(self) -> int:
        """Neuro cores used."""
        return sum(g.cores for g in self.groups.values())

    @property
    def chips(self) -> int:
        """Chips needed."""
        return max(1, math.ceil(self.cores / self.chip["cores_per_chip"]))

    def core_of(self, group: str, index: np.ndarray) -> np.ndarray:
        """Global core id of compartments ``index`` (flat C, H, W order) of ``group``."""
        g = self.groups[group]
        return g.first_core + np.asarray(index) // g.chunk

    def chip_of(self, core) -> np.ndarray:
        """The chip of global core ids (cores fill chips in order)."""
        return np.asarray(core) // self.chip["cores_per_chip"]

    def chip_xy(self, chip) -> tuple[np.ndarray, np.ndarray]:
        """Grid coordinates of chips: row-major on a grid ``system_cols`` chips wide."""
        return np.divmod(np.asarray(chip), self.chip["system_cols"])[::-1]

    def core_xy(self, core) -> tuple[np.ndarray, np.ndarray]:
        """System-wide mesh coordinates of global core ids: the position of the core's tile. Each chip is a
        mesh ``mesh_cols`` tiles wide of ``cores_per_tile`` cores each (tiles numbered row-major; older
        artifacts carry no ``cores_per_tile``: one core a tile), chips side by side on their grid."""
        per_chip, cols = self.chip["cores_per_chip"], self.chip["mesh_cols"]
        per_tile = self.chip.get("cores_per_tile", 1)
        rows = math.ceil(math.ceil(per_chip / per_tile) / cols)
        chip, local = np.divmod(np.asarray(core), per_chip)
        tile = local // per_tile
        cx, cy = self.chip_xy(chip)
        return cx * cols + tile % cols, cy * rows + tile // cols

    def positions(self, core) -> np.ndarray:
        """``[4, ...]``: tile x, tile y, chip x, chip y of global core ids (:meth:`core_xy`, :meth:`chip_xy`),
        looked up in a table of the cores so far (the set-up routes millions of messages)."""
        core = np.asarray(core, dtype=np.int64)
        top = int(core.max(initial=-1)) + 1
        if core.size and int(core.min()) < 0:
            raise ValueError("a negative core id")
        if self._pos is None or self._pos.shape[1] < top:
            ids = np.arange(max(top, self.cores, 1))
            # int32: half the memory traffic of int64 on the set-up's millions of lookups (coordinates of a
            # grid of tiles are far below 2**31)
            self._pos = np.stack([*self.core_xy(ids), *self.chip_xy(self.chip_of(ids))]).astype(np.int32)
        return np.take(self._pos, core, axis=1)   # (np.take: a quarter of fancy indexing's time here)

    def hops(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """East-west and north-south on-chip mesh hops from cores ``a`` to cores ``b`` (dimension-order
        routing on the system's grid of tiles; a step across a chip boundary is a chip-to-chip link,
        :meth:`chip_crossings`, not a hop)."""
        return _hops(self.positions(a), self.positions(b))

    def chip_crossings(self, a, b) -> np.ndarray:
        """Chip-to-chip links a message from core ``a`` to core ``b`` crosses (Manhattan on the chip grid)."""
        return _chip_links(self.positions(a), self.positions(b))

    def route(self, a, b) -> np.ndarray:
        """Per message from cores ``a`` to cores ``b``: ``[n, 5]`` float64 columns :data:`ROUTE` (delivered
        inside the sender's tile, to another tile, east-west hops, north-south hops, chip-to-chip links)."""
        return np.stack(self.route_columns(a, b), -1).astype(np.float64).reshape(-1, len(ROUTE))

    def route_columns(self, a, b) -> tuple[np.ndarray, ...]:
        """:meth:`route`'s columns, one array each (the set-up sums each over millions of messages)."""
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        pa, pb = self.positions(a), self.positions(b)
        same = (pa[0] == pb[0]) & (pa[1] == pb[1])
        return (same, ~same, *_hops(pa, pb), _chip_links(pa, pb))


def _hops(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East-west, north-south mesh hops between :meth:`Mapping.positions` ``pa`` and ``pb``: the tile
    distance less the steps that cross a chip boundary (chip links)."""
    return np.abs(pa[0] - pb[0]) - np.abs(pa[2] - pb[2]), np.abs(pa[1] - pb[1]) - np.abs(pa[3] - pb[3])


def _chip_links(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """Chip-to-chip links between positions ``pa`` and ``pb``: Manhattan distance on the chip grid."""
    return np.abs(pa[2] - pb[2]) + np.abs(pa[3] - pb[3])


def _synapse_fan_in(p: Process) -> float:
    """Average non-zero weights per output compartment."""
    w = p.params["weight"]
    return float((w != 0).sum()) / w.shape[0]


def _operand_row_entries(p: Process, pg: ProcessGraph) -> int:
    """Dynamic-operand entries one output row of a dual-spike product reads: its row of ``L`` (the
    contraction length) when ``dyn`` is the left operand, else all of the head's ``R``
    (DSSA: a column y1[h, :, n] (d values) per output row for y1T@s, a row y2[h, i, :] for y2@a)."""
    y, s = (pg.processes[o] for o in p.operands)
    dims = form_dims(p.attrs.form, p.attrs.heads, y.out_shape, s.out_shape)
    return dims.k if dims.form.spk_side == "right" else dims.k * dims.right[1]


def plan_groups(pg: ProcessGraph) -> tuple[dict[str, Group], list[str], dict[str, str]]:
    """Compartment groups, host (embedded-processor) processes and the placement of every process."""
    consumers: dict[str, list[str]] = {p.name: [] for p in pg}
    for p in pg:
        for s in list(p.sources) + list(p.operands):
            consumers[s].append(p.name)

    def through_alias(name):
        """Real readers of a value, looking through pass-through sums and flattens."""
        out = []
        for c in consumers[name]:
            cp = pg.processes[c]
            if (cp.kind == "sum" and cp.attrs.alias) or cp.kind == "flatten":
                out += through_alias(c)
            else:
                out.append(c)
        return out

    host = [p.name for p in pg if p.static or p.kind in HOST_KINDS]
    placement = {h: "host" for h in host}
    groups: dict[str, Group] = {}
    colocated: dict[str, str] = {}
    for p in pg:
        if p.name in placement or (p.kind == "sum" and p.attrs.alias) or p.kind in ("flatten", "gate"):
            continue
        readers = through_alias(p.name)
        # a product read as another product's operand (Spikformer's K V^T, Q^T K) is no input
        # current: it keeps compartments of its own (graded integrators holding the operand)
        operand = any(p.name in pg.processes[c].operands for c in consumers[p.name]) \
            or any(pg.processes[r].kind in PRODUCT_KINDS for r in readers)   # an operand through a flatten
        if p.kind in ("synapse", "dsmm") and len(readers) == 1 and p.name != pg.output and not operand \
                and readers[0] not in placement:
            colocated[p.name] = readers[0]
            continue
        if p.kind == "prodmm":   # its product compartments, two synapses each (hw_sim/prodneuron.py)
            groups[p.name] = Group(p.name, ProdGeometry(p, pg).size, [p.name], 2.0)
            continue
        groups[p.name] = Group(p.name, int(np.prod(p.out_shape)), [p.name], 0.0)

    def home(name):
        while name in colocated:
            name = colocated[name]
        return name

    for name, target in colocated.items():
        groups[home(target)].members.append(name)
    for g in groups.values():
        for m in g.members:
            p = pg.processes[m]
            placement[m] = g.name
            if p.kind == "synapse":
                g.synapses_per_compartment += _synapse_fan_in(p)
            elif p.kind == "dsmm":   # a core holds only the operand rows its compartments read
                g.operand_row_entries += _operand_row_entries(p, pg)
                g.row_len = int(np.prod(p.out_shape[1:]))
    for p in pg:  # aliases, flattens and spike gates live where their source lives
        if p.name not in placement:
            src = p.sources[0]
            placement[p.name] = placement.get(src, "host")
    return groups, host, placement


def group_cost(pg: ProcessGraph, g: Group, chip: Chip, host) -> GroupCost:
    """The resource model of group ``g`` on ``chip``."""
    return GroupCost(pg, g.members, g.size, chip, set(host))


def _refuse_graded(pg: ProcessGraph, groups: dict[str, Group], costs: dict[str, GroupCost], chip: Chip) -> None:
    """On a chip with binary spikes only, no graded value may travel into a core."""
    if chip.graded_spike_bits:
        return
    for g in groups.values():
        for kind, p, src in costs[g.name].terms:
            names = p.operands if kind in ("operand", "prodneuron") else [src]
            for s in names:
                real = costs[g.name].real_source(s)
                if kind != "host" and not pg.spikes_only([real]):
                    raise MappingError(f"{chip.name} has binary spikes only: {p.name!r} reads the graded values of "
                                       f"{real!r}; use a chip with graded spikes (loihi2)")


def _settle(g: Group, cost: GroupCost, chip: Chip, chunk: int) -> None:
    """Set ``g``'s chunk and its fullest core's figures."""
    c = cost.costs(chunk)
    g.chunk, g.cores = chunk, math.ceil(g.size / chunk)
    g.words_per_core = int(c.words(chip).max())
    g.axons_per_core = int(c.axons_in.max())
    g.synapses_per_core = int(c.synapses.max())


def _first_fit(g: Group, cost: GroupCost, chip: Chip, shape) -> int:
    chunk = cost.largest_chunk(shape)
    if chunk:
        return chunk
    c = cost.costs(1)
    words, axons = int(c.words(chip).max()), int(c.axons_in.max())
    if axons > chip.max_fan_in:
        raise MappingError(f"layer {g.name!r}: one compartment has {axons} distinct input axons, over the "
                           f"{chip.max_fan_in}-axon core limit of {chip.name}")
    raise MappingError(f"layer {g.name!r}: one compartment needs {words} words of core memory, over the "
                       f"{chip.memory_words}-word core limit of {chip.name}")


def core_time_ns(g: Group, cost: GroupCost, energy, chunk: int | None = None) -> float:
    """Predicted time of the slowest core of ``g`` in one step (ns): stored synapses x ``synop_ns``
    + compartments x ``neuron_update_active_ns``, every input firing."""
    c = cost.costs(chunk or g.chunk)
    return float((c.synapses * energy.synop_ns + c.neurons * energy.neuron_update_active_ns).max())


def _spread(groups, costs, chip: Chip, energy, budget_cores: int) -> None:
    """The latency objective: split the slowest group while its core time improves and cores remain."""
    times = {n: core_time_ns(g, costs[n], energy) for n, g in groups.items()}
    used = sum(g.cores for g in groups.values())
    while times:
        name = max(times, key=times.get)
        g = groups[name]
        smaller = math.ceil(g.chunk / 2)
        extra = math.ceil(g.size / smaller) - g.cores
        if smaller == g.chunk or used + extra > budget_cores or not costs[name].fits(smaller):
            return
        t = core_time_ns(g, costs[name], energy, smaller)
        if t >= times[name]:
            return
        _settle(g, costs[name], chip, smaller)
        used += extra
        times[name] = t


def map_graph(pg: ProcessGraph, chip, max_chips: int | None = None, objective: str = "cores",
              fan_out: bool = True) -> Mapping:
    """Cut every group into per-core chunks and lay the cores out; ``MappingError`` when it cannot fit.

    ``fan_out=False`` leaves the fan-out uncounted (0) and unchecked: counting it pushes a mask
    through the connectivity for every core, minutes for a model of tens of thousands of cores.
    It is left uncounted too on more than ``FAN_OUT_COUNTED_CORES`` cores where the chip's limit cannot
    bind (it is at least the cores in use minus one: a chip file that lifts it).
    """
    # every number below is divided by or searched over: a Chip is checked when it is built,
    # but one altered after (object.__setattr__) or a look-alike object is checked here too,
    # so a bad value is a ProfileError, never an endless search or a division by zero
    if isinstance(chip, Chip):
        chip = chip.validate()
    else:
        chip = Chip(**{f: getattr(chip, f) for f in Chip.__dataclass_fields__})
    if objective not in OBJECTIVES:
        raise MappingError(f"unknown mapping objective {objective!r}; choose {' or '.join(OBJECTIVES)}")
    if attention_of(pg) == "prodneuron" and attention_lowering(chip) == "none":
        raise MappingError(f"{chip.name} has no product neurons or graded spikes: the prodmm products cannot run "
                           "on it; use loihi2")
    groups, host, placement = plan_groups(pg)
    costs = {n: group_cost(pg, g, chip, host) for n, g in track(groups.items(), "map", unit="group")}
    _refuse_graded(pg, groups, costs, chip)
    for name, g in groups.items():
        shape = (g.size,) if pg.processes[name].kind == "prodmm" else pg.processes[name].out_shape
        _settle(g, costs[name], chip, _first_fit(g, costs[name], chip, shape))
    cores = sum(g.cores for g in groups.values())
    chips = max(1, math.ceil(cores / chip.cores_per_chip))
    limit = max_chips if max_chips is not None else chip.max_system_chips or None
    if limit is not None and chips > limit:
        biggest = max(groups.values(), key=lambda g: g.cores)
        why = (f"--max-chips is {max_chips}" if max_chips is not None else
               f"the largest {chip.name} system holds {chip.max_system_chips} (the chip file's max_system_chips)")
        raise MappingError(f"the model needs {chips} {chip.name} chips ({cores} cores) but {why}; the largest "
                           f"layer is {biggest.name!r} with {biggest.cores} cores")
    energy = load_energy_profile(chip.energy_profile)
    if objective == "latency":
        _spread(groups, costs, chip, energy, (max_chips or chips) * chip.cores_per_chip)
    core = 0
    for g in groups.values():
        g.first_core = core
        core += g.cores
    from .fanout import fan_out_per_core  # it pushes masks through the connectivity (which imports Mapping)

    # a core sends to at most every other core: past FAN_OUT_COUNTED_CORES a limit that high cannot bind
    # (a chip file that lifts it), and the count, which then checks nothing, would take minutes
    fan_out = fan_out and (chip.max_fan_out < cores - 1 or cores <= FAN_OUT_COUNTED_CORES)
    for name, fan in (fan_out_per_core(pg, groups, placement) if fan_out else {}).items():
        g = groups[name]
        g.fan_out_per_core = int(fan.max(initial=0))
        if g.fan_out_per_core > chip.max_fan_out:
            # the cut is ours (consecutive compartments per core), not the chip's: say so, and what helps
            raise MappingError(f"layer {name!r}: a core sends to {g.fan_out_per_core} distinct cores, over the "
                               f"{chip.max_fan_out}-core fan-out limit of {chip.name}, as this mapping cuts layers "
                               f"(consecutive compartments per core), which takes {cores} cores on {chips} chips; "
                               "'python bench/bench_mapping.py' gives the counts without this check")
    step = max((core_time_ns(g, costs[n], energy) for n, g in groups.items()), default=0.0)
    return Mapping(dict(chip.__dict__), groups, host, placement, objective, step + energy.barrier_ns,
                   attention_of(pg))
