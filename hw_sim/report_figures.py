"""The report page's plots (plotly figures) from ``simulate --json``'s summary and the artifact's mapping.

- :func:`core_map`: every used chip's mesh as a grid of core slots (positions from
  :meth:`hw_sim.mapping.Mapping.core_xy`), the used cores coloured by a metric the viewer picks
  (plotly's own buttons restyle the colours: no hand-written script), the critical core marked;
- :func:`step_plot`: step time and spikes over the ``T + depth`` chip steps of one inference, the
  pipeline's fill and drain steps shaded;
- :func:`energy_terms_plot`: energy per inference by term (where the energy goes).

Each returns a ``plotly.graph_objects.Figure``; :mod:`hw_sim.report_html` writes them into the page.
"""

from __future__ import annotations

import math

import numpy as np

from .chips import EnergyProfile
from .cycles import energy_terms
from .mapping import Mapping

# the index of the core trace in the core map's figure (the page's script counts its rendered points)
CORE_TRACE = 1
J_PER_NJ = 1e-9
J_PER_UJ = 1e-6


def core_metrics(summary: dict, mapping: Mapping, profile: EnergyProfile) -> dict[str, tuple[str, list[float]]]:
    """The core map's colour choices: ``{key: (label with unit, one value per used core)}``.

    Busy time per data step is ``busy_ns / T`` (``busy_ns``: the core's work summed over the T data
    steps of one inference); energy per core is :func:`hw_sim.cycles.energy_terms` of the core's own
    counts (dynamic only: static power belongs to the chip; idle updates of the T data steps only);
    memory is the mapping's words per core of the core's group (its fullest core, of ``memory_words``).
    """
    cores, T = summary["per_core"], max(int(summary["T"]), 1)
    words = {name: g.words_per_core for name, g in mapping.groups.items()}
    cap = mapping.chip.get("memory_words")

    def dynamic_nj(c):
        return sum(v for k, v in energy_terms(c, profile).items() if k != "static") / J_PER_NJ

    return {
        "busy": ("busy time per data step (ns)", [c["busy_ns"] / T for c in cores]),
        "utilisation": ("utilisation (busy / chip step time)", [c["utilisation"] for c in cores]),
        "energy": ("dynamic energy per inference (nJ)", [dynamic_nj(c) for c in cores]),
        "sops": ("synaptic ops per inference (AC + MAC)", [c["ac"] + c["mac"] for c in cores]),
        "msgs": ("messages sent per inference", [c["msgs"] for c in cores]),
        "memory": (f"memory words used (group's fullest core{f', of {cap}' if cap else ''})",
                   [float(words.get(c["group"], 0)) for c in cores]),
    }


def _slot_xy(mapping: Mapping, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plot positions of cores: the tile's mesh position (``core_xy``), spread inside the tile on a small
    square grid when a tile holds several cores (cores fill a tile in order)."""
    x, y = mapping.core_xy(core)
    per_tile = int(mapping.chip.get("cores_per_tile", 1))
    if per_tile == 1:
        return x.astype(float), y.astype(float)
    side = math.ceil(math.sqrt(per_tile))    # slots per row inside a tile, and rows of them
    rows = math.ceil(per_tile / side)
    slot = (np.asarray(core) % mapping.chip["cores_per_chip"]) % per_tile
    return x + (slot % side + 0.5) / side - 0.5, y + (slot // side + 0.5) / rows - 0.5


def core_map(summary: dict, mapping: Mapping, profile: EnergyProfile):
    """The mesh of every used chip with its cores coloured by a metric (buttons pick it), hover per core."""
    import plotly.graph_objects as go

    metrics = core_metrics(summary, mapping, profile)
    shown = {k: [float(f"{v:.4g}") for v in vals] for k, (_, vals) in metrics.items()}   # 4 digits: a smaller page
    cores = summary["per_core"]
    ids = np.array([c["core"] for c in cores], dtype=np.int64)
    per_chip = int(mapping.chip["cores_per_chip"])
    chips = int(summary["chips"])
    slots = np.arange(chips * per_chip)
    sx, sy = _slot_xy(mapping, slots)
    x, y = _slot_xy(mapping, ids)
    per_tile = int(mapping.chip.get("cores_per_tile", 1))
    size = max(4.0, min(22.0, 640.0 / max(1.0, (sx.max(initial=0) + 1) * math.ceil(math.sqrt(per_tile)))))
    # hover: one row of figures per core, formatted by plotly (the page's exact numbers are in its JSON)
    custom = [[c["core"], c["core"] // per_chip, c["group"], c["delay_steps"]]
              + [vals[i] for vals in shown.values()] for i, c in enumerate(cores)]
    hover = ("core %{customdata[0]} (chip %{customdata[1]}), group %{customdata[2]}<br>"
             + "<br>".join(f"{metrics[k][0]}: %{{customdata[{4 + j}]:.4g}}" for j, k in enumerate(shown))
             + "<br>pipeline delay: %{customdata[3]} steps<extra></extra>")
    first = next(iter(metrics))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sx, y=sy, mode="markers", name="free core", hoverinfo="skip",
                             marker={"symbol": "square", "size": size, "color": "#eeeeee",
                                     "line": {"width": 0.5, "color": "#cccccc"}}))
    fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name="used core", customdata=custom,
                             hovertemplate=hover,
                             marker={"symbol": "square", "size": size, "color": shown[first],
                                     "colorscale": "Viridis", "showscale": True,
                                     "colorbar": {"title": {"text": metrics[first][0], "side": "right"}}}))
    crit = summary["critical_core"]["core"]
    if len(ids):
        cx, cy = _slot_xy(mapping, np.array([crit]))
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", name=f"critical core {crit}", hoverinfo="skip",
                                 marker={"symbol": "square-open", "size": size + 6, "color": "red",
                                         "line": {"width": 3, "color": "red"}}))
    for chip in range(chips):   # each chip's outline and name: small multiples on the system's grid
        cs = slots[chip * per_chip:(chip + 1) * per_chip]
        bx, by = sx[cs], sy[cs]
        fig.add_shape(type="rect", x0=bx.min() - 0.5, x1=bx.max() + 0.5, y0=by.min() - 0.5, y1=by.max() + 0.5,
                      line={"color": "#555555", "width": 1})
        fig.add_annotation(x=bx.min() - 0.5, y=by.min() - 0.5, text=f"chip {chip}", showarrow=False,
                           xanchor="left", yanchor="bottom", font={"size": 10})
    buttons = [{"label": key, "method": "restyle",
                "args": [{"marker.color": [shown[key]], "marker.colorbar.title.text": label}, [CORE_TRACE]]}
               for key, (label, _) in metrics.items()]
    fig.update_layout(updatemenus=[{"buttons": buttons, "direction": "right", "type": "buttons", "x": 0,
                                    "y": 1.12, "xanchor": "left", "showactive": True}],
                      height=max(320, int(60 + (sy.max(initial=0) + 1) * size * 1.15)),
                      margin={"l": 30, "r": 30, "t": 60, "b": 30}, plot_bgcolor="white",
                      legend={"orientation": "h", "y": -0.05})
    fig.update_xaxes(showgrid=False, zeroline=False, title="mesh x (tiles)", constrain="domain")
    fig.update_yaxes(showgrid=False, zeroline=False, title="mesh y (tiles)", autorange="reversed",
                     scaleanchor="x", scaleratio=1)
    return fig


def phases(T: int, depth: int) -> list[tuple[str, tuple[int, int], str]]:
    """The pipeline's phases over chip steps ``[lo, hi)``: filling (steps before ``depth``: the deeper groups
    have no data yet), draining (steps from ``T`` on: the shallower groups are done), both at once where
    ``depth > T``, every group busy where ``T > depth``; with their shading colours."""
    return [("fill", (0, min(T, depth)), "rgba(255,200,0,0.18)"),
            ("fill and drain", (T, depth), "rgba(200,160,60,0.18)"),
            ("drain", (max(T, depth), T + depth), "rgba(120,120,120,0.15)")]


def step_plot(summary: dict):
    """Step time (us, bars) and spikes (line, right axis) per chip step of one inference; fill and drain
    steps (the first and last ``depth``) shaded."""
    import plotly.graph_objects as go

    ps = summary["per_step"]
    steps = list(range(ps["chip_steps"]))
    fig = go.Figure()
    fig.add_trace(go.Bar(x=steps, y=[s * 1e6 for s in ps["step_time_s"]], name="step time (us)",
                         marker_color="#4c78a8"))
    fig.add_trace(go.Scatter(x=steps, y=ps["spikes"], name="spikes", mode="lines+markers", yaxis="y2",
                             line={"color": "#f58518"}))
    for label, (lo, hi), colour in phases(ps["T"], ps["depth"]):
        if hi > lo:
            fig.add_vrect(x0=lo - 0.5, x1=hi - 0.5, fillcolor=colour, line_width=0, annotation_text=label,
                          annotation_position="top left")
    fig.update_layout(height=320, margin={"l": 50, "r": 50, "t": 30, "b": 40}, bargap=0.2,
                      xaxis={"title": f"chip step (T = {ps['T']} data steps + depth {ps['depth']})",
                             "dtick": 1 if len(steps) <= 32 else None, "range": [-0.5, len(steps) - 0.5]},
                      yaxis={"title": "step time (us)"},
                      yaxis2={"title": "spikes", "overlaying": "y", "side": "right", "rangemode": "tozero"},
                      legend={"orientation": "h", "y": 1.12})
    return fig


def energy_terms_plot(summary: dict):
    """Energy per inference by term (uJ), the non-zero terms, largest first."""
    import plotly.graph_objects as go

    terms = sorted(((k, v) for k, v in summary["energy_terms_j"].items() if v), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v / J_PER_UJ for _, v in terms], y=[k for k, _ in terms], orientation="h",
                           marker_color="#54a24b"))
    fig.update_layout(height=max(200, 40 + 22 * len(terms)), margin={"l": 110, "r": 20, "t": 20, "b": 40},
                      xaxis={"title": "energy per inference (uJ)"})
    return fig
