"""Helpers shared by the CLI commands: loading a model from a checkpoint or a NIR file."""

from __future__ import annotations

from pathlib import Path

from sresformer.errors import UserError


def load_model_source(path: str):
    """A runnable eval-mode model from ``CKPT`` (our checkpoint) or ``MODEL.nir`` (any supported NIR graph)."""
    p = Path(path)
    if p.suffix == ".nir":
        try:
            from exporters.nir import load_for_eval
        except ImportError:
            raise UserError("reading .nir files needs the exporters.nir package") from None
        return load_for_eval(p)
    from sresformer.checkpoint import load_checkpoint
    return load_checkpoint(p)
