"""Memory and time as the model grows: export, simulator set-up, time per image and peak memory
for nano, Ti at 112 and Ti at 224, each beside the float torch forward of the same network,
measured in the same run.

Every stage runs in a process of its own, so its peak resident memory (``ru_maxrss``) is its
own: the export (default calibration: 64 images, batches of 8), the float forward of one image,
and the simulator (artifact read, set-up, then one image). Prints one row per configuration and
the ratios simulator / float (time per image and peak memory), and one JSON object with ``--json``.

The networks are the warmed-up ones of ``bench/bench_simulator.py`` (BN scaled so the network
fires like a trained one), exported with ``--calib-data synthetic`` to the HYPOTHETICAL chip of
``bench/hypothetical_chip.py`` (``--chip-base`` with its system-size and fan-out limits lifted: Ti at
224 fits no Loihi system built, and ``export --chip loihi2`` refuses it). The default base is
``loihi2-opmem``: with ``loihi2``'s product compartments (``--chip-base loihi2``) Ti at 224 simulates
too (246,923 cores; one image in about 27 s and 3.7 GB: README, "Ti at 224 with loihi2's product
compartments").

    python bench/bench_scaling.py [--configs spikingresformer_nano:32,spikingresformer_ti:112,spikingresformer_ti:224]
                                  [--chip-base loihi2-opmem] [--calib-images 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT = "spikingresformer_nano:32,spikingresformer_ti:112,spikingresformer_ti:224"


def peak_gib() -> float:
    """This process's peak resident memory so far (GiB; Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def stage(name: str, model: str, img: int, work: Path, base: str = "loihi2-opmem", calib_images: int = 64) -> dict:
    """One stage in this process: ``export``, ``float`` or ``simulate``; its times (s) and peak (GiB)."""
    import torch

    from bench.bench_simulator import build_checkpoint
    from bench.hypothetical_chip import unbounded_chip

    ckpt = build_checkpoint(model, img, work, 1.5, 0.4)
    art = ckpt.with_suffix(f".scaling-{base}-{calib_images}.loihi")
    torch.manual_seed(1)
    image = torch.rand(1, 3, img, img) * 2 - 1
    if name == "export":
        from exporters.loihi.export import export_loihi

        chip = unbounded_chip(base, work / f"{base}-unbounded.toml")
        t0 = time.perf_counter()
        s = export_loihi(str(ckpt), art, calib_data="synthetic", chip=str(chip), calib_images=calib_images,
                         eval_images=4)
        return {"export_s": time.perf_counter() - t0, "export_peak_gib": peak_gib(), "cores": s["cores"],
                "chips": s["chips"]}
    if name == "float":
        import sresformer

        m = sresformer.load_checkpoint(ckpt).eval()
        with torch.no_grad():
            m(image)                       # warm the allocator once
            t0 = time.perf_counter()
            m(image)
        return {"float_s": time.perf_counter() - t0, "float_peak_gib": peak_gib()}
    from hw_sim.simulate import Session

    t0 = time.perf_counter()
    sess = Session(art)
    setup = time.perf_counter() - t0
    setup_peak = peak_gib()
    t0 = time.perf_counter()
    sess.run_batch(image)
    return {"setup_s": setup, "setup_peak_gib": setup_peak, "sim_s": time.perf_counter() - t0,
            "sim_peak_gib": peak_gib()}


def run_stage(name: str, model: str, img: int, work: Path, base: str, calib_images: int) -> dict:
    """:func:`stage` in a fresh Python (its own peak memory); its JSON result."""
    r = subprocess.run([sys.executable, __file__, "--stage", name, "--configs", f"{model}:{img}", "--work", str(work),
                        "--chip-base", base, "--calib-images", str(calib_images)],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"{name} of {model} at {img} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=DEFAULT, help="MODEL:IMG_SIZE,... (default: %(default)s)")
    ap.add_argument("--work", default=os.environ.get("SRESFORMER_BENCH_DIR", "/tmp/sresformer-bench"))
    ap.add_argument("--stage", choices=["export", "float", "simulate"], help=argparse.SUPPRESS)
    ap.add_argument("--chip-base", default="loihi2-opmem", choices=["loihi2", "loihi2-opmem", "loihi1"],
                    help="built-in chip the hypothetical unbounded chip lifts (default: %(default)s)")
    ap.add_argument("--calib-images", type=int, default=64, help="export's calibration images (default: %(default)s)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.work)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
    if args.stage:
        print(json.dumps(stage(args.stage, *configs[0], work, args.chip_base, args.calib_images)))
        return []
    rows = []
    for model, img in configs:
        row = {"model": model, "img_size": img, "chip": f"{args.chip_base}-hypothetical-unbounded"}
        for name in ("export", "float", "simulate"):
            row.update(run_stage(name, model, img, work, args.chip_base, args.calib_images))
        row["time_ratio"] = row["sim_s"] / row["float_s"]
        row["memory_ratio"] = row["sim_peak_gib"] / row["float_peak_gib"]
        rows.append(row)
        if not args.json:
            print(f"{model} @ {img}: {row['cores']} cores ({row['chips']} chips, {row['chip']}); "
                  f"export {row['export_s']:.1f} s, peak {row['export_peak_gib']:.2f} GiB; "
                  f"float {row['float_s']:.3f} s/image, peak {row['float_peak_gib']:.2f} GiB; "
                  f"simulator set-up {row['setup_s']:.1f} s, "
                  f"{row['sim_s']:.3f} s/image, peak {row['sim_peak_gib']:.2f} GiB; "
                  f"ratios simulator/float: time {row['time_ratio']:.1f}, memory {row['memory_ratio']:.1f}", flush=True)
    if args.json:
        print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
