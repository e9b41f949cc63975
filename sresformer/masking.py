"""Random spike masking (Masked Spiking Transformer, Wang et al., ICCV 2023) for our models.

``--spike-mask RATIO[:MODULES]`` drops each spike leaving the chosen neurons with
probability ``RATIO`` (0 <= RATIO < 1); every reader of those spikes sees the masked ones.
``MODULES`` is a comma list of

- ``attn``: the spikes entering attention: DSSA's ``activation_in`` (``S``, read by the
  pxp conv and by ``y1^T @ S``); Spikformer SSA's ``q_lif``, ``k_lif``, ``v_lif`` (its
  block input is not binary, so the Q, K, V spike matrices are what attention reads); the
  converted MST's ``q.act``, ``k.act``, ``v.act`` (likewise);
- ``mlp``: the spikes entering the feed-forward network: GWSFFN's ``up.0`` (its input
  neuron); Spikformer MLP's ``fc1_lif`` (the hidden spikes entering ``fc2``); the MST's ``fc1.act``;
- a glob over neuron module names (``fnmatch``), e.g. ``layers.1.*.down.0``.

Default ``MODULES``: ``attn`` (MST masks the attention inputs). No rescaling of the kept
spikes: they stay binary, which is what a chip can deliver.

Training mode draws a fresh Bernoulli keep mask per forward (MST trains with the mask;
``torch``'s RNG, so ``--seed`` fixes it). Evaluation, export and the chip use the
deterministic gate of :mod:`sresformer.spike_gate` keyed by ``(seed, gate_id, t, element)``:
sample-independent, different per step, and bit-identical between the float model, the
NIR reader, the fake-quant model and the simulator. ``gate_id`` numbers the masked
neurons in module order from 0.

The spec is stored in checkpoints (``ckpt['spike_mask']``), so evaluating or exporting a
masked-trained checkpoint applies its mask; a command-line ``--spike-mask`` overrides it
(``--spike-mask 0`` removes it).
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .errors import UserError
from .neurons import IF, LIF, PLIF
from .qcfs import QCFS, SoftIF
from .spike_gate import apply_gate

DEFAULT_MODULES = ("attn",)
DEFAULT_SEED = 0
NEURON_TYPES = (LIF, PLIF, IF, SoftIF, QCFS)   # SoftIF: the converted MST's neurons; QCFS its ANN's (MST trains masked)

#: preset name -> (owner class name, neuron attribute paths inside it)
PRESETS = {
    "attn": {"DSSA": ("activation_in",), "SSA": ("q_lif", "k_lif", "v_lif"),
             "Attention": ("q.act", "k.act", "v.act")},   # the converted MST's (sresformer.mst)
    "mlp": {"GWFFN": ("up.0",), "MLP": ("fc1_lif",), "Block": ("fc1.act",)},
}


class SpikeMaskError(UserError):
    """A ``--spike-mask`` spec that cannot be parsed or selects nothing."""


@dataclass(frozen=True)
class MaskSpec:
    """A parsed ``RATIO[:MODULES]``: drop ratio, module selectors, gate seed."""

    ratio: float
    modules: tuple[str, ...] = DEFAULT_MODULES
    seed: int = DEFAULT_SEED

    def to_dict(self) -> dict:
        """Plain types only (checkpoint-safe)."""
        d = asdict(self)
        d["modules"] = list(self.modules)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MaskSpec":
        """Inverse of :meth:`to_dict`; SpikeMaskError (one line) on a spec of the wrong shape or types."""
        if not isinstance(d, dict):
            raise SpikeMaskError(f"a stored spike-mask spec must be a dict, got {type(d).__name__}")
        ratio, modules, seed = d.get("ratio"), d.get("modules", list(DEFAULT_MODULES)), d.get("seed", DEFAULT_SEED)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
            raise SpikeMaskError(f"spike-mask ratio must be a number in [0, 1), got {ratio!r:.40}")
        # a bare string would be split into its letters: insist on a list of selector strings
        if (not isinstance(modules, (list, tuple)) or not modules
                or not all(isinstance(m, str) and m.strip() for m in modules)):
            raise SpikeMaskError(f"spike-mask modules must be a non-empty list of names, got {modules!r:.60}")
        # any 64-bit integer: the gate uses it mod 2**32 (sresformer.spike_gate)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -2 ** 63 <= seed < 2 ** 63:
            raise SpikeMaskError(f"spike-mask seed must be a 64-bit integer, got {seed!r:.40}")
        return cls(float(ratio), tuple(m.strip() for m in modules), seed)

    def __str__(self) -> str:
        return f"{self.ratio:g}:{','.join(self.modules)}"


def parse_spec(text: str, seed: int = DEFAULT_SEED) -> MaskSpec:
    """``"0.25"``, ``"0.5:attn,mlp"``, ``"0.3:layers.0.*.up.0"`` -> :class:`MaskSpec`; one-line error otherwise."""
    raw = str(text).strip()
    ratio_text, sep, modules_text = raw.partition(":")
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise SpikeMaskError(f"--spike-mask {raw!r}: RATIO must be a number in [0, 1), e.g. 0.25 or 0.25:attn,mlp") \
            from None
    if not 0.0 <= ratio < 1.0:
        raise SpikeMaskError(f"--spike-mask {raw!r}: RATIO {ratio:g} is outside [0, 1) (1 would drop every spike)")
    if not sep:
        modules = DEFAULT_MODULES
    else:
        modules = tuple(m.strip() for m in modules_text.split(","))
        if not modules or any(not m for m in modules):
            raise SpikeMaskError(f"--spike-mask {raw!r}: MODULES is an empty item; give a comma list of attn, mlp "
                                 "or neuron-name globs")
    return MaskSpec(ratio, modules, int(seed))


def _matches(model: nn.Module, selector: str) -> list[str]:
    """Neuron module names the selector picks, in module order."""
    named = dict(model.named_modules())
    if selector in PRESETS:
        out = []
        for name, m in named.items():
            for attr in PRESETS[selector].get(type(m).__name__, ()):
                full = f"{name}.{attr}" if name else attr
                if isinstance(named.get(full), NEURON_TYPES):
                    out.append(full)
        return out
    return [n for n, m in named.items() if isinstance(m, NEURON_TYPES) and fnmatch.fnmatchcase(n, selector)]


def select_neurons(model: nn.Module, spec: MaskSpec) -> list[str]:
    """Names of the neurons ``spec`` masks, in module order; SpikeMaskError when a selector picks none."""
    chosen: set[str] = set()
    for sel in spec.modules:
        found = _matches(model, sel)
        if not found:
            hint = "presets: attn, mlp" if sel not in PRESETS else f"the model has no {sel} neurons"
            raise SpikeMaskError(f"--spike-mask: {sel!r} selects no neuron of {type(model).__name__} ({hint}; "
                                 "globs match neuron module names such as layers.0.0.activation_in)")
        chosen.update(found)
    return [n for n, m in model.named_modules() if n in chosen]


class SpikeMask(nn.Module):
    """Zeroes each spike of ``[T, B, ...]`` with probability ``ratio``: Bernoulli in training, the gate in eval."""

    def __init__(self, ratio: float, seed: int, gate_id: int, channels_last: bool = False):
        super().__init__()
        self.ratio, self.seed, self.gate_id = float(ratio), int(seed), int(gate_id)
        # tokens [..., N, D]: the gate indexes the channel-major [D, N] the chip holds (exporters/nir/export_mst.py)
        self.channels_last = bool(channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ratio == 0:
            return x
        if self.training:
            keep = torch.rand(x.shape, device=x.device) >= self.ratio
            return x * keep.to(x.dtype)
        if self.channels_last:
            return apply_gate(x.transpose(-1, -2), self.ratio, self.seed, self.gate_id).transpose(-1, -2)
        return apply_gate(x, self.ratio, self.seed, self.gate_id)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}, seed={self.seed}, gate_id={self.gate_id}"


def _mask_hook(module: nn.Module, inputs, output):
    return module.spike_mask(output)


def remove_spike_mask(model: nn.Module) -> None:
    """Take every :class:`SpikeMask` (and its hook) off ``model``."""
    for m in model.modules():
        handle = getattr(m, "_spike_mask_handle", None)
        if handle is not None:
            handle.remove()
            del m._spike_mask_handle
            del m.spike_mask
    model.__dict__.pop("spike_mask_spec", None)


def apply_spike_mask(model: nn.Module, spec: MaskSpec | str | None) -> list[str]:
    """Mask the neurons ``spec`` selects (replacing any mask already there); returns their names.

    Each chosen neuron gets a child ``spike_mask`` (no parameters, so state dicts do not
    change) applied to its output by a forward hook; ``model.spike_mask_spec`` records the
    spec (checkpoints store it). ``None`` or ratio 0 removes masking.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    remove_spike_mask(model)
    if spec is None or spec.ratio == 0:
        return []
    names = select_neurons(model, spec)
    named = dict(model.named_modules())
    for gate_id, name in enumerate(names):
        neuron = named[name]
        # a new module starts in training mode: follow the model's mode (train()/eval() then propagate)
        neuron.spike_mask = SpikeMask(spec.ratio, spec.seed, gate_id,
                                      getattr(neuron, "channels_last", False)).train(neuron.training)
        neuron._spike_mask_handle = neuron.register_forward_hook(_mask_hook)
    model.spike_mask_spec = spec
    return names


def spike_mask_of(module: nn.Module) -> SpikeMask | None:
    """The :class:`SpikeMask` a neuron carries, if any."""
    m = getattr(module, "spike_mask", None)
    return m if isinstance(m, SpikeMask) else None


__all__ = ["MaskSpec", "SpikeMask", "SpikeMaskError", "apply_spike_mask", "parse_spec", "remove_spike_mask",
           "select_neurons", "spike_mask_of"]
