"""The ``.loihi`` artifact: one self-describing, versioned HDF5 file (schema in ``ARTIFACT.md``).

Everything the simulator needs and nothing from the Python model: the process graph with
its integer parameters, the core mapping and the quantization report. Written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os

import h5py
import numpy as np

from sresformer.errors import UserError
from sresformer.fileio import atomic_path

from .mapping import Group, Mapping
from .processes import Process, ProcessGraph

FORMAT = "sresformer.loihi"
VERSION = 1


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
            for i, p in enumerate(pg):
                g = procs.create_group(f"{i:04d}")
                g.attrs.update({"name": p.name, "kind": p.kind, "sources": _dumps(p.sources),
                                "operands": _dumps(list(p.operands)), "out_shape": np.asarray(p.out_shape, np.int64),
                                "attrs": _dumps(p.attrs), "exponent": int(p.exponent), "static": bool(p.static)})
                g.create_dataset("scale", data=np.asarray(p.scale, np.float64))
                for k, v in p.params.items():
                    g.create_dataset(f"params/{k}", data=np.asarray(v), compression="gzip" if np.size(v) > 4096 else None)
            m = f.create_group("mapping")
            m.attrs["chip"] = _dumps(mapping.chip)
            m.attrs["host"] = _dumps(mapping.host)
            m.attrs["placement"] = _dumps(mapping.placement)
            m.attrs["groups"] = _dumps([dataclasses.asdict(g) for g in mapping.groups.values()])


def read_artifact(path: str | os.PathLike) -> tuple[ProcessGraph, Mapping, dict]:
    """The process graph, mapping and quantization report of a .loihi file."""
    if not os.path.isfile(path):
        raise ArtifactError(f"artifact {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ArtifactError(f"{path} is not a sresformer .loihi artifact")
            if int(f.attrs["version"]) > VERSION:
                raise ArtifactError(f"{path} has artifact version {int(f.attrs['version'])}; this sresformer reads up "
                                    f"to {VERSION}: upgrade sresformer")
            procs = {}
            for key in sorted(f["processes"]):
                g = f["processes"][key]
                a = g.attrs
                attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(a["attrs"]).items()}
                scale = g["scale"][()]
                params = {k: g["params"][k][()] for k in g["params"]} if "params" in g else {}
                procs[a["name"]] = Process(a["name"], a["kind"], json.loads(a["sources"]), tuple(int(s) for s in a["out_shape"]),
                                           tuple(json.loads(a["operands"])), params, attrs, int(a["exponent"]),
                                           scale if np.ndim(scale) else float(scale), bool(a["static"]))
            pg = ProcessGraph(procs, str(f.attrs["output"]), int(f.attrs["T"]),
                              tuple(int(s) for s in f.attrs["input_shape"]), bool(f.attrs["input_static"]),
                              json.loads(f.attrs["metadata"]))
            m = f["mapping"]
            groups = {g["name"]: Group(**g) for g in json.loads(m.attrs["groups"])}
            mapping = Mapping(json.loads(m.attrs["chip"]), groups, json.loads(m.attrs["host"]),
                              json.loads(m.attrs["placement"]))
            report = json.loads(f.attrs["report"])
    except ArtifactError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{path} is truncated or not a readable .loihi artifact ({type(e).__name__})") from None
    return pg, mapping, report
