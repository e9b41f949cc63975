"""``sresformer export``: one command, one exporter module per target."""

from __future__ import annotations

import importlib
import json

import click

# target -> "module:function"; each function takes (source, out, **options) and returns a summary dict
TARGETS = {
    "onnx": "cli.export_cmd:export_onnx_target",
    "loihi": "exporters.loihi.export:export_loihi",
    "nir": "exporters.nir.cli:export_nir",
    "netx": "exporters.loihi.netx:export_netx",
}


def export_onnx_target(source: str, out: str, T=None, opset=None, **_unused) -> dict:
    """``--target onnx``: the checkpoint or NIR model unrolled over T, run by onnxruntime."""
    from exporters.onnx_export import export_onnx

    from .common import load_model_source

    return export_onnx(load_model_source(source), out, T=T, opset=opset)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--target", required=True, help="One of the available targets (see --help).")
@click.option("--out", required=True, type=click.Path(), help="File to write (atomically).")
@click.option("--calib-data", default=None, help="Calibration data for quantization (default: digits or synthetic).")
@click.option("--chip", default=None, help="Chip description for --target loihi (default loihi2).")
@click.option("--max-chips", type=int, default=None, help="Refuse a mapping that needs more chips.")
@click.option("--T", "T", type=int, default=None, help="Time steps to unroll (onnx; default: the model's).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: the exporter's).")
@click.option("--spike-mask", default=None, metavar="RATIO[:MODULES]",
              help="Random spike masking: gate the spikes of attn (default), mlp or neuron-name globs (replaces a "
                   "checkpoint's own mask; 0 removes it). On the chip a seeded per-layer gate drops them "
                   "at the source.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def export(source, target, out, as_json, spike_mask, **options):
    """Export CKPT or MODEL.nir to --target (nir, onnx, loihi, netx)."""
    import tempfile

    from sresformer.errors import UserError

    from .common import masked_source

    if target not in TARGETS:
        raise UserError(f"unknown or unavailable target {target!r}; available: {', '.join(sorted(TARGETS)) or 'none'}")
    module, attr = TARGETS[target].split(":")
    with tempfile.TemporaryDirectory(prefix="sresformer-mask-") as tmp:
        summary = getattr(importlib.import_module(module), attr)(masked_source(source, spike_mask, tmp), out, **options)
    if spike_mask is not None and isinstance(summary, dict):
        summary["spike_mask"] = spike_mask
    if as_json:
        click.echo(json.dumps(summary))
    else:
        for k, v in summary.items():
            click.echo(f"{k}: {v}")
