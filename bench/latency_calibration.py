"""How well a worker's speed factor carries latency from one setting to another.

Two settings of this machine stand in for two workers: A measures with 1
thread, B with 2 threads (`--threads-b`). Each calibrates (`nas calibrate`,
the reference networks, median of `--repeat` runs), giving factors fA and fB.
Then 20 networks sampled from the presets (5 each from micro, small,
classic and mobile; not the reference networks) are measured in both
settings, and B's latency is predicted from A's as p50_A * fB / fA. The
error of that prediction is the normalisation's error. Two baselines frame
it: no normalisation (predict p50_B = p50_A), and the noise floor (setting A
measured twice, one against the other).

Usage (release build, an otherwise idle machine):

    python3 bench/latency_calibration.py --nas target/release/nas \
        --out bench/latency_calibration.json
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

PRESETS = ["micro", "small", "classic", "mobile"]


def run(cmd, env):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def p50(nas, arch, threads, protocol, repeat, env):
    out = run([nas, "latency", "--arch", arch, "--threads", str(threads), "--protocol", protocol,
               "--repeat", str(repeat)], env)
    doc = json.loads(out.strip().splitlines()[-1])
    ms = doc["measurements"] if "measurements" in doc else [doc]
    return statistics.median(m["p50"] for m in ms)


def factor(nas, threads, protocol, repeat, env):
    out = run([nas, "calibrate", "--threads", str(threads), "--protocol", protocol,
               "--repeat", str(repeat), "--json"], env)
    return json.loads(out)


def summary(errors):
    within = sum(abs(e) <= 0.10 for e in errors) / len(errors)
    return {
        "within_10pct": within,
        "median_abs_error": statistics.median(abs(e) for e in errors),
        "worst_abs_error": max(abs(e) for e in errors),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--threads-b", type=int, default=2)
    p.add_argument("--per-preset", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3, help="measurements per figure (median)")
    p.add_argument("--protocol", default="trial")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="nas-calibration-bench-")
    env = dict(os.environ, NAS_LATENCY_LOCK=os.path.join(work, "latency.lock"), RUST_LOG="warn")

    cal_a = factor(args.nas, 1, args.protocol, args.repeat, env)
    cal_b = factor(args.nas, args.threads_b, args.protocol, args.repeat, env)
    fa, fb = cal_a["speed_factor"], cal_b["speed_factor"]
    print(f"speed factor A (1 thread) {fa:.3f}, B ({args.threads_b} threads) {fb:.3f}", flush=True)

    rows = []
    for preset in PRESETS:
        for seed in range(101, 101 + args.per_preset):
            path = os.path.join(work, f"{preset}-{seed}.json")
            with open(path, "w") as f:
                f.write(run([args.nas, "space", "sample", "--preset", preset, "--seed", str(seed), "--json"], env))
            a = p50(args.nas, path, 1, args.protocol, args.repeat, env)
            a_again = p50(args.nas, path, 1, args.protocol, args.repeat, env)
            b = p50(args.nas, path, args.threads_b, args.protocol, args.repeat, env)
            predicted = a * fb / fa
            row = {
                "network": f"{preset}-{seed}", "p50_a": a, "p50_a_again": a_again, "p50_b": b,
                "predicted_b": predicted, "error": predicted / b - 1,
                "error_unnormalised": a / b - 1, "error_noise": a_again / a - 1,
            }
            rows.append(row)
            print(f"{row['network']:>10}  A {a:.3f} ms  B {b:.3f} ms  predicted {predicted:.3f} ms  "
                  f"error {row['error']:+.1%}  (unnormalised {row['error_unnormalised']:+.1%}, "
                  f"A again {row['error_noise']:+.1%})", flush=True)

    result = {
        "settings": {"a_threads": 1, "b_threads": args.threads_b, "protocol": args.protocol,
                     "repeat": args.repeat},
        "calibration_a": cal_a, "calibration_b": cal_b,
        "normalised": summary([r["error"] for r in rows]),
        "unnormalised": summary([r["error_unnormalised"] for r in rows]),
        "noise_floor": summary([r["error_noise"] for r in rows]),
        "networks": rows,
    }
    for key in ("normalised", "unnormalised", "noise_floor"):
        s = result[key]
        print(f"{key:>12}: {s['within_10pct']:.0%} within ±10%, median |error| {s['median_abs_error']:.1%}, "
              f"worst {s['worst_abs_error']:.1%}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
