"""ANN-to-SNN conversion of a QCFS model (the MST family, :mod:`sresformer.mst`).

Bu et al. (ICLR 2022, Theorem 2) and Wang et al. (MST, ICCV 2023): every QCFS with
threshold ``lambda`` becomes a soft-reset IF neuron with ``theta = lambda`` and initial
membrane ``theta / 2`` (:class:`~sresformer.qcfs.SoftIF`), the image enters at every step
and the logits are averaged over T. On top of that, in eval mode:

- every BatchNorm is an affine map per channel, ``BN(x) = a x + c`` with
  ``a = w / sqrt(var + eps)``, ``c = b - mean a``; one after a linear layer folds into it
  (``W' = diag(a) W``, ``b' = a b + c``), one before a linear layer folds into it
  (``W' = W diag(a)``, ``b' = W c + b``), the last one (before the mean over tokens, which
  commutes with it) into the classifier;
- a neuron's ``lambda`` folds into what reads its spikes, so the spikes stay binary:
  ``alpha' = alpha lambda_q lambda_k`` for ``q k^T``, ``gamma' = gamma lambda_A lambda_v``
  for ``A v`` (``lambda_v`` alone after a softmax, whose ``A`` is not spikes), the
  projection's and second MLP layer's weights times the ``lambda`` of their input; only
  the stem's spikes enter the residual sum, which no weight reads alone, so they keep
  the height ``lambda`` (``SoftIF.scale``).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import UserError
from .mst import MST, PRODUCTS
from .qcfs import QCFS, SoftIF
from .registry import create_model


class ConversionError(UserError):
    """A checkpoint that has no QCFS form to convert (not an MST ANN, or already an SNN)."""


def bn_affine(bn: nn.Module, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, c)`` with ``bn(x) = a x + c`` per channel in eval mode (identity for ``nn.Identity``)."""
    if isinstance(bn, nn.Identity):
        return torch.ones(dim), torch.zeros(dim)
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return a, bn.bias - bn.running_mean * a


def _lam(act: QCFS, where: str) -> float:
    lam = float(act.lam)
    if not lam > 0:
        raise ConversionError(f"{where}: QCFS lambda is {lam:g}; a threshold must be positive (the training diverged)")
    return lam


def _set_neuron(neuron: SoftIF, act: QCFS, where: str, keep_height: bool = False) -> float:
    """``theta = lambda`` of ``act``; spikes of height lambda only when ``keep_height``. Returns lambda."""
    lam = _lam(act, where)
    neuron.theta.fill_(lam)
    neuron.scale.fill_(lam if keep_height else 1.0)
    return lam


def _fold_linear(src: nn.Module, dst: nn.Module, pre: tuple | None = None, in_scale: float = 1.0) -> None:
    """``dst.linear = src.bn o src.linear o (pre affine) o (x in_scale)`` as one biased linear layer."""
    w = src.linear.weight * in_scale
    b = torch.zeros(w.shape[0]) if src.linear.bias is None else src.linear.bias.clone()
    if pre is not None:
        pa, pc = pre
        b = b + w @ pc
        w = w * pa
    a, c = bn_affine(src.bn, w.shape[0])
    dst.linear.weight.copy_(a[:, None] * w)
    dst.linear.bias.copy_(a * b + c)


def _block(src, dst, where: str) -> None:
    att_s, att_d = src.attn, dst.attn
    pre = bn_affine(att_s.norm, att_s.q.linear.in_features)
    lam = {}
    for name in ("q", "k", "v"):
        _fold_linear(getattr(att_s, name), getattr(att_d, name), pre)
        lam[name] = _set_neuron(getattr(att_d, name).act, getattr(att_s, name).act, f"{where}.attn.{name}")
    att_d.bias.copy_(att_s.bias)
    att_d.alpha.fill_(float(att_s.alpha) * lam["q"] * lam["k"])
    lam_a = 1.0
    if att_s.attn_act is not None:
        lam_a = _set_neuron(att_d.attn_act, att_s.attn_act, f"{where}.attn.attn_act")
    att_d.gamma.fill_(float(att_s.gamma) * lam_a * lam["v"])
    lam_o = _set_neuron(att_d.out_act, att_s.out_act, f"{where}.attn.out_act")
    _fold_linear(att_s.proj, att_d.proj, in_scale=lam_o)
    _fold_linear(src.fc1, dst.fc1, bn_affine(src.norm2, src.fc1.linear.in_features))
    lam_h = _set_neuron(dst.fc1.act, src.fc1.act, f"{where}.fc1")
    _fold_linear(src.fc2, dst.fc2, in_scale=lam_h)


def has_qcfs(model: nn.Module) -> bool:
    """True when ``model`` has at least one QCFS activation."""
    return any(isinstance(m, QCFS) for m in model.modules())


@torch.no_grad()
def convert_model(ann: nn.Module, T: int = 32, product: str = "cumulative") -> nn.Module:
    """The SNN (eval mode, a registry model with ``snn=True``) equivalent to QCFS model ``ann`` at ``T`` steps.

    ``product``: ``"cumulative"`` or ``"per-step"`` attention products (:mod:`sresformer.mst`).
    Raises :class:`ConversionError` for a model with no QCFS or one already converted.
    """
    name = getattr(ann, "model_name", type(ann).__name__)
    if product not in PRODUCTS:
        raise ConversionError(f"--product must be one of {', '.join(PRODUCTS)}, got {product!r}")
    if isinstance(ann, MST) and ann.snn:
        raise ConversionError(f"{name} is already a converted SNN (T = {ann.T}); convert its ANN checkpoint")
    if not isinstance(ann, MST) or not has_qcfs(ann):
        raise ConversionError(f"{name} has no QCFS activations to convert; convert takes a QCFS ANN trained with "
                              "'sresformer train' (mst_nano, mst_nano_softmax)")
    ann = ann.eval()
    snn = create_model(ann.model_name, **{**ann.model_kwargs, "snn": True, "T": int(T), "product": product})
    # stem: BN(conv x) + E, its spikes of height lambda enter the residual sum
    a, c = bn_affine(ann.patch_bn, ann.patch_embed.out_channels)
    snn.patch_embed.weight.copy_(a.view(-1, 1, 1, 1) * ann.patch_embed.weight)
    snn.patch_embed.bias.copy_(c if ann.patch_embed.bias is None else a * ann.patch_embed.bias + c)
    snn.pos_embed.copy_(ann.pos_embed)
    _set_neuron(snn.patch_act, ann.patch_act, "patch_act", keep_height=True)
    for i, (src, dst) in enumerate(zip(ann.blocks, snn.blocks, strict=True)):
        _block(src, dst, f"blocks.{i}")
    a, c = bn_affine(ann.norm, ann.head.in_features)
    snn.head.weight.copy_(ann.head.weight * a)
    snn.head.bias.copy_(ann.head.bias + ann.head.weight @ c)
    return snn.eval()


def converted_meta(meta: dict, source: str, T: int, product: str) -> dict:
    """The SNN checkpoint's meta: the ANN's, its accuracy kept as ``ann_accuracy``, and how it was converted."""
    out = {k: v for k, v in meta.items() if k not in ("accuracy", "top5", "firing_rates", "best_accuracy")}
    out["ann_accuracy"] = meta.get("accuracy")
    out["T"] = int(T)
    out["converted"] = {"from": str(source), "T": int(T), "product": product}
    return out
