"""``export --target loihi --objective cores|latency``: the summary reports the objective's cores, chips and
step time."""

import json

import pytest


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A conv + LIF + dense NIR model on 8 x 8 inputs (exports in seconds)."""
    import testutil

    d = tmp_path_factory.mktemp("objective")
    testutil.write_toy_nir(d / "toy.nir")
    return d


def _export(d, *args):
    """The export command in this process (its summary and refusals are tested, not the process)."""
    from testutil import run_cli_here

    return run_cli_here("export", d / "toy.nir", "--target", "loihi", *args)


@pytest.mark.slow
def test_latency_objective_spreads_and_reports_its_step(toy):
    from cli.export_cmd import OBJECTIVES
    from hw_sim.artifact import read_artifact
    from hw_sim.mapping import OBJECTIVES as MAPPER_OBJECTIVES
    from hw_sim.mapping import map_graph

    assert OBJECTIVES == MAPPER_OBJECTIVES
    r = _export(toy, "--out", str(toy / "fast.loihi"), "--objective", "latency", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout)
    pg, mapping, report = read_artifact(toy / "fast.loihi")
    fewest = map_graph(pg, _chip(mapping))
    # the same graph mapped for the fewest cores: latency takes more cores for a shorter predicted step
    assert s["objective"] == report["mapping"]["objective"] == "latency"
    assert s["cores"] == mapping.cores > fewest.cores and s["chips"] == 1
    assert s["step_ns"] < fewest.step_ns and report["mapping"]["step_ns"] == pytest.approx(s["step_ns"], abs=0.1)


def _chip(mapping):
    from hw_sim.chips import Chip

    return Chip(**mapping.chip)


def test_unknown_objective_is_one_line(toy):
    r = _export(toy, "--out", str(toy / "x.loihi"), "--objective", "fast")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "objective" in r.stderr
    assert not (toy / "x.loihi").exists()
