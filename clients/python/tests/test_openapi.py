"""The client and the server's OpenAPI document cannot drift apart.

Every request the client's code sends must be an operation of
``/api/v1/openapi.json``, and every field it reads must be in the schema
of what that operation returns.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, Set, Tuple

import httpx

from nas_client import models

from conftest import Server

SOURCE = Path(__file__).resolve().parents[1] / "src" / "nas_client"

METHOD_OF = {
    "get_json": "GET",
    "get_text": "GET",
    "download": "GET",
    "events": "GET",
    "post_json": "POST",
    "post_file": "POST",
    "delete": "DELETE",
}

# Each typed model, the schema it reads, and fields it fills in itself.
MODEL_SCHEMAS = {
    models.Progress: ("SearchProgress", set()),
    models.LatencyMs: ("LatencyMs", set()),
    models.TrialResult: ("TrialResult", set()),
    models.LeaderboardEntry: ("LeaderboardEntry", set()),
    models.ParetoPoint: ("ParetoPoint", set()),
    models.TestedPoint: ("TestedPoint", set()),
    models.Hypervolume: ("Hypervolume", set()),
    models.WorkerInfo: ("WorkerRow", set()),
    models.ZooEntry: ("ZooEntryView", set()),
    models.Dataset: ("DatasetInfo", {"builtin", "id", "bytes"}),
}

# Keys the handles read from a response directly.
READ_KEYS = {
    "SearchDetail": {"id", "name", "status", "error", "spec", "progress", "trial_counts", "hypervolume",
                     "waiting_for", "best_trial", "final_models"},
    "TrialDetail": {"id", "search_id", "index", "state", "phase", "baseline", "source_index", "test_accuracy",
                    "errors", "progress", "result", "architecture"},
    "Pareto": {"search_id", "points", "tested", "hypervolume"},
    "Leaderboard": {"entries", "next_cursor"},
    "SearchList": {"searches", "next_cursor"},
    "TrialList": {"trials"},
    "FinalQueued": {"queued"},
    "DatasetRow": {"name", "id", "summary", "bytes"},
    "DatasetSummary": {"input", "class_names", "train_per_class", "test_per_class"},
    "Uploaded": {"dataset"},
    "DatasetList": {"datasets", "uploaded"},
    "ErrorDetail": {"code", "message", "field"},
}


def client_calls() -> Set[Tuple[str, str]]:
    """(method, path template) of every request in the client's source."""
    calls = set()
    pattern = re.compile(r"_transport\.(\w+)\(\s*f?\"(/[^\"]*)\"")
    for path in SOURCE.glob("*.py"):
        for method, route in pattern.findall(path.read_text()):
            calls.add((METHOD_OF[method], re.sub(r"\{[^}]*\}", "{}", route)))
    # The event stream is opened in the transport itself.
    assert '"/events"' in (SOURCE / "_transport.py").read_text()
    calls.add(("GET", "/events"))
    return calls


def properties(schemas: Dict[str, Any], schema: Dict[str, Any]) -> Set[str]:
    """Property names of a schema, through ``$ref`` and ``allOf``."""
    if "$ref" in schema:
        return properties(schemas, schemas[schema["$ref"].rsplit("/", 1)[1]])
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= properties(schemas, part)
    return names


def test_every_call_is_an_operation_of_the_document(server: Server) -> None:
    document = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()
    operations = {
        (method.upper(), re.sub(r"\{[^}]*\}", "{}", path.removeprefix("/api/v1")))
        for path, item in document["paths"].items()
        for method in item
    }
    calls = client_calls()
    assert len(calls) >= 15, calls
    missing = calls - operations
    assert not missing, f"the client calls operations the server does not document: {missing}"


def test_every_field_read_is_in_the_schema(server: Server) -> None:
    schemas = httpx.get(f"{server.url}/api/v1/openapi.json", timeout=10).json()["components"]["schemas"]
    for model, (schema_name, own) in MODEL_SCHEMAS.items():
        fields = {f.name for f in dataclasses.fields(model)} - {"raw"} - own
        unknown = fields - properties(schemas, schemas[schema_name])
        assert not unknown, f"{model.__name__} reads fields {schema_name} does not have: {unknown}"
    for schema_name, keys in READ_KEYS.items():
        unknown = keys - properties(schemas, schemas[schema_name])
        assert not unknown, f"the client reads fields {schema_name} does not have: {unknown}"
