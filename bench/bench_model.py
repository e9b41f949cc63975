"""Forward+backward time of the zoo on this CPU, and our fused LIF against SpikingJelly's.

Prints, measured in the same run:
- ms per training step (forward + backward) of spikingresformer_ti at batch 8, T=4, 224x224,
  and of spikingresformer_nano at batch 64, 32x32;
- the fused multi-step LIF's forward+backward time over SpikingJelly's ``LIFNode``
  (torch backend, the official code's neuron) on the same tensor: a ratio below 1 is faster.

Usage: python bench/bench_model.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import torch

import sresformer
from sresformer.neurons import LIF


def timed(fn, repeats: int) -> float:
    """Best wall time of ``fn()`` in seconds over ``repeats`` runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def train_step(name: str, batch: int, img: int):
    model = sresformer.create_model(name).train()
    x = torch.randn(batch, 3, img, img)

    def step():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
    return step


def lif_step(node, x):
    def step():
        if hasattr(node, "reset"):  # SpikingJelly nodes keep their membrane between calls
            node.reset()
        xx = x.detach().requires_grad_()
        node(xx).sum().backward()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, batch, img in (("spikingresformer_ti", 8, 224), ("spikingresformer_nano", 64, 32)):
        s = timed(train_step(name, batch, img), args.repeats)
        print(f"{name:24s} batch {batch:3d} T=4 {img}x{img}: forward+backward {s * 1e3:8.1f} ms")
    x = torch.randn(4, 32, 64, 56, 56)
    ours = timed(lif_step(LIF(), x), args.repeats)
    try:
        from spikingjelly.activation_based import neuron, surrogate
        ref_node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                                  surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")
        ref = timed(lif_step(ref_node, x), args.repeats)
        print(f"LIF [4, 32, 64, 56, 56] forward+backward: ours {ours * 1e3:.1f} ms, SpikingJelly {ref * 1e3:.1f} ms, "
              f"ratio {ours / ref:.2f}")
    except ImportError:
        print(f"LIF [4, 32, 64, 56, 56] forward+backward: ours {ours * 1e3:.1f} ms (SpikingJelly not installed)")


if __name__ == "__main__":
    main()
