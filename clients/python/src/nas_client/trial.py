"""A trial: one architecture of a search (or a final model), its result and its downloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ._transport import Transport
from .models import TrialResult

PathLike = Union[str, "os.PathLike[str]"]


class Trial:
    """A handle on one trial; ``refresh()`` re-reads it from the server."""

    def __init__(self, transport: Transport, data: Dict[str, Any]) -> None:
        self._transport = transport
        self._set(data)

    def _set(self, data: Dict[str, Any]) -> None:
        self.raw: Dict[str, Any] = data
        """The trial's JSON as the server sent it."""
        self.id: int = data["id"]
        """Its id (what ``/trials/{id}`` takes)."""
        self.search_id: int = data["search_id"]
        """The search it belongs to."""
        self.index: int = data["index"]
        """Its index in the search (baselines are negative)."""
        self.state: str = data["state"]
        """``pending``, ``running``, ``succeeded``, ``failed``, ``cancelled``, ``rejected`` or ``stopped``."""
        self.phase: str = data.get("phase", "search")
        """``search`` for a candidate, ``final`` for a final model."""
        self.baseline: Optional[str] = data.get("baseline")
        """The zoo entry, for a baseline."""
        self.source_index: Optional[int] = data.get("source_index")
        """For a final model: the index of the search trial whose architecture it retrains."""
        self.test_accuracy: Optional[float] = data.get("test_accuracy")
        """Test accuracy (final models are tested once)."""
        self.errors: List[Dict[str, Any]] = data.get("errors", [])
        """Each failed attempt: ``{attempt, error, at_ms}``."""
        self.progress: Optional[Dict[str, Any]] = data.get("progress")
        """A running trial's ``{epoch, epochs, train_loss, val_accuracy}``."""
        result = data.get("result")
        self.result: Optional[TrialResult] = TrialResult.from_json(result) if result else None
        """What it measured (succeeded and rejected trials)."""

    def __repr__(self) -> str:
        accuracy = self.test_accuracy if self.test_accuracy is not None else (self.result and self.result.val_accuracy)
        latency = self.result.latency_ms.p50 if self.result else None
        return (
            f"Trial(id={self.id}, search_id={self.search_id}, index={self.index}, phase={self.phase!r}, "
            f"state={self.state!r}, accuracy={accuracy}, latency_ms={latency})"
        )

    def refresh(self) -> "Trial":
        """Re-reads the trial (state, progress, result)."""
        self._set(self._transport.get_json(f"/trials/{self.id}"))
        return self

    def architecture(self) -> Dict[str, Any]:
        """Its architecture JSON (what ``nas train --arch`` loads)."""
        architecture: Dict[str, Any] = self._transport.get_json(f"/trials/{self.id}/architecture")
        return architecture

    def download_onnx(self, path: PathLike) -> Path:
        """Writes the trained model as ONNX to ``path`` (a file, or a folder for ``trial-ID.onnx``).

        Raises ``ConflictError`` for a trial that did not succeed. An interrupted
        download leaves nothing at ``path``.
        """
        target = Path(path)
        if target.is_dir():
            target = target / f"trial-{self.id}.onnx"
        return self._transport.download(f"/trials/{self.id}/model.onnx", target)

    def download_weights(self, directory: PathLike) -> Path:
        """Writes ``trial-ID.safetensors`` and ``trial-ID.json`` (its architecture) into ``directory``.

        Returns the weights' path. Raises ``NotFoundError`` before the trial has weights.
        """
        folder = Path(directory)
        weights = self._transport.download(f"/trials/{self.id}/weights", folder / f"trial-{self.id}.safetensors")
        self._transport.download(f"/trials/{self.id}/architecture", folder / f"trial-{self.id}.json")
        return weights
