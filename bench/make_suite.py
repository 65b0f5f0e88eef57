#!/usr/bin/env python3
"""Writes the engine benchmark suite (bench/suite/*.json and suite.json) from
the zoo and fixed-seed samples of every search-space preset, so the suite can
be regenerated after the zoo or the presets change:

    cargo build --release -p server && python3 bench/make_suite.py

28x28x1 networks train on Fashion-MNIST; 32x32x3 ones on seeded synthetic
images (`--dataset synthetic`), as no 3-channel dataset ships with the tests.

Besides the fixed entries, the wide preset samples are chosen by a seeded
draw, not by hand: for each of the `mobile`, `classic` and `full` presets and
each input, seeds come from `random.Random(SELECTION_SEED)` and the first
sample with 0.5-1M parameters joins the suite; `mobile` and `full` samples
must also hold both a residual and a squeeze-and-excitation block. These are the networks searches
in those presets actually train, and the ones where the engine trailed.
"""
import argparse
import json
import os
import random
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = ("28x28x1", "fashion-mnist")
COLOUR = ("32x32x3", "synthetic")

# (name, source, input): a zoo entry at a width, or a preset sample at a seed.
NETWORKS = [
    ("lenet5", ("zoo", "lenet5", 1.0), FASHION),
    ("fashion_cnn-w0.5", ("zoo", "fashion_cnn", 0.5), FASHION),
    ("alexnet-w0.25 (LRN)", ("zoo", "alexnet", 0.25), FASHION),
    ("vgg16-w0.25", ("zoo", "vgg16", 0.25), FASHION),
    ("googlenet-w0.25 (inception)", ("zoo", "googlenet", 0.25), FASHION),
    ("resnet18-w0.5", ("zoo", "resnet18", 0.5), FASHION),
    ("resnet50-w0.25", ("zoo", "resnet50", 0.25), FASHION),
    ("xception-w0.25", ("zoo", "xception", 0.25), FASHION),
    ("se_resnet50-w0.25", ("zoo", "se_resnet50", 0.25), FASHION),
    ("mobilenet_v1-w0.5", ("zoo", "mobilenet_v1", 0.5), FASHION),
    ("mobilenet_v2-w0.5", ("zoo", "mobilenet_v2", 0.5), FASHION),
    ("micro-seed1", ("preset", "micro", 1), FASHION),
    ("small-seed1", ("preset", "small", 1), FASHION),
    ("small-seed2", ("preset", "small", 2), FASHION),
    ("classic-seed1", ("preset", "classic", 1), FASHION),
    ("mobile-seed1", ("preset", "mobile", 1), FASHION),
    ("full-seed1", ("preset", "full", 1), FASHION),
    ("resnet18-w0.25 32x32x3", ("zoo", "resnet18", 0.25), COLOUR),
    ("mobilenet_v2-w0.5 32x32x3", ("zoo", "mobilenet_v2", 0.5), COLOUR),
    ("small-seed3 32x32x3", ("preset", "small", 3), COLOUR),
    # Full width: what a user training the classics as published runs.
    ("fashion_cnn-w1", ("zoo", "fashion_cnn", 1.0), FASHION),
    ("resnet18-w1 32x32x3", ("zoo", "resnet18", 1.0), COLOUR),
    ("mobilenet_v2-w1 32x32x3", ("zoo", "mobilenet_v2", 1.0), COLOUR),
]

# The seeded draw of wide preset samples (see the module's doc).
SELECTION_SEED = 2026
# Each preset with the wide blocks it must hold (`classic` has only conv and pooling).
WIDE_PRESETS = [("mobile", {"se", "residual"}), ("classic", set()), ("full", {"se", "residual"})]
WIDE_PARAMS = (500_000, 1_000_000)
MAX_DRAWS = 2000


def architecture(nas, source, shape):
    kind, name, knob = source
    if kind == "zoo":
        cmd = [nas, "zoo", "show", name, "--input", shape, "--classes", "10", "--width", str(knob), "--json"]
    else:
        cmd = [nas, "space", "sample", "--preset", name, "--seed", str(knob), "--input", shape, "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def kinds(node, found):
    """Every layer kind in an architecture tree."""
    if isinstance(node, dict):
        if "kind" in node:
            found.add(node["kind"])
        for value in node.values():
            kinds(value, found)
    elif isinstance(node, list):
        for value in node:
            kinds(value, found)
    return found


def param_count(nas, preset, seed, shape):
    cmd = [nas, "space", "sample", "--preset", preset, "--seed", str(seed), "--input", shape]
    table = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return int(re.search(r"total params:\s*([\d,]+)", table).group(1).replace(",", ""))


def wide_samples(nas):
    """(name, source, input) of the first qualifying seed per preset and input."""
    rng = random.Random(SELECTION_SEED)
    chosen = []
    for preset, required in WIDE_PRESETS:
        for shape, dataset in (FASHION, COLOUR):
            for _ in range(MAX_DRAWS):
                seed = rng.randrange(1, 1_000_000)
                found = kinds(architecture(nas, ("preset", preset, seed), shape), set())
                if not required <= found:
                    continue
                if WIDE_PARAMS[0] <= param_count(nas, preset, seed, shape) <= WIDE_PARAMS[1]:
                    suffix = " 32x32x3" if shape == COLOUR[0] else ""
                    chosen.append((f"{preset}-seed{seed}-wide{suffix}", ("preset", preset, seed), (shape, dataset)))
                    break
            else:
                raise SystemExit(f"no {preset} sample at {shape} in {MAX_DRAWS} draws has {sorted(required)} and "
                                 f"{WIDE_PARAMS[0]:,}-{WIDE_PARAMS[1]:,} parameters")
    return chosen


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nas", default="target/release/nas")
    args = p.parse_args()
    out = os.path.join(HERE, "suite")
    os.makedirs(out, exist_ok=True)
    entries = []
    for name, source, (shape, dataset) in NETWORKS + wide_samples(args.nas):
        arch = architecture(args.nas, source, shape)
        arch["name"] = name
        file = name.split(" ")[0] + ("-32x32x3" if shape == "32x32x3" else "") + ".json"
        with open(os.path.join(out, file), "w") as f:
            json.dump(arch, f, indent=1)
            f.write("\n")
        entries.append({"name": name, "file": file, "dataset": dataset, "source": list(source), "input": shape})
    with open(os.path.join(out, "suite.json"), "w") as f:
        json.dump({"generated_by": "bench/make_suite.py", "networks": entries}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(entries)} networks to {out}")


if __name__ == "__main__":
    main()
