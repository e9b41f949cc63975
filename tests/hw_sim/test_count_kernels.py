"""Per-core synaptic op counts (``ConvOps.per_core``, ``MatmulOps.per_core``) against direct references.

The reference for a conv is a second convolution of the non-zero mask with the 0/1 kernel
of stored (non-zero) weights, per output, then summed over each core's chunk; for the
dual-spike matmul it is the product of the spike mask with an all-ones operand.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw_sim.op_kernels import ConvOps, MatmulOps, segsum
from hw_sim.processes import Process, ProcessGraph

NEURON_STUB = {"du": 4096, "dv": 0, "state_bits": 24, "decay_bits": 12}  # an operand placeholder


def conv_process(cout, cin, k, stride, pad, dil, groups, size, zero_frac, rng):
    w = rng.integers(1, 5, size=(cout, cin // groups, k, k))
    w[rng.random(w.shape) < zero_frac] = 0
    oh = (size + 2 * pad - dil * (k - 1) - 1) // stride + 1
    return Process("c", "synapse", ["x"], (cout, oh, oh), params={"weight": w, "bias": np.zeros(cout, np.int64)},
                   attrs={"op": "conv", "stride": (stride, stride), "padding": (pad, pad), "dilation": (dil, dil),
                          "groups": groups, "shift": 0, "graded_input": False, "weight_bits": 8})


@pytest.mark.parametrize("cout, cin, k, stride, pad, dil, groups, size", [
    (6, 4, 3, 1, 1, 1, 1, 7), (8, 8, 3, 2, 1, 1, 4, 9), (4, 2, 1, 1, 0, 1, 1, 5), (6, 3, 4, 4, 0, 1, 1, 12),
    (4, 4, 3, 1, 2, 2, 2, 8), (6, 6, 2, 2, 0, 1, 3, 6)])
@pytest.mark.parametrize("zero_frac", [0.05, 0.8])
@pytest.mark.parametrize("chunk", [1, 5, 13, 49, 1000])
def test_conv_per_core_equals_summed_mask_convolution(cout, cin, k, stride, pad, dil, groups, size, zero_frac,
                                                      chunk):
    rng = np.random.default_rng(cout * 100 + chunk + int(zero_frac * 10))
    p = conv_process(cout, cin, k, stride, pad, dil, groups, size, zero_frac, rng)
    n = int(np.prod(p.out_shape))
    cores = -(-n // chunk)
    ops = ConvOps(p, chunk, cores)
    nz = (torch.rand(3, cin, size, size, generator=torch.Generator().manual_seed(chunk)) < 0.3).float()
    mask = torch.from_numpy(p.params["weight"] != 0).float()
    ref = F.conv2d(nz, mask, None, stride, pad, dil, groups).flatten(1)
    assert torch.equal(ops(nz), ref)
    assert torch.equal(ops.per_core(nz), segsum(ref, chunk, cores).double())


@pytest.mark.parametrize("form", ["y1T@s", "y2@a"])
@pytest.mark.parametrize("chunk", [1, 7, 30, 500])
def test_matmul_per_core_equals_summed_product(form, chunk):
    heads, d, n, hw = 2, 3, 5, 4
    y = Process("y", "neuron", [], (2 * heads * d, n), attrs=NEURON_STUB)
    s = Process("s", "neuron", [], (heads * (d if form == "y1T@s" else n), hw), attrs=NEURON_STUB)
    out = (heads * (n if form == "y1T@s" else d), hw)
    p = Process("m", "dsmm", [], out, operands=("y", "s"), attrs={"heads": heads, "form": form})
    pg = ProcessGraph({q.name: q for q in (y, s, p)}, "m", T=1, input_shape=(1,))
    size = int(np.prod(out))
    cores = -(-size // chunk)
    ops = MatmulOps(p, pg, chunk, cores)
    nz = (torch.rand(2, *s.out_shape, generator=torch.Generator().manual_seed(chunk)) < 0.4).float()
    k = d if form == "y1T@s" else n
    rows = n if form == "y1T@s" else d
    # every spike in column p adds one operand entry to each of the rows outputs of that column
    ref = (torch.ones(2, heads, rows, k) @ nz.reshape(2, heads, k, hw)).reshape(2, -1)
    assert torch.equal(ops.per_core(nz), segsum(ref, chunk, cores).double())
