"""Random spike masking: spec parsing, neuron selection, training-mode drop rate, the deterministic gate
(against an independent numpy uint64 implementation), checkpoints."""

import math

import numpy as np
import pytest
import torch

import sresformer
from sresformer.masking import MaskSpec, SpikeMask, SpikeMaskError, apply_spike_mask, parse_spec, select_neurons
from sresformer.spike_gate import drop_threshold, gate_hash, keep_mask
from testutil import lively, np_keep, np_lowbias32


@pytest.mark.parametrize("text, ratio, modules", [("0.25", 0.25, ("attn",)), ("0.5:attn,mlp", 0.5, ("attn", "mlp")),
                                                  (" 0 : layers.*.up.0 ", 0.0, ("layers.*.up.0",))])
def test_parse(text, ratio, modules):
    spec = parse_spec(text)
    assert (spec.ratio, spec.modules) == (ratio, modules)
    assert MaskSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("text", ["abc", "1", "1.5", "-0.1", "0.2:", "0.2:attn,,mlp", ":attn", "nan"])
def test_parse_errors_are_user_errors(text):
    with pytest.raises(SpikeMaskError) as e:
        parse_spec(text)
    assert "\n" not in str(e.value)


def test_selection_on_both_families():
    nano = sresformer.create_model("spikingresformer_nano")
    assert select_neurons(nano, parse_spec("0.1:attn")) == [f"layers.{s}.{b}.activation_in"
                                                            for s, b in ((0, 0), (1, 1), (2, 1))]
    assert select_neurons(nano, parse_spec("0.1:mlp")) == [f"layers.{s}.{b}.up.0" for s, b in ((0, 1), (1, 2), (2, 2))]
    assert select_neurons(nano, parse_spec("0.1:layers.1.*.down.0,attn"))[:2] == ["layers.0.0.activation_in",
                                                                                  "layers.1.1.activation_in"]
    spk = sresformer.create_model("spikformer_nano")
    assert select_neurons(spk, parse_spec("0.1:attn"))[:3] == ["block.0.attn.q_lif", "block.0.attn.k_lif",
                                                               "block.0.attn.v_lif"]
    with pytest.raises(SpikeMaskError, match="selects no neuron"):
        select_neurons(nano, parse_spec("0.1:nothing.*"))


def test_training_mask_drops_at_the_ratio_and_is_fresh():
    torch.manual_seed(0)
    m = SpikeMask(0.3, 0, 0).train()
    x = torch.ones(4, 8, 32, 32, 8)       # 262144 spikes
    a, b = m(x), m(x)
    n = x.numel()
    sigma = math.sqrt(0.3 * 0.7 / n)
    assert abs(1 - float(a.mean()) - 0.3) < 5 * sigma
    assert not torch.equal(a, b)                         # a fresh Bernoulli mask per forward
    assert set(a.unique().tolist()) <= {0.0, 1.0}        # kept spikes stay binary (no rescaling)


def test_gate_equals_numpy_reimplementation():
    idx = np.array([0, 1, 2, 3, 100, 4095, 123456, 2 ** 31 + 5])
    for seed, gid, t in [(0, 0, 0), (7, 3, 2), (2 ** 32 - 1, 11, 5)]:
        mine = gate_hash(seed, gid, t, torch.from_numpy(idx)).numpy().astype(np.uint64)
        h = np_lowbias32(np.asarray(t, np.uint64) ^ np_lowbias32(np.asarray(gid, np.uint64)
                                                                 ^ np_lowbias32(np.asarray(seed, np.uint64))))
        assert np.array_equal(mine, np_lowbias32(idx.astype(np.uint64) ^ h))
    keep = keep_mask(0.4, 5, 2, 3, (4, 6, 6)).numpy()
    want = np.stack([np_keep(0.4, 5, 2, t, np.arange(144)).reshape(4, 6, 6) for t in range(3)])
    assert np.array_equal(keep, want)
    assert drop_threshold(0.25) == 2 ** 30


def test_eval_gate_is_deterministic_sample_independent_and_per_step():
    m = SpikeMask(0.5, 1, 4).eval()
    x = torch.ones(3, 5, 16, 8, 8)
    a = m(x)
    assert torch.equal(a, m(x))
    assert torch.equal(a, a[:, :1].expand_as(a))          # every sample sees the same gate
    assert not torch.equal(a[0], a[1])                    # a different gate per step
    assert abs(1 - float(a.mean()) - 0.5) < 0.03
    assert not torch.equal(a, SpikeMask(0.5, 2, 4).eval()(x))   # the seed matters


def test_masked_model_trains_and_checkpoint_keeps_the_mask(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    model = lively(sresformer.create_model("spikingresformer_nano"), x)
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    ref = model(x)
    names = apply_spike_mask(model, "0.5:attn,mlp")
    assert len(names) == 6 and model.state_dict().keys() == plain.keys()   # no parameters or buffers added
    masked = model(x)
    assert not torch.allclose(masked, ref)
    # eval: each masked neuron's output is its own spikes times the gate (hook check by hand)
    seen = {}
    neuron = dict(model.named_modules())[names[1]]
    h = neuron.register_forward_hook(lambda mod, i, o: seen.setdefault("out", o))
    model(x)
    h.remove()
    raw = neuron.__class__.forward(neuron, _input_of(model, names[1], x))
    assert torch.equal(seen["out"], raw * keep_mask(0.5, 0, 1, raw.shape[0], raw.shape[2:]).unsqueeze(1))
    sresformer.save_checkpoint(model, tmp_path / "m.ckpt")
    back = sresformer.load_checkpoint(tmp_path / "m.ckpt")
    assert back.spike_mask_spec == model.spike_mask_spec
    assert torch.equal(back(x), masked)
    # training mode: gradients flow through the kept spikes
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    apply_spike_mask(model, None)
    model.load_state_dict(plain)   # the training forward moved BN statistics and DSSA rates
    assert torch.equal(model.eval()(x), ref)


def _input_of(model, name, x):
    """The input of neuron ``name`` on ``x`` (a pre-hook records it)."""
    box = {}
    h = dict(model.named_modules())[name].register_forward_pre_hook(lambda mod, i: box.setdefault("x", i[0]))
    model(x)
    h.remove()
    return box["x"]
