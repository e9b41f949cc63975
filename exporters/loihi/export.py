"""``--target loihi``: checkpoint or NIR file -> calibrated integer process graph -> mapping -> artifact."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from exporters.nir.convention import KEY_DT
from exporters.nir.load import read_graph
from exporters.quantize.fakequant import FakeQuantModel
from exporters.quantize.ranges import value_ranges
from hw_sim.artifact import write_artifact
from hw_sim.mapping import map_graph
from hw_sim.processes import ProcessGraph
from sresformer.errors import UserError
from sresformer.progress import track

from .fit import refuse_unfit
from .flatgraph import FlatGraph
from .lower import lower

CALIB_IMAGES = 64     # images whose value ranges set the integer units
EVAL_IMAGES = 360     # test images for the float-vs-integer accuracy (all of digits' test split)
# images per pass of the float graph and of the fake-quant model: memory is the batch's activations
# (Ti at 224 x T = 4 holds ~0.4 GB of values per image), not the whole calibration or test set's
BATCH_IMAGES = 8


class CalibrationOverflow(UserError):
    """The integer model saturates a value on its own calibration data: its units do not fit the chip."""


def is_netx(source) -> bool:
    """True for a lava-dl netx network (``.net``): its integers are used as they are, never calibrated."""
    return Path(source).suffix == ".net"


def source_graph(source: str):
    """The NIR graph of ``source``: read from a ``.nir`` file, or exported from a checkpoint in memory."""
    if is_netx(source):
        raise UserError(f"{source} is a lava-dl netx network, already integers for the chip: export it with "
                        "--target loihi (nothing to calibrate or convert)")
    if Path(source).suffix == ".nir":
        return read_graph(source)
    from exporters.nir.export import model_to_nir
    from sresformer.checkpoint import load_checkpoint

    return model_to_nir(load_checkpoint(source))


def calibration_data(spec: str | None, input_shape, num_classes: int, T: int, calib_images: int = CALIB_IMAGES,
                     eval_images: int = EVAL_IMAGES):
    """(train images, test images, test labels or None) for calibration and the accuracy check.

    Default: the embedded digits when the input is an image ``[C, H, H]``, else random data.
    ``calib_images`` train images set the units; ``eval_images`` test images measure accuracy.
    """
    from torch.utils.data import DataLoader

    from sresformer.data import open_dataset
    from sresformer.evaluate import limited

    image = len(input_shape) == 3 and input_shape[1] == input_shape[2]
    if spec is None:
        spec = "digits" if image else None
    if spec is None:
        g = torch.Generator().manual_seed(0)
        return torch.randn(calib_images, *input_shape, generator=g), None, None, "random"
    bundle = open_dataset(spec, img_size=input_shape[-1] if image else None, num_classes=num_classes,
                          in_channels=input_shape[0], T=None, augment=False)
    if bundle.input_shape[-len(input_shape):] != tuple(input_shape):
        raise UserError(f"--calib-data {spec} gives samples of shape {bundle.input_shape}, the graph expects "
                        f"{tuple(input_shape)}")
    x_train, _ = next(iter(DataLoader(limited(bundle.train, calib_images), batch_size=calib_images)))
    x_test, y_test = next(iter(DataLoader(limited(bundle.test, eval_images), batch_size=eval_images)))
    if bundle.is_sequence:
        x_train, x_test = x_train.transpose(0, 1), x_test.transpose(0, 1)
    return x_train, x_test, y_test, spec


def image_batches(x: torch.Tensor, static: bool, size: int = BATCH_IMAGES) -> list[torch.Tensor]:
    """``x`` cut into batches of at most ``size`` images: static images ``[B, ...]`` along dim 0,
    frames ``[T, B, ...]`` along dim 1."""
    return list(x.split(size, dim=0 if static else 1))


@torch.no_grad()
def accuracy_report(fg: FlatGraph, fq: FakeQuantModel, x, y, T: int) -> dict:
    """Float (the NIR graph) and integer (fake-quant) accuracy on the same images, a batch at a time."""
    static = x.dim() == len(fq.pg.input_shape) + 1
    float_logits, int_logits = [], []
    for xb in track(image_batches(x, static), "accuracy check", unit="batch"):
        xs = xb.unsqueeze(0).expand(T, *xb.shape) if static else xb
        float_logits.append(fg.run(xs).mean(0))
        int_logits.append(fq(xb))
    float_logits, int_logits = torch.cat(float_logits), torch.cat(int_logits)
    acc_f = float((float_logits.argmax(1) == y).float().mean())
    acc_i = float((int_logits.argmax(1) == y).float().mean())
    agree = float((float_logits.argmax(1) == int_logits.argmax(1)).float().mean())
    return {"samples": int(y.numel()), "accuracy_float": acc_f, "accuracy_int": acc_i,
            "accuracy_drop": acc_f - acc_i, "prediction_agreement": agree}


@dataclass
class Lowered:
    """A calibrated integer process graph and what it was made from (see :func:`lowered_graph`)."""

    pg: ProcessGraph
    fg: FlatGraph
    T: int
    data_name: str
    calib_images: int
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int | None
    x_calib: torch.Tensor | None = None   # the calibration images (static [N, ...] or frames [T, N, ...])
    format_notes: list = dataclasses.field(default_factory=list)   # per-layer rescale notes (formats.py)

    @property
    def labelled(self) -> bool:
        """True when the test split has real labels (synthetic or random data: nothing to measure)."""
        return self.y_test is not None and bool(self.num_classes) and self.data_name != "synthetic"


def lowered_graph(source: str, calib_data: str | None = None, T: int | None = None, chip="loihi2",
                  calib_images: int = CALIB_IMAGES, eval_images: int = EVAL_IMAGES, fit: bool = False,
                  max_chips: int | None = None) -> Lowered:
    """Checkpoint or NIR file -> flat graph -> calibrated integer process graph (nothing written), with
    the bit widths of ``chip`` (a ``hw_sim.chips.Chip`` or a name for ``load_chip``).

    ``fit``: before calibrating, refuse a graph whose shapes alone need more than ``max_chips``
    chips (or the system's limit) of ``chip`` (:func:`exporters.loihi.fit.refuse_unfit`)."""
    graph = source_graph(source)
    meta = dict(graph.metadata or {})
    T = int(T or meta.get("T", 4))
    fg = FlatGraph(graph, float(meta.get(KEY_DT, 1.0)))
    out_shape = fg.nodes[fg.output[0]].out_shape
    num_classes = int(out_shape[0]) if len(out_shape) == 1 else None
    in_shape = fg.nodes["input"].out_shape
    x_train, x_test, y_test, data_name = calibration_data(calib_data, in_shape, num_classes or 0, T,
                                                           calib_images, eval_images)
    static = x_train.dim() == len(in_shape) + 1
    if fit:
        refuse_unfit(fg, T, chip, max_chips, input_static=static)
    peaks = value_ranges(fg, image_batches(x_train, static), T)
    notes: list = []
    pg = lower(fg, peaks, T, chip, input_static=static, notes=notes)
    images = int(x_train.shape[-4] if x_train.dim() == 5 else x_train.shape[0])
    return Lowered(pg, fg, T, data_name, images, x_test, y_test, num_classes, x_train, notes)


def refuse_calibrated_overflow(pg: ProcessGraph, x_calib: torch.Tensor, data_name: str) -> None:
    """Run the calibration images through the integer model (the fake-quant model); raise
    :class:`CalibrationOverflow` naming the first process (in graph order) whose saturation acts on
    them, its width and its peak before the clamp (log2), since the calibration promised the
    values fit."""
    fq = FakeQuantModel(pg)
    static = x_calib.dim() == len(pg.input_shape) + 1
    count: dict[str, int] = {}
    peak: dict[str, float] = {}
    for xb in track(image_batches(x_calib, static), "overflow check", unit="batch"):   # bounded memory
        fq.run(xb)
        for name, n in fq.saturated.items():
            count[name] = count.get(name, 0) + n
            peak[name] = max(peak.get(name, 0.0), fq.saturation_peak[name])
    hit = [p for p in pg if count.get(p.name)]
    if not hit:
        return
    p = hit[0]
    bits = p.attrs.state_bits if p.kind == "neuron" else p.attrs.out_bits
    what = "state (current or membrane)" if p.kind == "neuron" else "output"
    more = f" (and {len(hit) - 1} later process(es))" if len(hit) > 1 else ""
    raise CalibrationOverflow(
        f"{p.kind} {p.name!r} saturates its {bits}-bit {what} on the calibration data {data_name!r}: "
        f"{count[p.name]} values, peak 2^{math.log2(peak[p.name]):.1f} against "
        f"2^{bits - 1}{more}; its integer units do not fit the chip: calibrate on data that covers "
        "the inputs (--calib-data) or lower that layer's activations (weights, thresholds) in the model")


def export_loihi(source: str, out: str | os.PathLike, calib_data: str | None = None, chip: str | None = None,
                 max_chips: int | None = None, T: int | None = None, calib_images: int = CALIB_IMAGES,
                 eval_images: int = EVAL_IMAGES, objective: str = "cores", **_unused) -> dict:
    """Quantize, lower, map and write ``out``; return the summary the CLI prints.

    ``calib_images`` / ``eval_images``: how many images calibrate the units and measure the
    float-vs-integer accuracy (fewer make a quick export for tests and benchmarks).
    """
    from hw_sim.chips import load_chip

    calib_images, eval_images = calib_images or CALIB_IMAGES, eval_images or EVAL_IMAGES
    chip_desc = load_chip(chip or "loihi2")
    if is_netx(source):   # netx's own integers (exporters/loihi/netx_import.py): no calibration
        from .netx_import import read_netx

        if calib_data is not None:
            raise UserError(f"--calib-data does not apply to {source}: a netx network keeps its own integers")
        notes: list = []
        pg = read_netx(source, T, chip=chip_desc, notes=notes)
        T, data_name = pg.T, None
        report = {"calibration": {"data": None, "images": 0, "netx": "the file's integers, as netx applies them"}}
    else:
        low = lowered_graph(source, calib_data, T, chip=chip_desc, calib_images=calib_images,
                            eval_images=eval_images, fit=True, max_chips=max_chips)
        pg, T, data_name, notes = low.pg, low.T, low.data_name, low.format_notes
        report = {"calibration": {"data": data_name, "images": low.calib_images}}
    # mapped before the integer model is run: a refusal (chips, fan-out) comes before minutes of checking
    mapping = map_graph(pg, chip_desc, max_chips, objective)
    if not is_netx(source):
        refuse_calibrated_overflow(pg, low.x_calib, data_name)
        if low.labelled:
            report["accuracy"] = accuracy_report(low.fg, FakeQuantModel(pg), low.x_test, low.y_test, T)
    report["formats"] = notes
    neurons = sum(g.size for g in mapping.groups.values())
    synapses = int(sum(g.synapses_per_compartment * g.size for g in mapping.groups.values()))
    report["mapping"] = {"chip": chip_desc.name, "cores": mapping.cores, "chips": mapping.chips, "neurons": neurons,
                         "synapses": synapses, "host_processes": mapping.host, "objective": mapping.objective,
                         "step_ns": mapping.step_ns, "attention": mapping.attention}
    write_artifact(out, pg, mapping, report)
    summary = {"target": "loihi", "out": str(out), "chip": chip_desc.name, "attention": mapping.attention,
               "cores": mapping.cores,
               "chips": mapping.chips, "objective": mapping.objective, "step_ns": round(mapping.step_ns, 1),
               "neurons": neurons, "synapses": synapses, "T": T,
               "calibration": data_name}
    if "accuracy" in report:
        summary.update({k: report["accuracy"][k] for k in ("accuracy_float", "accuracy_int", "accuracy_drop")})
    return summary
