"""``sresformer energy --compare``: several models side by side on one chip and one convention.

A *source* is a checkpoint, a ``.nir`` file, a ``.loihi`` artifact or a zoo model name
(built fresh; its DSSA firing rates are calibrated on a few batches of the data, so use
``--data synthetic`` when there is no trained checkpoint). For each source one row:

- float side (checkpoint, NIR, model name): parameters, dense MACs per image, exact AC and
  MAC counts of the float model on the data (:func:`sresformer.sops.count_ops`), energy
  under both conventions of :mod:`hw_sim.energy`, top-1 accuracy when the data has labels;
- chip side (unless ``chip=False``; an artifact has only this side, and its AC / MAC and
  convention columns are the integer model's counts, ``counts`` says which): the source is lowered
  to a temporary artifact (calibrated on the same data) and simulated: integer accuracy,
  agreement with the fake-quant model, energy under the chip profile, pipelined latency per
  inference, cores. A model the lowering refuses gets its one-line reason in ``chip_note``
  instead of figures; nothing is guessed.

This module drives every stage (model, exporters, simulator), which is why it lives with the
CLI and not in any one stage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch.utils.data import DataLoader

from sresformer.errors import UserError
from sresformer.progress import track

CONVENTIONS = ("paper", "standard")


def _model_and_checkpoint(source: str, data: str, tmp: str, calib_batches: int = 2):
    """(model, path the exporter can read, kind) for a checkpoint, NIR file or zoo model name."""
    from sresformer import calibrate_firing_rates, create_model, list_models, save_checkpoint
    from sresformer.evaluate import open_eval_data

    from .common import load_model_source

    path = Path(source)
    if path.suffix in (".ckpt", ".nir", ".pth", ".pt") or path.exists():
        return load_model_source(source), source, "nir" if path.suffix == ".nir" else "checkpoint"
    if source not in list_models():
        raise UserError(f"{source!r} is neither an existing file nor a model name (see 'sresformer models')")
    model = create_model(source)
    train, _ = open_eval_data(model, data, split="train")
    loader = DataLoader(train, batch_size=16, shuffle=False)
    calibrate_firing_rates(model, (x for _, (x, _y) in zip(range(calib_batches), loader, strict=False)))
    ckpt = str(Path(tmp) / f"{source}.ckpt")
    save_checkpoint(model.eval(), ckpt)
    return model, ckpt, "model"


def _float_side(model, data: str, limit: int, batch_size: int, labelled: bool) -> dict:
    """Parameters, counts, energies per convention and accuracy of the float model on ``limit`` test images."""
    from hw_sim.energy import price
    from sresformer.evaluate import evaluate, limited, model_input, open_eval_data
    from sresformer.sops import count_ops

    test, _ = open_eval_data(model, data)
    subset = limited(test, limit)
    batches = track(DataLoader(subset, batch_size=batch_size), "energy", unit="batch")
    layers = count_ops(model, (model_input(x) for x, _ in batches))
    rows = [{"name": r.name, "dense_macs": r.dense_macs / max(r.images, 1), "ac": r.ac / max(r.images, 1),
             "mac": r.mac / max(r.images, 1), "firing_rate": r.firing_rate} for r in layers]
    out = {"params": int(sum(p.numel() for p in model.parameters())), "T": int(getattr(model, "T", 0) or 0),
           "samples": len(subset), **_priced(rows, price)}
    out["accuracy"] = evaluate(model, subset, batch_size=batch_size).accuracy if labelled else None
    return out


def _priced(rows: list[dict], price) -> dict:
    """Dense MACs, AC, MAC and the energy of ``rows`` under each convention (joules per image)."""
    std = price(rows, "standard")["total"]
    return {"dense_macs": std["macs"], "ac": std["ac"], "mac": std["mac"],
            **{f"energy_{c}_j": price(rows, c)["total"]["energy_j"] for c in CONVENTIONS}}


def _chip_side(artifact: str, data: str, limit: int, profile, batch_size: int, labelled: bool) -> dict:
    """Simulated integer accuracy, agreement, counts, energy (both conventions and the profile), latency."""
    from hw_sim.energy import price
    from hw_sim.simulate import simulate

    from .simulate_cmd import fake_quant_reference

    s = simulate(artifact, data, limit, profile, batch_size=batch_size, reference=fake_quant_reference,
                 progress=False)
    rows = [{"name": n, "dense_macs": r["dense_macs"], "ac": r["ac"], "mac": r["mac"],
             "firing_rate": r["nonzero"] / r["elements"] if r["elements"] else 0.0} for n, r in s["layers"].items()]
    priced = _priced(rows, price)
    return {"accuracy_int": s["accuracy"] if labelled else None, "agreement": s["agreement"],
            "chip_ac": s["ac"], "chip_mac": s["mac"], "chip_energy_j": s["energy_j"],
            "chip_energy_paper_j": priced["energy_paper_j"], "chip_energy_standard_j": priced["energy_standard_j"],
            "latency_s": s["latency_s"], "cores": s["cores"], "chips": s["chips"], "T_chip": s["T"],
            "chip": s["chip"], "attention": s["attention"]}


def compare(sources: list[str], data: str = "digits", limit: int = 64, profile: str = "paper-45nm",
            chip: bool = True, batch_size: int = 32, chips: tuple[str, ...] = ("loihi2",)) -> dict:
    """One row per source and chip of ``chips`` (an artifact: one row, on its own chip; see the module
    docstring); ``{'rows': [...], 'data', 'profile', 'samples'}``. Several chips show one model's
    attention on today's silicon beside a hypothetical core (``loihi2`` and ``loihi2-opmem``)."""
    from exporters.loihi.export import export_loihi
    from exporters.nir.convention import NIRError
    from hw_sim.chips import load_chip, load_energy_profile

    prof = load_energy_profile(profile)   # bad names fail before any work
    for name in chips:
        load_chip(name)
    labelled = data != "synthetic"
    rows = []
    with tempfile.TemporaryDirectory(prefix="sresformer-compare-") as tmp:
        for i, source in enumerate(track(sources, "compare", unit="model")):
            base: dict = {"source": source}
            if Path(source).suffix == ".loihi":
                base.update({"kind": "artifact", "model": None, "params": None, "accuracy": None})
                targets = [(None, source)]
            else:
                model, readable, kind = _model_and_checkpoint(source, data, tmp)
                base.update({"kind": kind, "model": getattr(model, "model_name", type(model).__name__)})
                mask = getattr(model, "spike_mask_spec", None)
                base["spike_mask"] = str(mask) if mask is not None and mask.ratio > 0 else None
                base.update(_float_side(model, data, limit, batch_size, labelled))
                targets = [(name, str(Path(tmp) / f"{i}.{j}.loihi")) for j, name in enumerate(chips)] if chip \
                    else [(None, None)]
            for chip_name, artifact in targets:
                row = dict(base)
                if chip_name is not None:
                    row["chip"] = chip_name
                    try:
                        export_loihi(readable, artifact, calib_data=data, chip=chip_name, eval_images=min(limit, 64))
                    except (NIRError, UserError) as e:
                        row["chip_note"] = str(e).strip().splitlines()[0]
                        artifact = None
                if artifact is not None:
                    row.update(_chip_side(artifact, data, limit, prof, batch_size, labelled))
                if row["kind"] == "artifact":   # no float model: its counts are the integer model's
                    row.update({"ac": row["chip_ac"], "mac": row["chip_mac"], "counts": "integer model (simulator)",
                                "energy_paper_j": row["chip_energy_paper_j"],
                                "energy_standard_j": row["chip_energy_standard_j"]})
                else:
                    row["counts"] = "float model"
                rows.append(row)
    return {"data": data, "profile": prof.name, "limit": limit, "rows": rows}
