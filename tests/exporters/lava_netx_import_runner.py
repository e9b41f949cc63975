"""Run netx files in Lava's CPU fixed-point simulation, as lava-dl runs them; a script, not a test.

Started in a subprocess by ``test_netx_import.py`` (a hung Lava runtime is killed by a hard
timeout). One process runs several networks, to pay Lava's start-up once. Usage::

    python lava_netx_import_runner.py JOBS.json

``JOBS.json``: a list of ``{"net", "input", "steps", "bits", "reset", "offset", "out"}``.
``input``: ``.npy`` of ``[steps, *shape]`` integers in our ``[C, H, W]`` order (transposed to
Lava's ``[W, H, C]`` here). When the network's first layer is netx's ``Input`` block (a neuron
layer whose input the host writes) the integers go straight into that neuron's ``a_in``, as
lava-dl's PilotNet tutorial connects its encoder; otherwise into ``net.inp``. ``out``: ``.npz``
with every layer's spikes ``layer0, layer1, ...`` ``[steps, *shape]`` back in ``[C, H, W]``
order, and ``v_last``: the last layer's voltage at every step (a Lava Monitor probe). The layers are recorded
by ``exporters.lava.filesink.FileSink`` (Lava's sink ``RingBuffer`` and its model, saving its buffer as a file:
Lava's ``data.get()`` sends one message per element, most of a PilotNet run's time).

One shim, for Lava 0.10 under numpy 2 (not Lava's arithmetic): its CPU conv model keeps the
geometry as int8 arrays, and ``conv.utils.output_shape`` then computes ``width + 2 * padding``
in int8 (NEP 50), which overflows for inputs wider than 127 (PilotNet's 200); the geometry is
passed to it as Python ints.
"""

import json
import sys

import numpy as np


def _ours(a):
    """``[W, H, C, T]`` (or ``[N, T]``) -> ``[T, C, H, W]`` (or ``[T, N]``)."""
    a = np.moveaxis(a, -1, 0)
    return a.transpose(0, *range(a.ndim - 1, 0, -1))


def _int_geometry():
    import lava.proc.conv.utils as conv_utils

    if getattr(conv_utils.output_shape, "int_geometry", False):
        return
    original = conv_utils.output_shape

    def output_shape(input_shape, out_channels, kernel_size, stride, padding, dilation):
        ints = [tuple(int(v) for v in np.ravel(a)) for a in (kernel_size, stride, padding, dilation)]
        return original(tuple(int(v) for v in input_shape), int(out_channels), *ints)

    output_shape.int_geometry = True
    conv_utils.output_shape = output_shape


def run(job):
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    from exporters.lava.filesink import FileSink, read_sink

    _int_geometry()
    x = np.load(job["input"])
    steps = int(job["steps"])
    data = np.moveaxis(x.transpose(0, *range(x.ndim - 1, 0, -1)), 0, -1)  # [T, C, H, W] -> [W, H, C, T]
    net = Network(net_config=job["net"], input_message_bits=int(job["bits"]),
                  reset_interval=int(job["reset"]) or None, reset_offset=int(job["offset"]))
    first = net.layers[0]
    port = first.neuron.a_in if type(first).__name__ == "Input" else net.inp
    src = Source(data=data.reshape(*port.shape, steps).astype(np.int32))   # [N, 1, 1, T] -> a vector's [N, T]
    src.s_out.connect(port)
    paths = [f"{job['out']}.layer{i}.npy" for i in range(len(net.layers))]
    for layer, path in zip(net.layers, paths, strict=True):
        sink = FileSink(shape=layer.out.shape, buffer=steps, path=path)
        layer.out.connect(sink.a_in)
    mon = Monitor()
    mon.probe(net.layers[-1].neuron.v, steps)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        outs = [read_sink(path) for path in paths]
        probed = mon.get_data()
    finally:
        net.stop()
    v = next(iter(next(iter(probed.values())).values()))   # [steps, N] (flat, Lava's order)
    result = {f"layer{i}": _ours(out).astype(np.int8) for i, out in enumerate(outs)}
    result["v_last"] = np.asarray(v, np.int64)
    np.savez(job["out"], **result)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        for job in json.load(f):
            run(job)
