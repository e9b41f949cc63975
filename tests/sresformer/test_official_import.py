"""Official-checkpoint import: key map, shape checks, and logits equal to an independent re-statement."""


import pytest
import torch
from reference_resformer import forward, official_keys, random_official_state

import sresformer
from sresformer.errors import CheckpointError
from sresformer.official import import_official, map_official_key
from testutil import run_cli_here

pytest.importorskip("spikingjelly", reason="the reference forward uses SpikingJelly's LIF, as the official code")

TI = dict(planes=[64, 192, 384], heads=[1, 3, 6], patches=[4, 2, 1],
          stages=[["DSSA", "GWFFN"] * 1, ["DSSA", "GWFFN"] * 2, ["DSSA", "GWFFN"] * 3])
CIFAR = dict(TI, imagenet_stem=False)


@pytest.mark.parametrize("name,cfg,img", [("spikingresformer_ti", TI, 64), ("spikingresformer_cifar", CIFAR, 16)])
def test_state_dict_keys_and_shapes_equal_official(name, cfg, img):
    model = sresformer.create_model(name, num_classes=7, img_size=img)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_keys(num_classes=7, **cfg)


@pytest.mark.parametrize("wrap", ["main_py", "bare", "ddp"])
def test_import_gives_official_logits(tmp_path, wrap):
    keys = official_keys(num_classes=11, **TI)
    sd = random_official_state(keys)
    if wrap == "main_py":
        obj = {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 3, "max_acc1": 12.5}
    elif wrap == "bare":
        obj = sd
    else:
        obj = {"model": {"module." + k: v for k, v in sd.items()}, "epoch": 1}
    path = tmp_path / "official.pth"
    torch.save(obj, path)
    model = import_official(path, "spikingresformer_ti", img_size=64)
    assert model.num_classes == 11 and not model.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = model.forward_steps(x)
        ref = forward(sd, x, T=4, img_size=64, **TI)
    assert ours.abs().max() > 0
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_cli_import_then_load(tmp_path):
    sd = random_official_state(official_keys(num_classes=10, **CIFAR))
    src, out = tmp_path / "o.pth", tmp_path / "ours.ckpt"
    torch.save({"model": sd, "epoch": 0, "max_acc1": 0.0, "optimizer": {}}, src)
    r = run_cli_here("import-official", src, "--model", "spikingresformer_cifar", "--img-size", "16", "--out", out)
    assert r.returncode == 0, r.stderr
    model = sresformer.load_checkpoint(out)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_steps(x), forward(sd, x, T=4, img_size=16, **CIFAR),
                                   rtol=1e-4, atol=1e-4)


def test_key_map_strips_wrappers():
    assert map_official_key("module._orig_mod.layers.0.0.W.weight") == "layers.0.0.W.weight"


@pytest.mark.parametrize("damage,msg", [
    (lambda sd: sd.pop("layers.0.0.W.weight"), "missing"),
    (lambda sd: sd.__setitem__("layers.9.extra", torch.zeros(1)), "unexpected"),
    (lambda sd: sd.__setitem__("layers.0.1.up.1.weight", torch.zeros(3, 3, 1, 1)), "mis-shaped"),
])
def test_bad_official_state_is_refused(tmp_path, damage, msg):
    sd = random_official_state(official_keys(num_classes=10, **CIFAR))
    damage(sd)
    path = tmp_path / "bad.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match=msg):
        import_official(path, "spikingresformer_cifar", img_size=16)


def test_wrong_model_for_checkpoint_is_refused(tmp_path):
    sd = random_official_state(official_keys(num_classes=10, **CIFAR))
    path = tmp_path / "c.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="does not fit spikingresformer_ti"):
        import_official(path, "spikingresformer_ti", img_size=64)
