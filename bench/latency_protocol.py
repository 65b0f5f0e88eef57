"""How trustworthy `nas latency` is on this machine, on the relative basis
workers use, with the raw (absolute) figure beside it, in both runtimes.

1. Repeatability: 20 networks sampled from the presets (5 each from micro,
   small, classic and mobile), each measured once per round with the trial
   protocol, in `--rounds` rounds spread over `--spread-minutes`; the max/min
   of each network's p50s, relative basis and raw.
2. Under load: two `nas train` processes (1 thread each) train on the host
   while each network is measured once more through the host's latency gate;
   the ratio to the idle median (relative and raw).
3. Cross-runtime: each network in onnxruntime (its ONNX export, 1 thread,
   relative basis) against our engine; their ratio and the rank correlation.
4. Python check: each network's ONNX export timed by the onnxruntime Python
   package (1 thread, its own median of 3 x 300 runs), against what nas
   recorded for it in onnxruntime.
5. The cost: the wall time of a measurement.

Every measurement of the run uses one reference basis per runtime,
established at the start beside the run's own latency lock (what a worker does when
it calibrates).

Usage (release build, an otherwise idle machine, onnxruntime's Python wheel
in a virtualenv whose python runs this script):

    NAS_ONNXRUNTIME=$VENV/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.32.0 \
    $VENV/bin/python bench/latency_protocol.py --nas target/release/nas \
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

import numpy as np
import onnxruntime as ort

PRESETS = ["micro", "small", "classic", "mobile"]


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return out.stdout


def latency(nas, arch, env, runtime="nas", protocol="trial"):
    out = run([nas, "latency", "--arch", arch, "--protocol", protocol, "--runtime", runtime], env)
    return json.loads(out.strip().splitlines()[-1])


def spearman(a, b):
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def python_p50_ms(model, shape, repeats=3, runs=300):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    image = (np.arange(np.prod(shape)) * 7919 % 255).astype(np.float32).reshape(shape) / 255.0
    for _ in range(50):
        sess.run(None, {name: image})
    medians = []
    for _ in range(repeats):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {name: image})
            times.append((time.perf_counter() - t) * 1e3)
        medians.append(statistics.median(times))
    return statistics.median(medians)


def save(path, rows, summary=None):
    """Writes what has been measured so far (each phase adds to the rows)."""
    if path:
        with open(path, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--per-preset", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--spread-minutes", type=float, default=10.0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if not os.environ.get("NAS_ONNXRUNTIME"):
        sys.exit("set NAS_ONNXRUNTIME to the onnxruntime library (see the docstring)")
    work = tempfile.mkdtemp(prefix="nas-latency-bench-")
    lock = os.path.join(work, "latency.lock")
    reference_dir = os.path.join(work, "reference")
    env = dict(os.environ, NAS_LATENCY_LOCK=lock, RUST_LOG="warn", NAS_DATA_DIR=reference_dir)

    nets = []
    for preset in PRESETS:
        for seed in range(1, args.per_preset + 1):
            path = os.path.join(work, f"{preset}-{seed}.json")
            with open(path, "w") as f:
                f.write(run([args.nas, "space", "sample", "--preset", preset, "--seed", str(seed), "--json"]))
            nets.append((f"{preset}-{seed}", path))

    # The bases, established once (thorough, 3 measurements each).
    started = time.time()
    first = {rt: latency(args.nas, nets[0][1], env, rt) for rt in ["nas", "onnxruntime"]}
    basis = {rt: m["basis_p50"] for rt, m in first.items()}
    print(f"bases established in {time.time() - started:.1f} s: {basis}", file=sys.stderr)

    rows = [{"network": name, "relative": [], "raw": [], "seconds": [], "at": []} for name, _ in nets]
    t0 = time.time()
    gap = args.spread_minutes * 60 / max(args.rounds - 1, 1)
    for k in range(args.rounds):
        wait = t0 + k * gap - time.time()
        if wait > 0:
            time.sleep(wait)
        for row, (name, path) in zip(rows, nets):
            m = latency(args.nas, path, env)
            row["relative"].append(m["p50"])
            row["raw"].append(m["raw_p50"])
            row["seconds"].append(m["seconds_spent"])
            row["at"].append(round(time.time() - t0, 1))
        print(f"round {k + 1}/{args.rounds} done at {time.time() - t0:.0f} s", file=sys.stderr)
    for row in rows:
        row["relative_max_over_min"] = max(row["relative"]) / min(row["relative"])
        row["raw_max_over_min"] = max(row["raw"]) / min(row["raw"])
        row["idle_relative_median"] = statistics.median(row["relative"])
        row["idle_raw_median"] = statistics.median(row["raw"])
        print(f"{row['network']:12s} relative max/min {row['relative_max_over_min']:.3f}  raw {row['raw_max_over_min']:.3f}", file=sys.stderr)
    spread_seconds = time.time() - t0
    save(args.out, rows)

    trainers = [
        subprocess.Popen(
            [args.nas, "train", "--zoo", "fashion_cnn", "--width", "0.5", "--dataset", "fashion-mnist",
             "--data-dir", args.data_dir, "--epochs", "50", "--threads", "1", "--max-train-samples", "20000",
             "--max-seconds", "100000", "--val-fraction", "0.02"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(env, NAS_DATA_DIR=args.data_dir))
        for _ in range(2)
    ]
    time.sleep(15)  # both trainers past data loading and into their batches
    for row, (name, path) in zip(rows, nets):
        m = latency(args.nas, path, env)
        row["loaded_relative_ratio"] = m["p50"] / row["idle_relative_median"]
        row["loaded_raw_ratio"] = m["raw_p50"] / row["idle_raw_median"]
        row["loaded_wait_ms"] = m["quiet_wait_ms"]
        print(f"{row['network']:12s} loaded: relative {row['loaded_relative_ratio']:.3f}x  raw {row['loaded_raw_ratio']:.3f}x", file=sys.stderr)
    for t in trainers:
        t.terminate()
    for t in trainers:
        t.wait()
    save(args.out, rows)

    for row, (name, path) in zip(rows, nets):
        ms = [latency(args.nas, path, env, "onnxruntime") for _ in range(3)]
        row["onnxruntime_relative"] = statistics.median(m["p50"] for m in ms)
        row["onnxruntime_raw"] = statistics.median(m["raw_p50"] for m in ms)
        row["nas_over_onnxruntime"] = row["idle_relative_median"] / row["onnxruntime_relative"]
        model = os.path.join(work, f"{name}.onnx")
        run([args.nas, "arch", "onnx", path, "--untrained", "--out", model])
        arch = json.load(open(path))
        shape = (1, *arch["input"])  # [channels, height, width]
        row["python_onnxruntime_ms"] = python_p50_ms(model, shape)
        row["recorded_over_python"] = row["onnxruntime_relative"] / row["python_onnxruntime_ms"]
        row["raw_over_python"] = row["onnxruntime_raw"] / row["python_onnxruntime_ms"]
        print(f"{name:12s} nas {row['idle_relative_median']:.4f} ms  onnxruntime {row['onnxruntime_relative']:.4f} ms "
              f"(python {row['python_onnxruntime_ms']:.4f} ms, recorded/python {row['recorded_over_python']:.3f})", file=sys.stderr)

    n = len(rows)
    summary = {
        "networks": n,
        "rounds": args.rounds,
        "spread_seconds": spread_seconds,
        "bases_ms": basis,
        "relative_within_1_05": sum(r["relative_max_over_min"] <= 1.05 for r in rows),
        "raw_within_1_05": sum(r["raw_max_over_min"] <= 1.05 for r in rows),
        "relative_max_over_min_worst": max(r["relative_max_over_min"] for r in rows),
        "raw_max_over_min_worst": max(r["raw_max_over_min"] for r in rows),
        "relative_max_over_min_median": statistics.median(r["relative_max_over_min"] for r in rows),
        "raw_max_over_min_median": statistics.median(r["raw_max_over_min"] for r in rows),
        "loaded_relative_within_5pct": sum(abs(r["loaded_relative_ratio"] - 1) <= 0.05 for r in rows),
        "loaded_raw_within_5pct": sum(abs(r["loaded_raw_ratio"] - 1) <= 0.05 for r in rows),
        "loaded_relative_range": [min(r["loaded_relative_ratio"] for r in rows), max(r["loaded_relative_ratio"] for r in rows)],
        "loaded_raw_range": [min(r["loaded_raw_ratio"] for r in rows), max(r["loaded_raw_ratio"] for r in rows)],
        "nas_over_onnxruntime_range": [min(r["nas_over_onnxruntime"] for r in rows), max(r["nas_over_onnxruntime"] for r in rows)],
        "nas_over_onnxruntime_median": statistics.median(r["nas_over_onnxruntime"] for r in rows),
        "rank_correlation_nas_onnxruntime": spearman([r["idle_relative_median"] for r in rows], [r["onnxruntime_relative"] for r in rows]),
        "recorded_within_10pct_of_python": sum(abs(r["recorded_over_python"] - 1) <= 0.10 for r in rows),
        "raw_within_10pct_of_python": sum(abs(r["raw_over_python"] - 1) <= 0.10 for r in rows),
        "recorded_over_python_median": statistics.median(r["recorded_over_python"] for r in rows),
        "mean_measurement_seconds": statistics.mean(s for r in rows for s in r["seconds"]),
    }
    print(json.dumps(summary, indent=1))
    save(args.out, rows, summary)


if __name__ == "__main__":
    main()
