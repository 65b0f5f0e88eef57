"""The client against a real ``nas up``: submit, wait, read, train final models, download, run."""

from __future__ import annotations

import json
import math
import struct
import threading
import time
from pathlib import Path

import httpx
import pytest

from nas_client import (
    Budget,
    Client,
    ConflictError,
    Final,
    NotFoundError,
    RandomSearch,
    SearchSpec,
    SpecError,
)

from conftest import Server, mnist_test_images

# A search that ends in seconds: two one-epoch trials on 1,000 MNIST images.
TINY = {
    "name": "python client",
    "dataset": "mnist",
    "space": "small",
    "strategy": {"kind": "random"},
    "budget": {"max_trials": 2, "epochs": 1, "parallelism": 1, "max_train_samples": 1000},
    "seed": 3,
}


def test_submit_wait_and_read_the_results(server: Server) -> None:
    client = Client(server.url)
    spec = dict(TINY, final={"top_k": 1, "epochs": 1})
    search = client.submit(spec)
    assert search.status == "running" and search.id >= 1

    served_before = server.requests_served()
    sent_before = client.requests_sent
    started = time.monotonic()
    search.wait(progress=True, timeout=600)
    seconds = time.monotonic() - started
    served = server.requests_served() - served_before
    sent = client.requests_sent - sent_before

    assert search.status == "finished", search.raw
    assert search.progress is not None and search.progress.trials_ended == 2
    # At most one request a second while it ran: the event stream, the first
    # read, and then at most one read a second.
    assert sent == served, (sent, served)
    assert served <= max(seconds, 1.0) + 2, f"{served} requests in {seconds:.1f} s"

    board = search.leaderboard()
    assert len(board) == 2
    assert [e.rank for e in board] == [1, 2]
    assert board[0].reward >= board[1].reward
    assert all(0.0 < e.accuracy <= 1.0 and e.latency_ms > 0 for e in board)
    frame = board.to_pandas()
    assert list(frame["trial_id"]) == [e.trial_id for e in board]
    assert search.leaderboard(sort="latency", top=1)[0].latency_ms == min(e.latency_ms for e in board)

    finals = search.final_models()
    assert len(finals) == 1
    final = finals[0]
    assert final.phase == "final" and final.state == "succeeded"
    assert final.source_index == board[0].index
    assert final.result is not None and final.result.params > 0
    assert 0.0 < final.test_accuracy <= 1.0
    assert finals.to_pandas()["test_accuracy"][0] == final.test_accuracy

    pareto = search.pareto()
    assert len(pareto.points) == 2 and pareto.front
    assert [p.trial_id for p in pareto.tested] == [final.id]

    trials = search.trials(state="succeeded")
    assert {t.id for t in trials if t.phase == "search"} == {e.trial_id for e in board}
    assert {t.id for t in trials if t.phase == "final"} == {final.id}
    assert search.trial(final.id).source_index == final.source_index


def test_the_downloaded_model_is_the_tested_one(server: Server, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    client = Client(server.url)
    spec = dict(TINY, seed=4, baselines=["lenet5"], final={"top_k": 1, "epochs": 1})
    search = client.submit(spec).wait(progress=False, timeout=600)
    finals = search.final_models()
    assert len(finals) == 1 and finals[0].baseline is None
    with_baselines = search.final_models(baselines=True)
    assert sorted(str(t.baseline) for t in with_baselines) == ["None", "lenet5"]
    final = finals[0]

    path = final.download_onnx(tmp_path)
    assert path == tmp_path / f"trial-{final.id}.onnx" and path.stat().st_size > 0
    assert not list(tmp_path.glob("*.part"))
    session = ort.InferenceSession(str(path))
    pixels, labels = mnist_test_images()
    predicted = np.concatenate(
        [session.run(None, {"pixels": pixels[i : i + 1]})[0].argmax(axis=1) for i in range(len(pixels))]
    )
    accuracy = float((predicted == labels).mean())
    # The same network on the same test split: the server's figure, to a few images.
    assert abs(accuracy - final.test_accuracy) <= 3 / len(labels), (accuracy, final.test_accuracy)

    weights = final.download_weights(tmp_path / "weights")
    raw = weights.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    tensors = json.loads(raw[8 : 8 + header_len])
    assert any(not k.startswith("__") for k in tensors)
    architecture = json.loads((tmp_path / "weights" / f"trial-{final.id}.json").read_text())
    assert architecture == final.refresh().raw.get("architecture", architecture)
    assert architecture["layers"], architecture


def test_train_final_after_the_search(server: Server) -> None:
    client = Client(server.url)
    spec = SearchSpec(
        name="typed spec",
        dataset="mnist",
        space="small",
        strategy=RandomSearch(),
        budget=Budget(max_trials=2, epochs=1, parallelism=1, max_train_samples=1000),
        seed=5,
    )
    search = client.submit(spec).wait(progress=False, timeout=600)
    assert search.status == "finished" and search.spec["name"] == "typed spec"
    assert search.final_models() == []

    with pytest.raises(SpecError) as bad:
        search.train_final(top_k=0)
    assert bad.value.field is not None and "top_k" in bad.value.field

    assert search.train_final(top_k=1, epochs=1) is search
    assert search.final_queued == 1 and search.status == "running"
    search.wait(progress=False, timeout=600)
    assert search.status == "finished"
    finals = search.final_models()
    assert len(finals) == 1 and finals[0].state == "succeeded"
    with pytest.raises(ConflictError):
        search.train_final(top_k=1, epochs=1)


def test_wait_returns_when_the_search_is_cancelled(server: Server) -> None:
    client = Client(server.url)
    long = dict(TINY, name="to cancel", budget={"max_trials": 200, "epochs": 3, "parallelism": 1})
    search = client.submit(long)
    waited: dict = {}

    def wait() -> None:
        try:
            waited["search"] = Client(server.url).search(search.id).wait(progress=False, timeout=120)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            waited["error"] = err

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    search.cancel()
    assert search.status == "cancelled"
    waiter.join(timeout=30)
    assert not waiter.is_alive(), "wait() did not return after the search was cancelled"
    assert "error" not in waited, waited
    assert waited["search"].status == "cancelled"
    with pytest.raises(ConflictError):
        search.cancel()


def test_wait_polls_when_the_event_stream_is_refused(one_stream_server: Server) -> None:
    server = one_stream_server
    client = Client(server.url)
    # Another client holds the server's only event stream: wait() is refused one (503) and polls.
    with httpx.stream("GET", f"{server.url}/api/v1/events", timeout=60) as held:
        assert held.status_code == 200
        search = client.submit(dict(TINY, seed=6))
        served_before = server.requests_served()
        started = time.monotonic()
        search.wait(progress=False, timeout=600, poll_interval=1.0)
        seconds = time.monotonic() - started
        served = server.requests_served() - served_before
    assert search.status == "finished"
    assert search.progress is not None and search.progress.trials_ended == 2
    # The refused stream, the first read, then one read a second at most.
    assert served <= max(seconds, 1.0) + 3, f"{served} requests in {seconds:.1f} s"


def test_lists(server: Server) -> None:
    client = Client(server.url)
    zoo = client.zoo()
    assert "lenet5" in [z.name for z in zoo] and all(z.params > 0 for z in zoo)
    workers = client.workers()
    assert workers and all(w.alive for w in workers)
    datasets = client.datasets.list()
    assert {"mnist", "fashion-mnist"} <= {d.name for d in datasets if d.builtin}
    searches = client.searches()
    assert searches and [s.id for s in searches] == sorted((s.id for s in searches), reverse=True)
    assert all(s.status == "finished" for s in client.searches(status="finished"))
    assert len(client.searches(limit=1)) == 1
    assert not math.isnan(zoo.to_pandas()["macs"].sum())


def test_a_refused_spec_names_its_field(server: Server) -> None:
    client = Client(server.url)
    with pytest.raises(SpecError) as refused:
        client.submit(dict(TINY, budget={"max_trials": 0}))
    assert refused.value.status == 422
    assert refused.value.field == "budget.max_trials"
    assert str(refused.value).startswith("budget.max_trials: ")
    with pytest.raises(SpecError) as unknown:
        client.submit(dict(TINY, dataset="no-such-dataset"))
    assert unknown.value.field == "dataset"


def test_unknown_ids_raise_not_found(server: Server) -> None:
    client = Client(server.url)
    with pytest.raises(NotFoundError):
        client.search(999_999)
    with pytest.raises(NotFoundError):
        client.trial(999_999)
    with pytest.raises(NotFoundError):
        client.datasets.get("no-such-upload")


def test_a_typed_spec_is_the_dict_it_stands_for() -> None:
    spec = SearchSpec(name="n", dataset="mnist", budget=Budget(max_trials=3), final=Final(top_k=2, extra={"epochs": 4}))
    assert spec.to_dict() == {"name": "n", "dataset": "mnist", "budget": {"max_trials": 3}, "final": {"top_k": 2, "epochs": 4}}


def test_upload_list_and_remove_a_dataset(server: Server, tmp_path: Path) -> None:
    # Kaggle's CSV layout: a label column and one column per pixel, 8x8 grey, 3 classes.
    rows = ["label," + ",".join(f"pixel{i}" for i in range(64))]
    for n in range(30):
        label = ["coat", "shirt", "shoe"][n % 3]
        rows.append(label + "," + ",".join(str((n * 7 + i * (n % 3 + 1)) % 256) for i in range(64)))
    path = tmp_path / "tiny-clothes.csv"
    path.write_text("\n".join(rows) + "\n")

    client = Client(server.url)
    uploaded = client.datasets.upload(path, test_fraction=0.2)
    assert uploaded.name == "tiny-clothes" and not uploaded.builtin
    assert uploaded.input == [1, 8, 8] and uploaded.class_names == ["coat", "shirt", "shoe"]
    assert uploaded.train_images + uploaded.test_images == 30
    assert "tiny-clothes" in [d.name for d in client.datasets.list() if not d.builtin]
    assert client.datasets.get("tiny-clothes").id == uploaded.id

    path.write_text(rows[0] + "\ncoat," + ",".join(["x"] * 64) + "\n")
    with pytest.raises(SpecError) as refused:
        client.datasets.upload(path, name="broken")
    assert "x" in str(refused.value) or refused.value.field

    client.datasets.remove("tiny-clothes")
    with pytest.raises(NotFoundError):
        client.datasets.get("tiny-clothes")
