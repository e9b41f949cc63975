"""One self-contained HTML page of a model on a chip, from ``simulate --json`` and ``energy --json`` dicts.

The page holds a summary, the per-layer table (sortable), the core map, the per-chip-step plot and the
energy terms; plotly.js is inlined once, so the page opens without a network. The dicts it was built
from are embedded as ``<script type="application/json" id="sresformer-data">`` (keys ``simulate``,
``energy``, ``export``), and every number of the summary is a cell with ``data-key`` (its path in that
JSON) and ``data-value`` (the exact value), so a script can read the page's figures back.

A small inline script (no plotting of its own) sorts the layer table, records any script error in
``#sresformer-errors`` and, after plotly has drawn the core map, writes the number of core markers it
rendered into ``data-cores`` of ``#core-map``.
"""

from __future__ import annotations

import html
import json

from .chips import EnergyProfile
from .mapping import Mapping
from .report_figures import CORE_TRACE, core_map, energy_terms_plot, step_plot

DATA_ID = "sresformer-data"

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th.sort{cursor:pointer}
th.sort:after{content:" \\2195";color:#aaa}
code{background:#f5f5f5;padding:.1em .3em}
code.cmd{display:block;margin:.2em 0;white-space:pre-wrap}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}.note{color:#666;font-size:.85em}
"""

# before plotly: an error anywhere on the page is written into the DOM, where a headless browser's dump shows it
ERROR_HOOK = """<script>window.onerror=function(m,s,l,c,e){var d=document.getElementById('sresformer-errors');
if(d){d.textContent+=m+' ('+l+':'+c+')\\n';}};</script>"""

PAGE_SCRIPT = """<script>
(function(){
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,i){th.classList.add('sort');th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),up=th.dataset.dir!=='asc';
      th.dataset.dir=up?'asc':'desc';
      rows.sort(function(r,s){var a=r.cells[i].dataset.value,z=s.cells[i].dataset.value;
        var x=parseFloat(a),y=parseFloat(z);
        var k=(isNaN(x)||isNaN(y))?String(a).localeCompare(String(z)):x-y;return up?k:-k;});
      rows.forEach(function(r){b.appendChild(r);});});});});
  var gd=document.querySelector('#core-map .plotly-graph-div');
  function count(){var tr=gd.querySelectorAll('.scatterlayer .trace')[%d];
    document.getElementById('core-map').dataset.cores=tr?tr.querySelectorAll('path.point').length:0;}
  if(gd){if(gd._fullLayout){count();}else{gd.on('plotly_afterplot',count);}}
})();
</script>""" % CORE_TRACE


def _get(data: dict, path: str):
    for part in path.split("."):
        data = data[part]
    return data


def _num_cell(data: dict, path: str, scale: float = 1.0, unit: str = "", fmt: str = ".4g") -> str:
    """A summary cell: the value at ``path`` of the embedded JSON times ``scale``, in ``unit``."""
    v = _get(data, path)
    if v is None:
        return f'<td class="num" data-key="{path}" data-value="null">n/a</td>'
    shown = f"{(v if scale == 1 else v * scale):{fmt}}" + (f" {unit}" if unit else "")
    return (f'<td class="num" data-key="{path}" data-value="{json.dumps(v)}" data-scale="{scale!r}">'
            f"{html.escape(shown)}</td>")


def _text_cell(data: dict, path: str) -> str:
    v = _get(data, path)
    return f'<td data-key="{path}" data-value="{html.escape(str(v), quote=True)}">{html.escape(str(v))}</td>'


def summary_table(data: dict) -> str:
    """The summary rows (label, value cell) of model, chip, accuracy, energy, latency and throughput."""
    s = "simulate"
    rows = [("model (source)", _text_cell(data, "simulate.source")),
            ("chip", _text_cell(data, "simulate.chip")),
            ("chip description", _text_cell(data, "simulate.chip_description")),
            ("energy / timing profile", _text_cell(data, "simulate.profile")),
            ("timing model", _text_cell(data, "simulate.timing")),
            ("attention lowering", _text_cell(data, "simulate.attention")),
            ("cores", _num_cell(data, f"{s}.cores", fmt="d")), ("chips", _num_cell(data, f"{s}.chips", fmt="d")),
            ("data", _text_cell(data, "simulate.data")), ("samples", _num_cell(data, f"{s}.samples", fmt="d"))]
    acc = data.get("export", {}).get("accuracy")
    if acc:
        rows.append(("float accuracy (export's eval images)", _num_cell(data, "export.accuracy.accuracy_float",
                                                                          100, "%", ".2f")))
        rows.append(("integer accuracy (export's eval images)", _num_cell(data, "export.accuracy.accuracy_int",
                                                                            100, "%", ".2f")))
    rows += [("integer accuracy on the chip simulator", _num_cell(data, f"{s}.accuracy", 100, "%", ".2f")),
             ("agreement with the fake-quant model", _num_cell(data, f"{s}.agreement", 100, "%", ".2f")),
             ("energy per inference", _num_cell(data, f"{s}.energy_j", 1e6, "uJ")),
             ("dynamic energy", _num_cell(data, f"{s}.energy_dynamic_j", 1e6, "uJ")),
             ("static energy", _num_cell(data, f"{s}.energy_static_j", 1e6, "uJ")),
             ("synaptic ops (AC)", _num_cell(data, f"{s}.ac", 1e-6, "M")),
             ("synaptic ops (MAC)", _num_cell(data, f"{s}.mac", 1e-6, "M")),
             ("latency (pipelined)", _num_cell(data, f"{s}.latency_pipelined_s", 1e6, "us")),
             ("latency (zero-delay)", _num_cell(data, f"{s}.latency_zero_delay_s", 1e6, "us")),
             ("chip step time", _num_cell(data, f"{s}.step_time_s", 1e6, "us")),
             ("pipeline depth (chip steps)", _num_cell(data, f"{s}.pipeline_depth", fmt="d")),
             ("throughput (streaming)", _num_cell(data, f"{s}.throughput_ips", 1, "inferences/s", ".1f")),
             ("critical core", _num_cell(data, f"{s}.critical_core.core", fmt="d")),
             ("critical core's group", _text_cell(data, "simulate.critical_core.group")),
             ("critical core utilisation", _num_cell(data, f"{s}.critical_core.utilisation", 100, "%", ".1f"))]
    rows += [(f"energy: {k}", _num_cell(data, f"{s}.energy_terms_j.{k}", 1e6, "uJ"))
             for k, v in data["simulate"]["energy_terms_j"].items() if v]
    body = "".join(f"<tr><th>{html.escape(label)}</th>{cells}</tr>" for label, cells in rows)
    return f'<table id="summary-table">{body}</table>'


def layer_table(data: dict, mapping: Mapping) -> str:
    """One row per layer of ``energy``: role, group and its cores, input firing rate, AC, MAC, SOPs, energy."""
    cores: dict[str, int] = {}
    for c in data["simulate"]["per_core"]:
        cores[c["group"]] = cores.get(c["group"], 0) + 1
    head = ["layer", "role", "group", "cores", "input firing rate", "AC", "MAC", "SOPs", "energy (nJ)"]
    out = []
    for row in data["energy"]["layers"]:
        group = mapping.placement.get(row["name"], "host")
        cells = [(row["name"], html.escape(row["name"])), (row["role"], html.escape(row["role"])),
                 (group, html.escape(group)), (cores.get(group, 0), str(cores.get(group, 0)))]
        cells += [(row[k], f"{row[k] * sc:{f}}") for k, sc, f in
                  (("firing_rate", 1, ".4f"), ("ac", 1, ".6g"), ("mac", 1, ".6g"), ("sops", 1, ".6g"),
                   ("energy_j", 1e9, ".4g"))]
        out.append("<tr>" + "".join(f'<td{" class=num" if i >= 3 else ""} '   # names left, numbers right
                                    f'data-value="{html.escape(str(v), quote=True)}">{t}</td>'
                                    for i, (v, t) in enumerate(cells)) + "</tr>")
    ths = "".join(f"<th>{h}</th>" for h in head)
    return (f'<table id="layer-table" class="sortable"><thead><tr>{ths}</tr></thead>'
            f'<tbody>{"".join(out)}</tbody></table>')


def embedded_json(data: dict) -> str:
    """``data`` as JSON safe inside a ``<script>`` element (``<`` escaped, still the same JSON)."""
    return json.dumps(data).replace("<", "\\u003c")


def build_page(simulate: dict, energy: dict, mapping: Mapping, profile: EnergyProfile,
               export: dict | None = None, commands: list[str] = ()) -> str:
    """The HTML page (one string, plotly.js inlined once) of a ``simulate`` summary, an ``energy`` report
    of the same run, the artifact's ``mapping`` and ``export`` report, and the ``commands`` that
    reproduce it."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    data = {"simulate": simulate, "energy": energy, "export": export or {}}

    def fig(f, div_id):
        return pio.to_html(f, include_plotlyjs=False, full_html=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})

    cmds = "".join(f'<code class="cmd">{html.escape(c)}</code>' for c in commands)
    title = f"sresformer report: {simulate.get('source')} on {simulate.get('chip')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>{ERROR_HOOK}
<script>{get_plotlyjs()}</script></head>
<body><h1>{html.escape(title)}</h1><pre id="sresformer-errors" hidden></pre>
<section id="summary"><h2>Summary</h2><div class="grid"><div>{summary_table(data)}</div>
<div><h3>Energy per inference by term</h3>{fig(energy_terms_plot(simulate), "energy-terms-plot")}</div></div>
<h3>Reproduce</h3>{cmds}</section>
<section id="core-map"><h2>Core map</h2><p class="note">Every core slot of the chips in use (grey: free); pick
the metric with the buttons; hover a core for its group and figures; the red outline is the critical core
(the most busy).</p>{fig(core_map(simulate, mapping, profile), "core-map-plot")}</section>
<section id="per-step"><h2>Per chip step</h2><p class="note">{html.escape(simulate["per_step"]["note"])}</p>
{fig(step_plot(simulate), "per-step-plot")}</section>
<section id="layers"><h2>Per layer</h2><p class="note">Energy of the synaptic ops per layer ({html.escape(
        str(energy.get("convention")))} convention, profile {html.escape(str(energy.get("profile")))}, as
<code>sresformer energy --json</code>); click a column to sort.</p>{layer_table(data, mapping)}</section>
<script type="application/json" id="{DATA_ID}">{embedded_json(data)}</script>
{PAGE_SCRIPT}
</body></html>
"""
