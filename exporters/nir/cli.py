"""``sresformer export SOURCE --target nir --out MODEL.nir``: the CLI's entry into this package."""

from __future__ import annotations

from pathlib import Path

from sresformer.errors import UserError

from .convention import required_extensions
from .export import export, write_graph
from .load import read_graph


def export_nir(source, out, T=None, **_ignored) -> dict:
    """Write ``source`` (our checkpoint, or a ``.nir`` file to check and rewrite) as NIR at ``out``.

    Returns the summary the CLI prints: target, output path, its size in bytes, the NIR
    node count, the extensions a reader must know, and ``dt`` (one step in file time units).
    Calibration, chip and ONNX options do not apply to this target and are ignored.
    """
    src, out = Path(source), Path(out)
    if out.suffix != ".nir":
        raise UserError(f"--out {out} should end in .nir")
    if src.suffix == ".nir":
        from .load import load
        load(src)  # refuses anything this reader cannot run, with a one-line NIRError
        graph = read_graph(src)
        write_graph(graph, out)
    else:
        from sresformer.checkpoint import load_checkpoint
        graph = export(load_checkpoint(src), out, T=T)
    return {"target": "nir", "out": str(out), "bytes": out.stat().st_size, "nodes": _count(graph),
            "extensions_required": required_extensions(graph.metadata), "dt": float(graph.metadata.get("dt", 1.0))}


def _count(graph) -> int:
    """Nodes in the graph and all nested graphs (Input/Output included)."""
    return sum(1 + (_count(n) if hasattr(n, "nodes") else 0) for n in graph.nodes.values())
