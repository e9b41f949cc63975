"""Spikformer: official parameter list (restated from ZK-Zhou/spikformer), SSA equation, shapes, checkpoints."""

import math

import pytest
import torch

import sresformer
from sresformer.complexity import count_params, macs_for
from sresformer.spikformer import SSA
from testutil import train_step, warm_up

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def official_state_shapes(dim, depth, num_classes, layout, in_channels=3, mlp_ratio=4):
    """Key -> shape of the official model's state dict, written from its layer list.

    ``imagenet/model.py`` (layout "conv"): SPS convs 3x3 no bias; SSA q/k/v ``Conv1d(bias=False)``,
    proj ``Conv1d`` with bias, ``BatchNorm1d``; MLP ``Conv2d`` 1x1 with bias; unused ``norm1``/``norm2``.
    ``cifar10/model.py`` (layout "token"): SSA and MLP ``nn.Linear`` with bias, ``BatchNorm1d``.
    """
    sd = {}

    def bn(prefix, c):
        sd.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                   f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    widths = [in_channels, dim // 8, dim // 4, dim // 2, dim]
    for i, sfx in enumerate(["", "1", "2", "3"]):
        sd[f"patch_embed.proj_conv{sfx}.weight"] = (widths[i + 1], widths[i], 3, 3)
        bn(f"patch_embed.proj_bn{sfx}", widths[i + 1])
    sd["patch_embed.rpe_conv.weight"] = (dim, dim, 3, 3)
    bn("patch_embed.rpe_bn", dim)
    hidden = int(dim * mlp_ratio)
    for j in range(depth):
        p = f"block.{j}."
        for norm in ("norm1", "norm2"):
            sd[p + norm + ".weight"] = sd[p + norm + ".bias"] = (dim,)
        for name in ("q", "k", "v", "proj"):
            if layout == "conv":
                sd[f"{p}attn.{name}_conv.weight"] = (dim, dim, 1)
                if name == "proj":
                    sd[f"{p}attn.proj_conv.bias"] = (dim,)
            else:
                sd[f"{p}attn.{name}_linear.weight"] = (dim, dim)
                sd[f"{p}attn.{name}_linear.bias"] = (dim,)
            bn(f"{p}attn.{name}_bn", dim)
        kind, kshape = ("conv", (1, 1)) if layout == "conv" else ("linear", ())
        sd[f"{p}mlp.fc1_{kind}.weight"] = (hidden, dim, *kshape)
        sd[f"{p}mlp.fc1_{kind}.bias"] = (hidden,)
        bn(f"{p}mlp.fc1_bn", hidden)
        sd[f"{p}mlp.fc2_{kind}.weight"] = (dim, hidden, *kshape)
        sd[f"{p}mlp.fc2_{kind}.bias"] = (dim,)
        bn(f"{p}mlp.fc2_bn", dim)
    sd["head.weight"] = (num_classes, dim)
    sd["head.bias"] = (num_classes,)
    return sd


def official_param_count(shapes):
    return sum(math.prod(s) for k, s in shapes.items() if not k.endswith(BUFFERS))


# name -> (dim, depth, classes, layout, official parameter count computed from the restatement)
VARIANTS = {"spikformer_8_384": (384, 8, 1000, "conv", 16_828_312),
            "spikformer_8_512": (512, 8, 1000, "conv", 29_705_768),
            "spikformer_8_768": (768, 8, 1000, "conv", 66_363_208),
            "spikformer_cifar": (384, 4, 10, "token", 9_330_874)}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_state_dict_and_param_count_equal_official(name):
    dim, depth, classes, layout, expected = VARIANTS[name]
    official = official_state_shapes(dim, depth, classes, layout)
    assert official_param_count(official) == expected
    with torch.device("meta"):
        model = sresformer.create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(official)
    for key, shape in official.items():
        # the official ImageNet SSA's Conv1d weights [C, C, 1] are our 1x1 Conv2d weights [C, C, 1, 1]
        conv1d = layout == "conv" and ".attn." in key and key.endswith("_conv.weight")
        assert ours[key] == (shape + (1,) if conv1d else shape), key
    assert count_params(model) == expected
    assert sresformer.model_info(name).family == "spikformer"


def lif_ref(x, v_th=1.0):
    """SpikingJelly LIF (tau 2, decay input, hard reset 0), restated."""
    v, out = torch.zeros_like(x[0]), []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / 2.0
        s = (h >= v_th).to(x.dtype)
        v = h * (1 - s)
        out.append(s)
    return torch.stack(out)


def ssa_ref(p, x, heads, eps=1e-5):
    """SSA on tokens x [T, B, N, C] from matrices/vectors p: LIF_0.5(Q K^T V * 0.125), per head."""
    T, B, N, C = x.shape

    def unit(name, z):
        y = z @ p[name + "_w"].T + p[name + "_b"]
        y = (y - p[name + "_rm"]) / torch.sqrt(p[name + "_rv"] + eps) * p[name + "_g"] + p[name + "_beta"]
        return lif_ref(y)

    q, k, v = (unit(n, x).reshape(T, B, N, heads, C // heads).permute(0, 1, 3, 2, 4) for n in "qkv")
    y = torch.einsum("tbhnd,tbhmd,tbhme->tbhne", q, k, v) * 0.125
    s = lif_ref(y.permute(0, 1, 3, 2, 4).reshape(T, B, N, C), v_th=0.5)
    return unit("proj", s)


@pytest.mark.parametrize("layout", ["conv", "token"])
def test_ssa_matches_its_equation(layout):
    torch.manual_seed(0)
    C, heads, T, B, H = 16, 2, 3, 2, 3
    m = SSA(C, heads, layout).eval()
    assert m.attn_lif.v_threshold == 0.5 and m.q_lif.v_threshold == 1.0 and m.q_lif.tau == 2.0
    p = {}
    for n in ("q", "k", "v", "proj"):
        lin = getattr(m, f"{n}_conv" if layout == "conv" else f"{n}_linear")
        bn = getattr(m, f"{n}_bn")
        with torch.no_grad():
            lin.weight.normal_(0, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2), bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 2.0), bn.bias.uniform_(0.0, 1.0)
        p[n + "_w"] = lin.weight.detach().reshape(C, C)
        p[n + "_b"] = lin.bias.detach() if lin.bias is not None else torch.zeros(C)
        p.update({n + "_rm": bn.running_mean, n + "_rv": bn.running_var, n + "_g": bn.weight.detach(),
                  n + "_beta": bn.bias.detach()})
    x = (torch.rand(T, B, H * H, C) < 0.4).float() * 2  # spike sums, as the residual stream carries
    if layout == "conv":
        x_in = x.transpose(-1, -2).reshape(T, B, C, H, H)
        with torch.no_grad():
            ours = m(x_in).flatten(3).transpose(-1, -2)
    else:
        with torch.no_grad():
            ours = m(x)
    ref = ssa_ref(p, x, heads)
    assert 0 < ref.mean() < 1  # non-trivial
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


@pytest.mark.parametrize("name,img", [("spikformer_nano", 32), ("spikformer_cifar", 16), ("spikformer_8_384", 16)])
def test_forward_backward_shapes(name, img):
    model, x, out = train_step(name, img)
    assert out.shape == (2, 5)
    # only the official unused LayerNorms get no gradient
    assert {n for n, p in model.named_parameters() if p.grad is None} == \
        {n for n, _ in model.named_parameters() if ".norm" in n}
    assert model.forward_steps(torch.randn(3, 2, 3, img, img)).shape == (3, 2, 5)
    with torch.no_grad():  # a static image equals its explicit repetition over T
        model.eval()
        torch.testing.assert_close(model(x), model(x.unsqueeze(0).repeat(2, 1, 1, 1, 1)))


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible by 16"):
        sresformer.create_model("spikformer_8_384", img_size=40)
    with pytest.raises(ValueError, match="num_heads"):
        SSA(10, 3)


def test_checkpoint_round_trip(tmp_path):
    model = sresformer.create_model("spikformer_nano", num_classes=7)
    x = torch.randn(3, 3, 32, 32)
    warm_up(model, x)
    with torch.no_grad():
        before = model(x)
    sresformer.save_checkpoint(model, tmp_path / "sf.ckpt")
    loaded = sresformer.load_checkpoint(tmp_path / "sf.ckpt")
    assert loaded.model_name == "spikformer_nano" and loaded.num_classes == 7
    with torch.no_grad():
        assert torch.equal(loaded(x), before)
        assert torch.equal(loaded(x), before)


def test_macs_hand_count_nano():
    # nano: width 64, 2 blocks, 2 heads, token layout: 32x32 -> pools after stages 2, 3 -> 8x8 = 64 tokens
    rows = {r.name: r.macs for r in macs_for("spikformer_nano")}
    assert rows["patch_embed.proj_conv"] == 32 * 32 * 8 * 3 * 9
    assert rows["patch_embed.proj_conv3"] == 16 * 16 * 64 * 32 * 9
    assert rows["block.0.attn.q_linear"] == 64 * 64 * 64
    assert rows["block.0.attn.matmul1"] == 2 * 64 * 64 * 32    # heads * N * N * d (Q K^T)
    assert rows["block.0.attn.matmul2"] == 2 * 64 * 32 * 64    # heads * N * d * N ((Q K^T) V)
    assert rows["block.1.mlp.fc2_linear"] == 64 * 64 * 256
    assert rows["head"] == 64 * 10
    conv = {r.name: r.macs for r in macs_for("spikformer_8_512")}   # 14x14 tokens, 8 heads of 64
    assert conv["block.0.attn.matmul1"] == 8 * 64 * 64 * 196      # K^T V
    assert conv["block.0.attn.matmul2"] == 8 * 196 * 64 * 64      # Q (K^T V)
