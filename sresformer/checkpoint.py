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
from .limits import MAX_IMG_SIZE, MAX_T
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


MAX_CLASSES = 100_000      # ImageNet-21k has 21,841
MAX_CHANNELS = 4096

#: value rules for the construction arguments a checkpoint may carry: (kind, low, high)
KWARG_RULES = {"T": ("int", 1, MAX_T), "img_size": ("int", 1, MAX_IMG_SIZE), "num_classes": ("int", 1, MAX_CLASSES),
               "in_channels": ("int", 1, MAX_CHANNELS), "group_size": ("int", 1, MAX_CHANNELS),
               "embed_dim": ("int", 1, 16 * MAX_CHANNELS), "depth": ("int", 1, 256),
               "num_heads": ("int", 1, MAX_CHANNELS), "mlp_ratio": ("real", 0.0, 64.0),
               "norm_eps": ("real", 0.0, 1.0), "attention": ("text", None, None),
               "attention_pool": ("text", None, None),
               "layout": ("text", None, None), "small": ("bool", None, None),
               # the MST family (sresformer.mst): QCFS levels L, patch side, SNN form and its products
               "levels": ("int", 1, 1024), "patch": ("int", 1, MAX_IMG_SIZE), "snn": ("bool", None, None),
               "softmax": ("bool", None, None), "product": ("text", None, None)}
PLAIN = (bool, int, float, str, type(None))


def _kind(value) -> str:
    return type(value).__name__ if not isinstance(value, torch.Tensor) else f"a tensor {tuple(value.shape)}"


def check_int(value, what: str, low: int, high: int) -> int:
    """A Python integer (not bool) within ``[low, high]``; CheckpointError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{what} must be an integer, got {_kind(value)} {value!r:.40}")
    if not low <= value <= high:
        raise CheckpointError(f"{what} = {value} is outside [{low}, {high}]")
    return value


def _check_kwargs(name: str, kwargs, source: str) -> None:
    from .registry import accepted_kwargs

    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise CheckpointError(f"{source}: model_kwargs must be a dict of argument names, got {_kind(kwargs)}")
    accepted = accepted_kwargs(name)
    for key, value in kwargs.items():
        what = f"{source}: model_kwargs[{key!r}]"
        if key not in accepted:
            raise CheckpointError(f"{what} is not an argument of {name} (it takes {', '.join(sorted(accepted))}); "
                                  "the checkpoint was written by another version or edited")
        rule = KWARG_RULES.get(key)
        if rule is None:
            if not isinstance(value, PLAIN):
                raise CheckpointError(f"{what} must be a plain value (number, text, bool), got {_kind(value)}")
            continue
        kind, low, high = rule
        if kind == "int":
            check_int(value, what, low, high)
        elif kind == "real":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                raise CheckpointError(f"{what} must be a number in ({low:g}, {high:g}], got {value!r:.40}")
        elif kind == "bool" and not isinstance(value, bool):
            raise CheckpointError(f"{what} must be true or false, got {_kind(value)}")
        elif kind == "text" and not (value is None or isinstance(value, str)):
            raise CheckpointError(f"{what} must be text, got {_kind(value)}")


def _check_state_dict(state, source: str) -> None:
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: state_dict must be a dict of tensors, got {_kind(state)}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: state_dict key {key!r:.40} is not a parameter name")
        if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_quantized:
            raise CheckpointError(f"{source}: state_dict[{key!r}] must be a dense tensor, got {_kind(value)}")
        if value.is_complex() or value.dtype == torch.bool:
            raise CheckpointError(f"{source}: state_dict[{key!r}] has dtype {value.dtype}; parameters are real")
        # NaN / Inf weights give garbage (eval) or refuse to quantize (export): refuse them on load for every use
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{source}: state_dict[{key!r}] holds NaN or infinite values (training diverged "
                                  "or the file is damaged); use an earlier checkpoint")


def _check_spike_mask(spec, source: str) -> None:
    from .masking import MaskSpec, SpikeMaskError

    try:
        MaskSpec.from_dict(spec)
    except SpikeMaskError as e:
        raise CheckpointError(f"{source}: spike_mask: {e}") from None


def validate_checkpoint(obj, source: str = "checkpoint") -> dict:
    """Check every field of a checkpoint dict (types, registry name, arguments, weights); returns it.

    Raises one-line ``CheckpointError`` naming the field and what is wrong. The weights
    must be real, finite tensors; ``model_kwargs`` only arguments the model's constructors
    accept (their signatures), in range; ``meta`` a dict; ``spike_mask`` a valid spec.
    """
    from .registry import list_models

    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        hint = ""
        if isinstance(obj, dict) and ("model" in obj or all(isinstance(v, torch.Tensor) for v in obj.values())):
            hint = "; if it comes from the official SpikingResformer code, convert it with 'sresformer import-official'"
        raise CheckpointError(f"{source} is not a sresformer checkpoint{hint}")
    version = obj.get("version", VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{source}: version must be a positive integer, got {_kind(version)} {version!r:.40}")
    if version > VERSION:
        raise CheckpointError(f"{source} has checkpoint version {version}; this sresformer reads up to "
                              f"{VERSION}: upgrade sresformer")
    for key in ("model_name", "model_kwargs", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{source} is missing '{key}'")
    name = obj["model_name"]
    if not isinstance(name, str) or name not in list_models():
        raise CheckpointError(f"{source}: model_name {name!r:.60} is not a registered model (see 'sresformer models')")
    _check_kwargs(name, obj["model_kwargs"], source)
    _check_state_dict(obj["state_dict"], source)
    meta = obj.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise CheckpointError(f"{source}: meta must be a dict keyed by names, got {_kind(meta)}")
    if meta.get("data") is not None and not isinstance(meta["data"], str):
        raise CheckpointError(f"{source}: meta['data'] (the dataset it was trained on) must be text")
    if obj.get("spike_mask"):
        _check_spike_mask(obj["spike_mask"], source)
    if obj.get("train_state") is not None and not isinstance(obj["train_state"], dict):
        raise CheckpointError(f"{source}: train_state must be a dict, got {_kind(obj['train_state'])}")
    return obj


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint dict (safe loading); ``CheckpointError`` on anything foreign."""
    return validate_checkpoint(torch_load_safe(path), str(path))


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint dict describes and load its weights (strict), in eval mode."""
    validate_checkpoint(ckpt, source)
    try:
        model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
    except (TypeError, ValueError) as e:   # arguments the signature takes but the values do not fit
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{source}: cannot build {ckpt['model_name']} from its model_kwargs ({first})") from None
    expected_dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    for key, value in ckpt["state_dict"].items():
        want = expected_dtypes.get(key)
        if want is not None and want.is_floating_point != value.dtype.is_floating_point:
            raise CheckpointError(f"{source}: state_dict[{key!r}] has dtype {value.dtype}, the model keeps {want}")
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
    model.checkpoint_meta = dict(ckpt.get("meta") or {})
    return model
