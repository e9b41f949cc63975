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

Each group is cut into consecutive chunks (compartments in C, H, W order) that fit one
core: at most ``neurons_per_core`` compartments, ``synapse_memory_bits`` of weights (every
synapse stored, ``weight_bits`` each; a dual-spike matmul stores its dynamic operand at
24 bits per entry), at most ``max_fan_in`` distinct inputs. One chunk per core; cores
fill chips in order; a chip is an ``mesh_cols``-wide grid of cores. A dual-spike matmul's
core holds only the operand rows its compartments read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sresformer.errors import UserError

from .chips import Chip

from .processes import HOST_KINDS, Process, ProcessGraph
from .products import form_dims


class MappingError(UserError):
    """The graph does not fit the chip: a layer breaks a hard limit, or too many chips are needed."""


@dataclass
class Group:
    """Compartments of one process and the co-located processes that feed them."""

    name: str
    size: int
    members: list[str]                  # the process itself plus co-located synapses / matmuls
    synapses_per_compartment: float     # average stored synapses per compartment
    operand_bits_per_core: int          # dynamic-operand memory the fullest core of this group holds
    operand_row_bits: int = 0           # dynamic-operand bits one output row (one token / channel) needs
    row_len: int = 1                    # compartments per output row (H * W)
    chunk: int = 0                      # compartments per core
    first_core: int = 0
    cores: int = 0


@dataclass
class Mapping:
    """Where every compartment group lives; ``core_of(name, index)`` gives an element's core."""

    chip: dict
    groups: dict[str, Group]
    host: list[str]
    placement: dict[str, str] = field(default_factory=dict)  # process -> group it belongs to

    def __post_init__(self):
        # the chip dict also comes back from an artifact file: the two numbers this class
        # divides by must be positive integers, or `chips` / `core_xy` would divide by zero
        for key in ("cores_per_chip", "mesh_cols"):
            v = self.chip.get(key) if isinstance(self.chip, dict) else None
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

    def core_xy(self, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mesh coordinates of global core ids (chips are laid side by side along x)."""
        per_chip = self.chip["cores_per_chip"]
        cols = self.chip["mesh_cols"]
        rows = math.ceil(per_chip / cols)
        chip, local = np.divmod(np.asarray(core), per_chip)
        return chip * cols + local % cols, local // cols + 0 * rows


OPERAND_BITS = 24  # a graded dynamic-operand entry is held at the 24-bit state width


def _operand_bits(g: Group, chunk: int) -> int:
    """Dynamic-operand memory of a core holding ``chunk`` compartments (rows it may straddle)."""
    if not g.operand_row_bits:
        return 0
    rows = min(math.ceil(chunk / g.row_len) + 1, math.ceil(g.size / g.row_len))
    return rows * g.operand_row_bits


def _synapse_fan_in(p: Process) -> float:
    """Average stored synapses per output compartment (non-zero weights only, borders exact)."""
    w = p.params["weight"]
    if p.attrs.op == "dense":
        return float((w != 0).sum()) / w.shape[0]
    # per output channel: non-zero taps; borders: average fraction of taps inside the map
    taps = float((w != 0).sum()) / w.shape[0]
    return taps  # an upper bound per compartment (padding taps are not stored on a chip)


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
        operand = any(p.name in pg.processes[c].operands for c in consumers[p.name])
        if p.kind in ("synapse", "dsmm") and len(readers) == 1 and p.name != pg.output and not operand \
                and readers[0] not in placement:
            colocated[p.name] = readers[0]
            continue
        groups[p.name] = Group(p.name, int(np.prod(p.out_shape)), [p.name], 0.0, 0)

    def home(name):
        while name in colocated:
            name = colocated[name]
        return name

    for name, target in colocated.items():
        g = groups[home(target)]
        g.members.append(name)
    for g in groups.values():
        for m in g.members:
            p = pg.processes[m]
            placement[m] = g.name
            if p.kind == "synapse":
                g.synapses_per_compartment += _synapse_fan_in(p)
            elif p.kind == "dsmm":
                # a core holds only the operand rows its compartments read
                g.operand_row_bits += _operand_row_entries(p, pg) * OPERAND_BITS
                g.row_len = int(np.prod(p.out_shape[1:]))
    for p in pg:  # aliases, flattens and spike gates live where their source lives
        if p.name not in placement:
            src = p.sources[0]
            placement[p.name] = placement.get(src, "host")
    return groups, host, placement


def map_graph(pg: ProcessGraph, chip, max_chips: int | None = None) -> Mapping:
    """Cut every group into per-core chunks and lay the cores out; ``MappingError`` when it cannot fit."""
    # every number below is divided by or searched over: a Chip is checked when it is built,
    # but one altered after (object.__setattr__) or a look-alike object is checked here too,
    # so a bad value is a ProfileError, never an endless search or a division by zero
    if isinstance(chip, Chip):
        chip = chip.validate()
    else:
        chip = Chip(**{f: getattr(chip, f) for f in Chip.__dataclass_fields__})
    groups, host, placement = plan_groups(pg)
    bits = chip.weight_bits
    core = 0
    for g in groups.values():
        mem_per = g.synapses_per_compartment * bits
        fits = lambda c: c * mem_per + _operand_bits(g, c) <= chip.synapse_memory_bits  # noqa: E731
        if not fits(1):
            raise MappingError(f"layer {g.name!r}: one compartment needs {mem_per + _operand_bits(g, 1):.0f} "
                               f"bits of synaptic memory, over the {chip.synapse_memory_bits}-bit core limit of {chip.name}")
        if g.synapses_per_compartment > chip.max_fan_in:
            raise MappingError(f"layer {g.name!r}: fan-in {g.synapses_per_compartment:.0f} exceeds the "
                               f"{chip.max_fan_in}-input core limit of {chip.name}")
        lo, hi = 1, min(chip.neurons_per_core, g.size)
        while lo < hi:  # the largest chunk that fits the core's memory
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        g.chunk = lo
        g.operand_bits_per_core = _operand_bits(g, g.chunk)
        g.cores = math.ceil(g.size / g.chunk)
        g.first_core = core
        core += g.cores
    mapping = Mapping(dict(chip.__dict__), groups, host, placement)
    if max_chips is not None and mapping.chips > max_chips:
        biggest = max(groups.values(), key=lambda g: g.cores)
        raise MappingError(f"the model needs {mapping.chips} {chip.name} chips ({mapping.cores} cores) but "
                           f"--max-chips is {max_chips}; the largest layer is {biggest.name!r} with {biggest.cores} cores")
    return mapping
