"""lava-dl's PilotNet SNN on our Loihi 2 model beside Intel's measurement of it on Loihi 2 silicon.

The reference, measured on silicon by Intel (lava-dl ``tutorials/lava/lib/dl/netx/pilotnet_snn/
benchmark.ipynb``; the network is ``tests/data/lava-dl/pilotnet_snn/network.net``, BSD-3 Intel):

- 74 cores; 408.91 inferences/s at 16 steps per frame, so 152.9 us per chip step;
- 0.679234 W total power of which 0.232078 W static: 1.661 mJ per inference in total, 1.094 mJ
  dynamic (and 0.567 mJ static).

We simulate the same file (its own integers, ``exporters/loihi/netx_import.py``) on the ``loihi2``
chip with its ``loihi2`` energy profile, T = 16 steps per frame (the file's ``tSample``). The driving
data Intel used is not available here, so the frames are natural photographs: scikit-learn's two
bundled sample photos (``china.jpg``, ``flower.jpg``, 427 x 640), cut into 200 x 66 crops on a grid.
lava-dl's PilotNet loader scales a pixel to ``p`` in [0, 1] and injects ``w (2 p - 1) + b`` (the input
layer's weight 40 and bias 36); the file's input form is ``w q + b`` with an integer host value ``q``, so
a pixel is sent as ``q = round(2 p - 1)`` in {-1, 0, 1}, the nearest that form holds. Input statistics
move both figures, so the run is repeated with the frames dimmed (``p x 0.5``) and the spread is printed.

Prints, for each input set: cores, mean chip step time, throughput, energy per inference (total,
dynamic, static) and their ratios to Intel's figures, and the per-term energy breakdown. Goal: within
25% on the step time and on the energy per inference. Not a timed test: a benchmark.

    python bench/vs_pilotnet.py [--frames 8] [--timing simple|detailed] [--json]
    python bench/vs_pilotnet.py --fit      # refit loihi2's two factors; prints its [energy] lines

``--fit`` runs the photos with Loihi 1's per-event figures (``loihi1``) on the same loihi2 mapping
and prints ``k_t = Intel's step time / ours`` and ``k_e = Intel's dynamic energy / ours``, then every
line of ``loihi1.toml``'s [energy] table scaled by them, as ``hw_sim/profiles/loihi2.toml`` holds it
(times x k_t, dynamic energies x k_e; the hypothetical operand-write pair, counts and static power kept).
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

NETWORK = ROOT / "tests" / "data" / "lava-dl" / "pilotnet_snn" / "network.net"
# Intel's Loihi 2 measurement of this network (lava-dl pilotnet_snn/benchmark.ipynb)
MEASURED = {"cores": 74, "throughput_ips": 408.91, "steps_per_frame": 16, "power_w": 0.679234,
            "static_w": 0.232078}
MEASURED["step_time_s"] = 1.0 / MEASURED["throughput_ips"] / MEASURED["steps_per_frame"]    # 152.9 us
MEASURED["energy_j"] = MEASURED["power_w"] / MEASURED["throughput_ips"]                      # 1.661 mJ
MEASURED["energy_static_j"] = MEASURED["static_w"] / MEASURED["throughput_ips"]              # 0.568 mJ
MEASURED["energy_dynamic_j"] = MEASURED["energy_j"] - MEASURED["energy_static_j"]            # 1.094 mJ
FRAME_H, FRAME_W = 66, 200     # the network's input (layer/0/shape = 3 x 66 x 200)


def photo_frames(n: int, gain: float = 1.0) -> torch.Tensor:
    """``n`` frames ``[n, 3, 66, 200]`` of host values ``q = round(2 p gain - 1)`` in {-1, 0, 1}, ``p`` the
    pixel in [0, 1], cut on a grid from scikit-learn's sample photos (alternating photos)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images          # two uint8 [427, 640, 3] photographs
    per_photo = -(-n // len(photos))
    rows, cols = photos[0].shape[0] // FRAME_H, photos[0].shape[1] // FRAME_W
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    picks = [cells[i * len(cells) // per_photo] for i in range(per_photo)]   # spread over the photo
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        r, c = picks[i // len(photos)]
        crop = img[r * FRAME_H:(r + 1) * FRAME_H, c * FRAME_W:(c + 1) * FRAME_W]
        out.append(np.rint(2 * crop.astype(np.float64) / 255 * gain - 1).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).float()


def run(artifact: str, frames: torch.Tensor, profile: str = "loihi2", timing: str = "simple") -> dict:
    """Our simulation of ``frames`` on the artifact (``profile``, ``timing`` model): the summary dict."""
    from hw_sim.simulate import simulate

    data = torch.utils.data.TensorDataset(frames, torch.zeros(len(frames), dtype=torch.long))
    return simulate(artifact, "sklearn-sample-photos", profile=profile, dataset=data, batch_size=4,
                    progress=False, timing_model=timing)


KEEP = ("operand_write_pj", "operand_write_ns", "static_w_per_chip")


def scaled_table(k_t: float, k_e: float) -> str:
    """loihi1.toml's [energy] value lines with every time x ``k_t`` and dynamic energy x ``k_e``."""
    text = (ROOT / "hw_sim" / "profiles" / "loihi1.toml").read_text()
    out = []
    for line in text.split("\n[energy]\n", 1)[1].splitlines():
        key, _, rest = line.partition("=")
        key = key.strip()
        if not rest or key in ("name", "description") or key in KEEP or line.lstrip().startswith("#"):
            continue
        value, _, comment = rest.partition("#")
        k = k_t if key.endswith("_ns") else k_e
        unit, _, src = comment.strip().partition(";")
        if value.strip().startswith("{"):   # a by-size table: every entry scaled
            pairs = [kv.split("=") for kv in value.strip(" {}\t").split(",")]
            new = "{ " + ", ".join(f"{a.strip()} = {float(b) * k:.4g}" for a, b in pairs) + " }"
            old = value.strip()
        else:
            new, old = f"{float(value) * k:.4g}", f"{float(value):g}"
        out.append(f"{key} = {new}    # {unit.strip()}; fit: Loihi 1's {old} ({src.strip()}) x {k:.4f}")
    return "\n".join(out)


FIGURES = ("cores", "step_time_s", "throughput_ips", "energy_j", "energy_dynamic_j", "energy_static_j",
           "latency_s")


def figures(s: dict) -> dict:
    """The figures compared with Intel's, and the per-term energy (J), from a simulate summary."""
    return {**{k: s[k] for k in FIGURES}, "terms_j": s["energy_terms_j"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timing", choices=("simple", "detailed"), default="simple")
    ap.add_argument("--fit", action="store_true", help="refit loihi2's factors (see the module docstring)")
    args = ap.parse_args()
    from exporters.loihi.export import export_loihi

    if args.fit:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = str(Path(tmp) / "pilotnet.loihi")
            export_loihi(str(NETWORK), artifact, chip="loihi2")
            s = run(artifact, photo_frames(args.frames), profile="loihi1", timing=args.timing)
        k_t, k_e = MEASURED["step_time_s"] / s["step_time_s"], MEASURED["energy_dynamic_j"] / s["energy_dynamic_j"]
        print(f"# k_t = {k_t:.4f}, k_e = {k_e:.4f} ({args.frames} photo frames, {args.timing} timing)")
        print(scaled_table(k_t, k_e))
        return

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = str(Path(tmp) / "pilotnet.loihi")
        export_loihi(str(NETWORK), artifact, chip="loihi2")
        for label, gain in (("photos", 1.0), ("photos x 0.5", 0.5)):
            results[label] = figures(run(artifact, photo_frames(args.frames, gain), timing=args.timing))
    keys = ("step_time_s", "throughput_ips", "energy_j", "energy_dynamic_j", "energy_static_j")
    for fig in results.values():
        fig["ratio"] = {k: fig[k] / MEASURED[k] for k in keys}
    if args.json:
        print(json.dumps({"measured": MEASURED, "results": results}))
        return
    print(f"PilotNet SNN on loihi2, T = 16, {args.frames} frames, {args.timing} timing; ratio = ours / Intel's")
    for label, fig in results.items():
        print(f"-- input: {label}; {fig['cores']} cores (Intel: {MEASURED['cores']})")
        for k, unit, scale in (("step_time_s", "us", 1e6), ("throughput_ips", "inf/s", 1.0),
                               ("energy_j", "mJ", 1e3), ("energy_dynamic_j", "mJ", 1e3),
                               ("energy_static_j", "mJ", 1e3)):
            print(f"   {k:17s} {fig[k] * scale:10.3f} {unit:5s}  Intel {MEASURED[k] * scale:10.3f}  "
                  f"ratio {fig['ratio'][k]:.3f}")
        terms = sorted(fig["terms_j"].items(), key=lambda kv: -kv[1])
        print("   terms (mJ): " + ", ".join(f"{k} {v * 1e3:.4f}" for k, v in terms if v))
    a, b = results.values()
    spread = {k: abs(a[k] - b[k]) / a[k] for k in ("step_time_s", "energy_j") if a[k]}
    print("input statistics (photos vs dimmed x 0.5) move step time by "
          f"{spread.get('step_time_s', 0):.1%} and energy by {spread.get('energy_j', 0):.1%}")


if __name__ == "__main__":
    main()
