"""Checks of a ``.loihi`` artifact's content, made before anything is computed from it.

An artifact is a file from outside: valid HDF5 with the wrong content must be refused with
one message naming the field, never a traceback, a silent result, a hang or a balloon.
``artifact.read_artifact`` reads each field through the typed readers here (:func:`integer`,
:func:`ints`, :func:`text`, :func:`json_value`), then calls :func:`check_structure` (names,
order, sources computed earlier: no cycle; one input; the output; static flags),
:func:`check_kind` per process (its kind's attrs, its ``out_shape`` against its sources by
the semantics of ``processes.py``, and the param shapes it needs, compared with the
declared datasets before they are read), :func:`check_values` (integers within the widths),
:func:`hw_sim.artifact_bounds.check_bounds` (every value's worst case stays an exact integer, as
the executor bounds it) (the mapping is checked by ``mapping_check``). Problems are
:class:`Invalid`; the reader makes them one ``ArtifactError``. The rules are listed in ``ARTIFACT.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from .attngate import WEIGHT_BITS as GATE_WEIGHT_BITS
from .processes import (
    GRADED_KINDS,
    KIND_ATTRS,
    MAX_DIM,
    NEURON_OPTIONAL,
    PRODUCT_KINDS,
    Attrs,
    Process,
    ProcessGraph,
)
from .prodneuron import attention_lowering
from .products import form_dims

# Resource bounds: far above the models this project builds (an ImageNet-size model holds a few
# million elements per value over T = 4 and tens of millions of parameters), far below what
# hangs or balloons a machine.
MAX_VALUE_ELEMENTS = 1 << 26     # one value over T, per sample (512 MiB of float64)
MAX_PARAM_ELEMENTS = 1 << 27     # all params (1 GiB of int64)
MAX_PROCESSES = 1 << 16
MAX_CORES = 1 << 18              # 2048 Loihi 2 chips (Hala Point has 1152)
MAX_CORE_STEPS = 1 << 21         # cores x T: the counters hold [T, batch, cores] per count
MAX_BIAS = 1 << 40
F64_EXACT = 2 ** 53              # IEEE 754 binary64: integers exact below this
INT64_SAFE = 2 ** 62             # embedded-processor gates compute in int64


class Invalid(Exception):
    """One problem with an artifact's content (the reader adds the path and what to do)."""


def where_of(p: Process) -> str:
    """How a process is named in messages."""
    return f"process {p.name!r} ({p.kind})"


# -- typed field readers -----------------------------------------------------------------------------

def integer(v, what: str, lo: int, hi: int) -> int:
    """An integer (Python or numpy, not a boolean, not a float) within ``[lo, hi]``."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise Invalid(f"{what} must be an integer, got {type(v).__name__} {_short(v)}")
    if not lo <= int(v) <= hi:
        raise Invalid(f"{what} must be in {lo}..{hi}, got {int(v)}")
    return int(v)


def ints(v, what: str, lo: int, hi: int, length: tuple[int, int]) -> tuple[int, ...]:
    """A 1-D sequence of integers within ``[lo, hi]`` whose length is within ``length``."""
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise Invalid(f"{what} must be a 1-D list of integers")
        v = list(v)
    if not isinstance(v, (list, tuple)) or not length[0] <= len(v) <= length[1]:
        raise Invalid(f"{what} must be a list of {length[0]} to {length[1]} integers, got {_short(v)}")
    return tuple(integer(x, what, lo, hi) for x in v)


def text(v, what: str, max_len: int) -> str:
    """A printable string (it ends up in one-line messages and reports)."""
    if isinstance(v, (bytes, np.bytes_)):
        try:
            v = bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(f"{what} is not UTF-8 text") from None
    if not isinstance(v, str):
        raise Invalid(f"{what} must be a string, got {type(v).__name__}")
    if len(v) > max_len or not v.isprintable():
        raise Invalid(f"{what} must be one line of printable text of at most {max_len} characters")
    return str(v)


def _no_constant(name):
    raise ValueError(f"{name} is not a number here")


def json_value(v, what: str):
    """A JSON attribute (NaN and Infinity refused: JSON has no such numbers)."""
    if isinstance(v, (bytes, np.bytes_)):
        v = bytes(v).decode("utf-8", errors="replace")
    if not isinstance(v, str):
        raise Invalid(f"{what} must be a JSON string attribute, got {type(v).__name__}")
    try:
        return json.loads(v, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise Invalid(f"{what} is not valid JSON ({str(e).splitlines()[0][:80]})") from None


def _short(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _number(v, what: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise Invalid(f"{what} must be a finite number in [{lo}, {hi}], got {_short(v)}")
    return float(v)


def _flag(v, what: str) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"{what} must be true or false, got {_short(v)}")
    return v


# -- the graph ---------------------------------------------------------------------------------------

def check_structure(procs: list[Process], order, output: str, input_shape, input_static: bool, T: int) -> None:
    """Unique names, ``order``, sources computed earlier (no cycle), one input, the output, static flags."""
    if len(procs) > MAX_PROCESSES:
        raise Invalid(f"{len(procs)} processes, over the {MAX_PROCESSES} we read")
    by_name: dict[str, Process] = {}
    for p in procs:
        if p.name in by_name:
            raise Invalid(f"two processes are named {p.name!r}")
        by_name[p.name] = p
    if order != [p.name for p in procs]:
        raise Invalid("order does not list the processes as /processes holds them")
    for p in procs:
        if p.kind not in PRODUCT_KINDS and p.operands:
            raise Invalid(f"{where_of(p)} has operands; only a dsmm or prodmm has")
        if p.kind in PRODUCT_KINDS and (p.sources or len(p.operands) != 2):
            raise Invalid(f"{where_of(p)} must have no sources and two operands (dynamic, spikes)")
        if p.kind == "input" and p.sources:
            raise Invalid(f"{where_of(p)} must have no sources")
        if p.kind not in ("input", *PRODUCT_KINDS) and not p.sources:
            raise Invalid(f"{where_of(p)} has no sources")
    seen: set[str] = set()
    for p in procs:
        for s in list(p.sources) + list(p.operands):
            if s not in by_name:
                raise Invalid(f"{where_of(p)} reads {s!r}, which is not a process")
            if s not in seen:   # the executor runs in order: a later source is a cycle or a misordered graph
                raise Invalid(f"{where_of(p)} reads {s!r}, which is not computed before it (a cycle, or "
                              "processes out of order)")
        seen.add(p.name)
    inputs = [p for p in procs if p.kind == "input"]
    if len(inputs) != 1:
        raise Invalid(f"the graph has {len(inputs)} input processes; it needs exactly one")
    if inputs[0].out_shape != tuple(input_shape):
        raise Invalid(f"the input's out_shape {inputs[0].out_shape} is not input_shape {tuple(input_shape)}")
    if output not in by_name:
        raise Invalid(f"the output {output!r} is not a process")
    if by_name[output].kind == "input" or len(by_name[output].out_shape) != 1:
        raise Invalid(f"the output {output!r} must be a vector of logits [K] computed from the input, "
                      f"not {where_of(by_name[output])} of shape {by_name[output].out_shape}")
    for p in procs:   # the mapping and the executor rely on the flag: it must be what the graph implies
        ins = list(p.sources) + list(p.operands)
        want = (p.kind == "input" and input_static) or (
            p.kind not in ("neuron", "input") and bool(ins) and all(by_name[i].static for i in ins))
        if p.static != want:
            raise Invalid(f"{where_of(p)}: static is {p.static}, the graph implies {want}")
    big = max(procs, key=lambda q: math.prod(q.out_shape))
    if math.prod(big.out_shape) * T > MAX_VALUE_ELEMENTS:
        raise Invalid(f"{where_of(big)}: {math.prod(big.out_shape)} elements x T = {T} per sample is over the "
                      f"{MAX_VALUE_ELEMENTS} the simulator holds")


def _field(v, meta: dict, what: str):
    """One attribute value checked by its field's metadata (``hw_sim.processes``: type, range, choices)."""
    kind = meta["type"]
    if kind is int:
        return integer(v, what, meta["min"], meta["max"])
    if kind == "pair":
        return ints(v, what, meta["min"], meta["max"], (2, 2))
    if kind is bool:
        return _flag(v, what)
    if kind is float:
        return _number(v, what, meta["min"], meta["max"])
    if not isinstance(v, str) or v not in meta["choices"]:
        raise Invalid(f"{what} must be one of {', '.join(meta['choices'])}, got {_short(v)}")
    return v


def typed_attrs(kind: str, raw: dict, where: str, complete: bool = True) -> Attrs:
    """The attribute dataclass of ``kind`` from a JSON object, every field checked by its metadata.

    ``complete``: every field must be present (version 2 writes them all, ``null`` for an absent
    optional one); otherwise a field with a default may be left out (version 1 files).
    """
    cls = KIND_ATTRS[kind]
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    extra = sorted(set(raw) - set(known))
    if extra:
        raise Invalid(f"{where}: attrs has unknown key {extra[0]!r} for a {kind} (known: {', '.join(known) or 'none'})")
    values = {}
    for f in fields:
        optional = f.default is not dataclasses.MISSING
        if f.name not in raw:
            if complete or not optional:
                raise Invalid(f"{where}: attrs has no {f.name!r}")
            continue
        v = raw[f.name]
        values[f.name] = None if v is None and optional and f.default is None else \
            _field(v, f.metadata, f"{where} {f.name}")
    try:
        return cls(**values)
    except ValueError as e:   # an inconsistent combination (a conv without geometry, a gate's shifts)
        raise Invalid(f"{where}: {e}") from None


def _in_shape(p: Process, pg: ProcessGraph) -> tuple[int, ...]:
    """The shape of the summed input port: every source must have the same shape (no broadcasting)."""
    shapes = {pg.processes[s].out_shape for s in p.sources}
    if len(shapes) != 1:
        raise Invalid(f"{where_of(p)}: its sources have different shapes {sorted(shapes)}")
    return shapes.pop()


def _need(p: Process, cond: bool, why: str) -> None:
    if not cond:
        raise Invalid(f"{where_of(p)}: {why}")


def _window_out(n: int, k: int, s: int, pad: int, dil: int = 1) -> int:
    """Output length of a window of ``k`` taps (dilation ``dil``) over ``n`` with padding and stride."""
    return (n + 2 * pad - dil * (k - 1) - 1) // s + 1


def check_kind(p: Process, pg: ProcessGraph, declared: dict[str, tuple], chip: dict) -> dict[str, list]:
    """Check ``p``'s typed attrs against the chip, and its ``out_shape`` against its sources; the param
    shapes it must have (:data:`CHECKS`, one rule per kind).

    ``declared`` maps each params dataset to its declared shape (not read yet); the returned
    dict maps each required param to its allowed shapes.
    """
    src = _in_shape(p, pg) if p.sources else ()
    if p.kind in GRADED_KINDS:
        _check_out_bits(p, chip)
    return CHECKS[p.kind](p, pg, src, declared, chip)


def _check_out_bits(p: Process, chip: dict) -> None:
    """A graded kind's ``out_bits`` is given (never ``null`` in a file) and at most the chip's state width."""
    bits = p.attrs.out_bits
    if bits is None:
        raise Invalid(f"{where_of(p)}: attrs out_bits must be an integer (the width its output saturates at), "
                      "not null")
    integer(bits, f"{where_of(p)} out_bits (the chip's state_bits is {chip['state_bits']})", 2, chip["state_bits"])


def _check_input(p: Process, pg, src, declared, chip) -> dict[str, list]:
    return {}


def _check_neuron(p: Process, pg, src, declared, chip) -> dict[str, list]:
    a, out = p.attrs, p.out_shape
    _need(p, a.decay_bits == chip["decay_bits"], f"decay_bits {a.decay_bits} is not the chip's {chip['decay_bits']}")
    for key in ("dv", "du"):
        integer(getattr(a, key), f"{where_of(p)} {key} (in 2**-{a.decay_bits})", 0, a.unity)
    integer(a.state_bits, f"{where_of(p)} state_bits (the chip's is {chip['state_bits']})", 2, chip["state_bits"])
    _need(p, src == out, f"out_shape {out} is not its input's {src}")
    _need(p, a.reset != "subtract" or chip.get("subtract_reset", False),
          f"reset 'subtract' needs a chip with subtract_reset (the mapped chip {chip.get('name')!r} resets to 0)")
    _need(p, a.reset != "rate" or chip.get("product_neurons", False),
          f"reset 'rate' (the rate-normalised IF) is a programmable neuron; the mapped chip {chip.get('name')!r} "
          "has no product_neurons")
    shapes = [(1,), (), out, (math.prod(out),)]
    # bias and v0 are optional (absent: 0); vth is required
    return {"vth": shapes, **{k: shapes for k in NEURON_OPTIONAL if k in declared}}


def _check_sum(p: Process, pg, src, declared, chip) -> dict[str, list]:
    _need(p, not p.attrs.alias or len(p.sources) == 1, "an alias (pass-through) has exactly one source")
    _need(p, src == p.out_shape, f"out_shape {p.out_shape} is not its sources' {src}")
    return {}


def _check_pool(p: Process, pg, src, declared, chip) -> dict[str, list]:
    a, out = p.attrs, p.out_shape
    _need(p, len(src) == 3, f"pools a [C, H, W] value, its input is {src}")
    _need(p, all(2 * q <= kk for q, kk in zip(a.padding, a.kernel, strict=True)),
          "padding must be at most half the kernel")
    want = (src[0],) + tuple(_window_out(n, kk, s, q)
                             for n, kk, s, q in zip(src[1:], a.kernel, a.stride, a.padding, strict=False))
    _need(p, min(want) >= 1 and want == out, f"out_shape {out} does not follow from input {src} ({want})")
    return {}


def _check_flatten(p: Process, pg, src, declared, chip) -> dict[str, list]:
    out = p.out_shape
    _need(p, len(p.sources) == 1 and math.prod(src) == math.prod(out), f"reshapes {src} into {out}")
    return {}


def _check_gate(p: Process, pg, src, declared, chip) -> dict[str, list]:
    _need(p, len(p.sources) == 1 and pg.spikes_only(p.sources), "gates exactly one spiking value")
    _need(p, src == p.out_shape, f"out_shape {p.out_shape} is not its input's {src}")
    return {}


def _check_synapse(p: Process, pg, src, declared, chip) -> dict[str, list]:
    a, out, w = p.attrs, p.out_shape, declared.get("weight")
    _need(p, a.weight_bits <= chip["weight_bits"],
          f"weight_bits {a.weight_bits} is wider than the chip's {chip['weight_bits']}")
    if w is None:
        raise Invalid(f"{where_of(p)} has no params/weight")
    if a.op == "dense":
        _need(p, len(src) == 1 and len(out) == 1, f"a dense synapse maps a vector to a vector, not {src} to {out}")
        return {"weight": [(out[0], src[0])], "bias": [(out[0],)]}
    stride, pad, dil, groups = a.stride, a.padding, a.dilation, a.groups
    _need(p, len(src) == 3 and len(out) == 3, f"a conv maps [C, H, W] to [C, H, W], not {src} to {out}")
    _need(p, src[0] % groups == 0 and out[0] % groups == 0,
          f"groups = {groups} does not divide its {src[0]} input and {out[0]} output channels")
    _need(p, len(w) == 4 and 1 <= min(w[2:]) and max(w[2:]) <= MAX_DIM,
          f"params/weight has shape {w}; a conv needs [C_out, C_in / groups, kh, kw]")
    want = (out[0],) + tuple(_window_out(n, kk, s, q, d)
                             for n, kk, s, q, d in zip(src[1:], w[2:], stride, pad, dil, strict=False))
    _need(p, min(want) >= 1 and want == out, f"out_shape {out} does not follow from input {src} and kernel "
          f"{tuple(w[2:])} ({want})")
    return {"weight": [(out[0], src[0] // groups, w[2], w[3])], "bias": [(out[0],)]}


def _check_dsmm(p: Process, pg: ProcessGraph, src, declared, chip) -> dict[str, list]:
    heads, out = p.attrs.heads, p.out_shape
    y, s = (pg.processes[o].out_shape for o in p.operands)
    try:
        dims = form_dims(p.attrs.form, heads, y, s)
    except ValueError as e:
        raise Invalid(f"{where_of(p)}: {e}") from None
    r, c = dims.out
    _need(p, out[0] == heads * r and math.prod(out) == heads * r * c,
          f"out_shape {out} is not {heads} heads of [{r}, {c}]")
    return {}


def _check_dsmm_chip(p: Process, pg: ProcessGraph, src, declared, chip) -> dict[str, list]:
    _need(p, bool(chip.get("dynamic_operand_memory")), f"chip {chip.get('name')!r} has no dynamic-operand memory "
          "(dynamic_operand_memory): a dsmm cannot run on it; export for it again (it lowers to prodmm)")
    return _check_dsmm(p, pg, src, declared, chip)


def _check_prodmm(p: Process, pg: ProcessGraph, src, declared, chip) -> dict[str, list]:
    _need(p, attention_lowering(chip) != "none", f"chip {chip.get('name')!r} has no product neurons or graded "
          "spikes: a prodmm cannot run on it")
    _need(p, p.name != pg.output, "a prodmm cannot be the output (its terms sum in a reader)")
    readers, todo = [], [p.name]
    while todo:   # its real readers, through flattens and pass-through sums
        name = todo.pop()
        for q in pg:
            if name in q.operands:
                _need(p, False, f"it is an operand of {q.name!r}; a product's value must be held in a sum first")
            if name in q.sources:
                (todo if q.kind == "flatten" or (q.kind == "sum" and q.attrs.alias) else readers).append(q)
    for q in readers:
        _need(p, q.kind in ("neuron", "sum"), f"{where_of(q)} reads it; only a neuron or a sum can sum its terms")
    return _check_dsmm(p, pg, src, declared, chip)


def _check_attngate(p: Process, pg, src, declared, chip) -> dict[str, list]:
    a, out = p.attrs, p.out_shape
    gates = a.gates
    integer(a.lut_frac_bits, f"{where_of(p)} lut_frac_bits", 0, a.frac_bits)
    _need(p, len(p.sources) == 1 and len(src) == 3 and src == out, f"gates one [C, H, W] value, {src} -> {out}")
    C = out[0]
    want = {"lut": [(256,)]}
    if "c" in gates:
        w1 = declared.get("ca_w1_avg", ())
        _need(p, len(w1) == 2 and 1 <= w1[0] <= MAX_DIM, f"params/ca_w1_avg has shape {w1}; it needs [hidden, {C}]")
        h = w1[0]
        want.update({"ca_w1_avg": [(h, C)], "ca_w1_max": [(h, C)], "ca_w2": [(C, h)], "ca_bias": [(C,)]})
    if "s" in gates:
        sw = declared.get("sa_weight", ())
        _need(p, len(sw) == 4 and sw[-1] % 2 == 1 and sw[-1] <= 63, f"params/sa_weight has shape {sw}; it needs "
              "[1, 2, k, k] with k odd")
        want.update({"sa_weight": [(1, 2, sw[-1], sw[-1])], "sa_bias": [(1,)]})
    return want


def _span(v: np.ndarray, what: str, lo: int, hi: int) -> None:
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise Invalid(f"{what} has values outside {lo}..{hi} (min {int(v.min())}, max {int(v.max())})")


#: process kind -> its structural check (tests/hw_sim/test_kernel_tables.py: every kind)
CHECKS = {"input": _check_input, "synapse": _check_synapse, "neuron": _check_neuron, "sum": _check_sum,
          "dsmm": _check_dsmm_chip, "prodmm": _check_prodmm, "sumpool": _check_pool, "maxpool": _check_pool,
          "flatten": _check_flatten,
          "attngate": _check_attngate, "gate": _check_gate}


def _widths_synapse(a) -> dict[str, tuple[int, int, str]]:
    q = 2 ** (a.weight_bits - 1) - 1
    return {"weight": (-q, q, f"{a.weight_bits}-bit mantissas"), "bias": (-MAX_BIAS, MAX_BIAS, "bias")}


def _widths_neuron(a) -> dict[str, tuple[int, int, str]]:
    lim = 2 ** (a.state_bits - 1) - 1
    return {"vth": (1, lim, f"a {a.state_bits}-bit membrane"), "bias": (-MAX_BIAS, MAX_BIAS, "bias"),
            "v0": (-lim, lim, f"a {a.state_bits}-bit membrane")}


def _widths_attngate(a) -> dict[str, tuple[int, int, str]]:
    q = 2 ** (GATE_WEIGHT_BITS - 1) - 1
    mant = (-q, q, f"{GATE_WEIGHT_BITS}-bit mantissas")
    return {"ca_w1_avg": mant, "ca_w1_max": mant, "ca_w2": mant, "sa_weight": mant,
            "ca_bias": (-MAX_BIAS, MAX_BIAS, "bias"), "sa_bias": (-MAX_BIAS, MAX_BIAS, "bias"),
            "lut": (0, 2 ** a.gate_bits, f"gates of {a.gate_bits} bits")}


#: process kind -> its params' integer ranges ``name -> (lo, hi, what sets it)`` from its attributes
#: (kinds without params: none)
WIDTHS = {"synapse": _widths_synapse, "neuron": _widths_neuron, "attngate": _widths_attngate}


def check_values(p: Process) -> None:
    """Integer params within the widths the process's attributes (the chip's widths) give them."""
    widths = WIDTHS[p.kind](p.attrs) if p.kind in WIDTHS else {}
    for key, v in p.params.items():
        lo, hi, why = widths[key]
        _span(v, f"{where_of(p)} params/{key} ({why})", lo, hi)
