"""Typed search specs: build one in code instead of writing JSON.

Every class has ``to_dict()``, which leaves out what was not set so the
server's defaults apply. Anything a class does not name can go in ``extra``
(merged last), and a plain dict works wherever a part is expected. The
server is the judge of a spec: a bad one raises ``SpecError`` naming the
field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union


def _clean(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict()  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class _Part:
    """Shared ``to_dict``: set fields only, ``extra`` merged last."""

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object the server takes."""
        out: Dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            out[f.name] = _clean(value)
        out.update(_clean(getattr(self, "extra", None) or {}))
        return out


@dataclass
class Evolution(_Part):
    """Regularized evolution: a population, tournaments of ``sample``."""

    population: Optional[int] = None
    sample: Optional[int] = None
    kind: str = "evolution"
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RandomSearch(_Part):
    """Random sampling of the space."""

    kind: str = "random"
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Asha(_Part):
    """Asynchronous successive halving: rungs from ``min_epochs`` to ``max_epochs``, ``1/eta`` go on."""

    min_epochs: Optional[int] = None
    max_epochs: Optional[int] = None
    eta: Optional[int] = None
    kind: str = "asha"
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Latency(_Part):
    """Batch-1 latency: a target (``mode`` ``soft`` or ``hard``) and a hard limit ``max_ms``."""

    target_ms: Optional[float] = None
    max_ms: Optional[float] = None
    mode: Optional[str] = None
    runtime: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Objective(_Part):
    """``reward`` (accuracy under a latency target, the default) or ``pareto`` (the whole front)."""

    kind: Optional[str] = None
    metrics: Optional[List[str]] = None
    latency: Optional[Latency] = None
    reference: Optional[Dict[str, float]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Budget(_Part):
    """How much a search may spend: trials, epochs, images per epoch, seconds, parallel trials."""

    max_trials: Optional[int] = None
    epochs: Optional[int] = None
    max_epochs_total: Optional[int] = None
    max_train_samples: Optional[int] = None
    max_seconds: Optional[float] = None
    parallelism: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Final(_Part):
    """Final training of the best ``top_k`` architectures for ``epochs``, with its own recipe,
    within ``max_seconds`` of estimated training time if given."""

    top_k: Optional[int] = None
    epochs: Optional[int] = None
    training: Optional[Dict[str, Any]] = None
    max_seconds: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)


Part = Union[Dict[str, Any], _Part]
"""A part of a spec: a typed object or a plain dict."""


@dataclass
class SearchSpec(_Part):
    """A whole search: what ``Client.submit`` takes besides a dict or a JSON file."""

    name: str
    dataset: str
    space: Optional[Union[str, Dict[str, Any]]] = None
    strategy: Optional[Part] = None
    scheduler: Optional[Part] = None
    objective: Optional[Part] = None
    budget: Optional[Part] = None
    training: Optional[Dict[str, Any]] = None
    final: Optional[Part] = None
    baselines: Optional[List[str]] = None
    labels: Optional[List[str]] = None
    seed: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict)
