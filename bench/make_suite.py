#!/usr/bin/env python3
"""Writes the engine benchmark suite (bench/suite/*.json and suite.json) from
the zoo and fixed-seed samples of every search-space preset, so the suite can
be regenerated after the zoo or the presets change:

    cargo build --release -p server && python3 bench/make_suite.py

28x28x1 networks train on Fashion-MNIST; 32x32x3 ones on seeded synthetic
images (`--dataset synthetic`), as no 3-channel dataset ships with the tests.
"""
import argparse
import json
import os
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
]


def architecture(nas, source, shape):
    kind, name, knob = source
    if kind == "zoo":
        cmd = [nas, "zoo", "show", name, "--input", shape, "--classes", "10", "--width", str(knob), "--json"]
    else:
        cmd = [nas, "space", "sample", "--preset", name, "--seed", str(knob), "--input", shape, "--json"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nas", default="target/release/nas")
    args = p.parse_args()
    out = os.path.join(HERE, "suite")
    os.makedirs(out, exist_ok=True)
    entries = []
    for name, source, (shape, dataset) in NETWORKS:
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
