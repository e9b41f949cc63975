"""An independent, functional re-statement of the official SpikingResformer forward.

It reads weights by the official parameter names from a plain state dict and uses
SpikingJelly's LIF nodes (what the official code uses) with ``torch.nn.functional``,
written from the paper's equations and the official layer list, sharing no code with
``sresformer``. Used to check the model and the official-checkpoint import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lif(x):
    from spikingjelly.activation_based import neuron, surrogate
    node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=1.0, v_reset=0.0,
                          surrogate_function=surrogate.ATan(), detach_reset=True, step_mode="m")
    return node(x)


def per_step(fn, x):
    T, B = x.shape[:2]
    y = fn(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


def bn(sd, prefix, x):
    return per_step(lambda z: F.batch_norm(z, sd[prefix + ".bn.running_mean"], sd[prefix + ".bn.running_var"],
                                           sd[prefix + ".bn.weight"], sd[prefix + ".bn.bias"], False, 0.0, 1e-5), x)


def conv(sd, key, x, stride=1, padding=0, groups=1):
    return per_step(lambda z: F.conv2d(z, sd[key], None, stride, padding, 1, groups), x)


def dssa(sd, p, x, heads, lenth, patch):
    T, B, C, H, W = x.shape
    d = C // heads
    s = lif(x)
    y = bn(sd, p + ".norm", conv(sd, p + ".W.weight", s, stride=patch))
    y = y.reshape(T, B, heads, 2 * d, -1)
    y1, y2 = y[:, :, :, :d], y[:, :, :, d:]
    s = s.reshape(T, B, heads, d, -1)
    a = lif(y1.transpose(-1, -2) @ s * (1.0 / torch.sqrt(sd[p + ".firing_rate_x"] * d)))
    o = y2 @ a * (1.0 / torch.sqrt(sd[p + ".firing_rate_attn"] * lenth))
    o = lif(o.reshape(T, B, C, H, W))
    return bn(sd, p + ".norm_proj", conv(sd, p + ".Wproj.weight", o)) + x


def gwffn(sd, p, x, group_size):
    up = bn(sd, p + ".up.2", conv(sd, p + ".up.1.weight", lif(x)))
    inner = up.shape[2]
    z = bn(sd, p + ".conv.0.2", conv(sd, p + ".conv.0.1.weight", lif(up), padding=1, groups=inner // group_size))
    return bn(sd, p + ".down.2", conv(sd, p + ".down.1.weight", lif(z + up))) + x


def forward(sd, x, T, planes, heads, patches, stages, img_size, imagenet_stem=True, group_size=64):
    """Per-step logits [T, B, K] of the official model for a static batch x [B, C, H, W]."""
    x = x.unsqueeze(0).repeat(T, 1, 1, 1, 1)
    if imagenet_stem:
        h = bn(sd, "prologue.1", conv(sd, "prologue.0.weight", x, stride=2, padding=3))
        h = per_step(lambda z: F.max_pool2d(z, 3, 2, 1), h)
        size = img_size // 4
    else:
        h = bn(sd, "prologue.1", conv(sd, "prologue.0.weight", x, padding=1))
        size = img_size
    for i, names in enumerate(stages):
        j = 0
        if i:
            h = bn(sd, f"layers.{i}.0.norm", conv(sd, f"layers.{i}.0.conv.weight", lif(h), stride=2, padding=1))
            size //= 2
            j = 1
        for name in names:
            p = f"layers.{i}.{j}"
            if name == "DSSA":
                h = dssa(sd, p, h, heads[i], (size // patches[i]) ** 2, patches[i])
            else:
                h = gwffn(sd, p, h, group_size)
            j += 1
    h = h.mean((3, 4))
    return h @ sd["classifier.weight"].t()


def official_keys(planes, heads, patches, stages, num_classes, in_channels=3, imagenet_stem=True,
                  group_size=64, ratio=4):
    """Every key and shape of the official state dict, from the official layer list."""
    out = {}

    def bnk(p, c):
        out.update({p + ".bn.weight": (c,), p + ".bn.bias": (c,), p + ".bn.running_mean": (c,),
                    p + ".bn.running_var": (c,), p + ".bn.num_batches_tracked": ()})

    k = 7 if imagenet_stem else 3
    out["prologue.0.weight"] = (planes[0], in_channels, k, k)
    bnk("prologue.1", planes[0])
    for i, names in enumerate(stages):
        j = 0
        if i:
            out[f"layers.{i}.0.conv.weight"] = (planes[i], planes[i - 1], 3, 3)
            bnk(f"layers.{i}.0.norm", planes[i])
            j = 1
        c = planes[i]
        for name in names:
            p = f"layers.{i}.{j}"
            if name == "DSSA":
                out[p + ".firing_rate_x"] = (1, 1, heads[i], 1, 1)
                out[p + ".firing_rate_attn"] = (1, 1, heads[i], 1, 1)
                out[p + ".W.weight"] = (2 * c, c, patches[i], patches[i])
                bnk(p + ".norm", 2 * c)
                out[p + ".Wproj.weight"] = (c, c, 1, 1)
                bnk(p + ".norm_proj", c)
            else:
                inner = c * ratio
                out[p + ".up.1.weight"] = (inner, c, 1, 1)
                bnk(p + ".up.2", inner)
                out[p + ".conv.0.1.weight"] = (inner, group_size, 3, 3)
                bnk(p + ".conv.0.2", inner)
                out[p + ".down.1.weight"] = (c, inner, 1, 1)
                bnk(p + ".down.2", c)
            j += 1
    out["classifier.weight"] = (num_classes, planes[-1])
    return out


def random_official_state(keys, seed=0):
    """A state dict with the given keys and shapes: weights scaled so neurons fire, positive rates."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) * 0.5 + 0.5
        elif k.endswith("running_mean"):
            sd[k] = torch.randn(shape, generator=g) * 0.1
        elif k.endswith(".bn.weight"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(".bn.bias"):
            sd[k] = torch.randn(shape, generator=g) * 0.2 + 0.3
        elif "firing_rate" in k:
            sd[k] = torch.rand(shape, generator=g) * 0.3 + 0.05
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()))
            sd[k] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return sd
