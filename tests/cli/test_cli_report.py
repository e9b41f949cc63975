"""``sresformer report``: the HTML page as headless Chromium renders it, its data against simulate / energy."""

import json
import re
import shlex
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from cli.main import cli
from testutil import export_small, failed_runs, run_cases, write_toy_nir

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = ("headless Chromium is not on PATH: .ci/test installs Debian's chromium package with apt-get; "
               "without apt-get (or without root) it cannot be installed here")
LIMIT = ("--limit", "2")   # two digits test images


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    nir = write_toy_nir(d / "toy.nir")
    return {"dir": d, "nir": nir, "loihi": export_small(nir, d / "toy.loihi")}


@pytest.fixture(scope="module")
def page(toy):
    out = toy["dir"] / "report.html"
    r = invoke("report", toy["loihi"], *LIMIT, "--chip-profile", "loihi2", "--out", out)
    assert r.exit_code == 0, r.output
    return out


class Cells(HTMLParser):
    """The page's ``data-key`` cells (key, value, text), its JSON data block and the layer table's rows."""

    def __init__(self):
        super().__init__()
        self.cells, self.data, self.rows, self.cores, self.remote, self.commands = [], None, 0, None, [], []
        self._cell = self._json = self._cmd = None
        self._in_layers = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.remote += [v for k, v in attrs if k in ("src", "href") and re.match(r"\s*(https?:)?//", v or "")]
        if a.get("id") == "core-map":
            self.cores = a.get("data-cores")
        if tag == "td" and "data-key" in a:
            self._cell = [a["data-key"], a["data-value"], a.get("data-scale"), ""]
        if tag == "code" and a.get("class") == "cmd":
            self._cmd = ""
        if tag == "script" and a.get("id") == "sresformer-data":
            self._json = []
        if tag == "table":
            self._in_layers = a.get("id") == "layer-table"
        if tag == "tr" and self._in_layers:
            self.rows += 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[3] += data
        if self._json is not None:
            self._json.append(data)
        if self._cmd is not None:
            self._cmd += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(tuple(self._cell))
            self._cell = None
        if tag == "script" and self._json is not None:
            self.data, self._json = json.loads("".join(self._json)), None
        if tag == "table":
            self._in_layers = False
        if tag == "code" and self._cmd is not None:
            self.commands.append(self._cmd)
            self._cmd = None


def parse(text: str) -> Cells:
    p = Cells()
    p.feed(text)
    return p


def lookup(data, key):
    for part in key.split("."):
        data = data[part]
    return data


def test_embedded_json_is_what_simulate_and_energy_print(toy, page):
    parsed = parse(page.read_text())
    data = parsed.data
    # the page's own "reproduce" command lines, run as they are
    run = {argv[1]: argv[2:] for argv in map(shlex.split, parsed.commands)}
    assert run["simulate"] == [str(toy["loihi"]), "--data", "digits", "--chip-profile", "loihi2", "--timing",
                               "simple", *LIMIT, "--json"]
    sim = json.loads(invoke("simulate", *run["simulate"]).stdout)
    assert data["simulate"] == sim
    ps = sim["per_step"]   # the new per-step figures: one inference's T + depth chip steps
    assert len(ps["step_time_s"]) == len(ps["spikes"]) == sim["T"] + sim["pipeline_depth"]
    assert sum(ps["step_time_s"]) == pytest.approx(sim["latency_pipelined_s"])
    assert sum(ps["spikes"]) == pytest.approx(sim["counts"]["spikes"])
    en = json.loads(invoke("energy", *run["energy"]).stdout)
    mine = data["energy"]
    assert [r["name"] for r in mine["layers"]] == [r["name"] for r in en["layers"]]
    for a, b in zip(mine["layers"], en["layers"], strict=True):
        assert {k: pytest.approx(v) if isinstance(v, float) else v for k, v in b.items()} == a
    assert mine["total"] == pytest.approx(en["total"])
    assert {k: mine[k] for k in ("chip", "attention", "samples", "profile")} == \
        {k: en[k] for k in ("chip", "attention", "samples", "profile")}


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_page_renders_in_headless_chromium(page, tmp_path):
    assert parse(page.read_text()).remote == []   # no script, style or image fetched at view time
    r = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Uncaught" not in r.stderr, r.stderr[-2000:]
    dom = parse(r.stdout)
    assert dom.remote == []
    errors = re.search(r'<pre id="sresformer-errors"[^>]*>(.*?)</pre>', r.stdout, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors and errors.group(1)
    data = dom.data
    # one rendered marker per used core (plotly drew them; the page's script counted the SVG points)
    assert dom.cores is not None and int(dom.cores) == len(data["simulate"]["per_core"]) == data["simulate"]["cores"]
    assert f"critical core {data['simulate']['critical_core']['core']}" in r.stdout   # its marker's legend entry
    assert dom.rows == 1 + len(data["energy"]["layers"])   # header + one row per layer
    numeric = [c for c in dom.cells if c[2] is not None]
    assert len(numeric) >= 20
    for key, value, scale, shown in dom.cells:
        want = lookup(data, key)
        if scale is None:   # a text cell (or a missing number, n/a)
            assert value == str(want) or (value == "null" and want is None), key
            continue
        assert json.loads(value) == want, key   # the exact number, as the JSON has it
        if want is not None:   # and the number shown is the value in its unit, rounded
            number = float(re.match(r"\s*(-?[\d.e+-]+)", shown).group(1))
            assert number == pytest.approx(want * float(scale), rel=1e-3, abs=1e-9), key



def test_report_of_a_nir_file_on_another_chip(toy):
    out = toy["dir"] / "nir.html"
    r = invoke("report", toy["nir"], *LIMIT, "--chip", "loihi1", "--timing", "detailed", "--out", out)
    assert r.exit_code == 0, r.output
    sim = parse(out.read_text()).data["simulate"]
    assert sim["chip"] == "loihi1" and sim["profile"] == "loihi1" and sim["agreement"] == 1.0
    assert sim["timing"] == "detailed"
    assert sim["source"] == str(toy["nir"])


def test_bad_input_one_line_exit_2_no_file(toy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    runs = [("missing source", 2, ["report", tmp_path / "nope.loihi", "--out", tmp_path / "a.html"],
             tmp_path / "a.html"),
            ("unknown chip", 2, ["report", toy["nir"], "--chip", "nosuch", "--out", tmp_path / "b.html"],
             tmp_path / "b.html"),
            ("--chip on an artifact", 2, ["report", toy["loihi"], "--chip", "loihi1", "--out", tmp_path / "c.html"],
             tmp_path / "c.html"),
            ("unknown profile", 2, ["report", toy["loihi"], "--chip-profile", "nosuch", "--out", tmp_path / "d.html"],
             tmp_path / "d.html"),
            ("--out under a file", 2, ["report", toy["loihi"], "--out", blocker / "e.html"], None),
            ("--out is the input", 2, ["report", toy["loihi"], "--out", toy["loihi"]], None)]
    results = run_cases([[str(a) for a in argv] for _, _, argv, _ in runs], tmp_path, timeout_s=60)
    assert failed_runs(runs, results) == []
    assert toy["loihi"].read_bytes()[:4] == b"\x89HDF"   # the refused --out did not replace the input
