"""Render a model comparison (``cli.compare.compare``) as Markdown, CSV or a PNG figure.

Columns, all per image (one inference of T steps): parameters, dense MACs, the float model's
exact AC and MAC counts, its energy under the ``paper`` and ``standard`` conventions, the
chip simulation's energy under the chosen profile, pipelined latency, cores, float and
integer top-1 accuracy and the simulator's agreement with the fake-quant model. A missing
figure prints as ``-`` (never as zero); a row the lowering refused carries its reason.
"""

from __future__ import annotations

import csv
import io
import os

from sresformer.fileio import atomic_path

#: (key, header, scale, format) of each column
COLUMNS = (
    ("chip", "chip", None, "{}"),
    ("attention", "attention", None, "{}"),
    ("params", "params (M)", 1e-6, "{:.3f}"),
    ("dense_macs", "dense MMACs", 1e-6, "{:.2f}"),
    ("ac", "M AC", 1e-6, "{:.3f}"),
    ("mac", "M MAC", 1e-6, "{:.3f}"),
    ("energy_paper_j", "paper (uJ)", 1e6, "{:.3f}"),
    ("energy_standard_j", "standard (uJ)", 1e6, "{:.3f}"),
    ("chip_energy_j", "chip {profile} (uJ)", 1e6, "{:.3f}"),
    ("latency_s", "latency (ms)", 1e3, "{:.2f}"),
    ("cores", "cores", 1, "{:d}"),
    ("accuracy", "acc float", 100, "{:.2f}%"),
    ("accuracy_int", "acc int", 100, "{:.2f}%"),
    ("agreement", "agreement", 1, "{:.3f}"),
)


def label(row: dict) -> str:
    """A short name for a row: the model name and its spike mask, with the file (and its folder:
    run directories hold files of the same name) when it came from a file."""
    path = os.path.normpath(row["source"])
    src = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    model = row.get("model")
    if row.get("spike_mask"):
        model = f"{model} + spike mask {row['spike_mask']}"
    name = src if not model or row.get("model") == row["source"] else f"{model} ({src})"
    return f"{name} on {row['chip']}" if row.get("chip") else name


def _cell(row: dict, key: str, scale, fmt: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    if scale is None:   # text
        return fmt.format(v)
    return fmt.format(int(v)) if fmt == "{:d}" else fmt.format(v * scale)


def to_markdown(report: dict) -> str:
    """A Markdown table with one row per source, then the lowering's reasons for any row without chip figures."""
    heads = [h.format(profile=report["profile"]) for _, h, _, _ in COLUMNS]
    lines = [f"Per image on `{report['data']}` ({report['limit']} test images at most); energy conventions of "
             "`sresformer energy`; chip figures from the cycle-level simulation; a `.loihi` row has no float "
             "model, its counts are the integer model's. Attention `operand-memory` runs on a HYPOTHETICAL "
             "core (no shipping chip has it); `prodneuron` on Loihi 2's own product compartments.", "",
             "| model | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(COLUMNS)]
    notes = []
    for row in report["rows"]:
        lines.append(f"| {label(row)} | " + " | ".join(_cell(row, *c[:1], *c[2:]) for c in COLUMNS) + " |")
        if row.get("chip_note"):
            notes.append(f"- {label(row)}: not lowered: {row['chip_note']}")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def to_csv(report: dict) -> str:
    """One row per source with raw values (counts, joules, seconds, fractions)."""
    buf = io.StringIO()
    keys = ["source", "model", "kind", "counts"] + [k for k, *_ in COLUMNS] + ["chip_note"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for row in report["rows"]:
        w.writerow(["" if row.get(k) is None else row[k] for k in keys])
    return buf.getvalue()


def plot(report: dict, path: str | os.PathLike) -> None:
    """Four panels: energy per convention, AC/MAC counts, latency, and accuracy against energy; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = report["rows"]
    # the panels name rows by number; a key under the figure gives the full names (labels carry run
    # folders and spike masks and are too long to stand on an axis)
    names = [str(i + 1) for i in range(len(rows))]
    key = "\n".join(f"{i + 1}: {label(r)}" for i, r in enumerate(rows))
    x = np.arange(len(rows))
    val = lambda r, k, s=1.0: np.nan if r.get(k) is None else r[k] * s  # noqa: E731
    fig, axes = plt.subplots(2, 2, figsize=(max(10, 0.9 * len(rows) + 6), 8 + 0.22 * len(rows)))
    ax = axes[0, 0]
    series = [("energy_paper_j", "paper"), ("energy_standard_j", "standard"),
              ("chip_energy_j", f"chip ({report['profile']})")]
    for i, (k, name) in enumerate(series):
        ax.bar(x + (i - 1) * 0.27, [val(r, k, 1e6) for r in rows], 0.27, label=name)
    ax.set_ylabel("energy per image (uJ)")
    ax.set_title("energy by convention")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ac = [val(r, "ac", 1e-6) for r in rows]
    ax.bar(x, ac, label="AC")
    ax.bar(x, [val(r, "mac", 1e-6) for r in rows], bottom=np.nan_to_num(ac), label="MAC")
    ax.set_ylabel("synaptic ops per image (M)")
    ax.set_title("SOPs (float model)")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.bar(x, [val(r, "latency_s", 1e3) for r in rows], color="C4")
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title("simulated chip latency (pipelined)")
    for a in (axes[0, 0], axes[0, 1], axes[1, 0]):
        a.set_xticks(x)
        a.set_xticklabels(names)
        a.set_xlabel("model (key below)")
    ax = axes[1, 1]
    for i, r in enumerate(rows):
        acc = r.get("accuracy_int") if r.get("accuracy_int") is not None else r.get("accuracy")
        energy = r.get("chip_energy_j") if r.get("chip_energy_j") is not None else r.get("energy_standard_j")
        if acc is not None and energy is not None:
            ax.scatter(energy * 1e6, acc * 100, color=f"C{i % 10}")
            ax.annotate(names[i], (energy * 1e6, acc * 100), xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("energy per image (uJ): chip, else standard")
    ax.set_ylabel("top-1 accuracy (%): integer, else float")
    ax.set_title("accuracy against energy")
    fig.tight_layout(rect=(0, 0.03 * len(rows) + 0.02, 1, 1))
    fig.text(0.01, 0.01, key, fontsize=8, va="bottom", family="monospace")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
