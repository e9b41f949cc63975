"""The SpikingResformer family, as the official code defines it (xyshi2000/SpikingResformer).

ImageNet variants share the stage layout ``[DSSA, GWFFN] x (1, 2, 3)`` and patch sizes
(4, 2, 1) and differ in widths and heads (paper Table 1). The CIFAR and DVS variants
swap the stem for a 3x3 conv without pooling; DVS uses PLIF neurons and 32-channel groups.
"""

from __future__ import annotations

from .ma_attention import add_attention
from .model import SpikingResformer, small_stem
from .neurons import LIF, PLIF
from .registry import register_model

STAGES = (["DSSA", "GWFFN"] * 1, ["DSSA", "GWFFN"] * 2, ["DSSA", "GWFFN"] * 3)
PATCHES = (4, 2, 1)


def _resformer(planes, heads, *, stages=STAGES, patches=PATCHES, small=False, group_size=64,
               activation=LIF, in_channels=3, attention=None, attention_pool="step",
               **kwargs) -> SpikingResformer:
    """One builder for every variant; ``small`` selects the 3x3 stem without down-sampling.

    ``attention`` (``"cs"``, ``"tcsa"``, ...; see :mod:`sresformer.ma_attention`) gates the
    membrane input of every block's first neuron with MA-SNN's multi-dimensional attention.
    """
    prologue = small_stem(in_channels, planes[0]) if small else None
    model = SpikingResformer(stages, planes, heads, patches, in_channels=in_channels, prologue=prologue,
                             stem_stride=1 if small else 4, group_size=group_size,
                             activation=activation, **kwargs)
    return add_attention(model, attention, model.T, pool=attention_pool)


@register_model(img_size=224, num_classes=1000)
def spikingresformer_ti(**kw):
    """SpikingResformer-Ti: widths 64/192/384, heads 1/3/6 (ImageNet, 224)."""
    return _resformer([64, 192, 384], [1, 3, 6], **kw)


@register_model(img_size=224, num_classes=1000)
def spikingresformer_s(**kw):
    """SpikingResformer-S: widths 64/256/512, heads 1/4/8 (ImageNet, 224)."""
    return _resformer([64, 256, 512], [1, 4, 8], **kw)


@register_model(img_size=224, num_classes=1000)
def spikingresformer_m(**kw):
    """SpikingResformer-M: widths 64/384/768, heads 1/6/12 (ImageNet, 224)."""
    return _resformer([64, 384, 768], [1, 6, 12], **kw)


@register_model(img_size=224, num_classes=1000)
def spikingresformer_l(**kw):
    """SpikingResformer-L: widths 128/512/1024, heads 2/8/16 (ImageNet, 224)."""
    return _resformer([128, 512, 1024], [2, 8, 16], **kw)


@register_model(img_size=32, num_classes=10)
def spikingresformer_cifar(**kw):
    """SpikingResformer for CIFAR: Ti widths with a 3x3 stem and no pooling (32x32)."""
    return _resformer([64, 192, 384], [1, 3, 6], small=True, **kw)


@register_model(img_size=64, num_classes=11, T=16)
def spikingresformer_dvsg(**kw):
    """SpikingResformer for DVS128 Gesture: PLIF, widths 32/96/192, 3x3 stem, groups of 32 (64x64, T=16)."""
    return _resformer([32, 96, 192], [1, 3, 6], small=True, group_size=32, activation=PLIF, **kw)


@register_model(img_size=32, num_classes=10)
def spikingresformer_nano(**kw):
    """Our CPU-sized variant for 32x32 input: the ImageNet stem (to 8x8), widths 32/64/128, heads 1/2/4,
    one DSSA+GWFFN per stage, groups of 32."""
    stages = (["DSSA", "GWFFN"],) * 3
    return _resformer([32, 64, 128], [1, 2, 4], stages=stages, group_size=32, **kw)


@register_model(img_size=32, num_classes=10)
def spikingresformer_nano_cs(**kw):
    """nano with MA-SNN channel + spatial attention (per step: chip-runnable) on every block's membrane input."""
    return spikingresformer_nano(**{"attention": "cs", **kw})


@register_model(img_size=32, num_classes=10)
def spikingresformer_nano_tcsa(**kw):
    """nano with MA-SNN temporal + channel + spatial attention (TCSA; TA needs all T steps: not lowerable)."""
    return spikingresformer_nano(**{"attention": "tcsa", **kw})
