"""Crafted chip and energy profiles: every key of every built-in file mutated one at a time.

Each built-in TOML file is parsed, one key changed (0, -1, 1.5, inf, nan, true, "text",
[1], deleted, renamed with a typo) and written back; plus an unknown key per file and
whole-file cases (not TOML, empty, a directory, binary, no table, a huge file, ...). The
loader is tried in-process on all of them; a representative subset goes through the real
CLI (``energy``, ``simulate``, ``export --target loihi``), which must keep the bad-input
contract: one line on stderr, exit 2, no traceback, no hang, no output file.

The expected outcome of each mutation is written out here from the fields' meaning (which
keys are counts, which may be 0, which may be fractional), not read from the loader's
metadata, so the test checks that data rather than repeating it.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

import testutil
from hw_sim.chips import PROFILE_DIR, ProfileError, available, load_chip, load_energy_profile

KINDS = {"chip": load_chip, "energy": load_energy_profile}
TEXT_KEYS = {"name", "description", "energy_profile"}
# 0 where it means "none": binary spikes only (Loihi 1); no memory taken (a separate memory);
# no convolutional encoding; no header word
ZERO_OK_INT = {"graded_spike_bits", "cuba_state_words", "axon_in_words", "conv_word_bits", "conv_header_words",
               "bias_exp_max", "input_align_bits", "max_system_chips"}   # (no bias exponent, no alignment, no limit)
# signed exponents: any integer in their range (-1 and 0 included)
SIGNED_INT = {"weight_exp_min", "weight_exp_max"}
# feature flags (absent: the chip lacks the feature) and the operand-write prices (absent: 0, no such memory)
FLAG_KEYS = {"product_neurons", "dynamic_operand_memory", "subtract_reset"}
OPTIONAL = {"product_neurons": False, "dynamic_operand_memory": False, "subtract_reset": False,
            "max_system_chips": 0, "operand_write_pj": 0.0,
            "operand_write_ns": 0.0, "spike_out_pj": 0.0, "message_out_pj": 0.0, "static_w_per_chip": 0.0,
            "cores_per_tile": 1, "barrier_tiles_ns": (),
            **{k: 0.0 for k in ("spike_out_ns", "message_out_ns", "message_in_pj", "message_in_ns", "chip_link_pj",
                                "chip_link_ns", "synop_conv_pj", "synop_dense_pj", "synop_sparse_pj",
                                "synop_conv_ns", "synop_dense_ns", "synop_sparse_ns")}}
# tables from a size to a time ({tiles = ns}): no plain value is one
TABLE_KEYS = {"barrier_tiles_ns"}
VALUES = {"zero": 0, "minus1": -1, "frac": 1.5, "inf": math.inf, "nan": math.nan, "true": True,
          "text": "text", "array": [1]}


def toml_literal(v) -> str:
    """``v`` as a TOML value (TOML spells infinity and NaN ``inf`` / ``nan``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)   # a JSON string of plain text is a TOML basic string
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(toml_literal(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_literal(x)}" for k, x in v.items()) + " }"
    return repr(v)


def dump(kind: str, table: dict) -> str:
    """A one-table TOML document."""
    return f"[{kind}]\n" + "".join(f"{k} = {toml_literal(v)}\n" for k, v in table.items())


def typo(key: str) -> str:
    """A user's typo of ``key``: its last letter in upper case (``ac_pj`` -> ``ac_pJ``)."""
    return key[:-1] + key[-1].upper()


def expected_ok(kind: str, key: str, mutation: str, table: dict) -> bool:
    """Whether a file with ``key`` mutated must load (from what each field means)."""
    if mutation == "delete":
        return key in OPTIONAL
    if mutation in ("typo", "extra"):
        return False
    v = VALUES[mutation]
    if key in TEXT_KEYS:
        return isinstance(v, str)
    if key in FLAG_KEYS:
        return isinstance(v, bool)
    if key in TABLE_KEYS:
        return False
    if kind == "chip" and key in SIGNED_INT and isinstance(v, int) and not isinstance(v, bool):
        return True
    if isinstance(v, (bool, str, list)) or not math.isfinite(v) or v < 0:
        return False
    if kind == "chip":   # counts and bit widths: integers, at least 1 (0 only where it means "none")
        return isinstance(v, int) and (v >= 1 or key in ZERO_OK_INT)
    return True          # energies (pJ) and times (ns): any finite non-negative number


def builtin_files() -> list[tuple[str, Path]]:
    """(kind, path) of every built-in profile file."""
    return [(kind, PROFILE_DIR / f"{name}.toml") for kind in KINDS for name in available(kind)
            if (PROFILE_DIR / f"{name}.toml").exists()]   # an alias (energy `loihi`) has no file of its own


def mutations() -> list[dict]:
    """Every single-key mutation of every built-in file (plus one unknown key per file)."""
    cases = []
    for kind, path in builtin_files():
        table = tomllib.loads(path.read_text())[kind]
        for key in table:
            for mutation in [*VALUES, "delete", "typo"]:
                t = dict(table)
                if mutation == "delete":
                    del t[key]
                elif mutation == "typo":
                    t = {typo(k) if k == key else k: v for k, v in t.items()}
                else:
                    t[key] = VALUES[mutation]
                cases.append({"id": f"{kind}:{path.stem}-{key}-{mutation}", "kind": kind, "key": key,
                              "mutation": mutation, "text": dump(kind, t),
                              "ok": expected_ok(kind, key, mutation, table),
                              "value": t.get(key, OPTIONAL.get(key))})
        extra = dict(table, **{"colour": "blue"})
        cases.append({"id": f"{kind}:{path.stem}-extra", "kind": kind, "key": "colour", "mutation": "extra",
                      "text": dump(kind, extra), "ok": False, "value": None})
    return cases


# whole-file cases: (id, how to make the path, what the message must say)
def _write(text):
    return lambda d: _put(d / "p.toml", text)


def _put(path: Path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


FILE_CASES = [
    ("not-toml", _write("this is = = not toml\n"), "not TOML"),
    ("empty", _write(""), r"needs a \["),
    ("comments-only", _write("# nothing here\n"), r"needs a \["),
    ("table-is-a-number", _write("chip = 3\nenergy = 3\n"), r"needs a \["),
    ("binary", _write(b"\xff\xfe\x00garbage\x80" * 10), "not TOML"),
    ("directory", lambda d: (d / "adir.toml").mkdir() or d / "adir.toml", "not a regular file"),
    ("missing", lambda d: d / "absent.toml", "does not exist"),
    ("huge", _write("# pad\n" * 300_000), "bytes"),
    ("deep-nesting", _write("[chip]\n[energy]\nx = " + "[" * 5000 + "]" * 5000 + "\n"), "profile"),
]


def file_cases() -> list[dict]:
    """Whole-file cases for each kind."""
    return [{"id": f"{kind}-{cid}", "kind": kind, "make": make, "match": match}
            for kind in KINDS for cid, make, match in FILE_CASES]


MUTATIONS = mutations()
FILES = file_cases()


def cases_per_format() -> dict[str, int]:
    """How many crafted files each loader is tried on (the closing note's count)."""
    counts = {kind: 0 for kind in KINDS}
    for c in MUTATIONS:
        counts[c["kind"]] += 1
    for c in FILES:
        counts[c["kind"]] += 1
    return counts


def test_case_count():
    counts = cases_per_format()
    print("crafted profile cases per format:", counts)
    # chip files loihi1 (31 keys: cores_per_tile, subtract_reset), loihi2 and loihi2-opmem (30) x 10 + 1;
    # energy tables loihi1 and loihi2 (34 keys) and paper-45nm (16 keys) x 10 + 1; 9 whole-file cases each
    assert counts == {"chip": 311 + 2 * 301 + 9, "energy": 2 * 341 + 161 + 9}


@pytest.mark.parametrize("case", MUTATIONS, ids=[c["id"] for c in MUTATIONS])
def test_mutated_key(case, tmp_path):
    path = _put(tmp_path / "p.toml", case["text"])
    load = KINDS[case["kind"]]
    if case["ok"]:
        got = getattr(load(str(path)), case["key"], None)
        assert got == case["value"], case["id"]
        return
    with pytest.raises(ProfileError) as e:
        load(str(path))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 800, msg   # one line, even listing a chip's 28 known keys
    named = typo(case["key"]) if case["mutation"] == "typo" else case["key"]
    assert named in msg, msg            # the message names the key at fault
    if case["mutation"] in ("typo", "extra"):
        assert "known keys" in msg and ("ac_pj" in msg or "cores_per_chip" in msg), msg


@pytest.mark.parametrize("case", FILES, ids=[c["id"] for c in FILES])
def test_bad_file(case, tmp_path):
    path = case["make"](tmp_path)
    with pytest.raises(ProfileError, match=case["match"]) as e:
        KINDS[case["kind"]](str(path))
    assert "\n" not in str(e.value)


def test_special_file_is_not_read():
    # /dev/zero never ends: the loader must refuse it instead of reading forever
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    with pytest.raises(ProfileError, match="not a regular file"):
        load_energy_profile("/dev/zero")


# -- through the real CLI --------------------------------------------------------------------------

# (file stem, key, mutation) sent through the CLI: the reported failures first
CLI_ENERGY = [("paper-45nm", "ac_pj", "inf"), ("paper-45nm", "ac_pj", "true"), ("paper-45nm", "mac_pj", "nan"),
              ("loihi1", "hop_ns_pj", "text"), ("loihi2", "synop_ns", "array"), ("loihi1", "barrier_ns", "minus1"),
              ("paper-45nm", "ac_pj", "typo"), ("loihi1", "mac_pj", "delete")]
CLI_CHIP = [("loihi2", "neurons_per_core", "frac"), ("loihi2", "mesh_cols", "zero"),
            ("loihi2", "cores_per_chip", "zero"), ("loihi1", "max_fan_in", "minus1"),
            ("loihi2", "weight_bits", "true"), ("loihi2", "state_bits", "inf"),
            ("loihi1", "memory_words", "text"), ("loihi2", "neurons_per_core", "delete"),
            ("loihi2", "max_fan_out", "typo")]


def _strict_json(text: str):
    """``json.loads`` that refuses NaN / Infinity (Python's json accepts them; JSON does not)."""
    def bad(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=bad)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A nano checkpoint (warmed up on 16 digits, so its DSSA rates exist) and a toy NIR model."""
    import torch

    import sresformer
    from sresformer.data import open_dataset

    d = tmp_path_factory.mktemp("crafted-profiles")
    data = open_dataset("digits", augment=False)
    x = torch.stack([data.train[i][0] for i in range(16)])
    sresformer.save_checkpoint(testutil.warm_up(sresformer.create_model("spikingresformer_nano"), x), d / "nano.ckpt")
    testutil.write_toy_nir(d / "toy.nir")
    return d


def _case_file(d: Path, kind: str, stem: str, key: str, mutation: str) -> Path:
    (case,) = [c for c in MUTATIONS if c["id"] == f"{kind}:{stem}-{key}-{mutation}"]
    assert not case["ok"]
    return _put(d / f"{kind}-{stem}-{key}-{mutation}.toml", case["text"])


@pytest.mark.slow
def test_cli_keeps_the_contract(inputs, tmp_path):
    ckpt, nir = inputs / "nano.ckpt", inputs / "toy.nir"
    refused, outs, blamed = [], [], []   # blamed: the file the one stderr line must name
    for stem, key, mutation in CLI_ENERGY:
        toml = _case_file(tmp_path, "energy", stem, key, mutation)
        refused.append(["energy", ckpt, "--limit", "2", "--chip-profile", toml])
        refused.append(["simulate", nir, "--limit", "2", "--chip-profile", toml])
        blamed += [toml, toml]
    for stem, key, mutation in CLI_CHIP:
        toml = _case_file(tmp_path, "chip", stem, key, mutation)
        out = tmp_path / f"{toml.stem}.loihi"
        outs.append(out)
        refused.append(["export", ckpt, "--target", "loihi", "--chip", toml, "--out", out])
        blamed.append(toml)
    for cid in ("not-toml", "empty", "directory"):
        (make,) = [m for c, m, _ in FILE_CASES if c == cid]
        sub = tmp_path / cid
        sub.mkdir()
        bad = make(sub)
        refused.append(["energy", ckpt, "--limit", "2", "--chip-profile", bad])
        out = sub / "m.loihi"
        outs.append(out)
        refused.append(["export", ckpt, "--target", "loihi", "--chip", bad, "--out", out])
        blamed += [bad, bad]
    # valid user files (a built-in copied; one price changed): the --json output must be JSON
    loihi = tomllib.loads((PROFILE_DIR / "loihi1.toml").read_text())["energy"]
    good = _put(tmp_path / "mine.toml", dump("energy", dict(loihi, ac_pj=1.5)))
    # every price and time 0 is valid too: nothing may divide by a zero step time
    free = _put(tmp_path / "free.toml",
                dump("energy", {k: (v if isinstance(v, str) else {} if isinstance(v, dict) else 0.0)
                                for k, v in loihi.items()}))
    accepted = [["energy", ckpt, "--limit", "2", "--json", "--chip-profile", good],
                ["simulate", nir, "--limit", "2", "--json", "--chip-profile", good],
                ["simulate", nir, "--limit", "2", "--json", "--chip-profile", "loihi"],
                ["simulate", nir, "--limit", "2", "--json", "--chip-profile", free]]
    recs = testutil.run_cases(refused + accepted, tmp_path, timeout_s=60, mem_gib=6)
    assert len(recs) == len(refused) + len(accepted) >= 20
    for args, rec, toml in zip(refused, recs, blamed, strict=False):
        assert testutil.contract_violation(rec) is None, (args, testutil.contract_violation(rec))
        assert rec["rc"] == 2, (args, rec["stderr"])
        assert str(toml) in rec["stderr"], (args, rec["stderr"])   # refused for the profile, not for another reason
        assert rec["stdout"] == "", args
    for out in outs:
        assert not out.exists(), out
    for args, rec in zip(accepted, recs[len(refused):], strict=True):
        assert rec["rc"] == 0 and not rec["traceback"], (args, rec["stderr"][-500:], rec["traceback"])
        report = _strict_json(rec["stdout"])
        assert isinstance(report, dict) and report, args


@pytest.mark.parametrize("table, ok", [
    ({"1": 600.0, "29": 1800.0}, True), ({}, True), ({"3": 0}, True),
    ({"x": 1.0}, False), ({"0": 5.0}, False), ({"-2": 5.0}, False), ({"2": -1.0}, False),
    ({"2": math.inf}, False), ({"2": True}, False), ({"2": "fast"}, False), ({"2": [1]}, False),
    ({"1": 1.0, "01": 2.0}, False), ({str(i): 1.0 for i in range(1, 66)}, False),
], ids=["sana-fe", "empty", "int", "word-key", "zero-tiles", "negative-key", "negative", "inf", "bool", "text",
        "array", "duplicate", "too-many"])
def test_barrier_table_entries(table, ok, tmp_path):
    # a by-size table: keys whole numbers >= 1 (each once), values finite ns >= 0, at most 64 entries
    text = (PROFILE_DIR / "loihi1.toml").read_text()
    body = text.split("\n[energy]\n", 1)[1]
    lines = [ln for ln in body.splitlines() if not ln.startswith("barrier_tiles_ns")]
    path = _put(tmp_path / "p.toml", "[energy]\n" + "\n".join(lines) + f"\nbarrier_tiles_ns = {toml_literal(table)}\n")
    if ok:
        prof = load_energy_profile(str(path))
        assert prof.barrier_tiles_ns == tuple(sorted((int(k), float(v)) for k, v in table.items()))
    else:
        with pytest.raises(ProfileError, match="barrier_tiles_ns"):
            load_energy_profile(str(path))
