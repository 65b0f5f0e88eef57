"""How well a candidate's validation accuracy after one epoch count predicts
its accuracy after a later one (default: epoch 1 against epoch 3; for
rungs at 1, 3 and 9 epochs also 3 against 9), from a `nas bench search` log
(the trials' per-epoch `val` lines at RUST_LOG=info): Spearman's rank
correlation per run and over all runs. A low correlation means ASHA's
rung stops candidates on a signal close to chance. Usage:

    RUST_LOG=info nas bench search ... 2> log
    python3 bench/rung_correlation.py log [EARLY LATE]
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

early, late = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1, 3)
first, last = [], []
for name, run in runs:
    pairs = [(v[early], v[late]) for v in run.values() if early in v and late in v]
    if len(pairs) > 3:
        a, b = zip(*pairs)
        first += a
        last += b
        print(f"{name}: {len(pairs)} trials with {late} epochs, rho {spearman(a, b):.2f} (epoch {early} against {late})")
if len(first) > 3:
    print(f"all runs: {len(first)} trials, rho {spearman(first, last):.2f} (epoch {early} against {late})")
