"""Every numeric option has a range: out-of-range, non-finite and malformed values are refused
in one line with exit 2 before any work (nothing written), and help says what a newcomer needs."""

from __future__ import annotations

import pytest

import testutil
from testutil import contract_violation, run_cases

# (command prefix, option, bad values); the prefix is completed with the command's required options
BAD_VALUES = {
    ("train", "--epochs"): ["0", "-1", "1.5", "x", "100001"],
    ("train", "--batch-size"): ["0", "-8", "5000"],
    ("train", "--lr"): ["0", "-1e-3", "nan", "inf", "11"],
    ("train", "--weight-decay"): ["-0.1", "nan", "2"],
    ("train", "--T"): ["0", "-1", "1025"],
    ("train", "--seed"): ["-1", str(2 ** 32)],
    ("train", "--workers"): ["-1", "100000"],
    ("train", "--img-size"): ["0", "-32", "4", "100000"],
    ("train", "--label-smoothing"): ["1", "-0.1", "nan"],
    ("eval", "--limit"): ["0", "-5"],
    ("eval", "--batch-size"): ["0", "100000"],
    ("export", "--T"): ["0", "-1", "1000000"],
    ("export", "--max-chips"): ["0", "-2"],
    ("export", "--opset"): ["0", "99"],
    ("export", "--target"): ["bogus", "LOIHI"],
    ("simulate", "--limit"): ["0", "-1"],
    ("simulate", "--batch-size"): ["0", "-1"],
    ("energy", "--limit"): ["0", "-1"],
    ("energy", "--batch-size"): ["0", "-3"],
    ("import-official", "--T"): ["0", "-4", "2000"],
    ("import-official", "--img-size"): ["-32", "0", "7"],
}


def _argv(cmd, option, value, d):
    ck = d / "m.ckpt"
    base = {"train": ["train", "--model", "spikingresformer_nano", "--out", d / "run"],
            "eval": ["eval", ck], "simulate": ["simulate", d / "m.loihi"], "energy": ["energy", ck],
            "export": ["export", ck, "--out", d / "out.nir"] + ([] if option == "--target" else ["--target", "nir"]),
            "import-official": ["import-official", ck, "--model", "spikingresformer_nano", "--out", d / "o.ckpt"]}
    return [*base[cmd], option, value]


def test_out_of_range_options_are_refused_in_one_line_before_work(tmp_path):
    (tmp_path / "m.ckpt").write_bytes(b"")  # never read: the option is refused first
    cases = [(cmd, opt, v) for (cmd, opt), values in BAD_VALUES.items() for v in values]
    results = run_cases([_argv(c, o, v, tmp_path) for c, o, v in cases], tmp_path, timeout_s=30)
    bad = []
    for (cmd, opt, v), rec in zip(cases, results, strict=True):
        why = contract_violation(rec) or (None if rec["rc"] == 2 else f"exit {rec['rc']}")
        if not why and opt not in rec["stderr"]:
            why = f"the message does not name {opt}: {rec['stderr'].strip()}"
        if why:
            bad.append(f"{cmd} {opt} {v}: {why}")
    assert not bad, "\n".join(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.json", "m.ckpt", "results.json"]
    assert len(cases) >= 55


def test_usage_errors_are_one_line_and_plain_sresformer_is_help(tmp_path):
    results = run_cases([["export", "x.ckpt"], ["bogus"], ["train"], ["eval"], ["energy", "--no-such-flag", "x"],
                         []], tmp_path, timeout_s=30)
    for rec in results[:-1]:
        assert contract_violation(rec) is None and rec["rc"] == 2, rec
        assert "--help" in rec["stderr"], rec["stderr"]
    plain = results[-1]
    assert plain["rc"] == 0 and "Commands:" in plain["stdout"] and plain["stderr"] == ""


@pytest.mark.parametrize("cmd,needles", [
    ("export", ["nir: NIR 1.0 HDF5", "loihi: integer chip artifact", "[lava|loihi|netx|nir|onnx]",
                "the loihi artifact's steps per inference"]),
    ("train", ["digits: 10", "digits: 64", "digits: 2e-3", "default 0.01"]),
    ("energy", ["Test images per forward pass", "pJ per event"]),
    ("simulate", ["ns per event"]),
])
def test_help_states_choices_defaults_and_units(cmd, needles):
    r = testutil.run_cli(cmd, "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0
    for n in needles:
        assert n in text, (n, text)
