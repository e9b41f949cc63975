"""``--target lava``: a directory with the artifact Lava's fixed-point models reproduce exactly, and how to run it.

The model is lowered and mapped as for ``--target loihi`` (``exporters.loihi.export``), moved onto Lava's
threshold and bias grid (:func:`exporters.lava.grid.lava_grid`), checked by the Lava plan (a graph Lava cannot
reproduce is refused in one line, nothing written) and written as ``DIR/model.loihi`` with ``DIR/README.md``.
No Python source is generated: the Lava graph is built from the artifact at run time
(:func:`exporters.lava.build.build`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sresformer.errors import OutputError

from .grid import lava_grid
from .plan import plan_graph

ARTIFACT = "model.loihi"
README = """# {name}: a sresformer model for Lava

`model.loihi` is the integer process graph (format `sresformer.loihi`, `hw_sim/ARTIFACT.md`), on Lava's
grid: every neuron threshold is `64 k + 1` and every bias a 13-bit mantissa `<< 0..7`, so Lava's
bit-accurate models (`Loihi2SimCfg(select_tag='fixed_pt')`) reproduce our executor spike for spike
(`exporters/lava/SEMANTICS.md`).

Compare Lava with our executor on test images:

    sresformer simulate {out}/model.loihi --backend lava --limit 4

Build the Lava processes yourself (lava-nc; `bash .ci/install-lava`):

    from exporters.lava.build import build
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    g = build("{out}/model.loihi", x_int)      # x_int: the host's input integers [N, {shape}]
    g.source.run(condition=RunSteps(num_steps=g.steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    spikes = {{name: sink.data.get() for name, sink in g.sinks.items()}}   # Lava's [W, H, C] layout, delayed
    g.source.stop()

`exporters.lava.worker.collect(g)` turns the sinks' data into our `[N, T, C, H, W]` integers (delays removed).
Processes: {procs}. T = {T}; samples are pipelined: N samples take N * {T} + {depth} Lava steps (the
pipeline's depth), sample i reaching a process of delay d at step i * {T} + d.
"""


def export_lava(source: str, out: str | os.PathLike, **options) -> dict:
    """Lower ``source`` (checkpoint or NIR file) for Lava; write ``out/model.loihi`` and ``out/README.md``.

    Returns the summary the CLI prints. ``out`` must not exist or be an empty directory; the files
    appear together (written in a temporary directory beside it, then renamed).
    """
    from exporters.loihi.export import export_loihi
    from hw_sim.artifact import read_artifact, write_artifact

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"--out {out} exists and is not an empty directory; give a new directory")
    with tempfile.TemporaryDirectory(prefix="sresformer-lava-") as tmp:
        first = Path(tmp) / "first.loihi"
        summary = export_loihi(source, first, **options)
        pg, mapping, report = read_artifact(first)
    grid = lava_grid(pg)
    nodes = plan_graph(grid)   # refuses (one line) before anything is written
    depth = max(n.delay for n in nodes.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write_artifact(staging / ARTIFACT, grid, mapping, report)
        kinds = sorted({f"{n.lava}" for n in nodes.values()})
        (staging / "README.md").write_text(README.format(
            name=Path(source).stem, out=out, shape=", ".join(map(str, grid.input_shape)), T=grid.T,
            depth=depth, procs=", ".join(kinds)))
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**summary, "target": "lava", "out": str(out), "artifact": str(out / ARTIFACT),
            "lava_processes": len(nodes), "lava_depth": depth}
