"""An independent, functional re-statement of the official Spikformer forward (ZK-Zhou/spikformer).

It reads weights by the official parameter names and shapes (the ImageNet model's SSA
``Conv1d`` weights ``[C, C, 1]``) from a plain state dict and follows the official layer
order with SpikingJelly's multi-step LIF (what the official code uses) and
``torch.nn.functional``; it shares no code with ``sresformer``. ``layout="conv"`` is
``imagenet/model.py``, ``"token"`` is ``cifar10/model.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lif(x, v_threshold=1.0):
    from spikingjelly.activation_based import neuron
    node = neuron.LIFNode(tau=2.0, decay_input=True, v_threshold=v_threshold, v_reset=0.0, detach_reset=True,
                          step_mode="m")
    return node(x)


def _bn(sd, p, z):
    """BatchNorm (1d or 2d: channels on dim 1) in evaluation mode."""
    return F.batch_norm(z, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, 1e-5)


def sps(sd, x, pools):
    T, B = x.shape[:2]
    z = x.flatten(0, 1)
    for i, sfx in enumerate(["", "1", "2", "3"]):
        z = _bn(sd, f"patch_embed.proj_bn{sfx}", F.conv2d(z, sd[f"patch_embed.proj_conv{sfx}.weight"], padding=1))
        z = lif(z.reshape(T, B, *z.shape[1:])).flatten(0, 1)
        if i in pools:
            z = F.max_pool2d(z, 3, 2, 1)
    feat = z
    r = _bn(sd, "patch_embed.rpe_bn", F.conv2d(z, sd["patch_embed.rpe_conv.weight"], padding=1))
    r = lif(r.reshape(T, B, *r.shape[1:])).flatten(0, 1)
    return (r + feat).reshape(T, B, *z.shape[1:])


def ssa_conv(sd, p, x, heads):
    """imagenet/model.py SSA on [T, B, C, H, W]: Conv1d + BN1d on [T*B, C, N]; Q (K^T V) * 0.125."""
    T, B, C, H, W = x.shape
    N = H * W
    xf = x.flatten(3).flatten(0, 1)

    def branch(n):
        y = F.conv1d(xf, sd[f"{p}.{n}_conv.weight"], sd.get(f"{p}.{n}_conv.bias"))
        s = lif(_bn(sd, f"{p}.{n}_bn", y).reshape(T, B, C, N))
        return s.transpose(-1, -2).reshape(T, B, N, heads, C // heads).permute(0, 1, 3, 2, 4)

    q, k, v = branch("q"), branch("k"), branch("v")
    y = (q @ (k.transpose(-2, -1) @ v)) * 0.125
    y = lif(y.transpose(3, 4).reshape(T, B, C, N), v_threshold=0.5).flatten(0, 1)
    y = _bn(sd, f"{p}.proj_bn", F.conv1d(y, sd[f"{p}.proj_conv.weight"], sd[f"{p}.proj_conv.bias"]))
    return lif(y.reshape(T, B, C, H, W))


def ssa_token(sd, p, x, heads):
    """cifar10/model.py SSA on tokens [T, B, N, C]: Linear + BN1d; (Q K^T * 0.125) V."""
    T, B, N, C = x.shape
    xf = x.flatten(0, 1)

    def unit(n, z):
        y = F.linear(z, sd[f"{p}.{n}_linear.weight"], sd[f"{p}.{n}_linear.bias"])
        return lif(_bn(sd, f"{p}.{n}_bn", y.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, -1))

    def heads_of(s):
        return s.reshape(T, B, N, heads, C // heads).permute(0, 1, 3, 2, 4)

    q, k, v = (heads_of(unit(n, xf)) for n in ("q", "k", "v"))
    y = ((q @ k.transpose(-2, -1)) * 0.125) @ v
    y = lif(y.transpose(2, 3).reshape(T, B, N, C), v_threshold=0.5)
    return unit("proj", y.flatten(0, 1))


def mlp_conv(sd, p, x):
    T, B = x.shape[:2]
    for n in ("fc1", "fc2"):
        y = _bn(sd, f"{p}.{n}_bn", F.conv2d(x.flatten(0, 1), sd[f"{p}.{n}_conv.weight"], sd[f"{p}.{n}_conv.bias"]))
        x = lif(y.reshape(T, B, *y.shape[1:]))
    return x


def mlp_token(sd, p, x):
    T, B, N, _ = x.shape
    for n in ("fc1", "fc2"):
        y = F.linear(x.flatten(0, 1), sd[f"{p}.{n}_linear.weight"], sd[f"{p}.{n}_linear.bias"])
        x = lif(_bn(sd, f"{p}.{n}_bn", y.transpose(-1, -2)).transpose(-1, -2).reshape(T, B, N, -1))
    return x


def forward(sd, x, T, depth, heads, layout):
    """Logits [B, K] of the official model for a static batch ``x`` [B, C, H, W]: ``head`` of the
    mean over T of the token-mean features (the official ``forward``)."""
    x = sps(sd, x.unsqueeze(0).repeat(T, 1, 1, 1, 1), (0, 1, 2, 3) if layout == "conv" else (2, 3))
    if layout == "token":
        x = x.flatten(-2).transpose(-1, -2)
    for j in range(depth):
        p = f"block.{j}"
        attn, mlp = (ssa_conv, mlp_conv) if layout == "conv" else (ssa_token, mlp_token)
        x = x + attn(sd, p + ".attn", x, heads)
        x = x + mlp(sd, p + ".mlp", x)
    feats = x.flatten(3).mean(3) if layout == "conv" else x.mean(2)
    return F.linear(feats.mean(0), sd["head.weight"], sd["head.bias"])


def random_official_state(shapes: dict, seed: int = 0) -> dict:
    """Random tensors of the official shapes; BN set so that every layer fires."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(10)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("running_mean"):
            sd[k] = torch.randn(shape, generator=g) * 0.1
        elif "_bn." in k and k.endswith(".weight"):
            sd[k] = torch.rand(shape, generator=g) + 1.5
        elif "_bn." in k and k.endswith(".bias"):
            sd[k] = torch.rand(shape, generator=g) + 0.8
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            sd[k] = torch.randn(shape, generator=g) / fan_in ** 0.5
    return sd
