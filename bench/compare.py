#!/usr/bin/env python3
"""One command, both engines, the ratio: runs `nas bench` and the PyTorch
reference on the same architectures, data, batch and threads, and prints a
Markdown table.

    cargo build --release && python3 bench/compare.py [--threads 2] [--steps 50]
"""
import argparse
import json
import platform
import subprocess
import sys

NETS = [("two-conv (a)", ["--arch", "bench/two_conv.json"]), ("fashion_cnn (b)", ["--zoo", "fashion_cnn"])]


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_of(runs):
    """The first run with the median throughput and median latency filled in."""
    def median(values):
        values = sorted(values)
        return values[len(values) // 2]
    out = dict(runs[0])
    out["train_images_per_second"] = median([r["train_images_per_second"] for r in runs])
    out["latency_ms"] = {"p50": median([r["latency_ms"]["p50"] for r in runs])}
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per engine; medians are reported")
    args = p.parse_args()
    common = ["--threads", str(args.threads), "--steps", str(args.steps), "--data-dir", args.data_dir]
    print(f"| network | engine | train img/s (batch 64, {args.threads} threads) | batch-1 latency p50 (1 thread) |")
    print("|---|---|---:|---:|")
    for name, model in NETS:
        ours_runs, ref_runs = [], []
        for _ in range(args.repeats):
            ours_runs.append(run([args.nas, "bench", "train", *model, *common]))
            ref_runs.append(run([sys.executable, "bench/torch_reference.py", *model, *common, "--nas", args.nas]))
        ours, ref = median_of(ours_runs), median_of(ref_runs)
        for r in (ours, ref):
            print(f"| {name} | {r['engine']} | {r['train_images_per_second']:,.0f} | {r['latency_ms']['p50']:.3f} ms |")
        speed = ours["train_images_per_second"] / ref["train_images_per_second"]
        lat = ours["latency_ms"]["p50"] / ref["latency_ms"]["p50"]
        print(f"| {name} | **ratio nas/PyTorch** | **{speed:.2f}x** | **{lat:.2f}x** |")
    print(f"\nmedians of {args.repeats} alternating runs; machine: {ours.get('device', platform.processor())}")


if __name__ == "__main__":
    main()
