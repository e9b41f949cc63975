"""Run a ``.loihi`` artifact in Lava's fixed-point CPU simulation; a script started by :mod:`exporters.lava.run`.

Usage: ``python -m exporters.lava.worker ARTIFACT INPUT.npy OUT.npz [RAW]``. ``INPUT.npy``: the host's input
integers ``[N, *input_shape]``. ``OUT.npz``: per recorded process (every neuron and the output) our
integers ``[N, T, *shape]``, Lava's delay already removed (``RAW`` 1: also the traces,
:func:`collect`). On failure: one line on stderr (the real
exception, also one a Lava process model raised in its own actor, which Lava only logs) and exit 1.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def _actor_error(proc) -> str | None:
    """The last line of the first traceback a Lava process model's actor recorded (Lava logs it at INFO only;
    lava-nc 0.10 keeps it in its runtime's private ``_messaging_infrastructure``: None where that moved)."""
    try:
        actors = proc.runtime._messaging_infrastructure.actors
    except AttributeError:
        return None
    for a in actors:
        exc = getattr(a, "exception", None)
        if exc:
            lines = [ln for ln in str(exc[1]).strip().splitlines() if ln.strip()]
            return lines[-1].strip() if lines else str(exc[0])
    return None


def failure(proc, e: BaseException) -> str:
    """One line for a failed run of the graph that ``proc`` belongs to: the real exception when an actor raised."""
    real = _actor_error(proc) if proc is not None else None
    return "Lava run failed: " + " ".join((real or f"{type(e).__name__}: {e}").split())


def run_steps(proc, steps: int, after=None, breaks=(), before=None) -> int:
    """Run ``proc``'s graph for ``steps`` steps in Lava's fixed-point models (pausing before each step in
    ``breaks``, 0-based and ascending, to call ``before(step)``: the host writing an image's biases), call
    ``after()`` (reading the results) and stop it; on failure print :func:`failure` on stderr and return 1,
    else 0."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    try:
        done = 0
        for stop in [*breaks, steps]:
            if done and before is not None:
                before(done)
            if stop > done:
                proc.run(condition=RunSteps(num_steps=stop - done), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            done = stop
        if after is not None:
            after()
    except Exception as e:   # noqa: BLE001 (one line for the parent, whatever failed)
        print(failure(proc, e), file=sys.stderr, flush=True)
        # Lava's stop() waits forever on a runtime whose actor raised: leave now; the parent ends this
        # process group (exporters.lava.run starts the worker in a session of its own)
        os._exit(1)
    proc.stop()
    return 0


def collect(graph, raw: bool = False) -> dict[str, np.ndarray]:
    """Our integers ``[N, T, *shape]`` of every recorded process from the sinks' data; with ``raw`` also
    ``raw:NAME``, Lava's whole trace ``[steps, *shape]`` in our layout, its delays kept (outside the samples'
    windows a synaptic value's raw trace is Lava's ``L``, without the offset)."""
    from hw_sim.arith import shift_round

    from .plan import to_ours

    pg, out = graph.pg, {}
    for name in graph.sinks:
        n, p = graph.nodes[name], pg.processes[name]
        data = to_ours(graph.recorded(name).astype(np.int64), p.out_shape, n.order)   # [steps, ...]
        for i, plan in enumerate(graph.samples):   # each image's own offsets (host values)
            d, m = data[graph.window(name, i)], plan[name]
            if n.synaptic:   # Lava carries (ours - offset) / 64 (SEMANTICS.md): the host adds the offset back
                d[:] = d * 64 + m.offset.reshape(p.out_shape)
            elif "readout" in n.params:   # the host completes the output's rounding shift (plan._readout)
                r = m.params["readout"]
                acc = d * r.get("scale", 64) + r["acc"].reshape(p.out_shape)   # scale 1: a count's W . L
                d[:] = shift_round(acc, r["shift"]) + r["bias"].reshape(p.out_shape)
        if raw:
            out[f"raw:{name}"] = data
        out[name] = np.stack([data[graph.window(name, i)] for i in range(len(graph.samples))])
    return out


def write_host_biases(graph, step: int) -> None:
    """Before Lava step ``step``: each host neuron whose next image starts there gets that image's ``r`` as its
    ``bias_mant`` (``plan._neuron``, ``LavaGraph.bias_writes``)."""
    for name, i in graph.bias_writes().get(step, []):
        graph.procs[name].bias_mant.set(graph.samples[i][name].params["bias_mant"].reshape(graph.nodes[name].shape))


def main(artifact: str, inp: str, out_path: str, raw: str = "0") -> int:
    from .build import build

    try:
        # the sinks save their recordings beside the output (filesink.py: Lava's data.get() is one message
        # per element)
        graph = build(artifact, np.load(inp), record_dir=os.path.dirname(os.path.abspath(out_path)))
    except Exception as e:   # noqa: BLE001 (one line for the parent)
        print(failure(None, e), file=sys.stderr)
        return 1
    # run through the output's sink: every process reaches it (the input source need not: a stem on the host)
    save = lambda: np.savez(out_path, **collect(graph, raw == "1"))  # noqa: E731
    return run_steps(graph.sinks[graph.pg.output], graph.steps, save, list(graph.bias_writes()),
                     lambda step: write_host_biases(graph, step))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
