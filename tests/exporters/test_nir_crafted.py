"""Crafted NIR files: one valid file of ours, mutated one field at a time, through the real CLI.

Every case must keep the bad-input contract (``testutil.contract_violation``): one line on
stderr and exit 2, or a correct result (exit 0) where the mutation leaves the file valid.
Refused cases must leave no output file. The cases run in one worker with a per-case
alarm and a memory cap (``testutil.run_cases``), so a hang or a balloon fails the test
instead of the machine.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from exporters.nir import export
from testutil import export_runs, failed_runs, removed, run_cases, set_dataset, warm_up

pytestmark = pytest.mark.slow

ROOT_NODES = "node/nodes"
BLOCK = f"{ROOT_NODES}/layers.0.0/nodes"    # the first DSSA block
FFN = f"{ROOT_NODES}/layers.0.1/nodes"      # the first GWSFFN block
META = "node/metadata"
MASK = f"{BLOCK}/activation_in.mask/metadata"
MM1 = f"{BLOCK}/matmul1/metadata"
STEM = f"{ROOT_NODES}/prologue/nodes"
LIF = f"{BLOCK}/activation_in"


_set = set_dataset


def _scale(path, factor):
    """A mutation: multiply the dataset at ``path`` by ``factor`` (NaN / Inf weights)."""
    def fn(f):
        arr = np.array(f[path][()])
        flat = arr.reshape(-1).copy()
        flat[: max(1, flat.size // 7)] *= factor
        _set(path, flat.reshape(arr.shape))(f)
    return fn


def _put_first(path, value):
    """A mutation: the first entry of the dataset at ``path`` becomes ``value``."""
    def fn(f):
        arr = np.array(f[path][()])
        arr.reshape(-1)[0] = value
        _set(path, arr)(f)
    return fn




def _edges(path, change):
    """A mutation of an edge list: ``change(list of [src, dst])`` returns the new list."""
    def fn(f):
        edges = [[a.decode() if isinstance(a, bytes) else str(a) for a in e] for e in f[path][()]]
        new = change(edges)
        _set(path, np.array(new, dtype=object).astype(h5py.string_dtype()) if new else np.zeros((0, 2), "S1"))(f)
    return fn


def _huge_dataset(path, shape):
    """A mutation: a dataset of huge declared ``shape`` that takes no space (chunked, never written)."""
    def fn(f):
        if path in f:
            del f[path]
        f.create_dataset(path, shape=shape, dtype="float32", chunks=(1,) * (len(shape) - 1) + (1024,),
                         compression="gzip")
    return fn


REFUSE, OK = 2, 0

# (name, mutation, expected exit status); every case runs `eval` unless listed in LOIHI / NIR_OUT
CASES = [
    # weights and neuron parameters: NaN / Inf / wrong types or shapes
    ("classifier weight NaN", _scale(f"{ROOT_NODES}/classifier/weight", np.nan), REFUSE),
    ("classifier weight +Inf", _scale(f"{ROOT_NODES}/classifier/weight", np.inf), REFUSE),
    ("DSSA conv weight -Inf", _put_first(f"{BLOCK}/W/weight", -np.inf), REFUSE),
    ("DSSA conv bias NaN", _put_first(f"{BLOCK}/W/bias", np.nan), REFUSE),
    ("residual Scale NaN", _put_first(f"{BLOCK}/add/scale", np.nan), REFUSE),
    ("LIF tau NaN", _put_first(f"{LIF}/tau", np.nan), REFUSE),
    ("LIF tau 0", _put_first(f"{LIF}/tau", 0.0), REFUSE),
    ("LIF tau negative", _put_first(f"{LIF}/tau", -2.0), REFUSE),
    ("LIF threshold Inf", _put_first(f"{LIF}/v_threshold", np.inf), REFUSE),
    ("LIF r NaN", _put_first(f"{LIF}/r", np.nan), REFUSE),
    ("LIF v_reset NaN", _put_first(f"{LIF}/v_reset", np.nan), REFUSE),
    ("LIF v_leak -Inf", _put_first(f"{LIF}/v_leak", -np.inf), REFUSE),
    ("LIF tau as text", _set(f"{LIF}/tau", "two"), REFUSE),
    ("LIF tau shape mismatch", _set(f"{LIF}/tau", np.full((7, 3), 2.0)), REFUSE),
    ("classifier weight as text", _set(f"{ROOT_NODES}/classifier/weight", "weights"), REFUSE),
    ("classifier weight complex", _set(f"{ROOT_NODES}/classifier/weight", np.ones((10, 128), np.complex64)), REFUSE),
    ("classifier weight 3-D", _set(f"{ROOT_NODES}/classifier/weight", np.ones((10, 128, 1), np.float32)), REFUSE),
    ("classifier weight wrong in-features", _set(f"{ROOT_NODES}/classifier/weight", np.ones((10, 64), np.float32)),
     REFUSE),
    ("classifier weight float64", _set(f"{ROOT_NODES}/classifier/weight", np.zeros((10, 128))), OK),
    ("conv weight 2-D", _set(f"{BLOCK}/W/weight", np.ones((64, 32), np.float32)), REFUSE),
    ("conv bias wrong length", _set(f"{BLOCK}/W/bias", np.zeros(5, np.float32)), REFUSE),
    ("conv groups 0 outside an extension", _set(f"{BLOCK}/W/groups", 0), REFUSE),
    ("conv groups negative", _set(f"{BLOCK}/W/groups", -2), REFUSE),
    ("conv groups 3 (does not divide)", _set(f"{BLOCK}/W/groups", 3), REFUSE),
    ("conv stride 0", _set(f"{BLOCK}/W/stride", np.array([0, 0])), REFUSE),
    ("conv stride negative", _set(f"{BLOCK}/W/stride", np.array([-4, 4])), REFUSE),
    ("conv dilation 0", _set(f"{BLOCK}/W/dilation", np.array([0, 0])), REFUSE),
    ("conv padding negative", _set(f"{BLOCK}/W/padding", np.array([-1, -1])), REFUSE),
    ("conv padding huge", _set(f"{BLOCK}/W/padding", np.array([10 ** 6, 10 ** 6])), REFUSE),
    ("conv stride as text", _set(f"{BLOCK}/W/stride", "wide"), REFUSE),
    ("avgpool kernel 0", _set(f"{ROOT_NODES}/avgpool/kernel_size", np.array([0, 0])), REFUSE),
    ("avgpool stride 0", _set(f"{ROOT_NODES}/avgpool/stride", np.array([0, 0])), REFUSE),
    ("avgpool kernel huge", _set(f"{ROOT_NODES}/avgpool/kernel_size", np.array([10 ** 9, 10 ** 9])), REFUSE),
    ("flatten start_dim 7", _set(f"{ROOT_NODES}/flatten/start_dim", 7), REFUSE),
    # root metadata
    ("T huge", _set(f"{META}/T", 10 ** 9), REFUSE),
    ("T zero", _set(f"{META}/T", 0), REFUSE),
    ("T negative", _set(f"{META}/T", -3), REFUSE),
    ("T text", _set(f"{META}/T", "four"), REFUSE),
    ("T fractional", _set(f"{META}/T", 2.5), REFUSE),
    ("T array", _set(f"{META}/T", np.array([4, 4])), REFUSE),
    ("T 2 (valid)", _set(f"{META}/T", 2), OK),
    ("dt zero", _set(f"{META}/dt", 0.0), REFUSE),
    ("dt NaN", _set(f"{META}/dt", np.nan), REFUSE),
    ("dt negative", _set(f"{META}/dt", -1.0), REFUSE),
    ("dt text", _set(f"{META}/dt", "one"), REFUSE),
    ("format_version text", _set(f"{META}/format_version", "one"), REFUSE),
    ("format_version newer", _set(f"{META}/format_version", 99), REFUSE),
    ("extensions_required a number", _set(f"{META}/extensions_required", 123), REFUSE),
    ("extensions_required unknown", _set(f"{META}/extensions_required", "acme.teleport"), REFUSE),
    ("extensions_required removed", removed(f"{META}/extensions_required"), OK),
    ("img_size text", _set(f"{META}/img_size", "big"), REFUSE),
    ("num_classes negative", _set(f"{META}/num_classes", -1), REFUSE),
    ("input_mode a number", _set(f"{META}/input_mode", 5), REFUSE),
    ("input_mode unknown", _set(f"{META}/input_mode", "telepathy"), REFUSE),
    ("readout unknown", _set(f"{META}/readout", "max_over_T"), REFUSE),
    ("metadata T a group", lambda f: (f.__delitem__(f"{META}/T"), f.create_group(f"{META}/T/x")), REFUSE),
    # the grouped-conv hint
    ("groups hint 7 (does not divide)", _set(f"{FFN}/conv.0.1/metadata/sresformer.groups", 7), REFUSE),
    ("groups hint 0", _set(f"{FFN}/conv.0.1/metadata/sresformer.groups", 0), REFUSE),
    ("groups hint text", _set(f"{FFN}/conv.0.1/metadata/sresformer.groups", "four"), REFUSE),
    ("groups hint 1 (dense: valid)", _set(f"{FFN}/conv.0.1/metadata/sresformer.groups", 1), OK),
    ("groups hint 2 (still block-diagonal)", _set(f"{FFN}/conv.0.1/metadata/sresformer.groups", 2), OK),
    ("groups hint on a dense conv", _set(f"{BLOCK}/Wproj/metadata/sresformer.groups", 2), OK),
    # the spike-mask extension
    ("mask ratio NaN", _set(f"{MASK}/ratio", np.nan), REFUSE),
    ("mask ratio 1.5", _set(f"{MASK}/ratio", 1.5), REFUSE),
    ("mask ratio text", _set(f"{MASK}/ratio", "half"), REFUSE),
    ("mask ratio removed", removed(f"{MASK}/ratio"), REFUSE),
    ("mask seed text", _set(f"{MASK}/seed", "x"), REFUSE),
    ("mask seed fractional", _set(f"{MASK}/seed", 0.5), REFUSE),
    ("mask gate_id array", _set(f"{MASK}/gate_id", np.array([1, 2])), REFUSE),
    ("mask ratio 0.5 (valid)", _set(f"{MASK}/ratio", 0.5), OK),
    # the dual-spike matmul extension
    ("matmul heads 0", _set(f"{MM1}/heads", 0), REFUSE),
    ("matmul heads 3 (does not divide)", _set(f"{MM1}/heads", 3), REFUSE),
    ("matmul heads text", _set(f"{MM1}/heads", "one"), REFUSE),
    ("matmul form unknown", _set(f"{MM1}/form", "y9@z"), REFUSE),
    ("matmul operand missing node", _set(f"{MM1}/dynamic", "nowhere"), REFUSE),
    ("matmul operand a number", _set(f"{MM1}/spikes", 7), REFUSE),
    ("extension name unknown", _set(f"{MM1}/sresformer.extension", "acme.teleport"), REFUSE),
    ("placeholder made finite", _set(f"{BLOCK}/matmul1/nodes/placeholder/groups", 1), REFUSE),
    # the max-pool extension
    ("maxpool kernel 0", _set(f"{STEM}/2/metadata/kernel_size", np.array([0, 0])), REFUSE),
    ("maxpool stride 0", _set(f"{STEM}/2/metadata/stride", np.array([0, 0])), REFUSE),
    ("maxpool padding huge", _set(f"{STEM}/2/metadata/padding", np.array([10 ** 6, 10 ** 6])), REFUSE),
    # graph structure
    ("unknown node type", _set(f"{ROOT_NODES}/flatten/type", "Teleporter"), REFUSE),
    ("unsupported standard node type", _set(f"{ROOT_NODES}/flatten/type", "Delay"), REFUSE),
    ("unknown constructor keyword", _set(f"{ROOT_NODES}/classifier/colour", "blue"), REFUSE),
    ("required field removed", removed(f"{ROOT_NODES}/classifier/weight"), REFUSE),
    ("type field removed", removed(f"{ROOT_NODES}/classifier/type"), REFUSE),
    ("edge to a missing node", _edges("node/edges", lambda e: e + [["classifier", "ghost"]]), REFUSE),
    ("edge from a missing node", _edges("node/edges", lambda e: e + [["ghost", "classifier"]]), REFUSE),
    ("edge endpoint renamed", _edges("node/edges", lambda e: [[a, "flat" if b == "flatten" else b] for a, b in e]),
     REFUSE),
    ("cycle", _edges("node/edges", lambda e: e + [["classifier", "flatten"]]), REFUSE),
    ("self-loop", _edges("node/edges", lambda e: e + [["avgpool", "avgpool"]]), REFUSE),
    ("cycle inside a block", _edges(f"{ROOT_NODES}/layers.0.0/edges", lambda e: e + [["Wproj", "W"]]), REFUSE),
    ("edges removed", _edges("node/edges", lambda e: []), REFUSE),
    ("edges with three columns", _set("node/edges", np.array([["a", "b", "c"]], dtype=object).astype(
        h5py.string_dtype())), REFUSE),
    ("Input node removed", removed(f"{ROOT_NODES}/input"), REFUSE),
    ("Output node removed", removed(f"{ROOT_NODES}/output"), REFUSE),
    ("input shape huge", _set(f"{ROOT_NODES}/input/shape", np.array([3, 10 ** 6, 10 ** 6])), REFUSE),
    ("input shape zero", _set(f"{ROOT_NODES}/input/shape", np.array([3, 0, 0])), REFUSE),
    ("input shape negative", _set(f"{ROOT_NODES}/input/shape", np.array([3, -32, -32])), REFUSE),
    ("input shape text", _set(f"{ROOT_NODES}/input/shape", "3x32x32"), REFUSE),
    ("input channels disagree", _set(f"{ROOT_NODES}/input/shape", np.array([4, 32, 32])), REFUSE),
    ("output shape disagrees", _set(f"{ROOT_NODES}/output/shape", np.array([11])), REFUSE),
    ("block input shape disagrees", _set(f"{ROOT_NODES}/layers.0.0/nodes/input/shape", np.array([32, 4, 4])), REFUSE),
    ("huge declared weight", _huge_dataset(f"{ROOT_NODES}/classifier/weight", (10 ** 5, 10 ** 5)), REFUSE),
    ("huge declared LIF parameter", _huge_dataset(f"{LIF}/tau", (32, 8, 8, 10 ** 8)), REFUSE),
]

# cases also run through the Loihi lowering (slow: a few only) and the NIR rewrite (fast)
LOIHI = {"classifier weight NaN", "DSSA conv weight -Inf", "LIF tau 0", "T huge"}
NIR_OUT = {"residual Scale NaN", "cycle", "matmul heads 3 (does not divide)", "groups hint 7 (does not divide)",
           "mask ratio text", "T text", "classifier weight float64"}


@pytest.fixture(scope="module")
def valid_nir(tmp_path_factory):
    """One valid file of ours: a warmed-up one-stage SpikingResformer with a spike mask, as NIR.

    nano's first stage (the ImageNet stem with its max pool, one DSSA and one GWFFN block, groups of
    32) at nano's final width 128 and its classifier: every node the cases mutate, in a file a sixth
    the size of nano's 3 stages, whose every case reads all its HDF5 groups (the bulk of a case's time).
    """
    from sresformer.model import SpikingResformer

    d = tmp_path_factory.mktemp("nir_valid")
    model = SpikingResformer([["DSSA", "GWFFN"]], [128], [4], [4], img_size=32, T=4, num_classes=10, group_size=32)
    warm_up(model, torch.randn(2, 3, 32, 32))
    from sresformer.masking import apply_spike_mask
    apply_spike_mask(model, "0.25")
    export(model.eval(), d / "valid.nir")
    return d / "valid.nir"


def _craft(valid, directory, index, mutation):
    path = directory / f"case{index:03d}.nir"
    shutil.copy(valid, path)
    with h5py.File(path, "r+") as f:
        mutation(f)
    return path


def test_crafted_nir_files_keep_the_contract(valid_nir, tmp_path):
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(CASES) >= 50
    runs = []   # (case name, expected, args, output path or None)
    for i, (name, mutation, expected) in enumerate(CASES):
        path = _craft(valid_nir, tmp_path, i, mutation)
        runs.append((name, expected, ["eval", path, "--limit", "2", "--batch-size", "2"], None))
        runs += export_runs(name, expected, path, tmp_path / f"out{i:03d}", nir=name in NIR_OUT, loihi=name in LOIHI)
    results = run_cases([r[2] for r in runs], tmp_path, timeout_s=60, mem_gib=6)
    failures = failed_runs(runs, results, refuse=REFUSE)
    print(f"crafted NIR cases: {len(CASES)} files, {len(runs)} command lines")
    assert not failures, f"{len(failures)} of {len(runs)} crafted NIR runs break the contract:\n" + "\n".join(failures)
