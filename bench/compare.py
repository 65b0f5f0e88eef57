#!/usr/bin/env python3
"""One command, both engines, the ratios: runs `nas bench train` and the
PyTorch reference (`bench/torch_reference.py`) on the same architectures,
data, batch and threads, alternating engine by engine, and prints a Markdown
table of medians: training images/second, batch-1 latency and peak resident
memory during training, with nas/PyTorch ratios and their geometric means.
With `--onnxruntime-python PY` (a Python with the onnxruntime package), each
network is also exported to ONNX (`nas arch onnx --untrained`) and timed at
batch 1 in onnxruntime (`bench/ort_latency.py`, 1 thread), in the same
rounds, and the table gains nas/onnxruntime latency ratios.

    cargo build --release -p server
    python3 bench/compare.py                  # two-conv and fashion_cnn
    python3 bench/compare.py --suite          # the suite in bench/suite/
    python3 bench/compare.py --suite --only mobile --repeats 1
    python3 bench/compare.py --suite --onnxruntime-python venv/bin/python

Ratios: training throughput above 1 means nas is faster; latency and memory
below 1 mean nas is faster or smaller.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile

QUICK = [
    {"name": "two-conv", "arch": "bench/two_conv.json", "dataset": "fashion-mnist"},
    {"name": "fashion_cnn", "zoo": "fashion_cnn", "dataset": "fashion-mnist"},
]
SUITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "suite")


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summary_of(runs):
    """Medians over repeated runs of one engine on one network."""
    return {
        "engine": runs[0]["engine"],
        "params": runs[0].get("params"),
        "train_images_per_second": median([r["train_images_per_second"] for r in runs]),
        "latency_ms_p50": median([r["latency_ms"]["p50"] for r in runs]),
        "peak_rss_mib": median([r.get("rss_mib", {}).get("peak_training") for r in runs]),
        "rss_growth_mib": median([r["rss_mib"]["peak_training"] - r["rss_mib"]["before_training"]
                                  for r in runs if r.get("rss_mib") and r["rss_mib"].get("before_training")]),
        "runs": len(runs),
    }


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def suite_networks(only):
    with open(os.path.join(SUITE_DIR, "suite.json")) as f:
        nets = json.load(f)["networks"]
    for net in nets:
        net["arch"] = os.path.join(SUITE_DIR, net["file"])
    return [n for n in nets if not only or any(o in n["name"] for o in only)]


def model_flags(net):
    return ["--arch", net["arch"]] if "arch" in net else ["--zoo", net["zoo"]]


def onnx_model(nas, net, folder):
    """`net` exported to ONNX with freshly initialised weights (weights do not change latency)."""
    arch = net.get("arch")
    if arch is None:
        arch = os.path.join(folder, net["name"] + ".json")
        zoo = subprocess.run([nas, "zoo", "show", net["zoo"], "--json"], check=True, capture_output=True, text=True)
        with open(arch, "w") as f:
            f.write(zoo.stdout)
    out = os.path.join(folder, os.path.basename(arch).replace(".json", ".onnx"))
    subprocess.run([nas, "arch", "onnx", arch, "--untrained", "--out", out], check=True, capture_output=True)
    return out


def fmt(v, spec, unit=""):
    return "-" if v is None else f"{v:{spec}}{unit}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", action="store_true", help="run the networks of bench/suite/suite.json")
    p.add_argument("--only", action="append", help="only suite networks whose name contains this (repeatable)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--python", default=sys.executable, help="the Python with torch installed")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per engine; medians are reported")
    p.add_argument("--json-out", help="also write every measurement and ratio to this file")
    p.add_argument("--onnxruntime-python", help="a Python with onnxruntime: also time each network's ONNX export")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="nas-compare-")
    nets = suite_networks(args.only) if args.suite else QUICK
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    ort = bool(args.onnxruntime_python)
    print(f"| network | params | train img/s nas | PyTorch | **ratio** | batch-1 p50 nas | PyTorch | **ratio** "
          f"| peak RSS nas | PyTorch | **ratio** |" + (" batch-1 p50 onnxruntime | **nas/ort** |" if ort else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if ort else ""))
    for net in nets:
        common = ["--threads", str(args.threads), "--steps", str(args.steps), "--data-dir", args.data_dir,
                  "--dataset", net.get("dataset", "fashion-mnist")]
        ours_runs, ref_runs, ort_runs = [], [], []
        model = onnx_model(args.nas, net, work) if ort else None
        for _ in range(args.repeats):
            ours_runs.append(run([args.nas, "bench", "train", *model_flags(net), *common]))
            ref_runs.append(run([args.python, os.path.join(here, "torch_reference.py"), *model_flags(net), *common,
                                 "--nas", args.nas]))
            if ort:
                ort_runs.append(run([args.onnxruntime_python, os.path.join(here, "ort_latency.py"), model,
                                     "--threads", "1"]))
        ours, ref = summary_of(ours_runs), summary_of(ref_runs)
        ratio = lambda key: ours[key] / ref[key] if ours[key] and ref[key] else None  # noqa: E731
        row = {"network": net["name"], "nas": ours, "pytorch": ref,
               "train_ratio": ratio("train_images_per_second"), "latency_ratio": ratio("latency_ms_p50"),
               "memory_ratio": ratio("peak_rss_mib")}
        if ort:
            ort_p50 = median([r["p50"] for r in ort_runs])
            row["onnxruntime"] = {"engine": ort_runs[0]["engine"], "latency_ms_p50": ort_p50, "runs": len(ort_runs)}
            row["onnxruntime_latency_ratio"] = ours["latency_ms_p50"] / ort_p50 if ort_p50 else None
        rows.append(row)
        print(f"| {net['name']} | {ours['params']:,} "
              f"| {ours['train_images_per_second']:,.0f} | {ref['train_images_per_second']:,.0f} "
              f"| **{fmt(row['train_ratio'], '.2f', 'x')}** "
              f"| {ours['latency_ms_p50']:.3f} ms | {ref['latency_ms_p50']:.3f} ms "
              f"| **{fmt(row['latency_ratio'], '.2f', 'x')}** "
              f"| {fmt(ours['peak_rss_mib'], ',.0f', ' MiB')} | {fmt(ref['peak_rss_mib'], ',.0f', ' MiB')} "
              f"| **{fmt(row['memory_ratio'], '.2f', 'x')}** |"
              + (f" {row['onnxruntime']['latency_ms_p50']:.3f} ms | **{fmt(row['onnxruntime_latency_ratio'], '.2f', 'x')}** |"
                 if ort else ""), flush=True)
    keys = ("train_ratio", "latency_ratio", "memory_ratio") + (("onnxruntime_latency_ratio",) if ort else ())
    means = {key: geomean([r.get(key) for r in rows]) for key in keys}
    print(f"| **geometric mean** | | | | **{fmt(means['train_ratio'], '.2f', 'x')}** | | "
          f"| **{fmt(means['latency_ratio'], '.2f', 'x')}** | | | **{fmt(means['memory_ratio'], '.2f', 'x')}** |"
          + (f" | **{fmt(means['onnxruntime_latency_ratio'], '.2f', 'x')}** |" if ort else ""))
    slowest = min(rows, key=lambda r: r["train_ratio"] or math.inf)
    device = ours_runs[-1].get("device", platform.processor())
    print(f"\nmedians of {args.repeats} alternating runs; batch 64, Adam, {args.steps} timed steps, "
          f"{args.threads} training threads, latency on 1 thread; slowest training ratio: "
          f"{slowest['network']} {fmt(slowest['train_ratio'], '.2f', 'x')}; machine: {device}; "
          f"{ref['engine']}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": device, "threads": args.threads, "steps": args.steps, "repeats": args.repeats,
                       "geometric_means": means, "networks": rows}, f, indent=1)


if __name__ == "__main__":
    main()
