"""Drive a dataset through the executor: accuracy, exact counts, latency and energy per inference.

``simulate(artifact, data, limit, profile)`` reads a ``.loihi`` artifact, runs the test split
of ``data`` through :class:`hw_sim.executor.Executor` with a :class:`hw_sim.counters.Counter`
hook, prices the counts with :mod:`hw_sim.cycles` and returns one summary dict (figures per
inference are means over the samples). Agreement with another implementation of the same
semantics (the fake-quant torch model) is measured when the caller passes ``reference``:
this module does not import it, so the simulator stays independent of what it is checked
against.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from hw_sim.artifact import read_artifact
from sresformer.errors import UserError
from sresformer.progress import bar as progress_bar
from sresformer.progress import enabled as progress_enabled
from sresformer.progress import track

from . import shard
from .chips import EnergyProfile, load_energy_profile
from .counters import CORE_KEYS, Counter, CountPlan, merge_layers
from .cycles import TIMINGS, barrier_ns, energy_terms, host_io, streaming, timing, window_idle
from .executor import Executor, real_logits
from .partials import Totals, batch_partial
from .prodneuron import attention_of
from .results import ResultsFile, file_sha256

#: ``reference(x) -> (int logits [T, B, K], {neuron process: spikes [T, B, ...]})``
Reference = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


TIMING_NOTES = {
    "simple": "every core's units (input: messages received and synaptic ops; soma: updates and spikes; "
              "output: messages sent; its messages' hops) work one after another; a step ends at the "
              "slowest core plus the barrier of the tiles in use",
    "detailed": "a core's units overlap (its step is its slowest unit), its input is processed in the chip "
                "step the messages are sent, and the mesh is a unit of its own: the busiest link's messages "
                "one after another plus the longest path",
}


class DataShapeError(UserError):
    """The dataset's samples do not have the shape the artifact's input expects."""


def open_test_data(pg, spec: str, limit: int | None):
    """The first ``limit`` test samples of ``spec`` at the artifact's input shape.

    Raises :class:`DataShapeError` when the dataset's samples do not have that shape.
    """
    from sresformer.data import open_dataset
    from sresformer.evaluate import limited

    shape = tuple(pg.input_shape)
    image = len(shape) == 3 and shape[1] == shape[2]
    num_classes = int(np.prod(pg.processes[pg.output].out_shape))
    size = shape[-1] if image else (tuple(shape[1:]) if len(shape) == 3 else None)   # (H, W): non-square
    bundle = open_dataset(spec, img_size=size, num_classes=num_classes,
                          in_channels=shape[0], T=None if pg.input_static else pg.T, augment=False)
    if tuple(bundle.input_shape[-len(shape):]) != shape or (bundle.is_sequence and pg.input_static):
        raise DataShapeError(f"--data {spec} gives samples of shape {tuple(bundle.input_shape)}, the artifact "
                             f"expects {shape}{' per step' if not pg.input_static else ''}")
    return limited(bundle.test, limit), bundle


class Session:
    """One artifact ready to run: executor and count plan built once (the setup cost)."""

    def __init__(self, artifact: str | os.PathLike, links: EnergyProfile | None = None):
        """``links``: the profile of the detailed timing model (the plan then also counts link loads)."""
        self.path = str(artifact)
        self.pg, self.mapping, self.report = read_artifact(artifact)
        self.executor = Executor(self.pg)
        self.plan = CountPlan(self.pg, self.mapping, links=links)

    def run_batch(self, x: torch.Tensor, keep: bool = False):
        """Executor result and :class:`Counts` of one batch (static ``[B, ...]`` or frames ``[T, B, ...]``)."""
        static = x.dim() == len(self.pg.input_shape) + 1
        T, B = (self.pg.T, x.shape[0]) if static else (x.shape[0], x.shape[1])
        counter = Counter(self.plan, T, B)
        result = self.executor.run(x, hook=counter, keep=keep)
        return result, counter.counts


def _agree(result, reference: Reference, x: torch.Tensor, pg) -> torch.Tensor:
    """Per sample: logits and every neuron's (and spike gate's) spikes bit-equal to the reference's."""
    ref_logits, ref_vals = reference(x)
    B = result.logits.shape[1]
    ok = (ref_logits.double().expand_as(result.logits) == result.logits.double()).flatten(2).all(2).all(0)
    for name, p in pg.processes.items():
        if p.kind not in ("neuron", "gate"):
            continue
        mine, theirs = result.values[name].double(), ref_vals[name].double()
        ok &= (mine == theirs.expand_as(mine)).reshape(mine.shape[0], B, -1).all(2).all(0)
    return ok


def simulate(artifact_path: str | os.PathLike, data_spec: str = "digits", limit: int | None = None,
             profile: str | EnergyProfile = "paper-45nm", batch_size: int = 32,
             reference: Callable[[object], Reference] | None = None, progress: bool | None = None,
             dataset=None, timing_model: str = "simple", out: str | os.PathLike | None = None,
             resume: bool = False) -> dict:
    """Accuracy, agreement (if ``reference(pg)`` gives a reference), counts, energy and latency per inference.

    ``dataset``: a torch dataset of ``(x, label)`` at the artifact's input shape to run instead of the
    test split of ``data_spec`` (benchmarks feed their own frames; ``data_spec`` then only names it).
    ``timing_model``: ``simple`` or ``detailed`` (:func:`hw_sim.cycles.timing`).
    ``out``: a results file (:mod:`hw_sim.results`) the per-sample records are appended to batch by
    batch; ``resume``: continue the run that file holds (its batches are not run again).

    Inside an initialised ``torch.distributed`` group (:mod:`hw_sim.shard`) every rank runs its share
    of whole batches; rank 0 writes ``out`` and merges the partials in batch order, and every rank
    returns the same summary, bit-identical to a single-process run's.
    """
    if timing_model not in TIMINGS:
        raise UserError(f"unknown timing model {timing_model!r} (known: {', '.join(TIMINGS)})")
    prof = profile if isinstance(profile, EnergyProfile) else load_energy_profile(profile)
    sess = Session(artifact_path, links=prof if timing_model == "detailed" else None)
    pg = sess.pg
    if dataset is None:
        dataset, _ = open_test_data(pg, data_spec, limit)
    ref = reference(pg) if reference is not None else None
    rank, size = shard.world()
    ranges = shard.batch_ranges(len(dataset), batch_size)
    if size > 1:
        shard.same_on_all((file_sha256(artifact_path), len(dataset)), "the artifact's SHA-256 or the sample count")
    results = None
    if rank == 0 and out is not None:
        run = {"artifact_sha256": file_sha256(artifact_path), "data": data_spec, "samples": len(dataset),
               "batch_size": batch_size, "profile": prof.name, "timing": timing_model}
        try:
            results = ResultsFile(out, run, ranges, resume)
            done = results.done
        except UserError as e:
            done = e
    else:
        done = {}
    # the other ranks need only which batches are done; a refused file stops every rank with the same line
    keys = shard.from_root(done if isinstance(done, UserError) else sorted(done))
    if isinstance(keys, UserError):
        raise keys
    if rank != 0:
        done = {b: None for b in keys}
    show = rank == 0 and (progress if progress is not None else progress_enabled())
    bar = progress_bar(len(dataset), "simulate", unit="img", show=show,
                       initial=sum(b["sums"]["n"] for b in done.values() if b is not None))
    try:
        partials = _run_rounds(sess, prof, timing_model, ref, dataset, ranges, done, results, bar)
    finally:
        if results is not None:
            results.close()
        if bar is not None:
            bar.close()
    if rank != 0:
        return shard.from_root(None)
    tot = Totals(sess.plan.ncores)
    for b in sorted(partials):   # batch order: the additions of a single-process run
        tot.add(partials[b])
    summary = summarize(sess, prof, tot.n, tot.correct, tot.agreed if ref is not None else None, tot.core,
                        tot.embedded, tot.layers, tot.busy, tot.slowest, tot.lat, tot.lat_pipe, tot.step_total,
                        data_spec, timing_model)
    summary["saturated"] = saturation_summary(tot.saturated, pg)
    summary["per_step"] = tot.steps.summary(pg.T, sess.plan.depth)
    return shard.from_root(summary)


def _run_rounds(sess, prof, timing_model, ref, dataset, ranges, done, results, bar) -> dict[int, dict]:
    """Every batch not in ``done``, shared among the ranks round by round (:mod:`hw_sim.shard`): on rank 0
    the partials of all batches (``done``'s and the new ones, appended to ``results``), empty elsewhere."""
    rank, size = shard.world()
    partials = {b: rec["sums"] for b, rec in done.items() if rec is not None}
    todo = [b for b in range(len(ranges)) if b not in done]
    recorded = 0   # new batches the job has recorded: the same count on every rank (only rank 0 has partials)
    for batches in shard.rounds(todo, size):
        mine = None
        if rank < len(batches):
            b = batches[rank]
            mine = (b, *_run_batch(sess, prof, timing_model, ref, dataset, range(*ranges[b])))
        for item in shard.gather_to_root(mine) or []:
            if item is None:
                continue
            b, samples, partial = item
            partials[b] = partial
            if results is not None:
                results.append(b, samples, partial)
            if bar is not None:
                bar.update(partial["n"])
        recorded += len(batches)
        fault_exit_after(recorded)
    return partials


def _run_batch(sess: Session, prof: EnergyProfile, timing_model: str, ref, dataset, indices: range):
    """One batch (the samples ``indices``): its per-sample records and its partial (:mod:`hw_sim.partials`)."""
    pg, plan = sess.pg, sess.plan
    x, y = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(indices),
                                                 sampler=list(indices), shuffle=False)))
    x = x.transpose(0, 1) if x.dim() == len(pg.input_shape) + 2 else x
    result, counts = sess.run_batch(x, keep=ref is not None)
    pred = real_logits(pg, result.logits).argmax(1)
    ok = _agree(result, ref, x, pg) if ref is not None else None
    tm = timing(counts.core, prof, plan.core_delay, plan.compartments, timing_model, plan.tiles, counts.links,
                plan.link_ns if plan.links is not None else None)
    partial = batch_partial(counts, tm, plan.core_delay, int((pred == y).sum()),
                            int(ok.sum()) if ok is not None else 0, result.saturated)
    samples = [{"index": i, "label": int(y[j]), "prediction": int(pred[j]),
                "agreed": bool(ok[j]) if ok is not None else None} for j, i in enumerate(indices)]
    return samples, partial


def fault_exit_after(batches: int) -> None:
    """Fault injection for the resume tests: with ``SRESFORMER_FAULT_EXIT_AFTER_BATCHES=K`` the process
    dies (``os._exit(137)``, no cleanup, as SIGKILL) once the job has run and recorded ``K`` new batches
    (``batches``: that count so far, the same on every rank). With ``SRESFORMER_FAULT_RANK=R`` as well,
    only rank ``R`` (torchrun's ``RANK``) dies, the others going on as if its machine had gone."""
    k = os.environ.get("SRESFORMER_FAULT_EXIT_AFTER_BATCHES")
    only = os.environ.get("SRESFORMER_FAULT_RANK")
    if only and int(only) != shard.env_rank()[0]:
        return
    if k and batches >= int(k):
        os._exit(137)   # 128 + SIGKILL's 9: what a shell reports for a killed process




def io_bytes(sess: Session) -> tuple[float, float]:
    """Bytes one inference sends over the host link: the input values in (each at its signed width, once
    for a static image, every step for frames) and the readout's values out (each at the chip's
    state width, once)."""
    pg = sess.pg
    inp = [p for p in pg if p.kind == "input"]
    bits = inp[0].attrs.bits if inp else 8
    n_in = float(np.prod(pg.input_shape)) * (1 if pg.input_static else pg.T)
    n_out = float(np.prod(pg.processes[pg.output].out_shape))
    return n_in * -(-bits // 8), n_out * -(-int(sess.mapping.chip.get("state_bits", 24)) // 8)


def saturation_summary(saturated: dict[str, int], pg) -> dict:
    """``{"total": N, "per_process": {name: n}}``: values the saturations changed over every sample and
    step (a neuron's ``u`` and ``v``, graded outputs at ``out_bits``), processes with ``n > 0`` in graph
    order. Non-zero means the data drove the model outside its calibrated range."""
    per = {p.name: int(saturated[p.name]) for p in pg if saturated.get(p.name)}
    return {"total": sum(per.values()), "per_process": per}


def summarize(sess: Session, prof: EnergyProfile, n: int, correct: int, agreed: int | None, core_tot, emb_tot,
              layers, busy, slowest, lat, lat_pipe, step_total, data_spec, timing_model="simple") -> dict:
    """The summary dict (per-inference means) from batch-summed counts."""
    m = max(n, 1)
    per = {k: float(v.sum()) / m for k, v in core_tot.items()}
    totals = dict(per)
    totals["ac"] += emb_tot["ac"] / m
    totals["mac"] += emb_tot["mac"] / m
    T = sess.pg.T
    # one accounting window: the compartments are updated in every chip step the latency counts
    totals["idle"] += window_idle(float(sess.plan.compartments.sum()), sess.plan.depth)
    io = host_io(*io_bytes(sess), emb_tot["ac"] / m + emb_tot["mac"] / m, prof)
    totals["host_bytes"] = io["in_bytes"] + io["out_bytes"]
    stream = streaming(lat_pipe / m, T, sess.plan.depth, io["link_s"])
    wall = 1.0 / stream["throughput_ips"] if stream["throughput_ips"] else 0.0
    terms = energy_terms(totals, prof, sess.mapping.chips, wall)
    util = (busy / step_total).tolist() if step_total else [0.0] * len(busy)
    crit = int(torch.argmax(busy)) if len(busy) else 0
    # each column converted once (the same doubles divided as one by one; Ti on loihi2 has 246,923 cores)
    delay, busy_ns = np.asarray(sess.plan.core_delay).tolist(), (busy.double() / m).tolist()
    cols = {k: (torch.as_tensor(core_tot[k]).double() / m).tolist() for k in CORE_KEYS}
    per_core = [{"core": i, "group": sess.plan.core_group[i], "delay_steps": int(delay[i]),
                 "utilisation": util[i], "busy_ns": busy_ns[i], **{k: cols[k][i] for k in CORE_KEYS}}
                for i in range(len(busy))]
    return {
        "artifact": sess.path, "data": data_spec, "samples": n, "T": T, "profile": prof.name,
        "timing": timing_model,
        "accuracy": correct / n if n else 0.0,
        "agreement": (agreed / n if n else 0.0) if agreed is not None else None,
        "ac": totals["ac"], "mac": totals["mac"], "sops": totals["ac"] + totals["mac"], "dsmm_ac": per["dsmm"],
        "gate_mac": sum(r["mac"] for r in layers.values() if r["kind"] == "gate") / m,
        "gate_ac": sum(r["ac"] for r in layers.values() if r["kind"] == "gate") / m,
        "energy_j": sum(terms.values()), "energy_terms_j": terms,
        "energy_dynamic_j": sum(v for k, v in terms.items() if k != "static"), "energy_static_j": terms["static"],
        **stream,
        "latency_s": lat_pipe / m + io["link_s"] + io["embedded_s"], "latency_zero_delay_s": lat / m,
        "latency_pipelined_s": lat_pipe / m, "host_io": io,
        "latency_per_step_s": lat / m / T, "pipeline_depth": sess.plan.depth,
        "chip": sess.mapping.chip.get("name"), "chip_description": sess.mapping.chip.get("description"),
        "attention": sess.mapping.attention or attention_of(sess.pg),
        "cores": sess.mapping.cores, "chips": sess.mapping.chips,
        "critical_core": {"core": crit, "group": sess.plan.core_group[crit] if len(busy) else None,
                          "utilisation": util[crit] if len(busy) else 0.0,
                          "slowest_fraction": float(slowest[crit]) / max(1, int(slowest.sum()))},
        "counts": {**per, "embedded": {k: v / m for k, v in emb_tot.items()}},
        "layers": {name: {k: (v / m if k != "kind" else v) for k, v in rec.items()} for name, rec in layers.items()},
        "per_core": per_core,
        "assumptions": {
            "latency_s": "pipelined: every compartment group adds one step of delay, an inference takes "
                         f"T + depth = {T} + {sess.plan.depth} chip steps (latency_pipelined_s), plus the host "
                         "link's and the embedded processors' seconds (host_io; 0 where the profile gives no "
                         "bandwidth or op time); latency_zero_delay_s is the executor's schedule (all layers "
                         "inside each of the T steps)",
            "stem": "static processes (input, stem) run once per inference on the embedded processor; their "
                    "MACs are counted once and their outputs are sent once, as bias currents; no time is charged",
            "gates": "MA attention gates (attngate) run on the embedded processor at every step; their MACs "
                     "(gate_mac) and pooling ACs (gate_ac) are in mac / ac and priced, and the values they "
                     "read and send are counted as messages; their embedded-processor time is not charged",
            "barrier_ns": barrier_ns(prof, sess.plan.tiles),
            "tiles": sess.plan.tiles,
            "timing": TIMING_NOTES[timing_model],
            "encodings": ("synaptic ops on binary spikes are priced per encoding (syn_conv, syn_dense, syn_sparse) "
                          "where the profile gives one" if sess.plan.encodings_known else
                          "this artifact's chip predates a chip field: its synapses' encodings are unknown and "
                          "every synaptic op is priced at ac_pj / synop_ns"),
            "window": "energy counts the compartments' idle updates in every one of the T + depth chip steps "
                      "the pipelined latency counts (idle in counts is the executor's T steps only)",
            "static": "energy_static_j = static_w_per_chip x chips x 1 / throughput_ips: the wall time one "
                      "inference holds the chips when frames stream (a new frame every T chip steps)",
        },
    }


def layer_counts(artifact_path: str | os.PathLike, data_spec: str = "digits", limit: int | None = None,
                 batch_size: int = 32) -> tuple[list[dict], int]:
    """Per-image counts per synaptic process (layer = process name) for :func:`hw_sim.energy.price`.

    Inside a ``torch.distributed`` group each rank counts its block of whole batches (:func:`shard.run_block`)
    and rank 0 adds the blocks in batch order (integer-valued sums: exact); the other ranks get ``([], 0)``."""
    sess = Session(artifact_path)
    dataset, _ = open_test_data(sess.pg, data_spec, limit)

    def count(share):
        layers: dict[str, dict] = {}
        n = 0
        loader = torch.utils.data.DataLoader(share, batch_size=batch_size, shuffle=False)
        for x, _ in track(loader, "energy", unit="batch"):
            x = x.transpose(0, 1) if x.dim() == len(sess.pg.input_shape) + 2 else x
            _, counts = sess.run_batch(x)
            merge_layers(layers, counts.layers)
            n += counts.batch
        return layers, n

    parts = shard.run_block(count, dataset, batch_size)
    if parts is None:
        return [], 0
    layers: dict[str, dict] = {}
    for part, _ in parts:
        merge_layers(layers, part)
    n = sum(k for _, k in parts)
    return energy_rows(layers, n), n


def energy_rows(layers: dict[str, dict], n: int = 1) -> list[dict]:
    """Rows for :func:`hw_sim.energy.price` from per-layer sums over ``n`` samples (``layer_counts``), or
    from a summary's per-inference ``layers`` (``n`` = 1): per-image counts and the input firing rate."""
    m = max(n, 1)
    return [{"name": name, "dense_macs": rec["dense_macs"] / m, "ac": rec["ac"] / m, "mac": rec["mac"] / m,
             "firing_rate": rec["nonzero"] / rec["elements"] if rec["elements"] else 0.0}
            for name, rec in layers.items()]
