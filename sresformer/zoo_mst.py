"""The Masked Spiking Transformer family (Wang et al., ICCV 2023): QCFS ANNs converted to SNNs.

Registered at ``T = 1``: they train as ANNs (one step, no time loop); ``sresformer
convert`` writes the SNN checkpoint with its own T.
"""

from __future__ import annotations

from .mst import MST
from .registry import register_model


@register_model(img_size=32, num_classes=10, T=1, family="mst")
def mst_nano(**kw):
    """CPU-sized MST for 32x32: 4x4 patches (64 tokens), 2 blocks of width 64, 2 heads, QCFS attention, no softmax."""
    return MST(64, 2, 2, **kw)


@register_model(img_size=32, num_classes=10, T=1, family="mst")
def mst_nano_softmax(**kw):
    """mst_nano with MST's softmax attention (host only: no chip export)."""
    return MST(64, 2, 2, **{"softmax": True, **kw})
