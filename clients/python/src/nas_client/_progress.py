"""Progress of a search being waited on: a tqdm bar when tqdm is installed, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional, TextIO


class Reporter:
    """Draws a search's progress; ``update`` after each refresh, ``close`` at the end."""

    def __init__(self, enabled: bool, stream: Optional[TextIO] = None) -> None:
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._bar: Any = None
        self._last_line = ""
        if enabled:
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=0, unit="trial", desc="trials", file=self._stream, dynamic_ncols=True)

    def update(self, summary: "SearchState") -> None:
        """Shows the search as last read."""
        if not self._enabled:
            return
        line = summary.describe()
        if self._bar is not None:
            # The search's trials, then (once they are queued) its final models.
            unit, done, total = summary.phase()
            if self._bar.total != total or self._bar.unit != unit:
                self._bar.reset(total=total)
                self._bar.unit = unit
                self._bar.set_description_str(unit + "s", refresh=False)
            self._bar.n = done
            self._bar.set_postfix_str(summary.postfix(), refresh=False)
            self._bar.refresh()
        elif line != self._last_line:
            print(line, file=self._stream, flush=True)
        self._last_line = line

    def close(self) -> None:
        """Ends the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SearchState:
    """The figures a progress line shows, from ``GET /searches/{id}``."""

    def __init__(self, detail: Dict[str, Any]) -> None:
        progress = detail.get("progress") or {}
        counts = detail.get("trial_counts") or {}
        self.status: str = detail.get("status", "?")
        self.trials_ended: int = int(progress.get("trials_ended", 0))
        self.max_trials: int = int(progress.get("max_trials", 0))
        self.running: int = int(counts.get("running", 0))
        best = detail.get("best_trial") or {}
        self.best_accuracy: Optional[float] = best.get("accuracy")
        finals = detail.get("final_models") or []
        self.finals = len(finals)
        self.finals_done = sum(1 for f in finals if f.get("state") not in ("pending", "running"))
        self.waiting_for: Optional[str] = detail.get("waiting_for")

    def phase(self) -> "tuple[str, int, int]":
        """What the bar counts: ``("trial", ended, max)``, or ``("final model", done, queued)`` once they are queued."""
        if self.finals:
            return "final model", self.finals_done, self.finals
        return "trial", self.trials_ended, self.max_trials

    def postfix(self) -> str:
        """Running trials, best accuracy and final models, for the bar's right side."""
        parts = [self.status, f"{self.running} running"]
        if self.best_accuracy is not None:
            parts.append(f"best {self.best_accuracy:.2%}")
        if self.finals:
            parts.append(f"final models {self.finals_done}/{self.finals}")
        if self.waiting_for:
            parts.append(self.waiting_for)
        return ", ".join(parts)

    def describe(self) -> str:
        """One plain line: trials ended of the maximum, then the postfix."""
        return f"{self.trials_ended}/{self.max_trials} trials: {self.postfix()}"
