"""The conventions our NIR files follow, in one place (see ``FORMAT.md`` beside this file).

- Time: the file's neuron parameters are NIR's continuous-time ones; the model's step
  is ``dt`` file time units (``metadata['dt']``, 1.0 by default, so time is counted in
  steps). Readers integrate with forward Euler at that ``dt``.
- LIF: our input-decay LIF ``h = v + (x - v) / tau_steps`` is NIR's
  ``tau dv/dt = (v_leak - v) + r I`` under forward Euler,
  ``v += dt/tau * ((v_leak - v) + r I)``, with ``tau = tau_steps * dt``, ``r = 1``,
  ``v_leak = 0``, ``v_reset = 0``.
- Threshold: NIR fires on ``v > v_threshold``, the model on ``h >= 1``. We store the
  largest float32 below the model's threshold, so NIR's strict rule evaluated in float32
  gives exactly the model's spikes (no float32 lies between the two).
"""

from __future__ import annotations

import numpy as np

from sresformer.errors import UserError

FORMAT = "sresformer-nir"
FORMAT_VERSION = 1

# top-level graph metadata keys (strings and numbers only: they survive nir.write/nir.read)
KEY_FORMAT = "format"
KEY_FORMAT_VERSION = "format_version"
KEY_REQUIRED = "extensions_required"  # comma-separated extension names, as glTF's extensionsRequired
KEY_DT = "dt"
KEY_T = "T"
KEY_INPUT = "input_mode"  # "static": one image repeated over T; "frames": one input per step
KEY_READOUT = "readout"   # "mean_over_T": logits are the mean of the per-step outputs
KEY_THRESHOLD_RULE = "threshold_rule"

# nested-graph metadata key that marks an extension subgraph
KEY_EXTENSION = "sresformer.extension"
DUAL_SPIKE_MATMUL = "sresformer.dual_spike_matmul"
MAX_POOL2D = "sresformer.max_pool2d"
ATTENTION_GATE = "sresformer.attention_gate"
SPIKE_MASK = "sresformer.spike_mask"   # random spike masking gate (sresformer.spike_gate)
SOFT_RESET_IF = "sresformer.soft_reset_if"   # IF with reset by subtraction, initial membrane, bias (MST)
SPIKE_COUNTER = "sresformer.spike_counter"   # running spike counts C_t of the MST's cumulative product
KNOWN_EXTENSIONS = (DUAL_SPIKE_MATMUL, MAX_POOL2D, ATTENTION_GATE, SPIKE_MASK, SOFT_RESET_IF, SPIKE_COUNTER)

THRESHOLD_RULE = ("v_threshold is the largest float32 below the model's threshold: "
                  "NIR's v > v_threshold in float32 equals the model's h >= threshold")


class NIRError(UserError):
    """A NIR file we cannot read or run: missing, corrupt, unsupported node, shape mismatch."""


def strict_threshold(v_threshold: float) -> np.float32:
    """The float32 threshold ``t`` with ``h > t  <=>  h >= v_threshold`` for every float32 ``h``."""
    return np.nextafter(np.float32(v_threshold), np.float32(-np.inf))


def lif_params(tau_steps: float, v_threshold: float, shape: tuple[int, ...], dt: float) -> dict:
    """NIR LIF parameters (float64 arrays of ``shape``) for our input-decay LIF.

    ``tau_steps`` is the model's time constant in steps (2.0, or ``1/sigmoid(w)`` for
    PLIF); ``dt`` the length of one step in file time units. Forward Euler of NIR's LIF
    with ``r = 1, v_leak = 0`` is ``v += (dt/tau) * (I - v)``: with ``tau = tau_steps*dt``
    the factor ``dt/tau`` rounds back to the model's float32 ``1/tau_steps`` exactly
    (float64 storage keeps PLIF's ``1/sigmoid(w)`` invertible).
    """
    full = lambda value: np.full(shape, value, dtype=np.float64)  # noqa: E731
    return dict(tau=full(float(tau_steps) * dt), r=full(1.0), v_leak=full(0.0),
                v_threshold=np.full(shape, strict_threshold(v_threshold), dtype=np.float32),
                v_reset=np.zeros(shape, dtype=np.float32))


def meta_str(value) -> str:
    """A metadata value read back as text (nir.read returns str; older writers may leave bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.size == 1:
        return meta_str(value.item())
    return str(value)


def required_extensions(metadata: dict) -> list[str]:
    """The extension names a graph's metadata declares as required (empty when none)."""
    raw = metadata.get(KEY_REQUIRED, "") if isinstance(metadata, dict) else ""
    return [name.strip() for name in meta_str(raw).split(",") if name.strip()]
