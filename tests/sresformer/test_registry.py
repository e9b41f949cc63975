"""Every registered model: builds, forward/backward shapes, checkpoint round trip, MAC counts."""

import pytest
import torch

import sresformer
from sresformer.complexity import count_params, layer_macs, macs_for
from sresformer.errors import UnknownModelError

from testutil import train_step, warm_up

# small inputs that keep every stage's map divisible by its patch size
SMALL = {"spikingresformer_ti": 32, "spikingresformer_s": 32, "spikingresformer_m": 32, "spikingresformer_l": 32,
         "spikingresformer_cifar": 8, "spikingresformer_dvsg": 8, "spikingresformer_nano": 32}


def test_registry_lists_the_zoo():
    assert set(SMALL) <= set(sresformer.list_models())


def test_unknown_name_is_a_user_error():
    with pytest.raises(UnknownModelError, match="choose one of"):
        sresformer.create_model("resnet50")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_backward_and_checkpoint_round_trip(name, tmp_path):
    img = SMALL[name]
    model, x, out = train_step(name, img)
    assert out.shape == (2, 5)
    assert all(p.grad is not None for p in model.parameters())
    frames = torch.randn(3, 2, 3, img, img)
    assert model.forward_steps(frames).shape == (3, 2, 5)

    warm_up(model, x)
    with torch.no_grad():
        before = model(x)
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt", note="x")
    loaded = sresformer.load_checkpoint(tmp_path / "m.ckpt")
    assert not loaded.training and loaded.checkpoint_meta == {"note": "x"}
    with torch.no_grad():
        assert torch.equal(loaded(x), before)
        assert torch.equal(loaded(x), before)  # no state leaks between calls


def test_static_stem_once_equals_repeated_frames():
    model = sresformer.create_model("spikingresformer_nano")
    x = torch.randn(4, 3, 32, 32)
    warm_up(model, x)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.unsqueeze(0).repeat(4, 1, 1, 1, 1)), rtol=1e-5, atol=1e-6)
    # training: BN statistics over the T copies, exactly as repeating the image
    a, b = sresformer.create_model("spikingresformer_nano"), sresformer.create_model("spikingresformer_nano")
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    a(x), b(x.unsqueeze(0).repeat(4, 1, 1, 1, 1))
    torch.testing.assert_close(a.prologue[1].bn.running_var, b.prologue[1].bn.running_var)


def test_macs_hand_count_nano():
    # nano: 32x32 -> stem 7x7/2 (16x16) -> pool (8x8); widths 32/64/128, patches 4/2/1
    rows = {r.name: r.macs for r in macs_for("spikingresformer_nano")}
    assert rows["prologue.0"] == 16 * 16 * 32 * 3 * 49
    assert rows["layers.0.0.W"] == 2 * 2 * 64 * 32 * 16          # 8x8 / 4 -> 2x2 tokens
    assert rows["layers.0.0.matmul1"] == 1 * 4 * 32 * 64          # heads * N * d * HW
    assert rows["layers.0.0.matmul2"] == 1 * 32 * 4 * 64          # heads * d * N * HW
    assert rows["layers.0.1.conv.0.1"] == 8 * 8 * 128 * 32 * 9    # grouped 3x3, groups of 32
    assert rows["layers.1.0.conv"] == 4 * 4 * 64 * 32 * 9
    assert rows["classifier"] == 128 * 10


def test_param_count_on_meta_equals_real():
    with torch.device("meta"):
        meta = sresformer.create_model("spikingresformer_ti")
    assert count_params(meta) == count_params(sresformer.create_model("spikingresformer_ti"))
    assert sum(r.macs for r in layer_macs(meta, (3, 224, 224))) > 3e9
