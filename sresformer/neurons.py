"""Multi-step spiking neurons on ``[T, B, ...]`` tensors.

All three follow SpikingJelly's conventions, which the official SpikingResformer code
uses (``v_threshold = 1``, hard reset to ``v_reset = 0``, detached reset, spike when
``h >= v_threshold``):

- LIF, input decay (SpikingJelly ``LIFNode(tau=2, decay_input=True)``)::

      h[t] = v[t-1] + (x[t] - v[t-1]) / tau
      s[t] = H(h[t] - v_th)
      v[t] = h[t] * (1 - s[t])            # hard reset to 0, s detached

- PLIF: the same with ``1/tau = sigmoid(w)``, ``w`` learnable, ``w0 = -log(tau0 - 1)``
  (Fang et al., ICCV 2021).
- IF: ``h[t] = v[t-1] + x[t]``.

Forward uses the Heaviside step; backward the ATan surrogate (SpikingJelly
``surrogate.ATan(alpha=2)``): ``dS/dh = (alpha/2) / (1 + (pi/2 * alpha * (h - v_th))^2)``.

The membrane starts at 0 on every call, so no state leaks between calls. LIF and IF
run a fused autograd function: one Python loop over T forward and one backward, no
graph per step, storing only ``h`` for the surrogate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ATAN_ALPHA = 2.0  # SpikingJelly surrogate.ATan default, as in the official layers.py


def atan_surrogate_grad(x: torch.Tensor, alpha: float = ATAN_ALPHA) -> torch.Tensor:
    """Derivative of the ATan surrogate at ``x = h - v_th``: (alpha/2) / (1 + (pi/2*alpha*x)^2)."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())


class _AtanSpike(torch.autograd.Function):
    """Heaviside forward, ATan surrogate backward (used by the autograd PLIF path)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * atan_surrogate_grad(x)


spike_fn = _AtanSpike.apply


class _MultiStepIntegrateFire(torch.autograd.Function):
    """Fused multi-step LIF (``tau`` given) or IF (``tau`` None) with hard detached reset.

    Backward, with ``s`` detached in the reset::

        dL/dh[t]   = dL/ds[t] * sg(h[t] - v_th) + dL/dv[t] * (1 - s[t])
        dL/dx[t]   = dL/dh[t] * k,     k = 1/tau (LIF) or 1 (IF)
        dL/dv[t-1] = dL/dh[t] * (1 - 1/tau) (LIF) or dL/dh[t] (IF)
    """

    @staticmethod
    def forward(ctx, x_seq: torch.Tensor, tau: float | None, v_th: float) -> torch.Tensor:
        spikes = torch.empty_like(x_seq)
        h_seq = torch.empty_like(x_seq) if ctx.needs_input_grad[0] else None
        v = torch.zeros_like(x_seq[0])
        for t in range(x_seq.shape[0]):
            # same expression as SpikingJelly's reset-0 charge, so the floats agree
            h = v + (x_seq[t] - v) / tau if tau is not None else v + x_seq[t]
            s = h >= v_th
            spikes[t] = s
            if h_seq is not None:
                h_seq[t] = h
            v = h.masked_fill(s, 0.0)
        if h_seq is not None:
            ctx.save_for_backward(h_seq, spikes)
        ctx.tau, ctx.v_th = tau, v_th
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):
        h_seq, spikes = ctx.saved_tensors
        tau, v_th = ctx.tau, ctx.v_th
        grad_x = torch.empty_like(grad_spikes)
        grad_v = torch.zeros_like(grad_spikes[0])
        for t in range(grad_spikes.shape[0] - 1, -1, -1):
            grad_h = grad_spikes[t] * atan_surrogate_grad(h_seq[t] - v_th) + grad_v * (1 - spikes[t])
            if tau is None:
                grad_x[t] = grad_h
                grad_v = grad_h
            else:
                grad_x[t] = grad_h / tau
                grad_v = grad_h * (1 - 1 / tau)
        return grad_x, None, None


class LIF(nn.Module):
    """Multi-step LIF (tau = 2, input decay, threshold 1, hard reset 0): ``[T, ...] -> spikes``."""

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0):
        super().__init__()
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _MultiStepIntegrateFire.apply(x_seq, self.tau, self.v_threshold)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}"


class IF(nn.Module):
    """Multi-step integrate-and-fire (no leak), threshold 1, hard reset 0."""

    def __init__(self, v_threshold: float = 1.0):
        super().__init__()
        self.v_threshold = float(v_threshold)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _MultiStepIntegrateFire.apply(x_seq, None, self.v_threshold)


class PLIF(nn.Module):
    """Multi-step parametric LIF: ``1/tau = sigmoid(w)``, ``w`` learnable (scalar, init tau 2).

    The parameter is named ``w`` as in SpikingJelly's ``ParametricLIFNode`` so official
    DVS checkpoints load unchanged.
    """

    def __init__(self, init_tau: float = 2.0, v_threshold: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))
        self.v_threshold = float(v_threshold)

    @property
    def tau(self) -> float:
        """The current membrane time constant in steps, ``1 / sigmoid(w)``."""
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        k = self.w.sigmoid()
        v = torch.zeros_like(x_seq[0])
        out = []
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - v) * k  # SpikingJelly's reset-0 decay-input charge
            s = spike_fn(h - self.v_threshold)
            out.append(s)
            v = h * (1.0 - s.detach())
        return torch.stack(out)


NEURONS = {"lif": LIF, "plif": PLIF, "if": IF}
