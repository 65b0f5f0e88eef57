"""Typed views of what the server returns; each keeps the full JSON in ``raw``.

Unknown fields are ignored, so a newer server does not break an older client.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Generic, List, Optional, Type, TypeVar

T = TypeVar("T")


def _build(cls: Type[T], data: Dict[str, Any], **overrides: Any) -> T:
    """A dataclass from the JSON keys that name its fields (and ``raw``)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in data.items() if k in names}
    values.update(overrides)
    if "raw" in names:
        values["raw"] = data
    return cls(**values)


class Table(List[T], Generic[T]):
    """A plain list of rows; ``to_pandas()`` gives a DataFrame when pandas is installed."""

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame``, one column per field (``raw`` left out)."""
        try:
            import pandas  # type: ignore[import-untyped]
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("to_pandas() needs pandas: pip install 'nas-client[pandas]'") from err
        return pandas.DataFrame([row_dict(row) for row in self])


def row_dict(row: Any) -> Dict[str, Any]:
    """A row as a flat dict: its fields without ``raw``; nested latency as ``latency_ms``."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(row):
        if f.name == "raw":
            continue
        value = getattr(row, f.name)
        if isinstance(value, LatencyMs):
            value = value.p50
        elif dataclasses.is_dataclass(value):
            value = row_dict(value)
        out[f.name] = value
    return out


@dataclass
class Progress:
    """How far a search is: trials ended of its maximum."""

    trials_ended: int
    max_trials: int
    fraction: float


@dataclass
class LatencyMs:
    """A measured batch-1 inference latency, milliseconds (``p50`` is what searches rank by)."""

    p50: float
    p90: float
    min: Optional[float] = None
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    runs: Optional[int] = None
    runtime: Optional[str] = None
    predicted: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "LatencyMs":
        """From the API's ``latency_ms`` object."""
        return _build(cls, data)


@dataclass
class TrialResult:
    """What a trained (or rejected) trial measured: accuracy, latency, size, speed."""

    latency_ms: LatencyMs
    params: int
    macs: int
    device: str
    val_accuracy: Optional[float] = None
    test_accuracy: Optional[float] = None
    reward: Optional[float] = None
    train_seconds: Optional[float] = None
    images_per_second: Optional[float] = None
    epochs: Optional[int] = None
    reason: Optional[str] = None
    class_names: Optional[List[str]] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "TrialResult":
        """From the API's ``TrialResult``."""
        return _build(cls, data, latency_ms=LatencyMs.from_json(data["latency_ms"]))


@dataclass
class LeaderboardEntry:
    """One ranked trial of a search's leaderboard."""

    rank: int
    trial_id: int
    index: int
    reward: float
    state: str
    rung: int
    epochs: int
    blocks: str
    accuracy: Optional[float] = None
    latency_ms: Optional[float] = None
    params: Optional[int] = None
    macs: Optional[int] = None
    front: Optional[int] = None
    baseline: Optional[str] = None
    parent_index: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "LeaderboardEntry":
        """From the API's ``LeaderboardEntry``."""
        return _build(cls, data)


@dataclass
class ParetoPoint:
    """A ranked trial on the validation accuracy / latency plane."""

    trial_id: int
    index: int
    accuracy: float
    latency_ms: float
    reward: float
    on_front: bool
    front: int
    rung: int
    state: str
    params: Optional[int] = None
    macs: Optional[int] = None
    baseline: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class TestedPoint:
    """A final model (or a zoo baseline trained beside them) on the test accuracy / latency plane."""

    __test__ = False  # not a pytest test class

    trial_id: int
    test_accuracy: float
    latency_ms: float
    on_front: bool
    source_index: Optional[int] = None
    params: Optional[int] = None
    macs: Optional[int] = None
    baseline: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Hypervolume:
    """A search's hypervolumes (0..1) against its reference point."""

    metrics: List[str]
    reference: List[float]
    validated: float
    tested: Optional[float] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Pareto:
    """A search's validated front (``points``), its tested front (``tested``) and hypervolumes."""

    search_id: int
    points: Table[ParetoPoint]
    tested: Table[TestedPoint]
    hypervolume: Optional[Hypervolume]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def front(self) -> Table[ParetoPoint]:
        """The validated Pareto front only, fastest first."""
        return Table(p for p in self.points if p.on_front)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Pareto":
        """From the API's ``Pareto``."""
        hv = data.get("hypervolume")
        return cls(
            search_id=data["search_id"],
            points=Table(_build(ParetoPoint, p) for p in data.get("points", [])),
            tested=Table(_build(TestedPoint, p) for p in data.get("tested", [])),
            hypervolume=_build(Hypervolume, hv) if hv else None,
            raw=data,
        )


@dataclass
class WorkerInfo:
    """A worker registered with the server."""

    id: str
    host: str
    labels: List[str]
    threads: int
    device: str
    alive: bool
    last_seen: int
    current_trial: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "WorkerInfo":
        """From the API's ``WorkerRow``."""
        return _build(cls, data)


@dataclass
class ZooEntry:
    """A reference architecture of the zoo (LeNet-5 ... MobileNet) at its published input."""

    name: str
    title: str
    input: List[int]
    classes: int
    params: int
    macs: int
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "ZooEntry":
        """From the API's ``ZooEntryView``."""
        return _build(cls, data)


@dataclass
class Dataset:
    """A dataset a search can name: built in (downloaded on first use) or uploaded."""

    name: str
    input: List[int]
    class_names: List[str]
    builtin: bool
    train_images: Optional[int] = None
    test_images: Optional[int] = None
    id: Optional[str] = None
    bytes: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_builtin(cls, data: Dict[str, Any]) -> "Dataset":
        """From an entry of ``GET /datasets``'s ``datasets``."""
        return _build(cls, data, builtin=True)

    @classmethod
    def from_uploaded(cls, data: Dict[str, Any]) -> "Dataset":
        """From an uploaded dataset's row (``DatasetRow``)."""
        summary = data.get("summary", {})
        return cls(
            name=data["name"],
            input=list(summary.get("input", [])),
            class_names=list(summary.get("class_names", [])),
            builtin=False,
            train_images=sum(summary.get("train_per_class", [])),
            test_images=sum(summary.get("test_per_class", [])),
            id=data.get("id"),
            bytes=data.get("bytes"),
            raw=data,
        )
