"""Cores and chips of a model on each chip and objective: a mapping only, nothing simulated.

Builds (or reuses, ``--work DIR``) the warmed-up checkpoint of ``bench_simulator``, lowers it
to its process graph (calibrated on synthetic images, as that benchmark's export) and maps it
with ``hw_sim.mapping.map_graph`` for every chip and objective, printing cores, chips, the predicted step
time (every input firing) and the
time the mapping took (``latency`` without the fan-out count, which takes minutes for Ti). A
chip that refuses the model prints its one-line reason (Loihi 1 has no graded spikes for the
residual stream); refused for fan-out, the cores it would take without that limit too.

    python bench/bench_mapping.py [--model spikingresformer_ti] [--img-size 224] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _product_cores(pg, m) -> int:
    """Cores of the groups that hold a dual-spike product (DSSA's attention maps and outputs)."""
    return sum(g.cores for g in m.groups.values() if any(pg.processes[x].kind == "dsmm" for x in g.members))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spikingresformer_ti")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--work", type=Path, default=ROOT / ".bench")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from bench.bench_simulator import build_checkpoint
    from exporters.loihi.export import lowered_graph
    from hw_sim.chips import load_chip
    from hw_sim.mapping import MappingError, map_graph

    ckpt = build_checkpoint(args.model, args.img_size, args.work)
    pg = lowered_graph(str(ckpt), "synthetic", None, chip=load_chip("loihi2"), calib_images=8, eval_images=4).pg
    rows = []
    for chip in ("loihi2", "loihi1"):
        for objective in ("cores", "latency"):
            t0 = time.perf_counter()
            try:
                m = map_graph(pg, load_chip(chip), objective=objective, fan_out=objective == "cores")
                row = {"chip": chip, "objective": objective, "cores": m.cores, "chips": m.chips,
                       "step_ns": round(m.step_ns, 1), "dual_spike_product_cores": _product_cores(pg, m)}
            except MappingError as e:
                row = {"chip": chip, "objective": objective, "refused": str(e)}
                if "fan-out" in str(e):   # what the cores would be, the fan-out limit aside
                    m = map_graph(pg, load_chip(chip), objective=objective, fan_out=False)
                    row.update({"cores_without_fan_out_limit": m.cores, "chips_without_fan_out_limit": m.chips,
                                "dual_spike_product_cores": _product_cores(pg, m)})
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            if not args.json:
                print(", ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
            if "refused" in row and "cores_without_fan_out_limit" not in row:
                break   # refused whatever the objective (no graded spikes)
    if args.json:
        print(json.dumps({"model": args.model, "img_size": args.img_size, "T": pg.T, "mappings": rows}))


if __name__ == "__main__":
    main()
