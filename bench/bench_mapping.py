"""Cores and chips of a model on each chip and objective: a mapping only, nothing simulated.

Builds (or reuses, ``--work DIR``) the warmed-up checkpoint of ``bench_simulator``, lowers it
to its process graph (calibrated on synthetic images, as that benchmark's export) and maps it
with ``hw_sim.mapping.map_graph`` for every chip and objective, printing cores, chips, the predicted
step time (every input
firing) and the
time the mapping took (``latency`` without the fan-out count, which takes minutes for Ti). The
model is lowered for each chip, so its attention is what that chip runs: product neurons
(``prodmm``) on ``loihi2``, the hypothetical operand-memory core (``dsmm``) on ``loihi2-opmem``;
``loihi1`` refuses DSSA's products at the lowering. A chip that refuses the model prints its
one-line reason; refused for fan-out, the cores it would take without that limit too.
``product_cores``: cores of the groups that compute products (a dsmm's group, or the product
compartments of a prodmm); ``product_reader_cores``: with prodmm, the cores of the groups its
terms sum in (they hold k synapses per compartment).

    python bench/bench_mapping.py [--model spikingresformer_ti] [--img-size 224] [--no-fan-out] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _product_cores(pg, m) -> dict:
    """Cores of the groups computing products (a dsmm's, a prodmm's compartments) and of a prodmm's readers."""
    from hw_sim.processes import PRODUCT_KINDS

    prods = {p.name for p in pg if p.kind == "prodmm"}
    readers = set()
    for p in pg:   # the groups a prodmm's terms sum in: readers through pass-throughs
        src = [s for s in p.sources if s in prods or (pg.processes[s].kind in ("sum", "flatten")
               and len(pg.processes[s].sources) == 1 and pg.processes[s].sources[0] in prods)]
        if src and p.name in m.placement and m.placement[p.name] in m.groups:
            readers.add(m.placement[p.name])
    cores = sum(g.cores for g in m.groups.values() if any(pg.processes[x].kind in PRODUCT_KINDS for x in g.members))
    out = {"product_cores": cores}
    if prods:
        out["product_groups"] = {n: m.groups[n].cores for n in sorted(prods)}
        out["product_reader_cores"] = sum(m.groups[r].cores for r in readers)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spikingresformer_ti")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--work", type=Path, default=ROOT / ".bench")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-fan-out", action="store_true",
                    help="leave the fan-out uncounted for the cores objective too (its per-core mask push "
                         "takes tens of minutes for Ti at 224 on a shared CPU)")
    args = ap.parse_args()

    from bench.bench_simulator import build_checkpoint
    from exporters.loihi.export import lowered_graph
    from hw_sim.chips import load_chip
    from hw_sim.mapping import MappingError, map_graph
    from hw_sim.prodneuron import attention_of
    from sresformer.errors import UserError

    ckpt = build_checkpoint(args.model, args.img_size, args.work)
    rows = []
    for chip in ("loihi2", "loihi2-opmem", "loihi1"):
        t0 = time.perf_counter()
        try:   # lowered for this chip: its attention is what the chip runs
            pg = lowered_graph(str(ckpt), "synthetic", None, chip=load_chip(chip), calib_images=8, eval_images=4).pg
        except UserError as e:
            rows.append({"chip": chip, "refused": str(e), "seconds": round(time.perf_counter() - t0, 1)})
            if not args.json:
                print(", ".join(f"{k}: {v}" for k, v in rows[-1].items()), flush=True)
            continue
        for objective in ("cores", "latency"):
            t0 = time.perf_counter()
            try:
                m = map_graph(pg, load_chip(chip), objective=objective,
                              fan_out=objective == "cores" and not args.no_fan_out)
                row = {"chip": chip, "attention": attention_of(pg), "objective": objective, "cores": m.cores,
                       "chips": m.chips, "step_ns": round(m.step_ns, 1), **_product_cores(pg, m)}
            except MappingError as e:
                row = {"chip": chip, "attention": attention_of(pg), "objective": objective, "refused": str(e)}
                if "fan-out" in str(e):   # what the cores would be, the fan-out limit aside
                    m = map_graph(pg, load_chip(chip), objective=objective, fan_out=False)
                    row.update({"cores_without_fan_out_limit": m.cores, "chips_without_fan_out_limit": m.chips,
                                **_product_cores(pg, m)})
            row["seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            if not args.json:
                print(", ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
            if "refused" in row and "cores_without_fan_out_limit" not in row:
                break   # refused whatever the objective (no graded spikes)
    if args.json:
        print(json.dumps({"model": args.model, "img_size": args.img_size, "mappings": rows}))


if __name__ == "__main__":
    main()
