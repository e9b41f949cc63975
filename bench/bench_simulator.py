"""Benchmark the chip simulator against the float torch model, measured in the same run.

Prints (one line each, and one JSON object with ``--json``):

- synaptic events simulated per second: the exact AC + MAC count of one inference divided
  by the simulator's wall time for it (executor + per-core counting; setup excluded);
- for spikingresformer_ti at 224 x 224 with T = 4 on one image: simulator time / float
  forward time of the same model on the same image (targets: >= 1e9 events/s, ratio <= 3);
- the one-off setup time (reading the artifact, fan-out and message tables) separately;
- the spike density (spikes per neuron-step) of that inference.

The benchmark network must fire like a trained one: a random Ti, warmed up on random images,
is silent on the benchmark image (density 0: its only events are the stem's MACs on the
embedded processor), which measures nothing. So before the warm-up every BatchNorm's affine
is set to ``gamma * bn_gain`` and ``beta + bn_shift`` (defaults 1.5 and 0.4: about 12% spikes
per neuron-step, measured and printed; 1.0 / 0.5 gives ~17%, 2.0 / 0.5 ~21%, 1.0 / 0.0 the
silent network). The float model, the exported artifact and the simulated one are then the
same network, exported as any checkpoint is: the ratio compares like with like.

The Ti artifact is built once and cached (``--work DIR``): a Ti model warmed up on random
images (BN statistics and DSSA rates become realistic), saved, and exported with
``--calib-data synthetic``. The export's float-vs-integer accuracy check is cut to a few
images (it is not what this benchmark measures).

    python bench/bench_simulator.py [--model spikingresformer_ti] [--img-size 224] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_artifact(model_name: str, img_size: int, work: Path, bn_gain: float = 1.0,
                   bn_shift: float = 0.0) -> tuple[Path, Path]:
    """A warmed-up checkpoint (BN affine scaled by ``bn_gain``, shifted by ``bn_shift``) and its
    .loihi artifact under ``work`` (reused when present)."""
    from bench.hypothetical_chip import unbounded_chip
    from exporters.loihi import export as export_mod

    ckpt = build_checkpoint(model_name, img_size, work, bn_gain, bn_shift)
    art = ckpt.with_suffix(".loihi")
    if not art.exists():
        # the accuracy check is not benchmarked here
        export_mod.export_loihi(str(ckpt), art, calib_data="synthetic", calib_images=8, eval_images=4,
                                chip=str(unbounded_chip("loihi2", work / "loihi2-unbounded.toml")))
    return ckpt, art


def build_checkpoint(model_name: str, img_size: int, work: Path, bn_gain: float = 1.0,
                     bn_shift: float = 0.0) -> Path:
    """The warmed-up checkpoint of :func:`build_artifact` (reused when present)."""
    import sresformer

    ckpt = work / f"{model_name}_{img_size}_bn{bn_gain:g}_{bn_shift:g}.ckpt"
    if ckpt.exists():
        return ckpt
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    kwargs = {} if img_size == 224 else {"img_size": img_size}
    model = sresformer.create_model(model_name, **kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.mul_(bn_gain)
                m.bias.add_(bn_shift)
    x = torch.randn(4, 3, img_size, img_size)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    sresformer.save_checkpoint(model.eval(), ckpt)
    return ckpt


def best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure_events(sess, image) -> tuple[float, float]:
    """Synaptic events (AC + MAC, cores and embedded processor) of one inference, and spikes per neuron-step."""
    _, counts = sess.run_batch(image)
    events = float(counts.core["ac"].sum() + counts.core["mac"].sum()
                   + counts.embedded["ac"].sum() + counts.embedded["mac"].sum())
    neurons = sum(int(np.prod(p.out_shape)) for p in sess.pg if p.kind == "neuron")
    return events, float(counts.core["spikes"].sum()) / max(1, neurons * counts.core["spikes"].shape[0])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spikingresformer_ti")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", default=os.environ.get("SRESFORMER_BENCH_DIR", "/tmp/sresformer-bench"))
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for both the simulator and the float model (default: torch's); "
                         "on a machine shared with other jobs, 1 avoids OpenMP threads waiting on busy cores")
    ap.add_argument("--bn-gain", type=float, default=1.5, help="BN gamma multiplier before the warm-up (activity)")
    ap.add_argument("--bn-shift", type=float, default=0.4, help="BN beta offset before the warm-up (activity)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import sresformer
    from hw_sim.simulate import Session

    ckpt, art = build_artifact(args.model, args.img_size, Path(args.work), args.bn_gain, args.bn_shift)
    torch.manual_seed(1)
    image = torch.rand(1, 3, args.img_size, args.img_size) * 2 - 1

    t0 = time.perf_counter()
    sess = Session(art)
    setup_s = time.perf_counter() - t0

    model = sresformer.load_checkpoint(ckpt).eval()
    with torch.no_grad():
        model(image)                                  # warm the allocator and kernels once
    float_s = best_of(lambda: torch.no_grad()(model)(image), args.repeats)
    sess.run_batch(image)
    sim_s = best_of(lambda: sess.run_batch(image), args.repeats)
    exec_s = best_of(lambda: sess.executor.run(image), args.repeats)

    events, density = measure_events(sess, image)
    out = {"model": args.model, "img_size": args.img_size, "T": sess.pg.T, "cores": sess.mapping.cores,
           "threads": torch.get_num_threads(), "synaptic_events": events,
           "events_per_s": events / sim_s, "simulator_s": sim_s, "executor_only_s": exec_s,
           "float_forward_s": float_s, "ratio_simulator_over_float": sim_s / float_s, "setup_s": setup_s,
           "spike_density": density, "bn_gain": args.bn_gain, "bn_shift": args.bn_shift,
           "targets": {"events_per_s": 1e9, "ratio": 3.0}}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.model} @ {args.img_size}, T={out['T']}, {out['cores']} cores, {out['threads']} threads")
        print(f"synaptic events per inference   {events:,.0f}")
        print(f"simulator (executor + counting)  {sim_s:.3f} s   -> {events / sim_s:.3g} events/s (target >= 1e9)")
        print(f"  executor alone                 {exec_s:.3f} s")
        print(f"float torch forward              {float_s:.3f} s   -> ratio {sim_s / float_s:.2f} (target <= 3)")
        print(f"setup (artifact, fan-out tables) {setup_s:.1f} s, once per artifact")
        print(f"spike density (spikes / neuron-steps) {density:.4f}")
    return out


if __name__ == "__main__":
    main()
