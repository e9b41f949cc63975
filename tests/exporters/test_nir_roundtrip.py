"""SpikingResformer -> .nir -> our loader gives the float torch model's logits, for every zoo architecture."""

import nir
import numpy as np
import pytest
import torch

import sresformer
from exporters.nir import export, load_for_eval
from exporters.nir.fold import dense_from_groups, fold_conv_bn, groups_of_dense
from sresformer.errors import UncalibratedError
from sresformer.layers import BN, SeqConv2d
from testutil import warm_up

# the small input sizes of tests/sresformer/test_registry.py. spikingresformer_m and _l are left out: they are
# spikingresformer_s's stages and blocks at wider channels (the same export and load code, the same groups of 64
# channels), and writing their 30-40 M parameters to NIR took 80 s of the suite's 15-minute budget
SMALL = {"spikingresformer_ti": 32, "spikingresformer_s": 32,
         "spikingresformer_cifar": 8, "spikingresformer_dvsg": 8, "spikingresformer_nano": 32}
SLOW = {"spikingresformer_s", "spikingresformer_cifar"}


def _assert_same_logits(got, want):
    # BN folding changes the conv's rounding (~1e-7 relative); a flipped spike would move the
    # logits by orders of magnitude more than this bound
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(SMALL)])
def test_zoo_round_trip_gives_the_models_logits(name, tmp_path):
    img = SMALL[name]
    model = sresformer.create_model(name, num_classes=5, img_size=img, T=2)
    x = torch.randn(2, 3, img, img)
    warm_up(model, x)
    path = tmp_path / "m.nir"
    export(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.nir"]  # the temporary was renamed, none left

    graph = nir.read(path)  # NIR's own reader, type checks on
    assert graph.metadata["format"] == "sresformer-nir" and int(graph.metadata["T"]) == 2
    wanted = {"sresformer.dual_spike_matmul"} | ({"sresformer.max_pool2d"} if img == 32 else set())
    assert set(graph.metadata["extensions_required"].split(",")) == wanted

    clf = load_for_eval(path)
    assert (clf.T, clf.img_size, clf.in_channels, clf.num_classes) == (2, img, 3, 5) and not clf.training
    with torch.no_grad():
        _assert_same_logits(clf(x), model(x))
        frames = torch.randn(3, 1, 3, img, img)  # per-step frames, any T
        per_step = clf.forward_steps(frames)
        assert per_step.shape == (3, 1, 5)
        _assert_same_logits(per_step, model.forward_steps(frames))


def test_plif_time_constant_is_exported_in_nir_units(tmp_path):
    model = sresformer.create_model("spikingresformer_dvsg", num_classes=3, img_size=8, T=2)
    plif = model.layers[0][0].activation_in
    with torch.no_grad():
        plif.w.fill_(0.3)  # tau = 1/sigmoid(0.3) steps
        for name, buf in model.named_buffers():
            if "firing_rate" in name:
                buf.fill_(0.25)  # calibrated rates (values do not matter here)
    model.eval()
    export(model, tmp_path / "m.nir", dt=0.5)
    lif = nir.read(tmp_path / "m.nir").nodes["layers.0.0"].nodes["activation_in"]
    tau_steps = 1 / torch.sigmoid(torch.tensor(0.3)).item()
    np.testing.assert_allclose(lif.tau, tau_steps * 0.5, rtol=1e-6)
    assert np.all(lif.r == 1) and np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
    # largest float32 below 1: NIR's strict rule then equals the model's h >= 1
    assert np.all(lif.v_threshold == np.nextafter(np.float32(1), np.float32(0)))


def test_uncalibrated_model_is_refused(tmp_path):
    model = sresformer.create_model("spikingresformer_nano", num_classes=3).eval()
    with pytest.raises(UncalibratedError, match="calibrate_firing_rates"):
        export(model, tmp_path / "m.nir")
    assert list(tmp_path.iterdir()) == []


def test_bn_folding_matches_float64_reference():
    conv, bn = SeqConv2d(4, 8, 3, padding=1, groups=2), BN(8)
    bn.bn.running_mean.normal_(), bn.bn.running_var.uniform_(0.5, 2), bn.bn.weight.data.normal_()
    bn.eval()
    w, b = fold_conv_bn(conv, bn.bn)
    x = torch.randn(1, 2, 4, 6, 6, dtype=torch.float64)
    ref = torch.nn.functional.batch_norm(
        torch.nn.functional.conv2d(x[0], conv.weight.double(), None, 1, 1, 1, 2), bn.bn.running_mean.double(),
        bn.bn.running_var.double(), bn.bn.weight.double(), bn.bn.bias.double(), eps=bn.bn.eps)
    got = torch.nn.functional.conv2d(x[0], torch.from_numpy(w).double(), torch.from_numpy(b).double(), 1, 1, 1, 2)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    dense = dense_from_groups(w, 2)
    assert dense.shape == (8, 4, 3, 3) and np.array_equal(groups_of_dense(dense, 2), w)
    assert groups_of_dense(np.ones((8, 4, 3, 3), np.float32), 2) is None  # not block-diagonal: no regrouping
