"""Failures a user meets: a wrong token, no server, a download cut short."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from nas_client import Client, NasConnectionError, UnauthorizedError
from nas_client.trial import Trial

from conftest import Server, free_port

SPEC = {"name": "token test", "dataset": "mnist", "space": "small", "budget": {"max_trials": 1, "epochs": 1}}


def test_a_wrong_token_is_refused(secured_server: Server) -> None:
    with pytest.raises(UnauthorizedError) as refused:
        Client(secured_server.url, token="wrong").submit(SPEC)
    assert refused.value.status == 401
    with pytest.raises(UnauthorizedError):
        Client(secured_server.url, token="").submit(SPEC)
    # Reads stay open; the right token writes.
    assert Client(secured_server.url, token="wrong").zoo()
    search = Client(secured_server.url, token="secret").submit(SPEC)
    assert search.status == "running"


def test_the_token_comes_from_the_environment(secured_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_SERVER", secured_server.url)
    monkeypatch.setenv("NAS_TOKEN", "secret")
    client = Client()
    assert client.url == secured_server.url
    assert client.submit(SPEC).status == "running"


def test_a_spec_file_is_submitted_and_a_bad_one_named(secured_server: Server, tmp_path: Path) -> None:
    client = Client(secured_server.url, token="secret")
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    assert client.submit(path).spec["name"] == "token test"
    assert client.submit(str(path)).status == "running"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="spec.json is not JSON"):
        client.submit(path)
    with pytest.raises(FileNotFoundError, match="no-such.json"):
        client.submit(tmp_path / "no-such.json")


def test_no_server_names_the_url_within_the_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(NasConnectionError) as failed:
        Client(url, timeout=2).zoo()
    assert time.monotonic() - started < 10
    assert url in str(failed.value) and failed.value.url == url


class _CutShort(http.server.BaseHTTPRequestHandler):
    """Promises 1 MiB of model and sends 1 KiB before hanging up."""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"\0" * 1024)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _Whole(http.server.BaseHTTPRequestHandler):
    """Sends 1 KiB of model, all of it."""

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", "1024")
        self.end_headers()
        self.wfile.write(b"\1" * 1024)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def cut_short_server() -> Iterator[str]:
    yield from _serve(_CutShort)


@pytest.fixture
def whole_server() -> Iterator[str]:
    yield from _serve(_Whole)


def test_an_interrupted_download_leaves_no_file(cut_short_server: str, tmp_path: Path) -> None:
    client = Client(cut_short_server, timeout=5)
    trial = Trial(client._transport, {"id": 7, "search_id": 1, "index": 0, "state": "succeeded"})
    target = tmp_path / "model.onnx"
    with pytest.raises(NasConnectionError) as failed:
        trial.download_onnx(target)
    assert "model.onnx" in str(failed.value)
    assert list(tmp_path.iterdir()) == []


def test_a_download_gets_the_mode_of_a_new_file(whole_server: str, tmp_path: Path) -> None:
    # Written through a private temporary file, the finished one must still
    # be readable as any file the user creates is (0o666 less the umask).
    umask = os.umask(0o022)
    os.umask(umask)
    trial = Trial(Client(whole_server, timeout=5)._transport, {"id": 7, "search_id": 1, "index": 0, "state": "succeeded"})
    target = trial.download_onnx(tmp_path / "model.onnx")
    assert target.read_bytes() == b"\1" * 1024
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
