"""How trustworthy `nas latency` is on this machine.

1. Repeatability: 20 networks sampled from the presets (5 each from micro,
   small, classic and mobile), each measured 5 times on an idle machine with
   the protocol workers use for trials; the max/min of the five p50s.
2. Under load: two `nas train` processes (1 thread each) train on the host
   while each network is measured once more, (a) through the host's latency
   gate (the trainers pause at their next batch) and (b) with the measurer on
   another lock file (no coordination: what a worker saw before the gate);
   the ratio to the idle median.
3. The cost: the measurement's wall time, and the share of the trainers' time
   spent paused.

Usage (release build, an otherwise idle machine):

    python3 bench/latency_protocol.py --nas target/release/nas \
        --data-dir ../shared/datasets --out bench/latency_protocol.json
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PRESETS = ["micro", "small", "classic", "mobile"]


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return out.stdout


def latency(nas, arch, protocol, repeat=1, env=None):
    out = run([nas, "latency", "--arch", arch, "--protocol", protocol, "--repeat", str(repeat)], env)
    doc = json.loads(out.strip().splitlines()[-1])
    return doc["measurements"] if "measurements" in doc else [doc]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--per-preset", type=int, default=5)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--protocol", default="trial")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="nas-latency-bench-")
    lock = os.path.join(work, "latency.lock")
    env = dict(os.environ, NAS_LATENCY_LOCK=lock, RUST_LOG="warn")
    other = dict(env, NAS_LATENCY_LOCK=os.path.join(work, "elsewhere.lock"))

    nets = []
    for preset in PRESETS:
        for seed in range(1, args.per_preset + 1):
            path = os.path.join(work, f"{preset}-{seed}.json")
            with open(path, "w") as f:
                f.write(run([args.nas, "space", "sample", "--preset", preset, "--seed", str(seed), "--json"]))
            nets.append((f"{preset}-{seed}", path))

    rows = []
    for name, path in nets:
        ms = latency(args.nas, path, args.protocol, args.repeat, env)
        p50s = [m["p50"] for m in ms]
        rows.append({
            "network": name,
            "idle_p50s": p50s,
            "idle_median": statistics.median(p50s),
            "max_over_min": max(p50s) / min(p50s),
            "seconds": statistics.mean(m["seconds_spent"] for m in ms),
            "attempts": [m["attempts"] for m in ms],
            "unstable": sum(m["unstable"] for m in ms),
        })
        print(f"{name:12s} idle p50 {min(p50s):.4f}..{max(p50s):.4f} ms  max/min {max(p50s)/min(p50s):.3f}", file=sys.stderr)

    trainers = [
        subprocess.Popen(
            [args.nas, "train", "--zoo", "fashion_cnn", "--width", "0.5", "--dataset", "fashion-mnist",
             "--data-dir", args.data_dir, "--epochs", "50", "--threads", "1", "--max-train-samples", "20000",
             "--max-seconds", "100000", "--val-fraction", "0.02"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for _ in range(2)
    ]
    time.sleep(15)  # both trainers past data loading and into their batches
    started = time.time()
    for row, (name, path) in zip(rows, nets):
        gated = latency(args.nas, path, args.protocol, 1, env)[0]
        ungated = latency(args.nas, path, args.protocol, 1, other)[0]
        row["loaded_gated_p50"] = gated["p50"]
        row["loaded_gated_ratio"] = gated["p50"] / row["idle_median"]
        row["loaded_gated_wait_ms"] = gated["quiet_wait_ms"]
        row["loaded_gated_seconds"] = gated["seconds_spent"]
        row["loaded_ungated_p50"] = ungated["p50"]
        row["loaded_ungated_ratio"] = ungated["p50"] / row["idle_median"]
        print(f"{name:12s} loaded: gated {row['loaded_gated_ratio']:.3f}x  ungated {row['loaded_ungated_ratio']:.3f}x", file=sys.stderr)
    loaded_seconds = time.time() - started
    for t in trainers:
        t.terminate()
    for t in trainers:
        t.wait()

    gated_seconds = sum(r["loaded_gated_seconds"] for r in rows)
    summary = {
        "networks": len(rows),
        "repeat": args.repeat,
        "protocol": args.protocol,
        "idle_max_over_min_worst": max(r["max_over_min"] for r in rows),
        "idle_within_1_05": sum(r["max_over_min"] <= 1.05 for r in rows),
        "gated_within_10pct": sum(abs(r["loaded_gated_ratio"] - 1) <= 0.10 for r in rows),
        "ungated_within_10pct": sum(abs(r["loaded_ungated_ratio"] - 1) <= 0.10 for r in rows),
        "gated_ratio_range": [min(r["loaded_gated_ratio"] for r in rows), max(r["loaded_gated_ratio"] for r in rows)],
        "ungated_ratio_range": [min(r["loaded_ungated_ratio"] for r in rows), max(r["loaded_ungated_ratio"] for r in rows)],
        "mean_measurement_seconds_idle": statistics.mean(r["seconds"] for r in rows),
        "mean_measurement_seconds_gated": gated_seconds / len(rows),
        "loaded_phase_seconds": loaded_seconds,
        "measuring_share_of_loaded_phase": gated_seconds / loaded_seconds,
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
