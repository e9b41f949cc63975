"""Write a checkpoint in the official SpikingResformer code's own format, for runs without the
released weights (none can be downloaded here).

The official ``main.py`` saves ``{'model': state_dict, 'optimizer', 'epoch', 'max_acc1'}`` from a
model wrapped in DistributedDataParallel, so every key has a ``module.`` prefix
(``sresformer/official.py``). This writes that format from the warmed-up network of
``bench/bench_simulator.py`` (BN scaled so it fires like a trained one), so ``sresformer
import-official`` reads it exactly as it reads a released file.

    python bench/official_format.py [--model spikingresformer_ti] [--img-size 224] --out ti_official.pth
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_official(model_name: str, img_size: int, out: Path, bn_gain: float = 1.5, bn_shift: float = 0.4) -> Path:
    """``out``: ``{'model': {'module.' + key: tensor}, 'epoch', 'max_acc1'}`` of the warmed-up ``model_name``."""
    import sresformer
    from bench.bench_simulator import build_checkpoint

    with tempfile.TemporaryDirectory() as work:
        model = sresformer.load_checkpoint(build_checkpoint(model_name, img_size, Path(work), bn_gain, bn_shift))
    state = {"module." + k: v for k, v in model.state_dict().items()}
    torch.save({"model": state, "epoch": 0, "max_acc1": 0.0}, out)
    return out


def main(argv=None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="spikingresformer_ti")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    print(write_official(args.model, args.img_size, args.out))
    return args.out


if __name__ == "__main__":
    main()
