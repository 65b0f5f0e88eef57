"""What multi-fidelity costs a worker, from its log (RUST_LOG=info): the time
spent serialising, storing and reading checkpoints, loading them into the
network, and claiming promoted trials, against the time spent training and
validating (the epochs' seconds). Usage:

    RUST_LOG=info nas bench search --strategies evolution+asha ... 2> worker.log
    python3 bench/asha_overhead.py worker.log
"""
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIELD = re.compile(r"(\w+)=([0-9.eE+-]+)")

totals = {"epoch_s": 0.0, "serialise_ms": 0.0, "store_ms": 0.0, "read_ms": 0.0, "load_ms": 0.0, "claim_ms": 0.0, "promoted_claim_ms": 0.0}
counts = {"epochs": 0, "checkpoints": 0, "resumes": 0, "claims": 0}
for line in open(sys.argv[1], errors="replace"):
    line = ANSI.sub("", line)
    fields = dict(FIELD.findall(line))
    if line.rstrip().endswith(" epoch") or ": epoch " in line and "seconds" in fields:
        if "seconds" in fields:
            totals["epoch_s"] += float(fields["seconds"])
            counts["epochs"] += 1
    elif "checkpoint serialised" in line:
        totals["serialise_ms"] += float(fields["serialise_ms"])
    elif "checkpoint stored" in line:
        totals["store_ms"] += float(fields["ms"])
        counts["checkpoints"] += 1
    elif "checkpoint read" in line:
        totals["read_ms"] += float(fields["ms"])
    elif "resuming from the checkpoint" in line:
        totals["load_ms"] += float(fields["load_ms"])
        counts["resumes"] += 1
    elif "claimed" in line and "claim_ms" in fields:
        totals["claim_ms"] += float(fields["claim_ms"])
        counts["claims"] += 1
        if float(fields.get("epochs_done", 0)) > 0:
            totals["promoted_claim_ms"] += float(fields["claim_ms"])

training_ms = totals["epoch_s"] * 1e3
asha_ms = totals["serialise_ms"] + totals["store_ms"] + totals["read_ms"] + totals["load_ms"] + totals["promoted_claim_ms"]
print(f"epochs {counts['epochs']}, training + validation {totals['epoch_s']:.1f} s")
print(f"checkpoints {counts['checkpoints']}: serialise {totals['serialise_ms']:.0f} ms, store {totals['store_ms']:.0f} ms")
print(f"resumes {counts['resumes']}: read {totals['read_ms']:.0f} ms, load {totals['load_ms']:.0f} ms, claims of promoted trials {totals['promoted_claim_ms']:.0f} ms")
print(f"all claims ({counts['claims']}): {totals['claim_ms']:.0f} ms")
print(f"multi-fidelity overhead: {asha_ms / 1e3:.2f} s = {100 * asha_ms / max(training_ms, 1e-9):.2f}% of training time")
