"""Learning-rate schedule and optimizer groups against hand-computed values."""

import math

import pytest
import torch

import sresformer
from sresformer.train.optim import build_optimizer, param_groups
from sresformer.train.schedule import WarmupCosine, warmup_cosine_lr

CURVE = dict(base_lr=1e-3, total_steps=100, warmup_steps=10, warmup_lr=1e-5, min_lr=1e-5)


@pytest.mark.parametrize("step, expected", [
    (0, 1e-5),                                                 # warm-up starts at warmup_lr
    (5, 1e-5 + 0.5 * (1e-3 - 1e-5)),                            # halfway up: 5.05e-4
    (9, 1e-5 + 0.9 * (1e-3 - 1e-5)),                            # last warm-up step: 9.01e-4
    (10, 1e-5 + 0.495e-3 * (1 + 0.9510565162951535)),           # cos(0.1 pi), cosine counted from step 0
    (50, 5.05e-4),                                              # cos(pi/2) = 0: the midpoint
    (100, 1e-5),                                                # the end: min_lr
    (250, 1e-5),                                                # past the end it stays at min_lr
])
def test_lr_at_hand_computed_steps(step, expected):
    assert warmup_cosine_lr(step, **CURVE) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_scheduler_drives_optimizer_and_round_trips():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=123.0)
    sched = WarmupCosine(opt, **CURVE)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(1e-5) and seen[10] == pytest.approx(warmup_cosine_lr(10, **CURVE))
    other = WarmupCosine(torch.optim.AdamW([p], lr=1.0), **CURVE)
    other.load_state_dict(sched.state_dict())
    assert other.optimizer.param_groups[0]["lr"] == pytest.approx(warmup_cosine_lr(12, **CURVE))
    # a resumed run with more epochs continues from the same step on its own, longer curve
    longer = WarmupCosine(torch.optim.AdamW([p], lr=1.0), **{**CURVE, "total_steps": 200})
    longer.load_state_dict(sched.state_dict())
    assert longer.get_lr() == pytest.approx(1e-5 + 0.495e-3 * (1 + math.cos(math.pi * 12 / 200)))


def test_weight_decay_exempts_bn_bias_and_plif_w():
    model = sresformer.create_model("spikingresformer_dvsg", img_size=32)
    decay, exempt = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt_names = {names[id(p)] for p in exempt["params"]}
    assert decay["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    # hand rule: every 1-D/0-D parameter (BN affine, PLIF w) is exempt; every conv/linear weight decays
    assert exempt_names == {n for n, p in model.named_parameters() if p.ndim <= 1}
    assert any(n.endswith(".w") for n in exempt_names) and any(n.endswith("bn.bias") for n in exempt_names)
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decay["params"])
    assert len(decay["params"]) + len(exempt["params"]) == len(list(model.parameters()))
    assert isinstance(build_optimizer(model, 1e-3, 0.01), torch.optim.AdamW)
