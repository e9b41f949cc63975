"""Run a netx HDF5 network in Lava's CPU simulation (bit-accurate fixed point); a script, not a test.

Started in a subprocess by ``test_netx.py`` so that a hung Lava runtime is killed by a hard
timeout and never touches the test process. Usage::

    python lava_netx_runner.py NET.net INPUT.npy STEPS MESSAGE_BITS RESET_INTERVAL RESET_OFFSET OUT.npz

``INPUT.npy``: ``[steps, *input_shape]`` integers in our ``[C, H, W]`` order (transposed to
Lava's ``[W, H, C]`` here). ``RESET_INTERVAL`` 0 means none (else netx resets layer ``i`` at steps
``RESET_OFFSET + 1 + i`` modulo the interval, time counted from 1). ``OUT.npz``: every layer's spikes, ``layer0``,
``layer1``, ... each ``[steps, *shape]`` back in ``[C, H, W]`` order.
"""

import sys

import numpy as np


def main(net_path, inp_path, steps, bits, reset, offset, out_path):
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    x = np.load(inp_path)
    steps, bits, reset, offset = int(steps), int(bits), int(reset), int(offset)
    data = np.moveaxis(x.transpose(0, *range(x.ndim - 1, 0, -1)), 0, -1)  # [T, C, H, W] -> [W, H, C, T]
    net = Network(net_config=net_path, input_message_bits=bits, reset_interval=reset or None,
                  reset_offset=offset)
    src = Source(data=data.astype(np.int32))
    src.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sinks.append(Sink(shape=layer.out.shape, buffer=steps))
        layer.out.connect(sinks[-1].a_in)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        outs = [sink.data.get() for sink in sinks]
    finally:
        net.stop()
    result = {}
    for i, out in enumerate(outs):
        out = np.moveaxis(out, -1, 0)  # [W, H, C, T] -> [T, W, H, C] -> [T, C, H, W]
        result[f"layer{i}"] = out.transpose(0, *range(out.ndim - 1, 0, -1)).astype(np.int8)
    np.savez(out_path, **result)


if __name__ == "__main__":
    main(*sys.argv[1:])
