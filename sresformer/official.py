"""Import checkpoints written by the official SpikingResformer code (xyshi2000/SpikingResformer)
and the official Spikformer code (ZK-Zhou/spikformer).

Its ``main.py`` saves ``{'model', 'optimizer', 'epoch', 'max_acc1', ['lr_scheduler']}``;
released weights may also be a bare state dict, and a model saved through
DistributedDataParallel has a ``module.`` prefix. Our module tree mirrors the official
one on purpose (``prologue``, ``layers.<stage>.<block>``, DSSA ``W``/``norm``/``Wproj``/
``norm_proj``, GWFFN ``up``/``conv``/``down``, BN's inner ``.bn``, PLIF ``w``, the
``firing_rate_*`` buffers), so the key map is the identity after unwrapping; what this
module adds is the checking: every key present, none unknown, every shape equal.

Spikformer's parameter names are the official ones too (``sresformer.spikformer``); the
one difference is the ImageNet SSA's ``nn.Conv1d`` q/k/v/proj weights ``[C, C, 1]``, ours
1x1 ``Conv2d`` ``[C, C, 1, 1]``: the importer appends the axis. Classes come from
``head.weight``.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .errors import CheckpointError
from .fileio import torch_load_safe
from .registry import create_model, model_info

PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


def official_state_dict(obj, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The model state dict inside an official checkpoint object (``{'model': ...}`` or bare)."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} is neither an official SpikingResformer checkpoint "
                              "(a dict with 'model') nor a state dict of tensors")
    return {map_official_key(k): v for k, v in obj.items()}


def map_official_key(key: str) -> str:
    """Our parameter name for an official one: the same name without DDP/compile prefixes."""
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


CLASSIFIER = {"spikingresformer": "classifier.weight", "spikformer": "head.weight"}
REPOS = {"spikingresformer": "xyshi2000/SpikingResformer", "spikformer": "ZK-Zhou/spikformer"}


def infer_num_classes(state: dict[str, torch.Tensor], source: str = "checkpoint",
                      family: str = "spikingresformer") -> int:
    """Number of classes, from the classifier weight ``[K, C]`` (``head.weight`` for Spikformer)."""
    key = CLASSIFIER[family]
    w = state.get(key)
    if w is None or w.dim() != 2:
        raise CheckpointError(f"{source} has no 2-D {key!r}; is it a {family} checkpoint?")
    return int(w.shape[0])


def spikformer_conv1d_to_2d(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official ImageNet Spikformer's SSA ``nn.Conv1d`` weights ``[C, C, 1]`` as our 1x1
    ``Conv2d`` ``[C, C, 1, 1]`` (the same sums: a kernel-1 conv over tokens); nothing else changes."""
    expected = model.state_dict()
    out = {}
    for k, v in state.items():
        want = expected.get(k)
        if (want is not None and ".attn." in k and k.endswith("_conv.weight") and v.dim() == 3
                and tuple(want.shape) == (*v.shape, 1)):
            v = v.unsqueeze(-1)
        out[k] = v
    return out


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raise one-line ``CheckpointError`` on missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = []
    nonfinite = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:   # our loader refuses such weights: do not write a checkpoint nothing can read
        problems.append(f"{len(nonfinite)} with NaN or infinite values (e.g. {', '.join(nonfinite[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} mis-shaped (e.g. {'; '.join(shapes[:2])})")
    if problems:
        raise CheckpointError(f"{source} does not fit {model.model_name}: " + ", ".join(problems)
                              + "; check --model and --img-size")


def import_official(path: str | os.PathLike, model_name: str, img_size: int | None = None,
                    T: int | None = None) -> nn.Module:
    """Build ``model_name`` with the official checkpoint's weights; returns it in eval mode.

    ``num_classes`` is inferred from the classifier; ``img_size`` (default: the model's)
    sets the DSSA token counts N, which the checkpoint cannot tell.
    """
    from .checkpoint import MAX_CLASSES, check_int
    from .limits import MAX_IMG_SIZE, MAX_T

    info = model_info(model_name)
    # refuse out-of-range settings here: a checkpoint written with them would crash every later stage
    if T is not None:
        check_int(T, "--T (time steps)", 1, MAX_T)
    if img_size is not None:
        check_int(img_size, "--img-size", 1, MAX_IMG_SIZE)
    state = official_state_dict(torch_load_safe(path), str(path))
    kwargs = {"num_classes": check_int(infer_num_classes(state, str(path), info.family),
                                       f"{path}: classes of the classifier weight", 1, MAX_CLASSES),
              "img_size": img_size if img_size is not None else info.img_size}
    if T is not None:
        kwargs["T"] = T
    try:
        model = create_model(model_name, **kwargs)
    except ValueError as e:
        raise CheckpointError(f"cannot build {model_name} at img_size {kwargs['img_size']}: {e}") from None
    if info.family == "spikformer":
        state = spikformer_conv1d_to_2d(model, state)
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model.eval()
