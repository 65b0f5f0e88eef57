"""An exported model run by onnxruntime, beside nas itself.

Runs an ONNX model exported by nas (`nas export TRIAL --format onnx`,
`GET /trials/{id}/model.onnx` or `nas arch onnx`) with onnxruntime on the
Fashion-MNIST (or MNIST) test set and prints its accuracy and batch-1
latency (1 thread) beside nas's own figures for the same network:

- with `--arch A.json`, the script trains it with `nas train` for
  `--train-epochs` (nas's test accuracy is that run's), converts the saved
  weights with `nas arch onnx`, and measures nas's latency with
  `nas latency --arch A` in the same run, alternating with onnxruntime;
- with `--model M.onnx` downloaded from a server, nas's figures are the
  trial's own, from the model's metadata (`nas.trial`).

Usage (release build), train, export and compare in one go:

    pip install onnxruntime numpy
    python3 bench/onnx_runtime.py --nas target/release/nas \
        --arch examples/fashion-1ms-2h-final.json --train-epochs 1 \
        --data-dir ../shared/datasets --out bench/onnx_runtime.json
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import subprocess
import tempfile
import time

import numpy as np
import onnxruntime as ort


def read_idx(path):
    """An IDX file (gzip or not) as a numpy array of u8."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an IDX file of u8 (offset 0)")
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {body.size} values after the header, expected {shape}")
    return body.reshape(shape)


def test_set(data_dir, dataset):
    folder = os.path.join(data_dir, dataset)
    images = read_idx(os.path.join(folder, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
    return images.astype(np.float32)[:, None, :, :], labels.astype(np.int64)


def session(model, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def accuracy(sess, images, labels, batch=500):
    name = sess.get_inputs()[0].name
    correct = 0
    for start in range(0, len(images), batch):
        logits = sess.run(None, {name: images[start : start + batch]})[0]
        correct += int((logits.argmax(axis=1) == labels[start : start + batch]).sum())
    return correct / len(images)


def latency_p50_ms(sess, image, runs):
    name = sess.get_inputs()[0].name
    x = image[None]
    for _ in range(max(runs // 5, 20)):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def metadata(model):
    meta = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).get_modelmeta()
    return meta.custom_metadata_map


def nas_latency(nas, arch, threads):
    out = subprocess.run(
        [nas, "latency", "--arch", arch, "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["p50"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="an exported model (nas figures from its metadata)")
    ap.add_argument("--nas", default="target/release/nas")
    ap.add_argument("--arch", help="train this architecture, export it and compare")
    ap.add_argument("--train-epochs", type=int, default=1)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--threads", type=int, default=1, help="threads for batch-1 latency")
    ap.add_argument("--runs", type=int, default=500, help="timed batch-1 runs per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="alternating latency rounds")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    if not args.model and not args.arch:
        raise SystemExit("give --model (an exported model) or --arch (train, export, compare)")

    images, labels = test_set(args.data_dir, args.dataset)
    ours = {}
    work = tempfile.mkdtemp(prefix="nas-onnx-")
    model = args.model
    if args.arch:
        weights = os.path.join(work, "weights.safetensors")
        summary = subprocess.run(
            [args.nas, "train", "--arch", args.arch, "--dataset", args.dataset,
             "--data-dir", args.data_dir, "--epochs", str(args.train_epochs),
             "--val-fraction", "0", "--save", weights],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        summary = json.loads(summary)
        ours["test_accuracy"] = summary["test_accuracy"]
        model = os.path.join(work, "model.onnx")
        subprocess.run([args.nas, "arch", "onnx", args.arch, "--weights", weights, "--out", model],
                       check=True, capture_output=True, text=True)
    else:
        trial = json.loads(metadata(model).get("nas.trial", "{}"))
        result = trial.get("result") or {}
        ours["test_accuracy"] = trial.get("test_accuracy")
        ours["latency_p50_ms"] = (result.get("latency_ms") or {}).get("p50")

    sess = session(model, args.threads)
    theirs = {"test_accuracy": accuracy(session(model, os.cpu_count() or 1), images, labels)}
    ort_p50, nas_p50 = [], []
    for _ in range(args.rounds):
        ort_p50.append(latency_p50_ms(sess, images[0], args.runs))
        if args.arch:
            nas_p50.append(nas_latency(args.nas, args.arch, args.threads))
    theirs["latency_p50_ms"] = statistics.median(ort_p50)
    if nas_p50:
        ours["latency_p50_ms"] = statistics.median(nas_p50)

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    def ms(v):
        return "-" if v is None else f"{v:.3f} ms"

    print(f"model {model} ({os.path.getsize(model):,} bytes), {args.dataset} test set ({len(labels):,} images)")
    print(f"{'runtime':<22}{'test accuracy':>15}{'batch-1 p50':>15}")
    print(f"{'nas':<22}{pct(ours.get('test_accuracy')):>15}{ms(ours.get('latency_p50_ms')):>15}")
    print(f"{'onnxruntime ' + ort.__version__:<22}{pct(theirs['test_accuracy']):>15}{ms(theirs['latency_p50_ms']):>15}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": os.path.basename(model), "dataset": args.dataset,
                       "threads": args.threads, "nas": ours, "onnxruntime": theirs,
                       "onnxruntime_version": ort.__version__,
                       "rounds": {"onnxruntime_p50_ms": ort_p50, "nas_p50_ms": nas_p50}}, f, indent=2)


if __name__ == "__main__":
    main()
