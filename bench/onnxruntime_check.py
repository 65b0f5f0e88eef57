"""Does the latency a search records in onnxruntime match what the
onnxruntime Python package measures for the ONNX file users download?

For each final model of a search (run with `"runtime": "onnxruntime"`):
downloads `model.onnx` from the API, times it in onnxruntime's Python
package on the same machine and thread count (1 intra-op thread, warm-up,
then `--repeats` medians of `--runs` runs, spread `--gap` seconds apart),
and prints the recorded p50 (relative basis), the recorded raw p50 and the
Python median, with their ratios. It also times the device reference
network's ONNX export (MobileNet v1 at 0.25, untrained, from `--nas`) in
alternation with the model, run by run as nas does, so the recorded ratio
can be compared with Python's.

    $VENV/bin/python bench/onnxruntime_check.py --server http://127.0.0.1:8080 --search 1
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
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
    p.add_argument("--nas", default="target/release/nas")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="nas-ort-check-")
    reference_json = os.path.join(work, "reference.json")
    reference_onnx = os.path.join(work, "reference.onnx")
    with open(reference_json, "w") as f:
        f.write(subprocess.run([args.nas, "zoo", "show", "mobilenet_v1", "--width", "0.25", "--input", "28x28x1", "--classes", "10", "--json"],
                               check=True, capture_output=True, text=True).stdout)
    subprocess.run([args.nas, "arch", "onnx", reference_json, "--untrained", "--out", reference_onnx],
                   check=True, capture_output=True)
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
        reference = ort.InferenceSession(reference_onnx, options, providers=["CPUExecutionProvider"])
        ref_name = reference.get_inputs()[0].name
        ref_image = (np.arange(28 * 28) * 7919 % 255).astype(np.float32).reshape(1, 1, 28, 28) / 255.0
        for _ in range(100):
            reference.run(None, {ref_name: ref_image})
        ratios, reference_times = [], []
        for k in range(args.runs * 2):
            if k % 2:
                t0 = time.perf_counter()
                reference.run(None, {ref_name: ref_image})
                r = time.perf_counter() - t0
                t0 = time.perf_counter()
                sess.run(None, {inp.name: image})
                c = time.perf_counter() - t0
            else:
                t0 = time.perf_counter()
                sess.run(None, {inp.name: image})
                c = time.perf_counter() - t0
                t0 = time.perf_counter()
                reference.run(None, {ref_name: ref_image})
                r = time.perf_counter() - t0
            ratios.append(c / r)
            reference_times.append(r * 1e3)
        python_ratio = statistics.median(ratios)
        row = {
            "trial": t["id"],
            "runtime": latency.get("runtime", "nas"),
            "recorded_p50_ms": latency.get("p50"),
            "recorded_raw_p50_ms": latency.get("raw_p50"),
            "basis_p50_ms": latency.get("basis_p50"),
            "python_p50_ms": python,
            "python_medians_ms": medians,
            "recorded_ratio": latency.get("ratio"),
            "python_ratio": python_ratio,
            "python_reference_p50_ms": statistics.median(reference_times),
            "recorded_ratio_over_python_ratio": (latency.get("ratio") or float("nan")) / python_ratio,
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
