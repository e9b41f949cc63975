"""Crafted checkpoints (ours and the official code's): one valid file, mutated one field at a time.

Every case goes through the real CLI in one capped worker (``testutil.run_cases``) and must
keep the bad-input contract: exit 2 with one line on stderr, or a correct result (exit 0)
where the mutation leaves the checkpoint valid. Refused cases must leave no output file.
"""

from __future__ import annotations

import copy

import pytest
import torch

import sresformer
from testutil import export_runs, failed_runs, removed, run_cases, warm_up

REFUSE, OK = 2, 0
W = "classifier.weight"          # a float parameter of the nano model
BN = "layers.0.0.norm.bn.num_batches_tracked"   # an integer buffer


def _top(key, value):
    def fn(c):
        c[key] = value
    return fn


def _kw(key, value):
    def fn(c):
        c["model_kwargs"][key] = value
    return fn


def _sd(key, value):
    """A state-dict mutation: ``value`` is a tensor or a function of the old tensor."""
    def fn(c):
        c["state_dict"][key] = value(c["state_dict"][key]) if callable(value) else value
    return fn


def _sd_drop(key):
    def fn(c):
        del c["state_dict"][key]
    return fn


def _mask(value):
    def fn(c):
        c["spike_mask"] = value
    return fn


def _nan_at(t):
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


def _inf_at(t):
    t = t.clone()
    t.view(-1)[-1] = float("inf")
    return t


GOOD_MASK = {"ratio": 0.25, "modules": ["attn"], "seed": 0}

# (name, mutation of the checkpoint dict, expected exit status); whole-file replacements in WHOLE
CASES = [
    ("format wrong", _top("format", "acme.checkpoint"), REFUSE),
    ("format removed", removed("format"), REFUSE),
    ("version text", _top("version", "1"), REFUSE),
    ("version fractional", _top("version", 1.5), REFUSE),
    ("version None", _top("version", None), REFUSE),
    ("version tensor", _top("version", torch.tensor(1)), REFUSE),
    ("version newer", _top("version", 99), REFUSE),
    ("version zero", _top("version", 0), REFUSE),
    ("version removed (old file)", removed("version"), OK),
    ("model_name a number", _top("model_name", 5), REFUSE),
    ("model_name unknown", _top("model_name", "spikingresformer_huge"), REFUSE),
    ("model_name None", _top("model_name", None), REFUSE),
    ("model_name other model", _top("model_name", "spikformer_nano"), REFUSE),
    ("model_name removed", removed("model_name"), REFUSE),
    ("model_kwargs a list", _top("model_kwargs", [10, 32, 4]), REFUSE),
    ("model_kwargs text", _top("model_kwargs", "T=4"), REFUSE),
    ("model_kwargs tensor", _top("model_kwargs", torch.zeros(3)), REFUSE),
    ("model_kwargs removed", removed("model_kwargs"), REFUSE),
    ("model_kwargs empty (defaults)", _top("model_kwargs", {}), OK),
    ("unknown constructor keyword", _kw("colour", "blue"), REFUSE),
    ("keyword the entry point sets", _kw("stem_stride", 2), REFUSE),
    ("T huge", _kw("T", 10 ** 9), REFUSE),
    ("T zero", _kw("T", 0), REFUSE),
    ("T negative", _kw("T", -4), REFUSE),
    ("T text", _kw("T", "4"), REFUSE),
    ("T float", _kw("T", 4.0), REFUSE),
    ("T bool", _kw("T", True), REFUSE),
    ("T tensor", _kw("T", torch.tensor(4)), REFUSE),
    ("T 2 (valid)", _kw("T", 2), OK),
    ("img_size huge", _kw("img_size", 10 ** 6), REFUSE),
    ("img_size zero", _kw("img_size", 0), REFUSE),
    ("img_size negative", _kw("img_size", -32), REFUSE),
    ("img_size incompatible (20)", _kw("img_size", 20), REFUSE),
    ("img_size 48 (valid)", _kw("img_size", 48), OK),
    ("num_classes zero", _kw("num_classes", 0), REFUSE),
    ("num_classes negative", _kw("num_classes", -5), REFUSE),
    ("num_classes huge", _kw("num_classes", 10 ** 9), REFUSE),
    ("num_classes disagrees with weights", _kw("num_classes", 11), REFUSE),
    ("in_channels zero", _kw("in_channels", 0), REFUSE),
    ("attention garbage", _kw("attention", "xyz"), REFUSE),
    ("attention a number", _kw("attention", 3), REFUSE),
    ("state_dict a list", _top("state_dict", [torch.zeros(1)]), REFUSE),
    ("state_dict text", _top("state_dict", "weights"), REFUSE),
    ("state_dict tensor", _top("state_dict", torch.zeros(3)), REFUSE),
    ("state_dict removed", removed("state_dict"), REFUSE),
    ("state_dict integer key", lambda c: c["state_dict"].__setitem__(3, torch.zeros(1)), REFUSE),
    ("state_dict entry a list", _sd(W, [0.0, 1.0]), REFUSE),
    ("state_dict entry a number", _sd(W, 0.5), REFUSE),
    ("weight NaN", _sd(W, _nan_at), REFUSE),
    ("weight +Inf", _sd(W, _inf_at), REFUSE),
    ("conv weight NaN", _sd("layers.0.0.W.weight", _nan_at), REFUSE),
    ("firing-rate buffer NaN", _sd("layers.0.0.firing_rate_x", _nan_at), REFUSE),
    ("BN running_var Inf", _sd("layers.0.0.norm.bn.running_var", _inf_at), REFUSE),
    ("weight int64", _sd(W, lambda t: t.to(torch.int64)), REFUSE),
    ("weight bool", _sd(W, lambda t: t > 0), REFUSE),
    ("weight complex", _sd(W, lambda t: t.to(torch.complex64)), REFUSE),
    ("weight sparse", _sd(W, lambda t: t.to_sparse()), REFUSE),
    ("weight float64 (valid)", _sd(W, lambda t: t.double()), OK),
    ("weight float16 (valid)", _sd(W, lambda t: t.half()), OK),
    ("integer buffer as float", _sd(BN, lambda t: t.float()), REFUSE),
    ("weight wrong shape", _sd(W, lambda t: t[:, :64]), REFUSE),
    ("weight missing", _sd_drop(W), REFUSE),
    ("unexpected entry", _sd("extra.weight", torch.zeros(2)), REFUSE),
    ("meta a list", _top("meta", [1, 2]), REFUSE),
    ("meta text", _top("meta", "accuracy 0.9"), REFUSE),
    ("meta tensor", _top("meta", torch.zeros(2)), REFUSE),
    ("meta data a number", _top("meta", {"data": 5}), REFUSE),
    ("meta removed", removed("meta"), OK),
    ("spike_mask text", _mask("0.25:attn"), REFUSE),
    ("spike_mask a list", _mask([0.25]), REFUSE),
    ("spike_mask without ratio", _mask({"modules": ["attn"]}), REFUSE),
    ("spike_mask ratio 2", _mask({**GOOD_MASK, "ratio": 2.0}), REFUSE),
    ("spike_mask ratio NaN", _mask({**GOOD_MASK, "ratio": float("nan")}), REFUSE),
    ("spike_mask ratio text", _mask({**GOOD_MASK, "ratio": "x"}), REFUSE),
    ("spike_mask modules empty", _mask({**GOOD_MASK, "modules": []}), REFUSE),
    ("spike_mask modules a string", _mask({**GOOD_MASK, "modules": "attn"}), REFUSE),
    ("spike_mask modules numbers", _mask({**GOOD_MASK, "modules": [5]}), REFUSE),
    ("spike_mask selects nothing", _mask({**GOOD_MASK, "modules": ["nowhere.*"]}), REFUSE),
    ("spike_mask seed negative (used mod 2**32)", _mask({**GOOD_MASK, "seed": -1}), OK),
    ("spike_mask seed huge", _mask({**GOOD_MASK, "seed": 2 ** 70}), REFUSE),
    ("spike_mask seed text", _mask({**GOOD_MASK, "seed": "x"}), REFUSE),
    ("spike_mask valid", _mask(GOOD_MASK), OK),
    ("spike_mask None (no mask)", _mask(None), OK),
    ("train_state a list", _top("train_state", [1]), REFUSE),
]
# whole-file replacements: (name, object, expected)
WHOLE = [("a list", [1, 2, 3], REFUSE), ("a tensor", torch.zeros(3), REFUSE), ("a string", "checkpoint", REFUSE),
         ("a bare state dict", "STATE", REFUSE)]
EXPORT = {"weight NaN", "T huge", "spike_mask ratio 2", "img_size negative", "weight float64 (valid)"}
LOIHI = {"conv weight NaN"}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """One valid checkpoint of ours (a warmed-up nano) and the same weights as an official-code file."""
    d = tmp_path_factory.mktemp("ckpt_valid")
    model = sresformer.create_model("spikingresformer_nano")
    warm_up(model, torch.randn(2, 3, 32, 32))
    sresformer.save_checkpoint(model, d / "valid.ckpt")
    torch.save({"model": model.state_dict(), "epoch": 3}, d / "official.pth")
    return d


def _variants(valid, tmp_path):
    base = torch.load(valid / "valid.ckpt", weights_only=True)
    files = []
    for i, (name, mutation, expected) in enumerate(CASES):
        c = copy.deepcopy(base)
        mutation(c)
        path = tmp_path / f"case{i:03d}.ckpt"
        torch.save(c, path)
        files.append((name, path, expected))
    for i, (name, obj, expected) in enumerate(WHOLE):
        path = tmp_path / f"whole{i}.ckpt"
        torch.save(base["state_dict"] if obj == "STATE" else obj, path)
        files.append(("whole file " + name, path, expected))
    return files


def _official_cases(valid, tmp_path):
    src = valid / "official.pth"
    nan = torch.load(src, weights_only=True)
    nan["model"]["classifier.weight"] = _nan_at(nan["model"]["classifier.weight"])
    torch.save(nan, tmp_path / "official_nan.pth")
    cases = [("--T 0", ["--T", "0"], REFUSE), ("--T -1", ["--T", "-1"], REFUSE),
             ("--T huge", ["--T", str(10 ** 7)], REFUSE), ("--img-size -32", ["--img-size", "-32"], REFUSE),
             ("--img-size 0", ["--img-size", "0"], REFUSE), ("--img-size huge", ["--img-size", str(10 ** 6)], REFUSE),
             ("--img-size 20 (incompatible)", ["--img-size", "20"], REFUSE),
             ("--T 2 --img-size 48 (valid)", ["--T", "2", "--img-size", "48"], OK)]
    runs = []
    for i, (name, opts, expected) in enumerate(cases):
        out = tmp_path / f"imported{i}.ckpt"
        runs.append(("import-official " + name, expected,
                     ["import-official", src, "--model", "spikingresformer_nano", *opts, "--out", out], out))
    out = tmp_path / "imported_nan.ckpt"
    runs.append(("import-official NaN weight", REFUSE,
                 ["import-official", tmp_path / "official_nan.pth", "--model", "spikingresformer_nano", "--out", out],
                 out))
    out = tmp_path / "imported_other.ckpt"
    runs.append(("import-official wrong model", REFUSE,
                 ["import-official", src, "--model", "spikformer_nano", "--out", out], out))
    return runs


def test_crafted_checkpoints_keep_the_contract(valid, tmp_path):
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    runs = []   # (name, expected, args, output path or None)
    for name, path, expected in _variants(valid, tmp_path):
        runs.append((name, expected, ["eval", path, "--limit", "2", "--batch-size", "2"], None))
        runs += export_runs(name, expected, path, tmp_path / path.stem, nir=name in EXPORT, loihi=name in LOIHI)
    official = _official_cases(valid, tmp_path)
    runs += official
    # each import that succeeds must write a checkpoint that evaluates
    runs.append(("evaluate the valid import", OK, ["eval", official[7][3], "--limit", "2"], None))
    results = run_cases([r[2] for r in runs], tmp_path, timeout_s=60, mem_gib=6)
    failures = failed_runs(runs, results, refuse=REFUSE)
    n_files = len(CASES) + len(WHOLE)
    print(f"crafted checkpoint cases: {n_files} checkpoints + {len(official)} import-official runs, "
          f"{len(runs)} command lines")
    assert n_files >= 40
    assert not failures, f"{len(failures)} of {len(runs)} crafted checkpoint runs break the contract:\n" + \
        "\n".join(failures)
