"""``sresformer export``: one command, one exporter module per target."""

from __future__ import annotations

import importlib
import json

import click

from .options import POSITIVE, spike_mask_option, t_option

# target -> "module:function"; each function takes (source, out, **options) and returns a summary dict
TARGETS = {
    "onnx": "cli.export_cmd:export_onnx_target",
    "loihi": "exporters.loihi.export:export_loihi",
    "nir": "exporters.nir.cli:export_nir",
    "netx": "exporters.loihi.netx:export_netx",
    "lava": "exporters.lava.export:export_lava",
}
# The ONNX graph is unrolled over T: its size and export time grow linearly with T, and at
# 64 steps a nano model's file is already ~16x its T = 4 size. Longer runs belong on the chip.
ONNX_MAX_T = 64
# hw_sim.mapping.OBJECTIVES (spelled here so that --help does not import the mapper; a test checks they agree)
OBJECTIVES = ("cores", "latency")
# opsets torch.onnx can target (the dynamo exporter's floor is 18; onnx 1.16+ knows up to 21+)
OPSETS = click.IntRange(7, 30)


def export_onnx_target(source: str, out: str, T=None, opset=None, **_unused) -> dict:
    """``--target onnx``: the checkpoint or NIR model unrolled over T, run by onnxruntime."""
    from exporters.onnx_export import export_onnx
    from sresformer.errors import UserError

    from .common import load_model_source

    if T is not None and T > ONNX_MAX_T:
        raise UserError(f"--T {T} is too long for --target onnx (unrolled over T; at most {ONNX_MAX_T}): "
                        "use --target loihi or nir for long runs")
    return export_onnx(load_model_source(source), out, T=T, opset=opset)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--target", required=True, type=click.Choice(sorted(TARGETS)),
              help="nir: NIR 1.0 HDF5; onnx: unrolled over T; loihi: integer chip artifact (.loihi); "
                   "netx: lava-dl netx HDF5 (chains of CUBA layers); lava: a directory with the artifact on Lava's "
                   "grid and a README (run by Lava's fixed-point models).")
@click.option("--out", required=True, type=click.Path(), help="File to write (atomically; never one of the "
              "inputs); --target lava: a new directory.")
@click.option("--calib-data", default=None, help="Calibration data for quantization (default: digits or synthetic).")
@click.option("--chip", default=None, help="Chip description for --target loihi: loihi2 (default: DSSA on product "
                                           "compartments), loihi2-opmem (HYPOTHETICAL: a core holding the operand), "
                                           "loihi1 or a TOML file.")
@click.option("--max-chips", type=POSITIVE, default=None, help="--target loihi: refuse a mapping that needs more "
                                                              "chips (at least 1).")
@click.option("--calib-images", type=POSITIVE, default=None,
              help="--target loihi: training images whose value ranges set the integer units (default 64).")
@click.option("--eval-images", type=POSITIVE, default=None,
              help="--target loihi: test images for the float-vs-integer accuracy (default 360).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="cores", show_default=True,
              help="--target loihi: cores (the fewest cores: the chip count to book) or latency (then split the "
                   "slowest layers over the spare cores of those chips, or of --max-chips).")
@t_option("Time steps: the loihi artifact's steps per inference and the onnx unroll length "
          f"(onnx at most {ONNX_MAX_T}; default: the model's)")
@click.option("--opset", type=OPSETS, default=None, help="ONNX opset (default: the exporter's).")
@spike_mask_option("Random spike masking: gate the spikes of attn (default), mlp or neuron-name globs (replaces a "
                   "checkpoint's own mask; 0 removes it). On the chip a seeded per-layer gate drops them "
                   "at the source.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary object on stdout.")
def export(source, target, out, as_json, spike_mask, **options):
    """Export CKPT or MODEL.nir to --target (nir, onnx, loihi, netx, lava); a lava-dl netx NETWORK.net to loihi."""
    import tempfile

    from sresformer.fileio import check_output

    from .common import masked_source

    check_output(out, [source], directory=target == "lava")
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
