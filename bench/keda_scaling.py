#!/usr/bin/env python3
"""Worker autoscaling on queue depth, simulated and then run for real.

1. The replica count KEDA would choose for the ScaledObject in
   deploy/kubernetes/base/autoscaling.yaml: its postgresql trigger reports
   the query's result as an external metric of type AverageValue, and the
   HPA sets ceil(metric / targetQueryValue) replicas, clamped to
   [minReplicaCount, maxReplicaCount]; KEDA itself scales 0 -> 1 when the
   metric exceeds activationTargetQueryValue and back to 0 after
   cooldownPeriod seconds at or below it.
2. Real workers at several replica counts: for each count, a fresh
   PostgreSQL database, one search of small trials, that many `nas worker`
   processes (one trial and one thread each, as the pods would run them),
   and the trials finished per minute. The metric KEDA would read is
   sampled from `nas queue depth --demand` while they run.

    python3 bench/keda_scaling.py --nas target/release/nas --replicas 1,2,3,4
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def scaled_object(path):
    """The ScaledObject's numbers (a YAML subset: the keys are unique)."""
    text = Path(path).read_text()

    def number(key, default):
        m = re.search(rf"^\s*{key}:\s*\"?(\d+)\"?", text, re.M)
        return int(m.group(1)) if m else default

    query = re.search(r'^\s*query:\s*"(.*)"\s*$', text, re.M).group(1)
    return {
        "min": number("minReplicaCount", 0),
        "max": number("maxReplicaCount", 100),
        "target": number("targetQueryValue", 1),
        "activation": number("activationTargetQueryValue", 0),
        "cooldown": number("cooldownPeriod", 300),
        "polling": number("pollingInterval", 30),
        "query": query,
    }


def keda_replicas(metric, so):
    """Replicas KEDA + HPA settle on for a steady metric value."""
    if metric <= so["activation"]:
        return so["min"]  # after cooldownPeriod
    return max(so["min"], 1, min(so["max"], math.ceil(metric / so["target"])))


def nas(binary, *args, env=None, check=True):
    out = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    if check and out.returncode != 0:
        sys.exit(f"nas {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout.strip()


def psql(url, sql):
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def finished(binary, url, search_id):
    text = nas(binary, "queue", "status", str(search_id), "--database-url", url)
    m = re.search(r"^trials: (.*)$", text, re.M)
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (\w+)", m.group(1))) if m else {}
    return sum(counts.get(k, 0) for k in ("succeeded", "failed", "rejected", "stopped"))


def run_workers(args, replicas, so):
    """Trials finished per minute with `replicas` workers."""
    db = f"nas_keda_scaling_{replicas}_{os.getpid()}"
    admin = f"{args.server}/postgres"
    psql(admin, f"DROP DATABASE IF EXISTS {db}")
    psql(admin, f"CREATE DATABASE {db}")
    url = f"{args.server}/{db}"
    spec = {
        "name": f"keda scaling x{replicas}",
        "dataset": "fashion-mnist",
        "space": "small",
        "strategy": {"kind": "random"},
        "budget": {"max_trials": 400, "parallelism": 16, "epochs": 1,
                   "max_train_samples": args.samples},
        "seed": 1,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    search_id = int(nas(args.nas, "queue", "submit", f.name, "--database-url", url))
    # Workers skip calibration here: throughput is what is counted.
    env = dict(os.environ, NAS_DATABASE_URL=url, NAS_DATA_DIR=str(args.data_dir),
               NAS_WORKER_THREADS="1", NAS_WORKER_CONCURRENCY="1", NAS_CALIBRATE="false",
               RUST_LOG="warn")
    labels = ["--labels", "cpu"]
    demand_before = int(nas(args.nas, "queue", "depth", "--demand", *labels, "--database-url", url))
    workers = [subprocess.Popen([args.nas, "worker"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(replicas)]
    try:
        time.sleep(args.warmup)
        start_count, start = finished(args.nas, url, search_id), time.time()
        samples = []
        while time.time() - start < args.seconds:
            time.sleep(min(10, args.seconds))
            samples.append(int(nas(args.nas, "queue", "depth", "--demand", *labels, "--database-url", url)))
        done = finished(args.nas, url, search_id) - start_count
        elapsed = time.time() - start
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=120)
        nas(args.nas, "queue", "status", "--database-url", url, check=False)
        psql(admin, f"DROP DATABASE IF EXISTS {db}")
    return {
        "replicas": replicas,
        "trials_per_minute": done / elapsed * 60,
        "finished": done,
        "seconds": elapsed,
        "demand_before": demand_before,
        "keda_replicas_before": keda_replicas(demand_before, so),
        "demand_while_running": samples,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nas", default=str(REPO / "target/release/nas"))
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/datasets")
    p.add_argument("--scaled-object", default=str(REPO / "deploy/kubernetes/base/autoscaling.yaml"))
    p.add_argument("--replicas", default="1,2,3,4")
    p.add_argument("--samples", type=int, default=1024, help="training images per trial")
    p.add_argument("--warmup", type=float, default=20, help="seconds before counting")
    p.add_argument("--seconds", type=float, default=90, help="seconds counted per replica count")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()

    so = scaled_object(args.scaled_object)
    print(f"ScaledObject: target {so['target']} trial(s) per replica, replicas {so['min']}..{so['max']}, "
          f"activation > {so['activation']}, cooldown {so['cooldown']} s, polling {so['polling']} s")
    print("\nKEDA's choice for a steady demand (trials waiting or running):")
    print("  demand  replicas")
    for demand in (0, 1, 2, 3, 5, 8, 16, 50):
        print(f"  {demand:>6}  {keda_replicas(demand, so):>8}")

    print("\nReal workers against PostgreSQL (1 trial, 1 thread each):")
    print("  replicas  trials/min  finished  speed-up  demand (KEDA replicas) before")
    results = []
    for r in [int(x) for x in args.replicas.split(",")]:
        res = run_workers(args, r, so)
        results.append(res)
        base = results[0]["trials_per_minute"] / results[0]["replicas"]
        print(f"  {r:>8}  {res['trials_per_minute']:>10.1f}  {res['finished']:>8}  "
              f"{res['trials_per_minute'] / base:>7.2f}x  {res['demand_before']} ({res['keda_replicas_before']})",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"scaled_object": so, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
