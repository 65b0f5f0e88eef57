"""Plots `nas bench search --out runs.json`: best validation reward so far
against compute (epochs trained), one line per run, one colour per strategy,
the mean per strategy in bold. Usage:

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
strategies = sorted({r["strategy"] for r in runs}, key=list(colours).index)
for strategy in strategies:
    mine = [r for r in runs if r["strategy"] == strategy]
    colour = colours.get(strategy, "black")
    horizon = max(s["epochs"] for r in mine for s in r["curve"])
    grid = list(range(0, horizon + 1))
    means = []
    for r in mine:
        xs = [0] + [s["epochs"] for s in r["curve"]]
        ys = [None] + [s["best_reward"] for s in r["curve"]]
        ax.step(xs[1:], ys[1:], where="post", color=colour, alpha=0.35, linewidth=1)
    for x in grid:
        values = []
        for r in mine:
            best = [s["best_reward"] for s in r["curve"] if s["epochs"] <= x]
            if best:
                values.append(best[-1])
        means.append(sum(values) / len(values) if len(values) == len(mine) else None)
    ax.step(grid, means, where="post", color=colour, linewidth=2.5, label=f"{strategy} (mean of {len(mine)})")
ax.set_xlabel("compute: epochs trained")
ax.set_ylabel("best validation reward so far")
modes = sorted({r.get("latency_mode") or "soft" for r in runs})
ax.set_title(f"Equal compute: Fashion-MNIST, small space, 1 ms {'/'.join(modes)} target")
ax.grid(alpha=0.3)
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(out)
print(out)
