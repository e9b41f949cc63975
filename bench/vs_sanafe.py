"""A tiny binary spiking CNN on our Loihi 1 model beside SANA-FE's Loihi model, same integers, same placement.

SANA-FE (SLAM-Lab; Boyle et al., IEEE TCAD 2025; PyPI ``sanafe==2.2.9``, ``pip install .[sanafe]``) is
an architecture simulator whose bundled ``loihi.yaml`` was validated within 12% energy / 25% latency
of Loihi 1 silicon. We build ``exporters/sanafe/tiny_cnn.py``'s network (binary frames -> conv -> IF
-> conv -> IF -> dense -> IF, integer weights), map it with our mapper on the ``loihi1`` chip (both
objectives: ``cores``, 4 cores in one tile; ``latency``, the layers spread over 107 cores of 27 tiles),
simulate it with ``hw_sim.simulate`` (``loihi1`` energy profile) and write the same network and
placement into SANA-FE (``exporters/sanafe/network.py``) on its unmodified ``loihi.yaml``.

Checked, or the script exits with status 1: every neuron's spikes at every step are identical (SANA-FE
delivers a spike one step later per layer, as our pipelined schedule does: its steps are shifted back
by our groups' pipeline delays); the synaptic events per chip step are identical; the messages are
identical. Printed: the energy per term (ours, SANA-FE's, ratio) from each side's own counts and
constants, the totals, and the latency of one inference (T + depth chip steps) against each of
SANA-FE's timing models: our ``simple`` beside its ``simple``, our ``detailed`` beside its ``detailed``
and ``cycle``. Goal: within 10% on energy and latency.

    python bench/vs_sanafe.py [--T 8] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OBJECTIVES = ("cores", "latency")
# (our summary's terms, SANA-FE's terms) for each row of the energy table
ROWS = {
    "synapse": (("ac", "mac", "synop_conv", "synop_dense", "synop_sparse"), ("synapse",)),
    "neuron updates": (("neuron_active", "neuron_idle"), ("neuron_access", "neuron_update")),
    "spike out": (("spike_out",), ("spike_out",)),
    "messages": (("message_out", "message_in", "spike_in_tile"), ("message_out",)),
    "hops": (("hop_ew", "hop_ns", "chip_link"), ("hops",)),
}


def ours(pg, mapping, frames: np.ndarray) -> dict:
    """Our side: the simulate summary, every group's spikes ``[T, n]`` and the synaptic ops per chip step."""
    from hw_sim.artifact import write_artifact
    from hw_sim.simulate import Session, simulate

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tiny.loihi")
        write_artifact(path, pg, mapping, {})
        x = torch.from_numpy(frames).float()
        data = torch.utils.data.TensorDataset(x[None], torch.zeros(1, dtype=torch.long))
        summary = simulate(path, "random-frames", profile="loihi1", dataset=data, progress=False)
        detailed = simulate(path, "random-frames", profile="loihi1", dataset=data, progress=False,
                            timing_model="detailed")
        summary["latency_detailed_s"] = detailed["latency_s"]
        sess = Session(path)
        result, counts = sess.run_batch(x[:, None], keep=True)
    plan = sess.plan
    spikes = {p.name: (result.values[p.name][:, 0].reshape(pg.T, -1) != 0).numpy()
              for p in pg if p.kind in ("neuron", "input")}
    ac = counts.core["ac"][:, 0].numpy()                       # [T, cores], the executor's steps
    per_step = np.zeros(pg.T + plan.depth)
    # a core of delay d integrates step t's spikes in chip step t + d; SANA-FE processes the synapses in
    # the step the spikes are sent (into its time-step buffer, read by the soma next step): t + d - 1
    for k, d in enumerate(plan.core_delay):
        if ac[:, k].any():
            per_step[d - 1:d - 1 + pg.T] += ac[:, k]
    return {"summary": summary, "spikes": spikes, "delay": dict(plan.delay), "syn_per_step": per_step}


def theirs(pg, mapping, frames: np.ndarray, depth: int) -> dict:
    """SANA-FE's runs (each timing model) of the same network and placement, and its counts and terms."""
    from exporters.sanafe.network import build_network
    from exporters.sanafe.run import TIMING_MODELS, SanafeChip, sanafe_counts, sanafe_terms

    chip = SanafeChip(build_network(pg, mapping, frames, extra_steps=depth))
    runs = {tm: chip.run(pg.T + depth, tm) for tm in TIMING_MODELS}
    run = runs["simple"]
    lif_spikes = int(sum(run.spikes[g].sum() for g in chip.built.lif_groups))
    counts = sanafe_counts(run, lif_spikes)
    return {"runs": runs, "counts": counts, "terms": sanafe_terms(run, counts)}


def check(pg, mine: dict, other: dict) -> list[str]:
    """What differs between the two simulators' events (empty when spikes, synaptic events and messages agree)."""
    from exporters.sanafe.run import aligned_spikes

    bad = []
    for run in other["runs"].values():
        for name, s in mine["spikes"].items():
            got = aligned_spikes(run, name, mine["delay"][name], pg.T)
            if got.shape != s.shape or not np.array_equal(got, s):
                bad.append(f"{run.timing_model}: spikes of {name!r} differ at {int((got != s).sum())} (step, neuron)")
        if not np.array_equal(np.asarray(run.perf["spikes"], np.float64), mine["syn_per_step"]):
            bad.append(f"{run.timing_model}: synaptic events per step {run.perf['spikes']} != ours "
                       f"{mine['syn_per_step'].astype(int).tolist()}")
        if run.packets != mine["summary"]["counts"]["msgs"]:
            bad.append(f"{run.timing_model}: {run.packets} messages != our {mine['summary']['counts']['msgs']:.0f}")
    return bad


def compare(objective: str, T: int, seed: int) -> dict:
    """One mapping objective: both sides, the checks, the table's figures."""
    from exporters.sanafe.network import sync_s, tiles_used
    from exporters.sanafe.tiny_cnn import map_binary_input, random_frames, tiny_cnn

    pg = tiny_cnn(T=T, seed=seed)
    mapping = map_binary_input(pg, "loihi1", objective)
    frames = random_frames(T, 1, seed=seed + 1)[0]
    mine = ours(pg, mapping, frames)
    s = mine["summary"]
    other = theirs(pg, mapping, frames, s["pipeline_depth"])
    energy = {row: (sum(s["energy_terms_j"][k] for k in a), sum(other["terms"][k] for k in b))
              for row, (a, b) in ROWS.items()}
    energy["total"] = (s["energy_j"], other["runs"]["simple"].energy_j["total"])
    # ours: simple timing beside SANA-FE's simple, detailed beside its detailed and cycle models
    ours_by = {"simple": s["latency_s"], "detailed": s["latency_detailed_s"], "cycle": s["latency_detailed_s"]}
    latency = {tm: (ours_by[tm], r.sim_time_s) for tm, r in other["runs"].items()}
    steps = s["T"] + s["pipeline_depth"]
    sync = (steps * s["assumptions"]["barrier_ns"] * 1e-9, steps * sync_s(tiles_used(mapping)))
    latency["  of which step sync"] = sync
    for tm in other["runs"]:
        latency[f"  of which work ({tm})"] = (latency[tm][0] - sync[0], latency[tm][1] - sync[1])
    c, o = s["counts"], other["counts"]
    compartments = sum(g.size for g in mapping.groups.values())
    layers = s["layers"]
    counts = {
        "synaptic events": (s["ac"], o["synaptic"]),
        "  conv-encoded": (sum(layers[n]["ac"] for n in ("conv1", "conv2")), o["conv"]),
        "  dense-encoded": (layers["fc"]["ac"], o["dense"]),
        # ours: every compartment in every chip step of the window (the summary's counts leave out the depth's)
        "compartment updates": (c["active"] + c["idle"] + compartments * s["pipeline_depth"], o["accessed"]),
        "  active (ours) / updated (SANA-FE)": (c["active"], o["updated"]),
        "LIF spikes": (c["spikes"], o["spikes"]),
        "messages": (c["msgs"], o["messages"]),
        "hops east-west": (c["hops_ew"], o["hops_ew"]),
        "hops north-south": (c["hops_ns"], o["hops_ns"]),
    }
    input_cores = [r for r in s["per_core"] if r["group"] == "input"]
    return {"objective": objective, "cores": s["cores"], "depth": s["pipeline_depth"], "T": T,
            "mismatches": check(pg, mine, other), "energy_j": energy, "latency_s": latency, "counts": counts,
            "input_compartment_updates": sum(r["active"] + r["idle"] for r in input_cores)
            + int(np.prod(pg.input_shape)) * s["pipeline_depth"]}


def _ratio(a, b) -> str:
    return f"{a / b:7.3f}" if a is not None and b else "      -"


def show(r: dict) -> None:
    """Print one objective's tables."""
    print(f"-- objective {r['objective']}: {r['cores']} cores, T = {r['T']}, pipeline depth {r['depth']} "
          f"({r['T'] + r['depth']} chip steps)")
    print(f"   {'energy term':24s} {'ours (nJ)':>11s} {'SANA-FE (nJ)':>13s} {'ratio':>7s}")
    for row, (a, b) in r["energy_j"].items():
        print(f"   {row:24s} {a * 1e9:11.3f} {b * 1e9:13.3f} {_ratio(a, b)}")
    for tm, (a, b) in r["latency_s"].items():
        label = tm if tm.startswith("  ") else f"latency ({tm})"
        print(f"   {label:24s} {a * 1e6:9.3f}us {b * 1e6:11.3f}us {_ratio(a, b)}")
    print(f"   {'events':36s} {'ours':>9s} {'SANA-FE':>9s}")
    for row, (a, b) in r["counts"].items():
        print(f"   {row:36s} {'' if a is None else f'{a:9.0f}':>9s} {'' if b is None else f'{b:9.0f}':>9s}")
    print(f"   our compartment updates include the {r['input_compartment_updates']:.0f} of the input group "
          "(SANA-FE's input somas cost nothing)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=8, help="steps per sample (1..64)")
    ap.add_argument("--seed", type=int, default=0, help="weights seed; the frames use seed + 1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.T <= 64:
        ap.error("--T must be within 1..64")
    results = [compare(obj, args.T, args.seed) for obj in OBJECTIVES]
    if args.json:
        print(json.dumps(results, default=float))
    else:
        print("tiny binary CNN, loihi1 (ours: hw_sim.simulate) vs SANA-FE loihi.yaml; ratio = ours / SANA-FE")
        for r in results:
            show(r)
    bad = [f"{r['objective']}: {m}" for r in results for m in r["mismatches"]]
    for m in bad:
        print(f"vs_sanafe: MISMATCH {m}", file=sys.stderr)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
