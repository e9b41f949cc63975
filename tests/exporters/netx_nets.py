"""netx networks written with h5py in netx's own layout, for the import tests (not a test module).

Each ``net_*`` builder writes one small ``.net`` file the way lava-dl's slayer exports them
(one-element ASCII type strings, float32 weights, a ``neuron`` group per layer, a
``simulation`` group) and returns its path; ``NETS`` names them.
"""

import h5py
import numpy as np
import torch


def _str(g, key, value):
    g.create_dataset(key, (1,), f"S{len(value)}", [value.encode("ascii")])


def _neuron(g, i_decay=4096, v_decay=1024, vth=25, type_="LOIHI", **extra):
    n = g.create_group("neuron")
    n.create_dataset("type", data=type_.encode())   # a scalar bytes string, as PilotNet's file holds it
    for key, v in dict(iDecay=i_decay, vDecay=v_decay, vThMant=vth, refDelay=1, wgtExp=0, **extra).items():
        n.create_dataset(key, data=np.int64(v))


def _conv(g, shape, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, **neuron):
    _str(g, "type", "conv")
    g.create_dataset("shape", data=np.asarray(shape))
    g.create_dataset("weight", data=np.asarray(weight, np.float32))
    if bias is not None:
        g.create_dataset("bias", data=np.asarray(bias, np.float32))
    for key, v in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        g.create_dataset(key, data=np.asarray(v))
    g.create_dataset("groups", data=np.int64(groups))
    _neuron(g, **neuron)


def _dense(g, n, weight, bias=None, **neuron):
    _str(g, "type", "dense")
    g.create_dataset("shape", data=np.asarray([n, 1, 1]))
    g.create_dataset("weight", data=np.asarray(weight, np.float32))
    if bias is not None:
        g.create_dataset("bias", data=np.asarray(bias, np.float32))
    _neuron(g, **neuron)


def _file(path, T, build):
    with h5py.File(path, "w") as f:
        build(f.create_group("layer"))
        sim = f.create_group("simulation")
        sim.create_dataset("Ts", data=np.int64(1))
        sim.create_dataset("tSample", data=np.int64(T))
    return path


def _input(L, shape, weight=None, bias=None):
    g = L.create_group("0")
    _str(g, "type", "input")
    g.create_dataset("shape", data=np.asarray(shape))
    if weight is not None:
        g.create_dataset("weight", data=np.float32(weight))
        g.create_dataset("bias", data=np.float32(bias))
        _neuron(g, vth=30)


def _w(rng, shape, lo, hi):
    return rng.integers(lo, hi + 1, shape)


def net_input_neuron_cnn(path, rng):
    """PilotNet's pattern: an input neuron layer, a strided padded conv, flatten, dense, an integrator readout."""
    def build(L):
        _input(L, (2, 6, 6), weight=160, bias=10)   # 160 = 80 x 2: an 8-bit mantissa and a shift
        _conv(L.create_group("1"), (4, 3, 3), _w(rng, (4, 2, 3, 3), -20, 20), _w(rng, 4, -5, 5), stride=(2, 2),
              padding=(1, 1))
        _str(L.create_group("2"), "type", "flatten")
        L["2"].create_dataset("shape", data=np.asarray([1, 1, 36]))
        _dense(L.create_group("3"), 5, _w(rng, (5, 36), -30, 30), _w(rng, 5, -5, 5))
        _dense(L.create_group("4"), 1, _w(rng, 5, -40, 40), [0.0], v_decay=0, vth=131071)  # 1-D weight, as PilotNet's
    return _file(path, 8, build)


def net_graded_host_input(path, rng):
    """No input neuron: the host's graded values feed a grouped, dilated conv with asymmetric padding."""
    def build(L):
        _input(L, (2, 7, 8))
        _conv(L.create_group("1"), (4, 7, 8), _w(rng, (4, 1, 3, 3), -8, 8), _w(rng, 4, -20, 20), padding=(2, 2),
              dilation=(2, 2), groups=2, vth=40)
        _conv(L.create_group("2"), (3, 3, 3), _w(rng, (3, 4, 3, 2), -30, 30), stride=(2, 3), padding=(0, 1),
              v_decay=200, vth=15)
        _str(L.create_group("3"), "type", "flatten")
        _dense(L.create_group("4"), 6, _w(rng, (6, 27), -25, 25), _w(rng, 6, -3, 8), v_decay=4096, vth=10)
    return _file(path, 7, build)


def net_vector_input(path, rng):
    """A vector of input neurons (shape [N]) read by dense layers, as lava-dl's MLP examples."""
    def build(L):
        g = L.create_group("0")
        _str(g, "type", "input")
        g.create_dataset("shape", data=np.asarray([12]))
        g.create_dataset("weight", data=np.float32(20))
        g.create_dataset("bias", data=np.float32(-4))
        _neuron(g, vth=10)
        _dense(L.create_group("1"), 8, _w(rng, (8, 12), -30, 30), _w(rng, 8, -4, 4), vth=18)
        _dense(L.create_group("2"), 3, _w(rng, (3, 8), -50, 50), v_decay=2048, vth=12)
    return _file(path, 10, build)


def net_current_decay(path, rng):
    """Dense layers with current decay (no bias there: netx would add it to v), leaks and IF neurons."""
    def build(L):
        _input(L, (10,))
        _dense(L.create_group("1"), 12, _w(rng, (12, 10), -6, 6), i_decay=1000, v_decay=1000, vth=20)
        _dense(L.create_group("2"), 9, _w(rng, (9, 12), -40, 40), _w(rng, 9, -4, 10), v_decay=0, vth=30)
        _dense(L.create_group("3"), 4, _w(rng, (4, 9), -50, 50), i_decay=0, v_decay=4096, vth=35)
    return _file(path, 9, build)


def net_pool(path, rng, as_conv=False):
    """A slayer sum-pool block (netx cannot load it); ``as_conv``: the same layer as the depthwise conv it is."""
    taps = _w(rng, (2, 2), 1, 9)
    def build(L):
        _input(L, (3, 6, 6), weight=30, bias=-5)
        g = L.create_group("1")
        if as_conv:
            _conv(g, (3, 3, 3), np.repeat(taps[None, None], 3, 0), stride=(2, 2), groups=3, vth=20)
        else:
            _str(g, "type", "pool")
            g.create_dataset("shape", data=np.asarray([3, 3, 3]))
            g.create_dataset("weight", data=taps[None, None].astype(np.float32))
            for key, v in (("kernelSize", (2, 2)), ("stride", (2, 2)), ("padding", (0, 0)), ("dilation", (1, 1))):
                g.create_dataset(key, data=np.asarray(v))
            _neuron(g, vth=20)
        _str(L.create_group("2"), "type", "flatten")
        _dense(L.create_group("3"), 5, _w(rng, (5, 27), -20, 20), _w(rng, 5, -3, 3), vth=12)
    return _file(path, 6, build)


def net_written_by_us(path, rng):
    """A spiking CNN calibrated and written by our own ``--target netx`` writer."""
    from torch import nn

    from exporters.loihi.flatgraph import FlatGraph
    from exporters.loihi.lower import lower
    from exporters.loihi.netx import write_netx
    from exporters.nir.export import export_graph
    from exporters.quantize.ranges import value_ranges
    from sresformer.layers import SeqConv2d, SeqLinear
    from sresformer.neurons import IF, LIF

    torch.manual_seed(int(rng.integers(1 << 30)))
    net = nn.Sequential(SeqConv2d(2, 4, 3, padding=1, bias=True), LIF(v_threshold=0.2), nn.Flatten(),
                        SeqLinear(4 * 6 * 6, 10, bias=True), IF(v_threshold=0.3))
    fg = FlatGraph(export_graph(net, (2, 6, 6)))
    x = torch.rand(8, 2, 6, 6)
    low = lower(fg, value_ranges(fg, [x.unsqueeze(0).expand(5, *x.shape)], 5), 5)
    write_netx(low, path)
    return path


NETS = {"input_neuron_cnn": net_input_neuron_cnn, "graded_host_input": net_graded_host_input,
        "current_decay": net_current_decay, "vector_input": net_vector_input, "pool": net_pool,
        "written_by_us": net_written_by_us}
