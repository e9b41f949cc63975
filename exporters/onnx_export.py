"""ONNX export: the network unrolled over T, ``[B, C, H, W] -> logits [B, K]``, one file.

The graph comes from ``torch.export`` (the dynamo ONNX exporter, which needs onnxscript):
the Python loop over T in the neurons unrolls, the stem runs once on the static image,
and the batch dimension stays dynamic. Spikes are ``>=`` comparisons cast to float, so
onnxruntime reproduces the torch logits up to float rounding of the real-valued parts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from sresformer.attention import DSSA
from sresformer.errors import UncalibratedError, UserError
from sresformer.fileio import atomic_path

MAX_BYTES = 2 * 1024**3  # protobuf's limit for one self-contained file


def check_calibrated(model: nn.Module) -> None:
    """Refuse a model whose DSSA firing-rate buffers were never set (its scales would be infinite)."""
    for name, m in model.named_modules():
        if isinstance(m, DSSA) and (torch.all(m.firing_rate_x == 0) or torch.all(m.firing_rate_attn == 0)):
            raise UncalibratedError(f"{name}: DSSA firing rates are zero (never trained or calibrated); "
                                    "train it or run sresformer.calibrate_firing_rates first")


def export_onnx(model: nn.Module, path: str | os.PathLike, T: int | None = None,
                opset: int | None = None) -> dict:
    """Write ``model`` (eval mode, T steps unrolled) to ``path`` atomically; return a summary.

    Input ``x``: ``[batch, C, H, W]`` float32 with a dynamic batch; output ``logits``:
    ``[batch, K]``, the mean over T of the per-step logits.
    """
    import onnx

    model = model.eval()
    check_calibrated(model)
    if T is not None:
        if T < 1:
            raise UserError(f"--T must be at least 1, got {T}")
        model.T = T
    x = torch.zeros(2, model.in_channels, model.img_size, model.img_size)
    kwargs = {"dynamo": True, "external_data": False, "verbose": False, "input_names": ["x"],
              "output_names": ["logits"], "dynamic_shapes": {"x": {0: torch.export.Dim("batch")}}}
    if opset is not None:
        kwargs["opset_version"] = opset
    with atomic_path(path) as tmp:
        tmp_onnx = Path(str(tmp) + ".onnx")
        try:
            # the exporter reports progress on stdout; keep stdout for our --json
            with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (x,), str(tmp_onnx), **kwargs)
            size = tmp_onnx.stat().st_size
            if size > MAX_BYTES:
                raise UserError(f"the ONNX file would be {size / 2**30:.1f} GiB, over the 2 GiB "
                                "single-file limit; export a smaller model or fewer steps")
            onnx.checker.check_model(str(tmp_onnx))
            opset_used = next(o.version for o in onnx.load(str(tmp_onnx), load_external_data=False).opset_import
                              if o.domain in ("", "ai.onnx"))
            os.replace(tmp_onnx, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_onnx.unlink()
    return {"target": "onnx", "out": str(path), "T": model.T, "opset": opset_used, "bytes": size,
            "input": f"x [batch, {model.in_channels}, {model.img_size}, {model.img_size}]",
            "output": f"logits [batch, {model.num_classes}]"}
