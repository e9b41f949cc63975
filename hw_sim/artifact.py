"""The ``.loihi`` artifact: one self-describing, versioned HDF5 file (schema in ``ARTIFACT.md``).

Everything the simulator needs and nothing from the Python model: the process graph with
its integer parameters, the core mapping and the quantization report. Written atomically;
read by :func:`read_artifact`, which checks every field it reads (``artifact_check``) before
anything is computed, so a crafted or damaged file is one ``ArtifactError``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np

from sresformer.errors import UserError
from sresformer.fileio import atomic_path
from sresformer.limits import MAX_T
from sresformer.progress import track

from . import artifact_check as chk
from .artifact_bounds import check_bounds
from .artifact_check import Invalid
from .chips import available, load_chip
from .format_check import check_formats
from .mapping import Mapping, MappingError, map_graph
from .mapping_check import check_chip, check_mapping
from .processes import GRADED_KINDS, KINDS, Process, ProcessGraph, ProdmmAttrs
from .prodneuron import attention_lowering, attention_of

FORMAT = "sresformer.loihi"
VERSION = 5
#: Version 1 files predate the typed attributes: their neurons' decays were fixed at 12 bits
#: (``du``, ``dv`` in 1/4096) and their synapses' mantissas at 8 bits (version-1 ARTIFACT.md);
#: reading one fills these in, so it runs exactly as it did.
V1_FIXED = {"neuron": {"decay_bits": 12}, "synapse": {"weight_bits": 8}}
#: Version 3 added ``out_bits`` to the graded kinds; an older file's graded values are taken to
#: saturate at its chip's ``state_bits`` (the width of the compartment they are accumulated in).
V3_FIELDS = ("out_bits",)
#: what version 4 added to the neuron kind, as the earlier versions' neurons had it
V4_FIXED = {"reset": "zero", "in_shift": 0}
# version 5 added running counts (the cumulative product's C_t): every older sum is a plain one
V5_FIXED = {"running": "none"}


class ArtifactError(UserError):
    """A .loihi file that is missing, truncated, foreign or from a newer sresformer."""


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, bytes):
        return v.decode()
    return v


def _dumps(obj) -> str:
    return json.dumps(obj, default=_jsonable)


def write_artifact(path: str | os.PathLike, pg: ProcessGraph, mapping: Mapping, report: dict) -> None:
    """Write the artifact atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["T"] = pg.T
            f.attrs["input_shape"] = np.asarray(pg.input_shape, np.int64)
            f.attrs["input_static"] = pg.input_static
            f.attrs["output"] = pg.output
            f.attrs["order"] = _dumps([p.name for p in pg])
            f.attrs["metadata"] = _dumps({k: _jsonable(v) for k, v in pg.metadata.items()})
            f.attrs["report"] = _dumps(report)
            procs = f.create_group("processes")
            for i, p in enumerate(track(pg, "write artifact", unit="process", total=len(pg.processes))):
                g = procs.create_group(f"{i:04d}")
                g.attrs.update({"name": p.name, "kind": p.kind, "sources": _dumps(p.sources),
                                "operands": _dumps(list(p.operands)), "out_shape": np.asarray(p.out_shape, np.int64),
                                "attrs": _dumps(p.attrs.to_dict()), "exponent": int(p.exponent),
                                "static": bool(p.static)})
                g.create_dataset("scale", data=np.asarray(p.scale, np.float64))
                for k, v in p.params.items():
                    g.create_dataset(f"params/{k}", data=np.asarray(v),
                                     compression="gzip" if np.size(v) > 4096 else None)
            m = f.create_group("mapping")
            m.attrs["chip"] = _dumps(mapping.chip)
            m.attrs["host"] = _dumps(mapping.host)
            m.attrs["placement"] = _dumps(mapping.placement)
            m.attrs["groups"] = _dumps([dataclasses.asdict(g) for g in mapping.groups.values()])


ROOT_ATTRS = ("format", "version", "T", "input_shape", "input_static", "output", "order", "metadata", "report")
PROCESS_ATTRS = ("name", "kind", "sources", "operands", "out_shape", "attrs", "exponent", "static")
MAPPING_ATTRS = ("chip", "host", "placement", "groups")
MAX_ATTR_BYTES = 64 << 20   # the largest attribute we read (the JSON report / metadata are kilobytes)
MAX_EXPONENT = 128          # value units 2**exponent (real ones are within +-32; 2.0**1024 overflows)
MAX_NAME = 1000
REEXPORT = "re-export it with 'sresformer export SRC --target loihi'"


def _attrs(obj, allowed, where: str) -> dict:
    """The attributes of ``obj``, exactly ``allowed`` (an unknown one is a foreign or edited file), each
    read only after its stored size is checked (an attribute can be made huge)."""
    a = obj.attrs
    extra = sorted(set(a) - set(allowed))
    if extra:
        raise Invalid(f"{where} has unknown attribute {extra[0]!r} (known: {', '.join(allowed)})")
    out = {}
    for key in allowed:
        if key not in a:
            raise Invalid(f"{where} has no attribute {key!r}")
        if a.get_id(key).get_storage_size() > MAX_ATTR_BYTES:
            raise Invalid(f"{where}: attribute {key!r} is over {MAX_ATTR_BYTES} bytes")
        out[key] = a[key]
    return out


def _flag(v, what: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise Invalid(f"{what} must be a boolean, got {type(v).__name__}")
    return bool(v)


def _names(v, what: str) -> list[str]:
    v = chk.json_value(v, what)
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise Invalid(f"{what} must be a JSON list of process names")
    return v


def _json_dict(v, what: str) -> dict:
    v = chk.json_value(v, what)
    if not isinstance(v, dict):
        raise Invalid(f"{what} must be a JSON object")
    return v


def _member(group, key: str, kind, where: str):
    """``group[key]``, which must exist and be an HDF5 group or dataset as ``kind`` says."""
    obj = group.get(key)
    if not isinstance(obj, kind):
        raise Invalid(f"{where} has no {'group' if kind is h5py.Group else 'dataset'} {key!r}")
    if kind is h5py.Dataset and (obj.dtype.kind not in "biuf" or obj.dtype.itemsize > 8):
        raise Invalid(f"{where}: dataset {key!r} has dtype {obj.dtype}, not numbers")
    return obj


def _older_attrs(kind: str, raw: dict, where: str, version: int, chip: dict) -> dict:
    """A version-1 to -4 process's attrs as version 5 has them: what those versions fixed filled in."""
    fixed = dict(V1_FIXED.get(kind, {})) if version == 1 else {}
    if kind in GRADED_KINDS and version < 3:
        fixed.update({k: chip["state_bits"] for k in V3_FIELDS})
    if kind == "neuron" and version < 4:   # versions 1 to 3 had only Loihi's reset to 0
        fixed.update(V4_FIXED)
    if kind == "sum" and version < 5:
        fixed.update(V5_FIXED)
    known = sorted(set(raw) & set(fixed))
    if known:
        raise Invalid(f"{where}: attrs has unknown key {known[0]!r} for a version-{version} {kind}")
    return {**raw, **fixed}


def _process(g, index: int, version: int, chip: dict) -> tuple[Process, dict]:
    """One process's attributes, and its datasets (declared shapes only: nothing is read yet)."""
    where = f"process #{index}"
    a = _attrs(g, PROCESS_ATTRS, where)
    name = chk.text(a["name"], f"{where} name", MAX_NAME)
    kind = chk.text(a["kind"], f"{where} kind", 40)
    if not name or kind not in KINDS:
        raise Invalid(f"{where} {name!r} has kind {kind!r}; known kinds: {', '.join(KINDS)}")
    where = f"process {name!r} ({kind})"
    raw = _json_dict(a["attrs"], f"{where} attrs")
    if version < VERSION:
        if kind == "prodmm" and version < 3:
            raise Invalid(f"{where}: version {version} has no prodmm (it named every product dsmm)")
        raw = _older_attrs(kind, raw, where, version, chip)
    attrs = chk.typed_attrs(kind, raw, where, complete=version >= 2)
    p = Process(name, kind, _names(a["sources"], f"{where} sources"),
                chk.ints(a["out_shape"], f"{where} out_shape", 1, chk.MAX_VALUE_ELEMENTS, (1, 4)),
                tuple(_names(a["operands"], f"{where} operands")), {}, attrs,
                chk.integer(a["exponent"], f"{where} exponent", -MAX_EXPONENT, MAX_EXPONENT), 1.0,
                _flag(a["static"], f"{where} static"))
    extra = sorted(set(g) - {"scale", "params"})
    if extra:
        raise Invalid(f"{where} has unknown member {extra[0]!r}")
    params = _member(g, "params", h5py.Group, where) if "params" in g else {}
    data = {k: _member(params, k, h5py.Dataset, where) for k in params}
    return p, {"params": data, "scale": _member(g, "scale", h5py.Dataset, where)}


def _read_params(p: Process, data: dict, want: dict) -> None:
    """Params whose declared shapes and dtypes are what the graph needs, read as int64 only then."""
    where = chk.where_of(p)
    for key in sorted(set(data) | set(want)):
        if key not in want:
            raise Invalid(f"{where} has unknown params/{key} (a {p.kind} has {', '.join(sorted(want)) or 'none'})")
        if key not in data:
            raise Invalid(f"{where} has no params/{key}")
        ds = data[key]
        if tuple(ds.shape) not in want[key]:
            raise Invalid(f"{where}: params/{key} has shape {tuple(ds.shape)}, the graph needs "
                          + " or ".join(str(s) for s in want[key]))
        if ds.dtype.kind not in "iu":   # a float (NaN, 0.5) is a hand edit: the chip holds integers
            raise Invalid(f"{where}: params/{key} has dtype {ds.dtype}; it must be integers (int64)")
        v = np.asarray(ds[()])
        if v.dtype.kind == "u" and v.size and int(v.max()) >= 2 ** 63:
            raise Invalid(f"{where}: params/{key} has values beyond int64")
        p.params[key] = v.astype(np.int64)


def _read_scale(p: Process, ds) -> None:
    """The positive real factor of the values: a scalar or one per element, finite."""
    where = chk.where_of(p)
    if tuple(ds.shape) not in ((), tuple(p.out_shape)) or ds.dtype.kind != "f":
        raise Invalid(f"{where}: scale is {ds.dtype} {tuple(ds.shape)}; it must be float64, a scalar or {p.out_shape}")
    v = np.asarray(ds[()], dtype=np.float64)
    if not (np.all(np.isfinite(v)) and np.all(v >= 1e-30) and np.all(v <= 1e30)):
        raise Invalid(f"{where}: scale must be finite and in [1e-30, 1e30]")
    p.scale = v if v.ndim else float(v)


def _graph(f, root: dict, chip: dict, version: int) -> ProcessGraph:
    """Every process: attributes, structure, kinds and shapes, then (declared sizes checked) the params."""
    procs = _member(f, "processes", h5py.Group, "the file")
    keys = list(procs)
    if len(keys) > chk.MAX_PROCESSES:
        raise Invalid(f"{len(keys)} processes, over the {chk.MAX_PROCESSES} we read")
    if not all(k.isdigit() for k in keys) or sorted(int(k) for k in keys) != list(range(len(keys))):
        raise Invalid("/processes must hold groups numbered 0000, 0001, ... without gaps")
    read = [_process(_member(procs, k, h5py.Group, "/processes"), i, version, chip)
            for i, k in enumerate(sorted(keys, key=int))]
    if version < 3 and attention_lowering(chip) == "prodneuron":
        # versions 1 and 2 named every product dsmm; on a chip without operand memory it is the same
        # integers built from product neurons (its value read by one neuron, as those graphs do)
        for p, _ in read:
            if p.kind == "dsmm":
                p.kind = "prodmm"
                p.attrs = ProdmmAttrs(p.attrs.form, p.attrs.heads, out_bits=p.attrs.out_bits)
    chk.check_structure([p for p, _ in read], root["order"], root["output"], root["input_shape"],
                        root["input_static"], root["T"])
    pg = ProcessGraph({p.name: p for p, _ in read}, root["output"], root["T"], root["input_shape"],
                      root["input_static"], root["metadata"])
    total = sum(ds.size for _, d in read for ds in [*d["params"].values(), d["scale"]])
    if total > chk.MAX_PARAM_ELEMENTS:   # before any is read: a declared size alone can be a memory bomb
        raise Invalid(f"the datasets declare {total} elements, over the {chk.MAX_PARAM_ELEMENTS} we read")
    for p, d in read:
        want = chk.check_kind(p, pg, {k: tuple(ds.shape) for k, ds in d["params"].items()}, chip)
        _read_params(p, d["params"], want)
        _read_scale(p, d["scale"])
        chk.check_values(p)
    check_bounds(pg)
    if version >= 3:   # versions 1 and 2 predate the chip formats: they simulate as they ran
        check_formats(pg, chip)
    return pg


def _load(f, version: int) -> tuple[ProcessGraph, Mapping, dict]:
    """Graph, mapping and report of an open file whose format and version are known to be ours."""
    a = _attrs(f, ROOT_ATTRS, "the root")
    root = {"T": chk.integer(a["T"], "T (time steps)", 1, MAX_T),
            "input_shape": chk.ints(a["input_shape"], "input_shape", 1, chk.MAX_VALUE_ELEMENTS, (1, 4)),
            "input_static": _flag(a["input_static"], "input_static"),
            "output": chk.text(a["output"], "output", MAX_NAME),
            "order": _names(a["order"], "order"),
            "metadata": _json_dict(a["metadata"], "metadata"), "report": _json_dict(a["report"], "report")}
    m = _attrs(_member(f, "mapping", h5py.Group, "the file"), MAPPING_ATTRS, "/mapping")
    raw_chip = chk.json_value(m["chip"], "/mapping chip")
    if version == 1 or (version == 2 and isinstance(raw_chip, dict) and "bias_mant_bits" not in raw_chip):
        return _load_remapped(f, root, raw_chip, version)
    chip = check_chip(raw_chip)
    pg = _graph(f, root, chip, version)
    host, placement = _names(m["host"], "/mapping host"), chk.json_value(m["placement"], "/mapping placement")
    groups = check_mapping(pg, chip, chk.json_value(m["groups"], "/mapping groups"), host, placement)
    return pg, Mapping(chip, groups, host, placement, attention=attention_of(pg)), root["report"]


def _load_remapped(f, root: dict, old_chip, version: int) -> tuple[ProcessGraph, Mapping, dict]:
    """An older file: its graph, mapped again on its built-in chip under today's resource model.

    Version 1 predates the resource model (issue 11: one shared per-core memory, shared
    convolution weights, axons and fan-out counted per core); its stored mapping counted
    every synapse, so it is not carried over: the graph is mapped again on the chip it names.
    A version-2 file written before the chip formats (issue 13) names a chip without them: it
    is mapped again on today's description of that chip, its integers as they ran.
    """
    name = old_chip.get("name") if isinstance(old_chip, dict) else None
    if not isinstance(name, str) or name not in available("chip"):
        raise Invalid(f"it is a version-{version} artifact mapped on chip {name!r:.60}, which is not a built-in "
                      "chip, so it cannot be mapped again under today's resource model")
    chip = load_chip(name)
    pg = _graph(f, root, dataclasses.asdict(chip), version)
    return pg, map_graph(pg, chip), root["report"]


def _check_format(f, path) -> int:
    """``format`` must be ours and ``version`` an integer we know; returns the version."""
    for key in ("format", "version"):   # read only small attributes (a crafted one can be huge)
        if key in f.attrs and f.attrs.get_id(key).get_storage_size() > 4096:
            raise ArtifactError(f"{path} is not a sresformer .loihi artifact (its {key} attribute is oversized)")
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", errors="replace")
    if not isinstance(fmt, str) or fmt != FORMAT:
        what = "has no format attribute" if fmt is None else "is not a sresformer .loihi artifact"
        raise ArtifactError(f"{path} {what} (format {FORMAT!r} expected); give a file written by "
                            "'sresformer export ... --target loihi'")
    version = f.attrs.get("version")
    if isinstance(version, np.ndarray) and version.ndim == 0:
        version = version[()]
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ArtifactError(f"{path} has no valid artifact version (an integer >= 1, got {version!r:.40}); "
                            f"{REEXPORT}")
    if int(version) > VERSION:
        raise ArtifactError(f"{path} has artifact version {int(version)}; this sresformer reads up to {VERSION}: "
                            "upgrade sresformer")
    return int(version)


def read_artifact(path: str | os.PathLike) -> tuple[ProcessGraph, Mapping, dict]:
    """The process graph, mapping and quantization report of a .loihi file, every field checked.

    Raises :class:`ArtifactError` (one line: what is wrong, what to do) for a missing, foreign,
    truncated, newer or invalid file; nothing is computed from a field before it is checked.
    """
    if not os.path.isfile(path):
        raise ArtifactError(f"artifact {path} does not exist" if not os.path.exists(path)
                            else f"artifact {path} is not a regular file")
    try:
        if not h5py.is_hdf5(path):
            raise ArtifactError(f"{path} is not an HDF5 file, so not a .loihi artifact; give a file written by "
                                "'sresformer export ... --target loihi'")
        with h5py.File(path, "r") as f:
            return _load(f, _check_format(f, path))
    except ArtifactError:
        raise
    except Invalid as e:
        raise ArtifactError(f"{path} is not a valid .loihi artifact: {e}; {REEXPORT}") from None
    except MappingError as e:
        raise ArtifactError(f"{path} is not a valid .loihi artifact: {e}; {REEXPORT}") from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ArtifactError(f"{path} is truncated or not a readable .loihi artifact ({type(e).__name__}); "
                            f"{REEXPORT}") from None
