"""Chip and energy profiles as data: TOML files in ``hw_sim/profiles/`` with a source per constant.

Two kinds of description:

- :class:`Chip` - what a mapping must respect: cores per chip, the per-core memory that
  synapse encodings, neuron state and axon tables share, fan-in/fan-out, bit widths, the
  grid of chips (``loihi2``, ``loihi1``); it names its energy profile.
- :class:`EnergyProfile` - what each event costs in energy (pJ) and time (ns)
  (``paper-45nm``, the literature's 0.9/4.6 pJ convention; ``loihi1`` and ``loihi2``, in the chips'
  own files; ``loihi`` is an alias of ``loihi1``).

Users pass a built-in name or a path to their own TOML file with the same keys. Every
field carries its type, unit and range as data (``dataclasses.field(metadata=...)``); one
checker reads that data, both when a file is loaded and whenever a profile is built in
code (``__post_init__``), so no profile with a zero core count, a fractional neuron count,
an infinite price or a boolean-as-number can exist to hang the mapper, divide by zero or
print ``Infinity`` into ``--json`` output.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from pathlib import Path

from sresformer.errors import UserError

PROFILE_DIR = Path(__file__).parent / "profiles"
# Names kept for scripts written before a profile was renamed: `loihi` was the only Loihi energy
# profile (Davies et al. 2018, Table 1), which is Loihi 1's, so it now reads loihi1.toml.
ALIASES = {"energy": {"loihi": "loihi1"}, "chip": {}}
MAX_FILE_BYTES = 1 << 20   # a profile is a few hundred bytes; a bigger "profile" is the wrong file


class ProfileError(UserError):
    """A chip or energy profile that is unknown, unreadable, incomplete or out of range."""


# -- field descriptions (type, unit, range) as data -------------------------------------------------

def _text(max_len: int, doc: str):
    """A one-line text field (it is printed in reports and error lines, so no control characters)."""
    return dataclasses.field(metadata={"type": str, "unit": "text", "max_len": max_len, "doc": doc})


def _int(unit: str, lo: int, hi: int, doc: str, **kw):
    """An integer field (TOML integer only: not a float, not a boolean) within ``[lo, hi]``."""
    return dataclasses.field(metadata={"type": int, "unit": unit, "min": lo, "max": hi, "doc": doc}, **kw)


def _bool(doc: str):
    """A feature flag (TOML boolean only); absent means the chip lacks the feature."""
    return dataclasses.field(default=False, metadata={"type": bool, "unit": "flag", "doc": doc})


MAX_TABLE = 64   # entries of a by-size table (SANA-FE's Loihi sync table has 4)


def _table(unit: str, hi: float, doc: str):
    """A table from a size (a positive integer, a TOML key such as ``"29"``) to a finite non-negative number
    within ``[0, hi]``; held as sorted ``(size, value)`` pairs; absent: empty."""
    return dataclasses.field(default=(), metadata={"type": tuple, "unit": unit, "min": 0.0, "max": hi, "doc": doc})


def table_pairs(value) -> tuple[tuple[int, float], ...] | None:
    """A by-size table as sorted ``(size, value)`` pairs, or None when it is not one (see :func:`_table`)."""
    items = value.items() if isinstance(value, dict) else value if isinstance(value, tuple) else None
    if items is None:
        return None
    out = []
    for k, v in items:
        key = k if isinstance(k, int) and not isinstance(k, bool) else (
            int(k) if isinstance(k, str) and k.isdigit() and len(k) <= 9 else None)
        if key is None or key < 1 or isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        out.append((key, float(v)))
    return tuple(sorted(out))


def _num(unit: str, hi: float, doc: str, **kw):
    """A finite non-negative number (TOML integer or float, not a boolean) within ``[0, hi]``."""
    return dataclasses.field(metadata={"type": float, "unit": unit, "min": 0.0, "max": hi, "doc": doc}, **kw)


# Upper bounds are far above any real chip (they only catch typos such as an extra 1e6 and keep
# every product of counts and prices finite); the lower bounds are what the code needs.
MAX_PJ = 1e6    # 1 uJ per event: Loihi's dearest event is 81 pJ (Davies et al. 2018, Table 1)
MAX_NS = 1e9    # 1 s per event: Loihi's slowest is the 465 ns barrier (same table)
MAX_BPS = 1e13  # 10 TB/s: far above any host link (PCIe 5 x16 is ~64 GB/s)
MAX_W = 1e3     # 1 kW per chip: Loihi 2's static power is 0.23 W (Intel's PilotNet measurement, lava-dl)
# state_bits: the executor keeps integer state exact in float64 (exact to 2**53); a state times
# a 12-bit decay must stay below that, so 32 bits is the widest we accept (Loihi: 24).
MAX_STATE_BITS = 32


@dataclasses.dataclass(frozen=True)
class Chip:
    """A neuromorphic chip as a mapping target (what :mod:`hw_sim.resources` charges a core for).

    Units: counts are plain integers (per core unless named per chip); widths are in bits;
    memory is in *words* of the core's one memory budget (``memory_words``), which synapse
    entries, neuron state and input-axon entries share. Synapse encodings: *dense* (a row of
    ``dense_weights_per_word`` weights per word for every input axon), *sparse* (one word per
    ``sparse_weights_per_word`` non-zero weights) and *convolutional* (a conv's kernel stored
    once per core and shared by every position: rows of ``conv_word_bits``-bit words plus
    ``conv_header_words``; ``conv_word_bits = 0``: the chip has no such encoding). A cost of 0
    words means the chip keeps that item in a memory of its own, limited by its count field.
    ``graded_spike_bits = 0`` means binary spikes only (Loihi 1). ``product_neurons``: the chip
    runs ``prodmm`` (product compartments); ``dynamic_operand_memory``: it runs ``dsmm`` (a core
    that holds a dynamic operand); a chip with neither cannot run DSSA's products.
    ``subtract_reset``: its neurons can reset by subtraction (``neuron`` ``reset='subtract'``).
    """

    name: str = _text(100, "profile name")
    description: str = _text(500, "one-line description")
    energy_profile: str = _text(100, "the energy profile that prices this chip (a built-in name or a file)")
    cores_per_chip: int = _int("count", 1, 1 << 20, "neuro cores per chip")
    neurons_per_core: int = _int("count", 1, 1 << 24, "compartments per core at the smallest neuron state")
    memory_words: int = _int("words", 1, 1 << 32, "per-core memory shared by synapses, neuron state, axons")
    word_bits: int = _int("bits", 1, 1024, "width of one memory word")
    cuba_state_words: int = _int("words", 0, 1 << 10, "memory of one CUBA compartment's state")
    axon_in_words: int = _int("words", 0, 1 << 10, "memory of one input-axon entry")
    dense_weights_per_word: int = _int("count", 1, 1 << 10, "weights one dense-encoding word holds")
    sparse_weights_per_word: int = _int("count", 1, 1 << 10, "non-zero weights one sparse-encoding word holds")
    conv_word_bits: int = _int("bits", 0, 1024, "bits of a convolutional-encoding word (0: no such encoding)")
    conv_header_words: int = _int("words", 0, 1 << 10, "words each convolutional kernel row adds")
    max_fan_in: int = _int("count", 1, 1 << 30, "distinct input axons per core")
    max_fan_out: int = _int("count", 1, 1 << 30, "distinct destination cores per core")
    weight_bits: int = _int("bits", 1, 64, "widest stored synaptic weight")
    state_bits: int = _int("bits", 2, MAX_STATE_BITS, "signed membrane / current width")
    graded_spike_bits: int = _int("bits", 0, 64, "graded spike payload width (0: binary spikes only)")
    decay_bits: int = _int("bits", 1, 32, "decay constant resolution")
    mesh_cols: int = _int("count", 1, 1 << 20, "columns of the per-chip mesh of tiles")
    system_cols: int = _int("count", 1, 1 << 20, "chips per row of the system's 2-D grid of chips")
    # the synapse and bias formats (hw_sim/ARTIFACT.md, "Chip formats"): a compartment's bias is
    # m * 2**e with a signed bias_mant_bits-bit m and 0 <= e <= bias_exp_max; a synapse's accumulator
    # is shifted by weight_exp in weight_exp_min..weight_exp_max, then left-aligned by input_align_bits
    bias_mant_bits: int = _int("bits", 2, 32, "signed width of a compartment's bias mantissa")
    bias_exp_max: int = _int("exponent", 0, 32, "largest bias exponent (bias = mantissa << exponent)")
    weight_exp_min: int = _int("exponent", -32, 32, "smallest weight exponent (power of two on the accumulator)")
    weight_exp_max: int = _int("exponent", -32, 32, "largest weight exponent")
    input_align_bits: int = _int("bits", 0, 32, "left shift of the synaptic input into the current (MSB alignment)")
    # how a product of two dynamic operands (DSSA's matmuls) can run: see hw_sim/prodneuron.py
    product_neurons: bool = _bool("programmable product compartments (Lava's ProdNeuron) and graded spikes")
    dynamic_operand_memory: bool = _bool("a core memory that holds a dynamic operand, rewritten every step")
    # a neuron that subtracts its threshold on a spike (the converted QCFS neuron, sresformer/convert.py)
    subtract_reset: bool = _bool("neurons can reset by subtracting the threshold (programmable neuron models)")
    # a mapping needing more chips than any system holds is refused before its fan-out is counted
    max_system_chips: int = _int("count", 0, 1 << 20, "chips in the largest system built of this chip "
                                 "(0 or absent: no limit known)", default=0)
    # Loihi 1's mesh routes between tiles of 4 cores (SANA-FE loihi.yaml); absent: one core a tile
    cores_per_tile: int = _int("count", 1, 1 << 10, "cores sharing one router of the mesh (a tile)", default=1)

    def __post_init__(self):
        _check_object(self, "chip")

    def validate(self) -> Chip:
        """Check every field again (a frozen Chip can still be altered with ``object.__setattr__``)."""
        _check_object(self, "chip")
        return self


@dataclasses.dataclass(frozen=True)
class EnergyProfile:
    """Energy per event in picojoules (``*_pj``) and time per event in nanoseconds (``*_ns``).

    Every value is finite and non-negative.
    """

    name: str = _text(100, "profile name")
    description: str = _text(500, "one-line description")
    ac_pj: float = _num("pJ", MAX_PJ, "one accumulate (synaptic op on a binary spike)")
    mac_pj: float = _num("pJ", MAX_PJ, "one multiply-accumulate (graded / real-valued input)")
    neuron_active_pj: float = _num("pJ", MAX_PJ, "neuron update, active")
    neuron_idle_pj: float = _num("pJ", MAX_PJ, "neuron update, idle")
    spike_in_tile_pj: float = _num("pJ", MAX_PJ, "spike delivered within a tile")
    hop_ew_pj: float = _num("pJ", MAX_PJ, "east-west mesh hop")
    hop_ns_pj: float = _num("pJ", MAX_PJ, "north-south mesh hop")
    synop_ns: float = _num("ns", MAX_NS, "one synaptic op")
    neuron_update_active_ns: float = _num("ns", MAX_NS, "neuron update, active")
    neuron_update_idle_ns: float = _num("ns", MAX_NS, "neuron update, idle")
    spike_in_tile_ns: float = _num("ns", MAX_NS, "spike delivered within a tile")
    hop_ew_ns: float = _num("ns", MAX_NS, "east-west mesh hop")
    hop_ns_ns: float = _num("ns", MAX_NS, "north-south mesh hop")
    barrier_ns: float = _num("ns", MAX_NS, "time-step barrier")
    operand_write_pj: float = _num("pJ", MAX_PJ, "one dynamic-operand entry written into a core (dsmm)",
                                   default=0.0)
    operand_write_ns: float = _num("ns", MAX_NS, "one dynamic-operand entry written into a core (dsmm)",
                                   default=0.0)
    # -- energy terms (issue 14): absent (0) in files written before, and in paper-45nm's convention
    spike_out_pj: float = _num("pJ", MAX_PJ, "one spike generated by a compartment", default=0.0)
    message_out_pj: float = _num("pJ", MAX_PJ, "one message sent by a core (per destination core)", default=0.0)
    static_w_per_chip: float = _num("W", MAX_W, "static (leakage) power of one chip in use", default=0.0)
    # -- time per event of the same terms, and the receive side (0: not charged)
    spike_out_ns: float = _num("ns", MAX_NS, "one spike generated by a compartment", default=0.0)
    message_out_ns: float = _num("ns", MAX_NS, "one message sent by a core (per destination core)", default=0.0)
    message_in_pj: float = _num("pJ", MAX_PJ, "one message received by a core", default=0.0)
    message_in_ns: float = _num("ns", MAX_NS, "one message received by a core", default=0.0)
    chip_link_pj: float = _num("pJ", MAX_PJ, "one chip-to-chip link crossed by a message", default=0.0)
    chip_link_ns: float = _num("ns", MAX_NS, "one chip-to-chip link crossed by a message", default=0.0)
    # synaptic op per encoding (0: priced as ac_pj / synop_ns); ops outside a static encoding (dual-spike
    # matmuls, product compartments) always are
    synop_conv_pj: float = _num("pJ", MAX_PJ, "synaptic op through the convolutional encoding", default=0.0)
    synop_dense_pj: float = _num("pJ", MAX_PJ, "synaptic op through the dense encoding", default=0.0)
    synop_sparse_pj: float = _num("pJ", MAX_PJ, "synaptic op through the sparse encoding", default=0.0)
    synop_conv_ns: float = _num("ns", MAX_NS, "synaptic op through the convolutional encoding", default=0.0)
    synop_dense_ns: float = _num("ns", MAX_NS, "synaptic op through the dense encoding", default=0.0)
    synop_sparse_ns: float = _num("ns", MAX_NS, "synaptic op through the sparse encoding", default=0.0)
    # the host link and the embedded processors (0: not charged; no built-in profile has a published figure)
    host_link_bytes_per_s: float = _num("B/s", MAX_BPS, "host link bandwidth for frames in and results out "
                                        "(0: unlimited)", default=0.0)
    host_io_pj_per_byte: float = _num("pJ", MAX_PJ, "energy of one byte over the host link", default=0.0)
    embedded_op_ns: float = _num("ns", MAX_NS, "one embedded-processor operation (stem, MA gates)", default=0.0)
    # the barrier by system size: {tiles = ns} (a step function, as SANA-FE's sync table); absent: barrier_ns
    barrier_tiles_ns: tuple = _table("ns", MAX_NS, "time-step barrier by tiles in use: from each size on "
                                     "(below the smallest: barrier_ns)")

    def __post_init__(self):
        pairs = table_pairs(self.barrier_tiles_ns)
        if isinstance(self.barrier_tiles_ns, dict) and pairs is not None:   # as read from TOML
            object.__setattr__(self, "barrier_tiles_ns", pairs)
        _check_object(self, "energy")

    def validate(self) -> EnergyProfile:
        """Check every field again (see :meth:`Chip.validate`)."""
        _check_object(self, "energy")
        return self


# -- the checker -----------------------------------------------------------------------------------

def _shown(value) -> str:
    """A value as a short one-line TOML-ish literal for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def field_problem(f: dataclasses.Field, value) -> str | None:
    """Why ``value`` is not acceptable for field ``f`` (None if it is), from ``f.metadata``."""
    m = f.metadata
    kind, unit = m["type"], m["unit"]
    if kind is str:
        if not isinstance(value, str):
            return f"must be a string, got {_shown(value)}"
        if len(value) > m["max_len"]:
            return f"is longer than {m['max_len']} characters"
        if not value.isprintable():   # a newline here would break the one-line error contract
            return "must be one line of printable text"
        if f.name == "name" and not value.strip():
            return "must not be empty"
        return None
    if value is None and f.default is None:   # an optional field left out
        return None
    if kind is tuple:
        pairs = table_pairs(value)
        if pairs is None or len(pairs) > MAX_TABLE or len({k for k, _ in pairs}) != len(pairs):
            return (f"must be a table of at most {MAX_TABLE} entries, each a size (a whole number >= 1) = a number "
                    f"({unit}), got {_shown(value)}")
        bad = [v for _, v in pairs if not math.isfinite(v) or not m["min"] <= v <= m["max"]]
        if bad:
            return f"must hold finite numbers ({unit}) in [{m['min']:g}, {m['max']:g}], got {_shown(bad[0])}"
        return None
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {_shown(value)}"
    lo, hi = m["min"], m["max"]
    # bool is an int in Python: `true` must not be read as 1
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer ({unit}) in {lo}..{hi}, got {_shown(value)}"
        if not lo <= value <= hi:
            return f"must be an integer ({unit}) in {lo}..{hi}, got {value}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number ({unit}) in [{lo:g}, {hi:g}], got {_shown(value)}"
    if not math.isfinite(value) or not lo <= value <= hi:
        return f"must be a finite number ({unit}) in [{lo:g}, {hi:g}], got {_shown(value)}"
    return None


def _cross_problem(obj) -> str | None:
    """Checks that involve two fields."""
    if isinstance(obj, Chip) and obj.weight_exp_min > obj.weight_exp_max:
        return f"weight_exp_min = {obj.weight_exp_min} is above weight_exp_max = {obj.weight_exp_max}"
    if isinstance(obj, Chip) and obj.cores_per_tile > obj.cores_per_chip:
        return (f"cores_per_tile = {obj.cores_per_tile}: a tile cannot hold more than the chip's "
                f"cores_per_chip = {obj.cores_per_chip}")
    if isinstance(obj, Chip) and obj.mesh_cols > -(-obj.cores_per_chip // obj.cores_per_tile):
        return (f"mesh_cols = {obj.mesh_cols}: a chip's mesh cannot be wider than its "
                f"{-(-obj.cores_per_chip // obj.cores_per_tile)} tiles (cores_per_chip / cores_per_tile)")
    return None


def _check_object(obj, kind: str) -> None:
    """Raise ``ProfileError`` for the first field of ``obj`` that breaks its metadata."""
    for f in dataclasses.fields(obj):
        problem = field_problem(f, getattr(obj, f.name))
        if problem:
            raise ProfileError(f"{kind} profile {_shown(getattr(obj, 'name', '?'))}: {f.name} {problem}")
    problem = _cross_problem(obj)
    if problem:
        raise ProfileError(f"{kind} profile {obj.name!r}: {problem}")


def describe(cls) -> list[dict]:
    """The fields of ``Chip`` or ``EnergyProfile`` as data: name, type, unit, range, required, doc."""
    out = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        out.append({"name": f.name, "type": m["type"].__name__, "unit": m["unit"], "min": m.get("min"),
                    "max": m.get("max"), "required": f.default is dataclasses.MISSING, "doc": m["doc"]})
    return out


# -- loading ---------------------------------------------------------------------------------------

def _resolve(kind: str, name_or_path: str) -> Path:
    """A built-in name or a path -> the file to read (``ProfileError`` for an unknown name)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return path
    name_or_path = ALIASES[kind].get(name_or_path, name_or_path)
    builtin = PROFILE_DIR / f"{name_or_path}.toml"
    if name_or_path in available(kind):
        return builtin
    raise ProfileError(f"unknown {kind} profile {name_or_path!r}; built-in: {', '.join(available(kind))}, "
                       "or give a .toml file")


def _read_table(kind: str, path: Path) -> dict:
    """The ``[kind]`` table of ``path``; a missing, special, huge or non-TOML file is a ProfileError."""
    try:
        if not path.exists():
            raise ProfileError(f"{kind} profile {path} does not exist")
        if not path.is_file():   # a directory, a FIFO, /dev/zero: nothing to read (or no end to it)
            raise ProfileError(f"{kind} profile {path} is not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ProfileError(f"{kind} profile {path} is over {MAX_FILE_BYTES} bytes: not a profile")
        with path.open("rb") as fh:
            data = tomllib.loads(fh.read(MAX_FILE_BYTES + 1).decode("utf-8"))
    except ProfileError:
        raise
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ProfileError(f"{path} is not a valid {kind} profile (not TOML: {reason})") from None
    except OSError as e:
        raise ProfileError(f"cannot read {kind} profile {path}: {e.strerror or type(e).__name__}") from None
    table = data.get(kind)
    if not isinstance(table, dict):
        raise ProfileError(f"{path} is not a valid {kind} profile: it needs a [{kind}] table")
    return table


def _load(kind: str, cls, name_or_path: str):
    """Read, check key by key and build a ``cls`` from a built-in name or a TOML file."""
    path = _resolve(kind, name_or_path)
    table = _read_table(kind, path)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in table if k not in fields]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], list(fields), n=1)
        hint = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ProfileError(f"{path}: unknown key {_shown(unknown[0])} in [{kind}]{hint}; "
                           f"known keys: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in table]
    if missing:
        raise ProfileError(f"{path}: [{kind}] is missing keys: "
                           + ", ".join(f"{n} ({fields[n].metadata['unit']})" for n in missing))
    for k, v in table.items():
        problem = field_problem(fields[k], v)
        if problem:
            raise ProfileError(f"{path}: {k} {problem}")
    try:
        return cls(**table)
    except ProfileError as e:   # a check across fields: say which file
        raise ProfileError(f"{path}: {str(e).split(': ', 1)[-1]}") from None


def available(kind: str) -> list[str]:
    """Names of the built-in profiles of ``kind`` ('chip' or 'energy'), aliases included."""
    files = [p.stem for p in PROFILE_DIR.glob("*.toml") if kind in tomllib.loads(p.read_text())]
    return sorted(files + list(ALIASES[kind]))


def load_chip(name_or_path: str = "loihi2") -> Chip:
    """A built-in chip by name (``loihi2``, ``loihi1``) or a TOML file with a ``[chip]`` table."""
    return _load("chip", Chip, name_or_path)


def load_energy_profile(name_or_path: str = "paper-45nm") -> EnergyProfile:
    """A built-in energy profile (``paper-45nm``, ``loihi1``, ``loihi2``; ``loihi`` is ``loihi1``) or a TOML
    file with an ``[energy]`` table."""
    return _load("energy", EnergyProfile, name_or_path)
