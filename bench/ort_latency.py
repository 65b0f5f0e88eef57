#!/usr/bin/env python3
"""Batch-1 latency of an ONNX model in onnxruntime (the Python package, CPU
execution provider, default graph optimisations, as users deploy it), on one
fixed input of the model's shape. Prints one JSON line: p50, p90 and min in
ms over `--runs` timed runs after a warm-up.

    python3 bench/ort_latency.py model.onnx --threads 1 --runs 500

`bench/compare.py --onnxruntime-python PY` runs it beside nas and PyTorch.
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=500)
    args = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in inp.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(max(args.runs // 5, 50)):
        sess.run(None, {inp.name: x})
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        sess.run(None, {inp.name: x})
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "engine": f"onnxruntime {ort.__version__}",
        "threads": args.threads,
        "runs": args.runs,
        "p50": statistics.median(times),
        "p90": times[int(0.9 * (len(times) - 1))],
        "min": times[0],
    }))


if __name__ == "__main__":
    main()
