"""A timm-style model registry: ``@register_model`` entry points, ``create_model``, ``list_models``.

Each entry point is a small function of keyword arguments that returns an ``nn.Module``;
its defaults (input size, classes, T) are recorded with it. ``create_model`` stamps the
name and the construction arguments on the model so a checkpoint can rebuild it.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from torch import nn

from .errors import UnknownModelError


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a user needs to know about a registered model before building it."""

    name: str
    builder: Callable[..., nn.Module]
    img_size: int
    num_classes: int
    in_channels: int
    T: int
    family: str
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(*, img_size: int, num_classes: int, T: int = 4, in_channels: int = 3,
                   family: str = "spikingresformer"):
    """Decorator: register ``fn(**kwargs) -> nn.Module`` under its function name with its defaults."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[fn.__name__] = ModelInfo(fn.__name__, fn, img_size, num_classes, in_channels, T,
                                           family, doc.splitlines()[0] if doc else "")
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_zoo()
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; ``UnknownModelError`` (a UserError) if there is none."""
    _load_zoo()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build registered model ``name``; ``num_classes``, ``img_size``, ``T`` default to its own.

    The returned module carries ``model_name`` and ``model_kwargs`` (the full construction
    arguments, defaults filled in), which ``save_checkpoint`` records.
    """
    info = model_info(name)
    args = {"num_classes": info.num_classes, "img_size": info.img_size, "T": info.T}
    args.update(kwargs)
    model = info.builder(**args)
    model.model_name = name
    model.model_kwargs = dict(args)
    return model


#: where a family's entry points forward their ``**kwargs`` ("module:callable", in call order)
_FORWARDS = {"spikingresformer": ("sresformer.zoo:_resformer", "sresformer.model:SpikingResformer"),
             "spikformer": ("sresformer.spikformer:Spikformer",), "mst": ("sresformer.mst:MST",)}


def accepted_kwargs(name: str) -> frozenset[str]:
    """Keyword arguments ``create_model(name, ...)`` can take, read from the constructors' signatures.

    An entry point with ``**kwargs`` forwards them to its family's builder and model class;
    their parameters with defaults are the ones a caller may set (those without defaults
    are supplied by the entry point itself). Checkpoint readers refuse any other key.
    """
    import importlib

    info = model_info(name)
    targets = [info.builder]
    if _has_var_keyword(info.builder):
        for ref in _FORWARDS.get(info.family, ()):
            module, attr = ref.split(":")
            targets.append(getattr(importlib.import_module(module), attr))
    names: set[str] = set()
    for fn in targets:
        sig = inspect.signature(fn.__init__ if isinstance(fn, type) else fn)
        names.update(p.name for p in sig.parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty)
    return frozenset(names | {"num_classes", "img_size", "T"})


def _has_var_keyword(fn) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def _load_zoo() -> None:
    # the entry points live in sresformer.zoo, zoo_spikformer and zoo_mst; importing fills the registry
    from . import zoo, zoo_mst, zoo_spikformer  # noqa: F401
