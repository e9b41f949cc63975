"""Our loader against snntorch's and norse's NIR readers, inside the subset all three share.

The shared subset: dt = 1e-4 (snntorch fixes it; norse is told), LIF with r = 1, CubaLIF
with r = tau_mem/dt, v_leak = 0, v_reset = 0, Conv2d / Linear / SumPool2d / Flatten,
unbatched input (both read NIR's batch-free Flatten dims as torch dims). Weights are
multiples of 1/16 and inputs binary, so every reader's arithmetic is exact and the
comparison tests the conventions, not rounding.
"""

import contextlib
import io
import logging
import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

from exporters.nir import export, export_graph, load, write_graph
from sresformer.layers import seq_apply
from sresformer.neurons import LIF

snn = pytest.importorskip("snntorch")
norse_torch = pytest.importorskip("norse.torch")
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

DT = 1e-4
T = 8


@contextlib.contextmanager
def _quiet():
    """snntorch prints on import_from_nir; norse logs warnings."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _dyadic_(*params):
    with torch.no_grad():
        for p in params:
            p.copy_(torch.round(torch.randn_like(p) * 12) / 16)


def _step_through(module, x):
    """Run a stateful third-party module one unbatched step at a time: x [T, ...] -> [T, ...]."""
    outs, state = [], None
    for t in range(x.shape[0]):
        out, state = module(x[t], state)
        outs.append(out)
    return torch.stack(outs)


def _all_readers(path, x):
    """Spikes from our loader, snntorch's import_from_nir and norse's from_nir (dt = 1e-4)."""
    ours = load(path, dt=DT)(x[:, None])[:, 0]
    with _quiet():
        snn_out = _step_through(import_from_nir(nir.read(path)), x)
        norse_out = _step_through(norse_torch.from_nir(nir.read(path), dt=DT), x)
    return ours, snn_out, norse_out


def test_our_export_reads_the_same_in_all_three_readers(tmp_path):
    conv, lin = nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.Linear(16, 6, bias=False)
    _dyadic_(conv.weight, lin.weight)
    net = nn.Sequential(conv, LIF(), nn.LPPool2d(1, 2), nn.Flatten(), lin, LIF())
    write_graph(export_graph(net, (2, 4, 4), dt=DT), tmp_path / "ours.nir")
    x = (torch.rand(T, 2, 4, 4) < 0.5).float()

    # independent reference: our torch modules over [T, B, ...]
    h = LIF()(seq_apply(conv, x[:, None]))
    h = seq_apply(nn.LPPool2d(1, 2), h).flatten(2)
    want = LIF()(seq_apply(lin, h))[:, 0]
    assert 0 < want.sum() < want.numel()  # some, not all, neurons fire

    ours, snn_out, norse_out = _all_readers(tmp_path / "ours.nir", x)
    assert torch.equal(ours, want)
    assert torch.equal(snn_out, want)
    assert torch.equal(norse_out, want)


def test_snntorch_export_reads_the_same_in_all_three_readers(tmp_path):
    conv, lin = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(64, 6)
    _dyadic_(conv.weight, conv.bias, lin.weight, lin.bias)

    def synaptic(shape, **kw):  # per-neuron parameters: snntorch's export keeps their shape
        return snn.Synaptic(alpha=torch.full(shape, 0.5), beta=torch.full(shape, 0.75), threshold=torch.ones(shape),
                            init_hidden=True, **kw)
    net = nn.Sequential(conv, synaptic((4, 4, 4)), nn.Flatten(), lin, synaptic((6,), output=True))
    graph = export_to_nir(net, torch.zeros(1, 2, 4, 4), ignore_dims=[0])
    nir.write(tmp_path / "snn.nir", graph)
    x = (torch.rand(T, 2, 4, 4) < 0.5).float()

    ours, snn_out, norse_out = _all_readers(tmp_path / "snn.nir", x)
    assert 0 < ours.sum() < ours.numel()
    assert torch.equal(ours, snn_out)
    assert torch.equal(ours, norse_out)


def test_hand_worked_lif_and_the_threshold_rule(tmp_path):
    """tau = 2 steps, threshold 1: h = v + (x - v)/2, spike on h >= 1, reset to 0."""
    write_graph(export_graph(LIF(), (3,), dt=1.0), tmp_path / "lif.nir")
    x = torch.tensor([[1.5, 2.0, 0.5], [1.5, 0.0, 0.5], [0.5, 2.0, 0.5], [2.0, 0.0, 0.5]])
    # neuron 0: h = 0.75, 1.125 (spike), 0.25, 1.125 (spike)
    # neuron 1: h = 1.0 exactly -> spikes under the model's >=, then 0, 1.0 (spike), 0
    # neuron 2: h = 0.25, 0.375, 0.4375, 0.46875: never
    want = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=torch.float32)
    assert torch.equal(LIF()(x), want)
    assert torch.equal(load(tmp_path / "lif.nir")(x[:, None])[:, 0], want)
    # a strict-threshold reader (norse) at the file's dt sees the same spikes, equality case included
    with _quiet():
        assert torch.equal(_step_through(norse_torch.from_nir(nir.read(tmp_path / "lif.nir"), dt=1.0), x), want)


@pytest.fixture(scope="module")
def nano_nir(tmp_path_factory):
    import sresformer
    from testutil import warm_up
    model = sresformer.create_model("spikingresformer_nano", num_classes=3, img_size=32, T=2)
    warm_up(model, torch.randn(2, 3, 32, 32))
    path = tmp_path_factory.mktemp("nano") / "nano.nir"
    export(model, path)
    return path


def test_readers_without_our_extension_fail_loudly(nano_nir):
    graph = nir.read(nano_nir)
    assert "sresformer.dual_spike_matmul" in graph.metadata["extensions_required"]
    mm = graph.nodes["layers.0.0"].nodes["matmul1"]
    assert mm.metadata["sresformer.extension"] == "sresformer.dual_spike_matmul"
    placeholder = mm.nodes["placeholder"]
    assert int(placeholder.groups) == 0 and np.isnan(placeholder.weight).all()
    # a generic torch reader that maps every standard node still cannot build the placeholder
    import nirtorch
    neuron = lambda n: nn.Identity()  # noqa: E731
    with pytest.raises(ValueError, match="groups"):
        nirtorch.nir_to_torch(nir.read(nano_nir), {nir.LIF: neuron, nir.Scale: neuron})
    with _quiet():
        # third-party readers: any error of theirs will do (they raise what they raise)
        with pytest.raises(Exception):  # noqa: B017
            import_from_nir(nir.read(nano_nir))
        with pytest.raises(Exception):  # noqa: B017
            norse_torch.from_nir(nir.read(nano_nir), dt=1.0)
