"""Plots `nas bench search --out runs.json`: best validation reward so far
against compute (epochs trained), one line per run, one colour per strategy,
the mean per strategy in bold. A run's optional `label` (e.g. "evolution,
9-epoch trials") groups it apart from other runs of the same strategy; such a
strategy's second group is drawn dashed in its colour. Usage:

    python3 bench/plot_search_quality.py runs.json docs/search-quality.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = json.load(open(sys.argv[1]))
out = sys.argv[2]
colours = {"random": "#7f8c8d", "evolution": "#1f4e79", "evolution+asha": "#e67e22", "random+asha": "#8e44ad"}
fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
def group(run):
    return run.get("label") or run["strategy"]


groups = sorted({(r["strategy"], group(r)) for r in runs}, key=lambda g: (list(colours).index(g[0]), g[1] != g[0], g[1]))
drawn = set()
for strategy, name in groups:
    style = "--" if strategy in drawn else "-"
    drawn.add(strategy)
    mine = [r for r in runs if group(r) == name]
    colour = colours.get(strategy, "black")
    horizon = max(s["epochs"] for r in mine for s in r["curve"])
    grid = list(range(0, horizon + 1))
    means = []
    for r in mine:
        xs = [0] + [s["epochs"] for s in r["curve"]]
        ys = [None] + [s["best_reward"] for s in r["curve"]]
        ax.step(xs[1:], ys[1:], where="post", color=colour, alpha=0.3, linewidth=1, linestyle=style)
    for x in grid:
        values = []
        for r in mine:
            best = [s["best_reward"] for s in r["curve"] if s["epochs"] <= x]
            if best:
                values.append(best[-1])
        means.append(sum(values) / len(values) if len(values) == len(mine) else None)
    ax.step(grid, means, where="post", color=colour, linewidth=2.5, linestyle=style, label=f"{name} (mean of {len(mine)})")
ax.set_xlabel("compute: epochs trained")
ax.set_ylabel("best validation reward so far")
modes = sorted({r.get("latency_mode") or "soft" for r in runs})
ax.set_title(f"Equal compute: Fashion-MNIST, small space, 1 ms {'/'.join(modes)} target")
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(out)
print(out)
