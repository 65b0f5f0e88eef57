"""Does the latency a search records in onnxruntime match what the
onnxruntime Python package measures for the ONNX file users download?

For each final model of a search (run with `"runtime": "onnxruntime"`):
downloads `model.onnx` from the API, times it in onnxruntime's Python
package on the same machine and thread count (1 intra-op thread, warm-up,
then `--repeats` medians of `--runs` runs, spread `--gap` seconds apart),
and prints the recorded p50 (relative basis), the recorded raw p50 and the
Python median, with their ratios.

    $VENV/bin/python bench/onnxruntime_check.py --server http://127.0.0.1:8080 --search 1
"""
import argparse
import json
import statistics
import time
import urllib.request

import numpy as np
import onnxruntime as ort


def get(url):
    with urllib.request.urlopen(url) as r:
        return r.read()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="http://127.0.0.1:8080")
    p.add_argument("--search", type=int, required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--gap", type=float, default=5.0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    api = args.server.rstrip("/") + "/api/v1"
    finals = json.loads(get(f"{api}/searches/{args.search}/final"))["trials"]
    rows = []
    for t in finals:
        result = t.get("result") or {}
        latency = result.get("latency_ms") or {}
        model = get(f"{api}/trials/{t['id']}/model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [1] + [int(d) for d in inp.shape[1:]]
        image = (np.arange(np.prod(shape)) * 7919 % 255).astype(np.float32).reshape(shape) / 255.0
        if inp.name == "pixels":
            image = image * 255.0
        for _ in range(100):
            sess.run(None, {inp.name: image})
        medians = []
        for k in range(args.repeats):
            if k:
                time.sleep(args.gap)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                sess.run(None, {inp.name: image})
                times.append((time.perf_counter() - start) * 1e3)
            medians.append(statistics.median(times))
        python = statistics.median(medians)
        row = {
            "trial": t["id"],
            "runtime": latency.get("runtime", "nas"),
            "recorded_p50_ms": latency.get("p50"),
            "recorded_raw_p50_ms": latency.get("raw_p50"),
            "basis_p50_ms": latency.get("basis_p50"),
            "python_p50_ms": python,
            "python_medians_ms": medians,
            "recorded_over_python": latency.get("p50", float("nan")) / python,
            "raw_over_python": (latency.get("raw_p50") or float("nan")) / python,
            "test_accuracy": t.get("test_accuracy"),
        }
        rows.append(row)
        print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
