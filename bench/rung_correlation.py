"""How well a candidate's validation accuracy after its first epoch predicts
its accuracy after its third, from a `nas bench search` log (the trials'
per-epoch `val` lines at RUST_LOG=info): Spearman's rank correlation per
run and over all runs. A low correlation means ASHA's first rung stops
candidates on a signal close to chance. Usage:

    RUST_LOG=info nas bench search ... 2> log
    python3 bench/rung_correlation.py log
"""
import collections
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
RUN_END = re.compile(r"(\S+) seed (\d+): \d+ trials,")
EPOCH = re.compile(r"trial_id=(\d+).*epoch epoch=(\d+) .*val=Some\(([\d.]+)\)")


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0] * len(values)
    for rank, i in enumerate(order):
        out[i] = rank
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n * (n * n - 1))


runs, trials = [], collections.defaultdict(dict)
for line in open(sys.argv[1], errors="replace"):
    line = ANSI.sub("", line)
    end = RUN_END.search(line)
    if end:
        runs.append((f"{end[1]} seed {end[2]}", trials))
        trials = collections.defaultdict(dict)
        continue
    epoch = EPOCH.search(line)
    if epoch:
        trials[int(epoch[1])][int(epoch[2])] = float(epoch[3])

first, third = [], []
for name, run in runs:
    pairs = [(v[1], v[3]) for v in run.values() if 1 in v and 3 in v]
    if len(pairs) > 3:
        a, b = zip(*pairs)
        first += a
        third += b
        print(f"{name}: {len(pairs)} trials with 3 epochs, rho {spearman(a, b):.2f}")
if len(first) > 3:
    print(f"all runs: {len(first)} trials, rho {spearman(first, third):.2f}")
