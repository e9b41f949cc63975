"""Render an energy report (see :func:`hw_sim.energy.price`) as Markdown, CSV or a PNG plot."""

from __future__ import annotations

import csv
import io
import os

from sresformer.fileio import atomic_path

COLUMNS = ("name", "role", "macs", "firing_rate", "ac", "mac", "sops", "energy_j")


def to_csv(report: dict) -> str:
    """One row per layer plus a ``TOTAL`` row; energies in joules, counts per image."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for row in report["layers"]:
        w.writerow([row[c] for c in COLUMNS])
    t = report["total"]
    w.writerow(["TOTAL", "", t["macs"], "", t["ac"], t["mac"], t["sops"], t["energy_j"]])
    return buf.getvalue()


def to_markdown(report: dict) -> str:
    """A Markdown table (energy in microjoules, counts in millions) with the convention stated."""
    lines = [f"Energy per image, convention `{report['convention']}`, profile `{report['profile']}`; "
             f"{report['stem']}.", ""]
    if report.get("chip"):
        lines[-1:] = [f"Counted on chip `{report['chip']}`, attention lowering: {report.get('attention_text')}.", ""]
    lines += [

             "| layer | role | dense MMACs | input rate | M ACs | M MACs | M SOPs | energy (uJ) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["layers"]:
        lines.append(f"| {r['name']} | {r['role']} | {r['macs'] / 1e6:.3f} | {r['firing_rate']:.3f} | "
                     f"{r['ac'] / 1e6:.3f} | {r['mac'] / 1e6:.3f} | {r['sops'] / 1e6:.3f} | "
                     f"{r['energy_j'] * 1e6:.4f} |")
    t = report["total"]
    lines.append(f"| **total** | | {t['macs'] / 1e6:.3f} | | {t['ac'] / 1e6:.3f} | {t['mac'] / 1e6:.3f} | "
                 f"{t['sops'] / 1e6:.3f} | **{t['energy_j'] * 1e6:.4f}** |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: str | os.PathLike, title: str | None = None) -> None:
    """Two aligned bar charts: energy per layer (uJ) and input firing rate per layer; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["layers"]
    names = [r["name"] for r in rows]
    n = len(rows)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.32 * n + 2), 7), sharex=True)
    colors = {role: f"C{i}" for i, role in enumerate(dict.fromkeys(r["role"] for r in rows))}
    ax1.bar(range(n), [r["energy_j"] * 1e6 for r in rows], color=[colors[r["role"]] for r in rows])
    ax1.set_ylabel("energy per image (uJ)")
    ax1.set_title(title or f"{report['convention']} convention, {report['profile']}: "
                  f"{report['total']['energy_j'] * 1e6:.3f} uJ per image")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax1.legend(handles, list(colors), fontsize=7, ncol=3)
    ax2.bar(range(n), [r["firing_rate"] for r in rows], color="0.4")
    ax2.set_ylabel("input firing rate")
    ax2.set_ylim(0, 1)
    ax2.set_xticks(range(n))
    ax2.set_xticklabels(names, rotation=90, fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_tradeoff(sweep: dict, path: str | os.PathLike) -> None:
    """Accuracy against energy per image, one point per spike-mask ratio (labelled); written atomically.

    ``sweep``: ``{'rows': [{'ratio', 'accuracy', 'energy_j'}, ...], 'convention', 'profile', ...}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sweep["rows"]
    e = [r["energy_j"] * 1e6 for r in rows]
    acc = [r["accuracy"] * 100 for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(e, acc, "o-", color="C0")
    for r, x, y in zip(rows, e, acc, strict=False):
        ax.annotate(f"mask {r['ratio']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"energy per image (uJ, {sweep['convention']} convention, {sweep['profile']})")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"random spike masking of {', '.join(sweep.get('modules', []))}: accuracy vs energy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
