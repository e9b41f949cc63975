"""Every registered model: builds, forward/backward shapes, checkpoint round trip, MAC counts."""

import re
from pathlib import Path

import pytest
import torch

import sresformer
from sresformer.complexity import count_params, layer_macs, macs_for
from sresformer.errors import UnknownModelError
from sresformer.ma_attention import TemporalAttention
from sresformer.registry import model_info
from testutil import train_step, warm_up

# Every registered model is built at a small input (the default image size, at most 32: the ImageNet
# variants at 32 keep every stage's map divisible by its patch size and take under 2 s each on one
# CPU); the CIFAR / DVS SpikingResformers go down to 8 to stay fast.
SMALLER = {"spikingresformer_cifar": 8, "spikingresformer_dvsg": 8}
ZOO = sorted(sresformer.list_models())


def small_size(name: str) -> int:
    return SMALLER.get(name, min(model_info(name).img_size, 32))


def test_registry_lists_the_zoo():
    """The registry holds exactly the ``@register_model`` entry points of the zoo modules' source."""
    root = Path(sresformer.__file__).parent
    entry = re.compile(r"^@register_model\(.*?\)\s*\ndef (\w+)\(", re.M | re.S)
    declared = [n for f in ("zoo.py", "zoo_spikformer.py", "zoo_mst.py") for n in entry.findall((root / f).read_text())]
    assert len(declared) == len(set(declared)) >= 14
    assert ZOO == sorted(declared)


def test_unknown_name_is_a_user_error():
    with pytest.raises(UnknownModelError, match="choose one of"):
        sresformer.create_model("resnet50")


@pytest.mark.parametrize("name", ZOO)
def test_forward_backward_and_checkpoint_round_trip(name, tmp_path):
    img = small_size(name)
    model, x, out = train_step(name, img)
    assert out.shape == (2, 5)
    # Spikformer keeps the official blocks' LayerNorms, which their forward never uses (sresformer/spikformer.py)
    unused = re.compile(r"block\.\d+\.norm[12]\.") if model_info(name).family == "spikformer" else None
    for key, p in model.named_parameters():
        assert (p.grad is None) == bool(unused and unused.match(key)), key
    # frames at another T than the model's (3, built with 2), except with temporal attention, whose gate
    # is one weight per step of the T it was built for
    steps = 2 if any(isinstance(m, TemporalAttention) for m in model.modules()) else 3
    frames = torch.randn(steps, 2, 3, img, img)
    assert model.forward_steps(frames).shape == (steps, 2, 5)

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
