"""Official Spikformer checkpoints (ZK-Zhou/spikformer): Conv1d weights, wrappers, shape checks, and
logits equal to an independent functional restatement of the official forward (SpikingJelly LIF)."""


import pytest
import torch
from reference_spikformer import forward, random_official_state
from test_spikformer import official_state_shapes

import sresformer
from sresformer.errors import CheckpointError
from sresformer.official import import_official
from testutil import run_cli_here

pytest.importorskip("spikingjelly", reason="the reference forward uses SpikingJelly's LIF, as the official code")

# name -> (dim, depth, heads, layout, img) at small inputs: 384-wide ImageNet model on 32x32 (2x2 tokens)
CASES = {"spikformer_8_384": (384, 8, 12, "conv", 32), "spikformer_nano": (64, 2, 2, "token", 16)}


def _save(tmp_path, sd, wrap):
    if wrap == "main_py":
        obj = {"model": sd, "optimizer": {}, "epoch": 3, "max_acc1": 1.0}
    elif wrap == "ddp":
        obj = {"model": {"module." + k: v for k, v in sd.items()}}
    else:
        obj = sd
    torch.save(obj, tmp_path / "official.pth")
    return tmp_path / "official.pth"


@pytest.mark.parametrize("name,wrap", [("spikformer_8_384", "main_py"), ("spikformer_nano", "ddp"),
                                       ("spikformer_nano", "bare")])
def test_import_gives_the_official_logits(tmp_path, name, wrap):
    dim, depth, heads, layout, img = CASES[name]
    shapes = official_state_shapes(dim, depth, 7, layout)
    sd = random_official_state(shapes)
    model = import_official(_save(tmp_path, sd, wrap), name, img_size=img, T=2)
    assert model.num_classes == 7 and not model.training
    if layout == "conv":   # the Conv1d weights arrive with the extra axis, values unchanged
        w = model.state_dict()["block.0.attn.q_conv.weight"]
        assert w.shape == (dim, dim, 1, 1) and torch.equal(w[..., 0], sd["block.0.attn.q_conv.weight"])
    x = torch.rand(2, 3, img, img, generator=torch.Generator().manual_seed(4)) * 2
    with torch.no_grad():
        ours = model(x)
        ref = forward(sd, x, T=2, depth=depth, heads=heads, layout=layout)
        steps = model.forward_steps(x)
    assert steps.std(0).max() > 0 and ours.abs().max() > 0   # the net fires and varies over time
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_own_state_dict_in_official_shapes_gives_identical_logits(tmp_path):
    model = sresformer.create_model("spikformer_8_384", num_classes=5, img_size=32, T=2).eval()
    sd = {k: (v[..., 0] if ".attn." in k and k.endswith("_conv.weight") else v) for k, v in model.state_dict().items()}
    assert sd["block.0.attn.proj_conv.weight"].shape == (384, 384, 1)
    back = import_official(_save(tmp_path, sd, "main_py"), "spikformer_8_384", img_size=32, T=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), model(x))


def test_mis_shaped_or_foreign_state_is_refused_in_one_line(tmp_path):
    sd = random_official_state(official_state_shapes(64, 2, 10, "token"))
    bad = dict(sd, **{"block.1.mlp.fc1_linear.weight": torch.zeros(256, 32)})
    with pytest.raises(CheckpointError, match="1 mis-shaped .*fc1_linear"):
        import_official(_save(tmp_path, bad, "bare"), "spikformer_nano", img_size=16)
    no_head = {k: v for k, v in sd.items() if not k.startswith("head.")}
    with pytest.raises(CheckpointError, match="'head.weight'"):
        import_official(_save(tmp_path, no_head, "bare"), "spikformer_nano", img_size=16)
    with pytest.raises(CheckpointError, match="missing"):   # a token-layout state for the conv model
        import_official(_save(tmp_path, sd, "bare"), "spikformer_8_384", img_size=32)


def test_cli_import_official_spikformer(tmp_path):
    sd = random_official_state(official_state_shapes(64, 2, 10, "token"))
    src, out = _save(tmp_path, sd, "main_py"), tmp_path / "ours.ckpt"
    r = run_cli_here("import-official", src, "--model", "spikformer_nano", "--img-size", "16", "--out", out)
    assert r.returncode == 0, r.stderr
    model = sresformer.load_checkpoint(out)
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), forward(sd, x, T=4, depth=2, heads=2, layout="token"),
                                   rtol=1e-4, atol=1e-5)
