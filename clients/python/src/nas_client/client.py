"""The entry point: ``Client`` talks to one nas server."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ._transport import Transport
from .models import Dataset, Table, WorkerInfo, ZooEntry
from .search import Search
from .spec import SearchSpec
from .trial import Trial

DEFAULT_URL = "http://127.0.0.1:8080"
"""Where ``nas up`` serves by default."""

SpecLike = Union[Dict[str, Any], SearchSpec, str, "os.PathLike[str]"]
"""A spec as a dict, a typed ``SearchSpec``, or the path of a JSON file."""


class Client:
    """A connection to a nas server.

    ``url`` defaults to ``NAS_SERVER`` (else ``http://127.0.0.1:8080``) and
    ``token`` to ``NAS_TOKEN``, as for the ``nas`` command line. ``timeout``
    (seconds) bounds connecting and each read; a server that does not answer
    raises ``NasConnectionError`` naming the URL. Use it as a context manager
    or call ``close()``.
    """

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0) -> None:
        url = url or os.environ.get("NAS_SERVER") or DEFAULT_URL
        token = token if token is not None else os.environ.get("NAS_TOKEN")
        self._transport = Transport(url, token, timeout)
        self.url: str = self._transport.url
        """The server's URL."""
        self.datasets = Datasets(self._transport)
        """Uploaded and built-in datasets: ``list()``, ``upload(path)``, ``get(name)``, ``remove(name)``."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections."""
        self._transport.close()

    @property
    def requests_sent(self) -> int:
        """How many HTTP requests this client has sent (for measuring what waiting costs)."""
        return self._transport.requests

    def submit(self, spec: SpecLike) -> Search:
        """Submits a search and returns its handle; its first trials are queued at once.

        ``spec`` is a dict, a ``SearchSpec``, or the path of a JSON file.
        A spec the server refuses raises ``SpecError`` naming the field.
        """
        body = load_spec(spec)
        return Search(self._transport, self._transport.post_json("/searches", body))

    def search(self, search_id: int) -> Search:
        """A search by id (``NotFoundError`` if there is none)."""
        return Search(self._transport, self._transport.get_json(f"/searches/{search_id}"))

    def searches(self, status: Optional[str] = None, limit: Optional[int] = None) -> Table[Search]:
        """Searches, newest first; ``status`` (``running``, ``finished`` ...) filters; ``limit`` caps."""
        found: Table[Search] = Table()
        cursor: Optional[int] = None
        while limit is None or len(found) < limit:
            page_size = 500 if limit is None else min(500, limit - len(found))
            page = self._transport.get_json("/searches", {"status": status, "limit": page_size, "cursor": cursor})
            found.extend(Search(self._transport, s) for s in page["searches"])
            cursor = page.get("next_cursor")
            if cursor is None or not page["searches"]:
                break
        return found

    def trial(self, trial_id: int) -> Trial:
        """A trial by id."""
        return Trial(self._transport, self._transport.get_json(f"/trials/{trial_id}"))

    def workers(self) -> Table[WorkerInfo]:
        """The workers the server knows, with whether each is alive and what it runs."""
        listed = self._transport.get_json("/workers")
        return Table(WorkerInfo.from_json(w) for w in listed["workers"])

    def zoo(self) -> Table[ZooEntry]:
        """The reference architectures (LeNet-5 ... MobileNet) a search can compare with."""
        listed = self._transport.get_json("/zoo")
        return Table(ZooEntry.from_json(z) for z in listed["zoo"])


class Datasets:
    """The server's datasets: the built-in catalogue and those uploaded."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def list(self) -> Table[Dataset]:
        """Built-in datasets first, then the uploaded ones."""
        listed = self._transport.get_json("/datasets")
        rows: Table[Dataset] = Table(Dataset.from_builtin(d) for d in listed["datasets"])
        rows.extend(Dataset.from_uploaded(d) for d in listed.get("uploaded", []))
        return rows

    def get(self, name: str) -> Dataset:
        """An uploaded dataset by name or id."""
        return Dataset.from_uploaded(self._transport.get_json(f"/datasets/{name}"))

    def upload(
        self,
        path: Union[str, "os.PathLike[str]"],
        name: Optional[str] = None,
        resize: Optional[str] = None,
        channels: Optional[int] = None,
        label_column: Optional[str] = None,
        test_fraction: Optional[float] = None,
    ) -> Dataset:
        """Uploads a dataset file, streamed: an image folder as .zip/.tar/.tar.gz, an .npz, a .csv, or IDX files.

        ``name`` defaults to the file's name without its extensions. Options
        as for ``nas dataset upload`` (``resize="32x32"``, ``channels=1``,
        ``label_column``, ``test_fraction``). A file the server cannot read
        raises ``SpecError`` naming the entry, row or option at fault.
        """
        path = Path(path)
        if name is None:
            name = path.name.split(".")[0]
        params = {
            "name": name,
            "resize": resize,
            "channels": channels,
            "label_column": label_column,
            "test_fraction": test_fraction,
        }
        with path.open("rb") as file:
            uploaded = self._transport.post_file("/datasets", file, params)
        return Dataset.from_uploaded(uploaded["dataset"])

    def remove(self, name: str) -> None:
        """Removes an uploaded dataset's name (``ConflictError`` while a running search uses it)."""
        self._transport.delete(f"/datasets/{name}")


def load_spec(spec: SpecLike) -> Dict[str, Any]:
    """A spec as the JSON object to send: from a dict, a ``SearchSpec`` or a JSON file's path."""
    if isinstance(spec, SearchSpec):
        return spec.to_dict()
    if isinstance(spec, dict):
        return spec
    path = Path(spec)
    try:
        text = path.read_text()
    except OSError as err:
        raise FileNotFoundError(f"cannot read the spec file {path}: {err.strerror or err}") from err
    try:
        loaded = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{path} is not JSON: {err}") from err
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a spec is a JSON object")
    return loaded
