"""Our checkpoint format: one torch file that rebuilds its model with nothing else.

Layout (a dict; only tensors and plain containers, so ``weights_only`` loading works)::

    format        "sresformer.checkpoint"
    version       1
    model_name    registry name, e.g. "spikingresformer_nano"
    model_kwargs  construction arguments (num_classes, img_size, T, ...)
    state_dict    parameters and buffers (DSSA firing-rate buffers included)
    meta          free-form: accuracy, firing rates, data name, epoch, ...
    spike_mask    optional: the random spike mask spec (sresformer.masking.MaskSpec.to_dict)
    train_state   optional: optimizer, scheduler, RNG state for --resume
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError
from .fileio import torch_load_safe, torch_save_atomic
from .registry import create_model

FORMAT = "sresformer.checkpoint"
VERSION = 1


def checkpoint_dict(model: nn.Module, meta: dict | None = None, train_state: dict | None = None) -> dict:
    """The dict that :func:`save_checkpoint` writes, for a model built by ``create_model``."""
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("save_checkpoint needs a model built by sresformer.create_model (it records the name)")
    out = {"format": FORMAT, "version": VERSION, "model_name": name,
           "model_kwargs": dict(model.model_kwargs), "state_dict": model.state_dict(),
           "meta": dict(meta or {})}
    spec = getattr(model, "spike_mask_spec", None)
    if spec is not None:   # random spike masking (sresformer.masking): re-applied on load
        out["spike_mask"] = spec.to_dict()
    if train_state is not None:
        out["train_state"] = train_state
    return out


def save_checkpoint(model: nn.Module, path: str | os.PathLike, train_state: dict | None = None,
                    **meta: Any) -> None:
    """Write ``model`` (and ``meta``) to ``path`` atomically: a temporary file, then a rename."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    torch_save_atomic(checkpoint_dict(model, meta, train_state), path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint dict (safe loading); ``CheckpointError`` on anything foreign."""
    obj = torch_load_safe(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and ("model" in obj or all(isinstance(v, torch.Tensor) for v in obj.values())):
            hint = "; if it comes from the official SpikingResformer code, convert it with 'sresformer import-official'"
        raise CheckpointError(f"{path} is not a sresformer checkpoint{hint}")
    if obj.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {obj['version']}; this sresformer reads up to "
                              f"{VERSION}: upgrade sresformer")
    for key in ("model_name", "model_kwargs", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{path} is missing '{key}'")
    return obj


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint dict describes and load its weights (strict), in eval mode."""
    model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
    result = model.load_state_dict(ckpt["state_dict"], strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{source} does not match model {ckpt['model_name']}: "
                              f"missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    if ckpt.get("spike_mask"):
        from .masking import MaskSpec, apply_spike_mask
        apply_spike_mask(model, MaskSpec.from_dict(ckpt["spike_mask"]))
    return model.eval()


def load_checkpoint(path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint written by :func:`save_checkpoint` as a model in eval mode.

    ``model.checkpoint_meta`` holds the stored ``meta``. Truncated, empty or foreign files
    raise ``CheckpointError`` with one line saying what is wrong.
    """
    ckpt = read_checkpoint(path)
    try:
        model = model_from_checkpoint(ckpt, str(path))
    except RuntimeError as e:  # shape mismatch inside load_state_dict
        raise CheckpointError(f"{path} does not match model {ckpt['model_name']}: "
                              f"{str(e).strip().splitlines()[-1].strip()}") from None
    model.checkpoint_meta = dict(ckpt.get("meta", {}))
    return model
