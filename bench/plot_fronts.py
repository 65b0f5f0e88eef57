"""Plots the tested fronts of `nas bench search --out runs.json`: every
run's final models (test accuracy against batch-1 latency), one colour per
strategy, each run's non-dominated models joined by a staircase, the
hypervolume box's reference latency as a line. Usage:

    python3 bench/plot_fronts.py runs.json docs/pareto-fronts.png [reference_ms]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = json.load(open(sys.argv[1]))
out = sys.argv[2]
reference_ms = float(sys.argv[3]) if len(sys.argv) > 3 else None
colours = {
    "pareto-evolution+asha": "#c2185b",
    "evolution+asha": "#1f4e79",
    "pareto-random+asha": "#7f8c8d",
    "random+asha": "#8e44ad",
    "evolution": "#2e7d32",
    "random": "#bdbdbd",
}


def front(points):
    """The non-dominated points, fastest first."""
    kept, best = [], -1.0
    for acc, lat in sorted(points, key=lambda p: (p[1], -p[0])):
        if acc > best:
            kept.append((acc, lat))
            best = acc
    return kept


fig, ax = plt.subplots(figsize=(7, 4.4), dpi=120)
labelled = set()
for run in runs:
    strategy = run["strategy"]
    colour = colours.get(strategy, "black")
    points = [tuple(p) for p in run.get("tested", [])]
    if not points:
        continue
    label = None
    if strategy not in labelled:
        labelled.add(strategy)
        hv = [r["tested_hypervolume"] for r in runs if r["strategy"] == strategy and r.get("tested_hypervolume") is not None]
        label = f"{strategy} (mean HV {sum(hv) / len(hv):.3f}, {len(hv)} seeds)"
    ax.scatter([p[1] for p in points], [p[0] * 100 for p in points], color=colour, s=18, alpha=0.8, label=label)
    f = front(points)
    xs, ys = [], []
    for k, (acc, lat) in enumerate(f):
        if k:
            xs.append(lat)
            ys.append(f[k - 1][0] * 100)
        xs.append(lat)
        ys.append(acc * 100)
    if reference_ms:
        xs.append(reference_ms)
        ys.append(f[-1][0] * 100)
    ax.plot(xs, ys, color=colour, alpha=0.6, linewidth=1, drawstyle="default")
if reference_ms:
    ax.axvline(reference_ms, color="#c62828", linewidth=0.8, linestyle=":")
ax.set_xscale("log")
ax.set_xlabel("batch-1 latency p50, ms (log scale)")
ax.set_ylabel("test accuracy, %")
ax.set_title("Tested fronts at equal compute (Fashion-MNIST)")
ax.grid(alpha=0.3)
ax.legend(fontsize=7, loc="lower right")
fig.tight_layout()
fig.savefig(out)
