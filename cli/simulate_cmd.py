"""``sresformer simulate``: run an artifact (or a NIR model, lowered first) in the chip simulator."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from .options import batch_option, limit_option, spike_mask_option


def fake_quant_reference(pg):
    """The fake-quant torch model as the agreement reference: integer logits and neuron spikes."""
    from exporters.quantize.fakequant import FakeQuantModel

    fq = FakeQuantModel(pg)

    def run(x):
        logits, values = fq.run(x, keep=True)
        return logits, {n: v for n, v in values.items() if pg.processes[n].kind in ("neuron", "gate")}
    return run


def artifact_of(source: str, data: str, tmp: str, chip: str | None = None) -> str:
    """``source`` itself for a ``.loihi`` file; a ``.nir`` file (calibrated on ``data``) or a lava-dl
    netx ``.net`` file (its own integers, no calibration) is exported to a temporary artifact (for
    ``chip``: a chip name or TOML file, default loihi2)."""
    suffix = Path(source).suffix
    if suffix not in (".nir", ".net"):
        return source
    from exporters.loihi.export import export_loihi
    from hw_sim.artifact import ArtifactError

    if not Path(source).is_file():
        raise ArtifactError(f"{'NIR' if suffix == '.nir' else 'netx'} file {source} does not exist")
    out = str(Path(tmp) / (Path(source).stem + ".loihi"))
    export_loihi(source, out, calib_data=data if suffix == ".nir" else None, chip=chip)
    return out


def simulate_summary(artifact: str, source: str, data: str, limit: int | None, profile, batch_size: int,
                     timing_model: str, spike_mask: str | None = None, out: str | None = None,
                     resume: bool = False) -> dict:
    """What ``simulate --json`` prints for ``artifact`` (lowered from ``source``): the simulator's summary
    with agreement against the fake-quant model, a regression readout stated as such. ``out`` /
    ``resume``: the per-sample results file (:mod:`hw_sim.results`)."""
    from hw_sim.artifact import read_artifact
    from hw_sim.simulate import simulate as run_simulation

    summary = run_simulation(artifact, data, limit, profile, batch_size=batch_size,
                             reference=fake_quant_reference, timing_model=timing_model, out=out, resume=resume)
    regression_readout(summary, read_artifact(artifact)[0].metadata)
    summary["source"] = str(source)
    summary["spike_mask"] = spike_mask
    return summary


def regression_readout(summary: dict, pg_metadata: dict) -> None:
    """A netx network read out as its last layer's voltage (lava-dl's PilotNet: a steering angle) has no
    classes: its accuracy is stated as None, not as the argmax of one output."""
    if pg_metadata.get("readout") == "voltage":
        summary["accuracy"] = None
        summary["readout"] = ("voltage: the last layer's v_T / (64 T) in weight LSBs (exporters/loihi/"
                              "netx_import.py); a regression output, no accuracy")


def _human(s: dict) -> str:
    from hw_sim.prodneuron import attention_phrase

    crit = s["critical_core"]
    acc = "n/a (a regression readout)" if s["accuracy"] is None else f"{s['accuracy']:.2%}"
    lines = [f"accuracy   {acc} on {s['samples']} {s['data']} test samples",
             f"agreement  {s['agreement']:.2%} of samples bit-equal to the fake-quant model (logits and spikes)",
             f"SOPs       {s['ac'] / 1e6:.3f} M AC + {s['mac'] / 1e6:.3f} M MAC per inference "
             f"({s['dsmm_ac'] / 1e6:.3f} M AC in DSSA matmuls)",
             f"energy     {s['energy_j'] * 1e6:.4f} uJ per inference ({s['profile']}): "
             f"{s['energy_dynamic_j'] * 1e6:.4f} uJ dynamic + {s['energy_static_j'] * 1e6:.4f} uJ static",
             f"latency    {s['latency_pipelined_s'] * 1e6:.2f} us pipelined ({s['T']} + {s['pipeline_depth']} steps, "
             f"{s['timing']} timing), "
             f"{s['latency_zero_delay_s'] * 1e6:.2f} us zero-delay ({s['latency_per_step_s'] * 1e6:.3f} us per step)",
             f"throughput {s['throughput_ips']:.1f} inferences/s streaming (a frame every {s['T']} chip steps of "
             f"{s['step_time_s'] * 1e6:.3f} us)",
             f"chip       {s['chip']} ({s['chip_description']}); attention: {attention_phrase(s['attention'])}",
             f"cores      {s['cores']} on {s['chips']} chip(s); critical core {crit['core']} ({crit['group']}), "
             f"utilisation {crit['utilisation']:.1%}"]
    sat = s.get("saturated") or {"total": 0, "per_process": {}}
    if sat["total"]:
        worst = max(sat["per_process"], key=sat["per_process"].get)
        lines.append(f"WARNING    {sat['total']} values saturated at the chip's widths in "
                     f"{len(sat['per_process'])} process(es) (most: {worst!r}, {sat['per_process'][worst]}): the data "
                     "drove the model outside its calibration; re-export calibrated on data like it")
    return "\n".join(lines)


@click.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--data", default="digits", show_default=True, help="Dataset spec; its test split is simulated.")
@limit_option("Simulate only the first N test samples")
@click.option("--chip-profile", default="paper-45nm", show_default=True,
              help="Energy (pJ per event) and timing (ns per event) profile: a built-in name (paper-45nm, "
                   "loihi1, loihi2; loihi is loihi1) or a TOML file.")
@click.option("--timing", "timing_model", type=click.Choice(["simple", "detailed"]), default="simple",
              show_default=True,
              help="Time model: simple (each core's units one after another, its hops charged to the sender) or "
                   "detailed (a core's units overlap, input in the step it is sent, link contention on the mesh).")
@batch_option(32, "Samples per executor run")
@spike_mask_option("MODEL.nir only: insert random spike gates before lowering (an artifact has its gates baked in "
                   "at export: re-export it with --spike-mask).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Append one JSON line per sample (label, prediction, agreement; each batch's counts) to this "
                   "file as the run goes; under torchrun rank 0 writes it.")
@click.option("--resume", is_flag=True, help="Continue the run whose --out file exists: its samples are not run "
                                            "again, the summary merges them with the new ones.")
@click.option("--backend", type=click.Choice(["hw_sim", "lava"]), default="hw_sim", show_default=True,
              help="lava: run the artifact as Lava processes (Intel's fixed-point models; --limit defaults to 4; "
                   "a MODEL.nir is lowered onto Lava's grid first) and print its agreement with our executor and "
                   "the first mismatch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")
def simulate(source, data, limit, chip_profile, timing_model, batch_size, as_json, spike_mask, out, resume,
             backend):
    """Simulate ARTIFACT (.loihi), MODEL.nir or a lava-dl netx NETWORK.net on DATA: accuracy, agreement,
    SOPs, energy, latency. A netx network keeps its own integers; its input shape comes from the file
    (PilotNet's 3 x 66 x 200: use --data synthetic). Under torchrun (torch.distributed, gloo) each process
    runs a share of the batches and rank 0 prints the merged result, equal to one process's."""
    from hw_sim.chips import load_energy_profile

    profile = load_energy_profile(chip_profile)   # bad names fail before any work
    if backend == "lava":
        if out is not None or resume:
            raise click.UsageError("--out and --resume are for the hw_sim backend; --backend lava compares a few "
                                   "samples (--limit) with our executor")
        return _simulate_lava(source, data, limit, spike_mask, as_json)
    if resume and out is None:
        raise click.UsageError("--resume continues the run of an --out file: pass --out RESULTS.jsonl")
    from hw_sim import shard
    from sresformer.fileio import check_output

    if out is not None:
        check_output(out, [source], option="--out")   # not the artifact itself, not a directory

    with shard.job() as (rank, _):   # torchrun: RANK, WORLD_SIZE, MASTER_ADDR / MASTER_PORT
        summary = _simulate_in(source, data, limit, profile, batch_size, timing_model, spike_mask, out, resume)
    if rank != 0:   # only rank 0 prints
        return
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(_human(summary))


def _simulate_in(source, data, limit, profile, batch_size, timing_model, spike_mask, out, resume) -> dict:
    """The summary of ``source`` (lowered to a temporary artifact if it is not one)."""
    from sresformer.masking import SpikeMaskError, parse_spec

    from .common import masked_source

    if spike_mask is not None:
        parse_spec(spike_mask)
        if Path(source).suffix != ".nir":
            raise SpikeMaskError(f"--spike-mask applies to MODEL.nir only: the gates of {source} were fixed at "
                                 "export; run 'sresformer export CKPT --target loihi --spike-mask ...' instead")
    with tempfile.TemporaryDirectory(prefix="sresformer-sim-") as tmp:
        if spike_mask is not None and not Path(source).is_file():
            raise SpikeMaskError(f"NIR file {source} does not exist")
        artifact = artifact_of(masked_source(source, spike_mask, tmp), data, tmp)
        return simulate_summary(artifact, source, data, limit, profile, batch_size, timing_model, spike_mask,
                                out, resume)


def _simulate_lava(source, data, limit, spike_mask, as_json) -> None:
    """``--backend lava``: the artifact (lowered onto Lava's grid if it is made here) as Lava processes,
    its agreement with our executor printed."""
    from exporters.lava.run import human, simulate_lava

    from .common import masked_source

    with tempfile.TemporaryDirectory(prefix="sresformer-sim-") as tmp:
        artifact = artifact_of(masked_source(source, spike_mask, tmp), data, tmp)
        s = simulate_lava(artifact, data, limit, grid=artifact != source)   # a model made here: on Lava's grid
    click.echo(json.dumps({**s, "source": str(source)}) if as_json else human(s))
