"""A ``.loihi`` artifact as a graph of Lava processes (lava-nc's own ``RingBuffer``, ``Dense``, ``Conv``, ``LIFReset``).

:func:`build` reads the artifact (``hw_sim.artifact.read_artifact``), plans it (:mod:`exporters.lava.plan`,
which refuses what Lava cannot reproduce exactly) and instantiates the processes; it returns a
:class:`LavaGraph` whose ``source`` is the input port (a ``RingBuffer`` of the host's integers) and whose
``sinks`` record every neuron's spikes and the output. Run it with ``Loihi2SimCfg(select_tag='fixed_pt')``
(:mod:`exporters.lava.worker` does, in a subprocess).

Samples are pipelined: image ``i`` enters at step ``i T`` and a process of delay ``d`` holds it over steps
``[i T + d, (i + 1) T + d)``; every neuron is a ``LIFReset`` (``reset_interval = T``) whose state clears at the
first step of each of its samples (its own delay), so no drain is needed between samples: ``N`` images take
``N T + depth`` steps in one Lava run (not ``N (T + depth)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from hw_sim.processes import ProcessGraph

from .plan import LavaError, LavaNode, plan_graph, to_lava


def lava_missing() -> str | None:
    """One line when Lava (lava-nc) cannot be imported, else None."""
    try:
        import lava.proc.lif.process  # noqa: F401
    except ImportError as e:
        return f"Lava is not installed ({e}); install it with 'bash .ci/install-lava'"
    return None


@dataclass
class LavaGraph:
    """The built graph: our plan, the Lava processes by our names, the input source, every process's out port
    (``ports``: Lava layout, delayed by its node's ``delay``) and the sinks recording every neuron and the output."""

    pg: ProcessGraph
    nodes: dict[str, LavaNode]
    procs: dict
    source: object
    sinks: dict
    period: int   # steps between two samples' starts: T (pipelined)
    steps: int
    ports: dict
    samples: list   # per sample, the plan with that image's host values (offsets, neurons' host biases)
    record_dir: str | None = None   # the sinks are FileSinks saving here (filesink.py), else Lava's RingBuffers

    def recorded(self, name: str) -> np.ndarray:
        """What the sink of ``name`` recorded, ``[*lava_shape, steps]`` (after the run, before ``stop``)."""
        if self.record_dir is None:
            return np.asarray(self.sinks[name].data.get())
        from .filesink import read_sink

        return read_sink(os.path.join(self.record_dir, f"{name}.npy"))

    @property
    def host_neurons(self) -> list[str]:
        """The neurons whose bias the host writes before each image (their offset depends on it)."""
        return [k for k, n in self.nodes.items() if n.lava == "lif" and n.params["host"]]

    def window(self, name: str, i: int) -> slice:
        """The Lava steps over which process ``name`` holds sample ``i`` (its delay after the sample's start)."""
        start = i * self.period + self.nodes[name].delay
        return slice(start, start + self.pg.T)

    def bias_writes(self) -> dict[int, list[tuple[str, int]]]:
        """Per Lava step (0-based) at which a host neuron moves to the next image: ``(neuron, image)`` whose
        ``bias_mant`` the host writes before that step runs (``worker.write_host_biases``)."""
        out: dict[int, list[tuple[str, int]]] = {}
        for name in self.host_neurons:
            for i in range(1, len(self.samples)):
                out.setdefault(self.window(name, i).start, []).append((name, i))
        return dict(sorted(out.items()))

    @property
    def input_port(self):
        """The out port of the input ``RingBuffer`` that feeds the graph (the host's integers, Lava layout)."""
        return self.source.s_out

    @property
    def output_port(self):
        """The out port carrying the output process's value (a synaptic value: ``(ours - offset) / 64``)."""
        return self.ports[self.pg.output]

    @property
    def depth(self) -> int:
        """The largest delay of any recorded value (steps Lava's pipeline lags ours)."""
        return max(self.nodes[n].delay for n in self.sinks)


def graph_of(path_or_pg) -> ProcessGraph:
    """The process graph of an artifact path (every field checked) or the graph itself."""
    if isinstance(path_or_pg, ProcessGraph):
        return path_or_pg
    from hw_sim.artifact import read_artifact

    return read_artifact(os.fspath(path_or_pg))[0]


def build(path_or_pg, x_int: np.ndarray, record_dir: str | None = None) -> LavaGraph:
    """The Lava graph of an artifact fed with the host's input integers ``x_int [N, *input_shape]`` (N samples).

    Each sample is held for ``T`` steps (a static image), the next following at once (pipelined; ``depth`` zero
    steps after the last drain the pipeline). ``record_dir``:
    the sinks save their recordings there as files (:mod:`exporters.lava.filesink`; a CPU host's way out that
    is fast), else they are Lava's own ``RingBuffer`` sinks read with ``data.get()``.
    """
    why = lava_missing()
    if why:
        raise LavaError(why)
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    pg = graph_of(path_or_pg)
    nodes = plan_graph(pg)
    depth = max(n.delay for n in nodes.values())
    period = pg.T   # pipelined: a neuron resets at each of its samples' first step (module docstring)
    N = x_int.shape[0]
    steps = N * period + depth
    samples = host_plans(pg, nodes, x_int)
    inp = next(n for n in nodes.values() if n.lava == "source")
    stream = np.zeros((steps, *x_int.shape[1:]), np.int64)
    for i in range(N):
        stream[i * period:i * period + pg.T] = x_int[i]
    procs: dict = {inp.name: Source(data=to_lava(stream, inp.order, inp.shape).astype(np.int32))}
    ports: dict = {inp.name: procs[inp.name].s_out}
    for n in nodes.values():
        if n.lava in ("source", "host"):
            continue
        ports[n.name] = _make(samples[0][n.name], nodes, ports, procs, period)   # the first image's host biases
        if n.lava == "lif" and "inject" in n.params:
            _inject(n, [s[n.name] for s in samples], procs, period, steps)
    recorded = [p.name for p in pg if p.kind == "neuron"]
    if pg.output not in recorded:
        recorded.append(pg.output)
    sinks = {}
    for name in recorded:
        if record_dir is None:
            sinks[name] = Sink(shape=nodes[name].shape, buffer=steps)
        else:
            from .filesink import FileSink

            sinks[name] = FileSink(shape=nodes[name].shape, buffer=steps, path=os.path.join(record_dir, f"{name}.npy"))
        ports[name].connect(sinks[name].a_in)
    return LavaGraph(pg, nodes, procs, procs[inp.name], sinks, period, steps, ports, samples, record_dir)


def host_plans(pg: ProcessGraph, nodes: dict, x_int: np.ndarray) -> list[dict]:
    """Per sample, the plan whose host nodes hold that image's static integers (``hw_sim.executor`` computes them,
    as the chip's embedded processor does); ``[nodes] * N`` when the graph has no host node."""
    host = [k for k, n in nodes.items() if n.lava == "host"]
    if not host:
        return [nodes] * x_int.shape[0]
    import torch

    from hw_sim.executor import Executor

    inp = next(p for p in pg if p.kind == "input")
    x = torch.from_numpy(x_int.astype(np.float64) * 2.0 ** inp.exponent)   # the executor rounds it back exactly
    values = Executor(pg).run(x, keep=True).values
    return [plan_graph(pg, static={k: values[k][0, i].reshape(-1).numpy().astype(np.int64) for k in host})
            for i in range(x_int.shape[0])]


def _inject(n: LavaNode, per_sample: list[LavaNode], procs: dict, period: int, steps: int) -> None:
    """The host's per-image input ``q`` (``64 q + r``: the image's offset) into a host neuron's ``a_in``, image
    ``i``'s from the step its sample reaches the neuron (``i period + delay``) until the next's (a ``RingBuffer``
    straight into the port: no synapse, no delay)."""
    from lava.proc.io.source import RingBuffer as Source

    q = np.stack([s.params["inject"] for s in per_sample])                 # [N, size] Lava flat order
    image = np.clip((np.arange(steps) - n.delay) // period, 0, len(per_sample) - 1)
    data = q[image].T.reshape(*n.shape, -1)                                 # [*shape, steps]
    src = Source(data=data.astype(np.int32))
    src.s_out.connect(procs[n.name].a_in)
    procs[f"{n.name}.host"] = src


def _make(n: LavaNode, nodes, ports, procs, period: int):
    """Instantiate node ``n``; returns the out port that carries its value."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.graded.process import GradedVec
    from lava.proc.lif.process import LIFReset

    src = [ports[i] for i in n.inputs]
    if n.lava == "alias":
        return src[0]
    if n.lava == "reshape":
        return src[0].reshape(n.shape)
    p = n.params
    if n.lava == "delay":
        return _delay_stages(n, src[0], procs)
    if n.lava in ("pool", "or"):   # a sum pool or a conv of many groups as Sparse taps (plan._sparse)
        import scipy.sparse as sp
        from lava.proc.sparse.process import Sparse

        m = p["matrix"]
        proc = Sparse(weights=sp.csr_matrix((m["vals"].astype(np.int32), (m["rows"], m["cols"])), shape=m["shape"]),
                      weight_exp=p["weight_exp"], num_message_bits=24 if p["graded"] else 0, name=n.name)
        src[0].reshape((m["shape"][1],)).connect(proc.s_in)
        procs[n.name] = proc
        if n.lava == "pool":
            return proc.a_out.reshape(n.shape)
        # a max-pool of spikes (plan._maxpool): fires iff the window count is nonzero, no state kept
        # (du 4095 + Lava's ds_offset 1 = 4096 clears u, dv = 4096 clears v, vth 0: v = 64 count > 0)
        fire = LIFReset(shape=n.shape, du=4095, dv=4096, vth=0, bias_mant=0, bias_exp=0, reset_interval=period,
                        reset_offset=(n.delay + 1) % period, name=f"{n.name}.or")
        proc.a_out.reshape(n.shape).connect(fire.a_in)
        procs[f"{n.name}.or"] = fire
        return fire.s_out
    if n.lava == "gate":
        return _gate(n, src[0], procs, period)
    if n.lava == "prodmm":
        from .products import make_prodmm

        return make_prodmm(n, src[0], src[1], procs)
    if n.lava == "graded":
        proc = GradedVec(shape=n.shape, vth=0)   # sends its summed input every step (|v| > 0; a zero is a zero)
        for s in src:
            s.connect(proc.a_in)
        procs[n.name] = proc
        return proc.s_out
    if n.lava == "dense":
        proc = Dense(weights=p["weight"].astype(np.int32), num_message_bits=24 if p["graded"] else 0,
                     weight_exp=p["weight_exp"], name=n.name)
        src[0].connect(proc.s_in)
        port = proc.a_out
    elif n.lava == "conv":
        # Lava's fixed-point Conv ignores weight_exp (conv/models.py): the shift is folded into the weights
        proc = Conv(weight=(p["weight"] << p["weight_exp"]).astype(np.int32), input_shape=p["input_shape"],
                    stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"],
                    num_message_bits=24 if p["graded"] else 0, name=n.name)
        src[0].connect(proc.s_in)
        port = proc.a_out
    else:   # lif
        neuron, vth = LIFReset, p["vth"]
        if p.get("count"):   # a neuron reading counts: Lava's LIF without its 6-bit alignments (lifvth.py)
            from .lifvth import LIFResetCount as neuron

            vth = vth.reshape(n.shape)
        elif isinstance(vth, np.ndarray):   # one threshold per neuron (lifvth.py)
            from .lifvth import LIFResetVth as neuron

            vth = vth.reshape(n.shape)
        proc = neuron(shape=n.shape, du=p["du"], dv=p["dv"], vth=vth,
                        bias_mant=p["bias_mant"].reshape(n.shape), bias_exp=p["bias_exp"].reshape(n.shape),
                        reset_interval=period, reset_offset=(n.delay + 1) % period, name=n.name)
        for s in src:
            s.connect(proc.a_in)
        port = proc.s_out
    procs[n.name] = proc
    return port


def _gate(n: LavaNode, port, procs: dict, period: int):
    """A ``gate`` (``plan._gate``): ``ProdNeuron`` of the spikes and the keep mask; the mask's ``RingBuffer`` sends
    column ``s % T`` at Lava step ``s`` (0-based), which must be the mask of the sample's step ``(s - delay) % T``:
    its columns are the mask's steps rotated by the gate's delay (samples pipelined every ``T = period`` steps)."""
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.prodneuron.process import ProdNeuron

    keep = n.params["keep"]                                            # [T, size] Lava flat order
    cols = keep[(np.arange(period) - n.delay) % period]                # column c: step (c - delay) % T
    mask = Source(data=cols.T.reshape(*n.shape, period).astype(np.int32))
    prod = ProdNeuron(shape=n.shape, vth=0, exp=0)   # v = spike * keep, sent when v != 0 (no name= in lava 0.10)
    port.connect(prod.a_in1)
    mask.s_out.connect(prod.a_in2)
    procs.update({n.name: prod, f"{n.name}.keep": mask})
    return prod.s_out


def _delay_stages(n: LavaNode, port, procs: dict):
    """``n.params['steps']`` identity ``Sparse`` synapses in a row (one step each; unit positive weights, which
    Lava's bit-accurate Sparse keeps whole) on the flat value; returns the delayed port in ``n.shape``."""
    import scipy.sparse as sp
    from lava.proc.sparse.process import Sparse

    size = int(np.prod(n.shape))
    flat = port.reshape((size,))
    for k in range(n.params["steps"]):
        stage = Sparse(weights=sp.identity(size, dtype=np.int32, format="csr"), num_message_bits=24,
                       name=f"{n.name}.{k}")
        flat.connect(stage.s_in)
        procs[f"{n.name}.{k}"] = stage
        flat = stage.a_out
    return flat.reshape(n.shape)


__all__ = ["LavaError", "LavaGraph", "build", "graph_of", "lava_missing"]
