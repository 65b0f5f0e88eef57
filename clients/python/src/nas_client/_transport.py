"""HTTP to one nas server: JSON calls, atomic downloads, the event stream; errors typed."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import httpx

from .errors import NasConnectionError, error_from_response

API_PREFIX = "/api/v1"


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file in this process: 0o666 less the umask.

    A download is written through ``tempfile.mkstemp``, which makes the file
    private (0o600); the finished file gets this mode instead, like any file
    the user creates. Read once, at import, since reading the umask means
    setting it.
    """
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _new_file_mode()
"""Where the server answers JSON."""


def api_base(url: str) -> str:
    """The API root for a server URL given with or without ``/api/v1``."""
    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


class Transport:
    """One HTTP connection pool to a server, with its token and timeout.

    ``requests`` counts the requests sent, so a caller can see what a
    long operation such as ``Search.wait`` costs the server.
    """

    def __init__(self, url: str, token: Optional[str], timeout: float) -> None:
        self.url = url.rstrip("/")
        self.base = api_base(url)
        headers = {"user-agent": "nas-client-python"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)
        self._lock = threading.Lock()
        self.requests = 0

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def _count(self) -> None:
        with self._lock:
            self.requests += 1

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self._count()
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise NasConnectionError(self.url, str(err) or type(err).__name__) from err
        raise_for_status(response)
        return response

    def get_json(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        """GET a JSON document."""
        return self._send("GET", path, params=_query(params)).json()

    def get_text(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        """GET a text document (CSV, Prometheus metrics)."""
        return self._send("GET", path, params=_query(params)).text

    def post_json(self, path: str, body: Any = None, params: Optional[Mapping[str, Any]] = None) -> Any:
        """POST a JSON body (none for ``None``) and decode the JSON answer."""
        kwargs: Dict[str, Any] = {"params": _query(params)}
        if body is not None:
            kwargs["content"] = json.dumps(body).encode()
            kwargs["headers"] = {"content-type": "application/json"}
        return self._send("POST", path, **kwargs).json()

    def post_file(self, path: str, file: IO[bytes], params: Optional[Mapping[str, Any]] = None) -> Any:
        """POST a file as ``application/octet-stream``, streamed, and decode the JSON answer."""
        return self._send(
            "POST",
            path,
            params=_query(params),
            content=_chunks(file),
            headers={"content-type": "application/octet-stream"},
        ).json()

    def delete(self, path: str) -> None:
        """DELETE a resource."""
        self._send("DELETE", path)

    def download(self, path: str, target: Union[str, "os.PathLike[str]"]) -> Path:
        """Streams a GET to ``target``: into a temporary file beside it, renamed when complete.

        An interrupted download (a dropped connection, a server error, Ctrl-C)
        leaves no file at ``target``, nor a temporary one.
        """
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._count()
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with self._http.stream("GET", path) as response:
                        if response.status_code >= 400:
                            response.read()
                            raise_for_status(response)
                        expected = response.headers.get("content-length")
                        written = 0
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                            written += len(chunk)
                        if expected is not None and written != int(expected):
                            raise NasConnectionError(
                                self.url, f"download of {path} ended after {written} of {expected} bytes"
                            )
                except httpx.TransportError as err:
                    raise NasConnectionError(self.url, f"download of {path} interrupted: {err}") from err
            os.chmod(partial, _NEW_FILE_MODE)
            os.replace(partial, target)
        except BaseException:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            raise
        return target

    def events(self, params: Mapping[str, Any], read_timeout: float) -> "EventStream":
        """Opens the server's event stream (Server-Sent Events)."""
        self._count()
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        request = self._http.build_request("GET", "/events", params=_query(params), timeout=timeout)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as err:
            raise NasConnectionError(self.url, str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            response.read()
            response.close()
            raise_for_status(response)
        return EventStream(response)


class EventStream:
    """An open event stream: iterate for ``(event, data)`` pairs; ``close()`` from any thread."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        event = "message"
        data: List[str] = []
        for line in self._response.iter_lines():
            if line == "":
                if data:
                    text = "\n".join(data)
                    try:
                        payload: Any = json.loads(text)
                    except ValueError:
                        payload = text
                    yield event, payload
                event, data = "message", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)

    def close(self) -> None:
        """Ends the stream."""
        self._response.close()


def raise_for_status(response: httpx.Response) -> None:
    """Raises the typed error for a 4xx or 5xx response."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_from_response(response.status_code, body, response.reason_phrase)


def _query(params: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if not params:
        return None
    out: Dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _chunks(file: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        chunk = file.read(size)
        if not chunk:
            return
        yield chunk
