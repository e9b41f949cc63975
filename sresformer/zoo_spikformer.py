"""The Spikformer family (Zhou et al., ICLR 2023), configurations of the official code.

Spikformer-L-D has L blocks of width D. ImageNet variants use the official
``imagenet/model.py`` layout (224x224, SPS to 14x14 tokens, heads of width 64 for 512
and 768 as the official configs; 12 heads for 384); the CIFAR variant is
``cifar10/cifar10.yml`` (4 blocks, 384 wide, 12 heads, 32x32 to 8x8 tokens, LayerNorm
eps 1e-5 as its default ``nn.LayerNorm``). All T = 4.
"""

from __future__ import annotations

from .registry import register_model
from .spikformer import Spikformer


@register_model(img_size=224, num_classes=1000, family="spikformer")
def spikformer_8_384(**kw):
    """Spikformer-8-384: 8 blocks, width 384, 12 heads (ImageNet, 224)."""
    return Spikformer(384, 8, 12, **kw)


@register_model(img_size=224, num_classes=1000, family="spikformer")
def spikformer_8_512(**kw):
    """Spikformer-8-512: 8 blocks, width 512, 8 heads (ImageNet, 224; the official default)."""
    return Spikformer(512, 8, 8, **kw)


@register_model(img_size=224, num_classes=1000, family="spikformer")
def spikformer_8_768(**kw):
    """Spikformer-8-768: 8 blocks, width 768, 12 heads (ImageNet, 224)."""
    return Spikformer(768, 8, 12, **kw)


@register_model(img_size=32, num_classes=10, family="spikformer")
def spikformer_cifar(**kw):
    """Spikformer-4-384 for CIFAR: token layout, 12 heads (32x32, the official cifar10 config)."""
    return Spikformer(384, 4, 12, layout="token", norm_eps=1e-5, **kw)


@register_model(img_size=32, num_classes=10, family="spikformer")
def spikformer_nano(**kw):
    """Our CPU-sized Spikformer for 32x32: the CIFAR layout, 2 blocks, width 64, 2 heads."""
    return Spikformer(64, 2, 2, layout="token", norm_eps=1e-5, **kw)
