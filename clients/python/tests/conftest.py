"""A real nas server for the tests: ``nas up`` on a free port, an SQLite file, the shared datasets.

``NAS_BINARY`` names the binary (default: the workspace's ``target/debug/nas``,
what ``cargo test`` builds); ``NAS_TEST_DATA_DIR`` the datasets (default
``../shared/datasets`` beside the repository).
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]


def nas_binary() -> Path:
    path = Path(os.environ.get("NAS_BINARY", REPO / "target" / "debug" / "nas"))
    if not path.is_file():
        raise RuntimeError(f"no nas binary at {path}: run `cargo build` or set NAS_BINARY")
    return path


def data_dir() -> Path:
    return Path(os.environ.get("NAS_TEST_DATA_DIR", REPO.parent / "shared" / "datasets"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A running nas process and its URL."""

    def __init__(self, args: List[str], workdir: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(nas_binary()), *args],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": "info,sqlx=warn"},
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nas exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nas did not become ready in 60 s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def requests_served(self) -> int:
        """HTTP requests the server counted (its Prometheus counter), this one excluded."""
        text = httpx.get(f"{self.url}/api/v1/metrics", timeout=10).text
        total = 0
        for line in text.splitlines():
            if line.startswith("nas_http_requests_total{") and 'route="/api/v1/metrics"' not in line:
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def up(tmp_path_factory: pytest.TempPathFactory, name: str, *extra: str) -> Iterator[Server]:
    """``nas up`` with one worker, no calibration, on the shared datasets, and ``extra`` flags."""
    workdir = tmp_path_factory.mktemp(name)
    port = free_port()
    args = ["up", "--db", str(workdir / "nas.db"), "--port", str(port), "--workers", "1"]
    args += ["--data-dir", str(data_dir()), "--calibrate", "false", *extra]
    running = Server(args, workdir, port)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``nas up`` with one worker (two threads)."""
    yield from up(tmp_path_factory, "nas-up")


@pytest.fixture(scope="session")
def one_stream_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``nas up`` that serves a single event stream at a time (``--max-streams 1``)."""
    yield from up(tmp_path_factory, "nas-up-one-stream", "--max-streams", "1")


@pytest.fixture(scope="session")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``nas serve`` (API only) with a write token ``secret``."""
    workdir = tmp_path_factory.mktemp("nas-serve")
    port = free_port()
    args = ["serve", "--database-url", f"sqlite://{workdir / 'nas.db'}", "--bind", f"127.0.0.1:{port}"]
    args += ["--token", "secret"]
    running = Server(args, workdir, port)
    yield running
    running.stop()


def mnist_test_images(limit: Optional[int] = None) -> Tuple["object", "object"]:
    """The MNIST test split of the shared datasets as (N x 1 x 28 x 28 float32 pixels 0-255, labels)."""
    import numpy as np

    folder = data_dir() / "mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "rb") as f:
        _, count, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = np.frombuffer(f.read(), dtype=np.uint8).reshape(count, 1, rows, cols)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        f.read(8)
        labels = np.frombuffer(f.read(), dtype=np.uint8)
    if limit is not None:
        pixels, labels = pixels[:limit], labels[:limit]
    return pixels.astype(np.float32), labels
