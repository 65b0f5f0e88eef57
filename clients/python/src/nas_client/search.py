"""A search: its status, following it to the end, its leaderboard, fronts and final models."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, Optional

from ._progress import Reporter, SearchState
from ._transport import Transport
from .models import Hypervolume, LeaderboardEntry, Pareto, Progress, Table, _build
from .trial import Trial

RANK_KEYS = ("reward", "accuracy", "latency", "params", "macs", "rank")
"""What a leaderboard can be sorted by (``rank``: non-dominated rank, Pareto front first)."""

EVENTS_READ_TIMEOUT = 20.0
"""Seconds without a byte on the event stream (the server sends a keep-alive every 15) before it is reopened."""

_CHANGES = {"trial_finished", "search_finished", "trials_queued", "trial_claimed", "trial_progressed"}


class Search:
    """A handle on one search. Its attributes are as last read; ``refresh()`` reads it again."""

    def __init__(self, transport: Transport, data: Dict[str, Any]) -> None:
        self._transport = transport
        self.final_queued: Optional[int] = None
        """How many final models the last ``train_final`` queued."""
        self._set(data)

    def _set(self, data: Dict[str, Any]) -> None:
        self.raw: Dict[str, Any] = data
        """The search's JSON as the server last sent it."""
        self.id: int = data["id"]
        """Its id."""
        self.name: str = data.get("name", "")
        """Its name."""
        self.status: str = data["status"]
        """``running``, ``finished``, ``cancelled`` or ``failed``."""
        self.error: Optional[str] = data.get("error")
        """Why it failed, if it did."""
        self.spec: Dict[str, Any] = data.get("spec", {})
        """The spec as the server normalised it (defaults filled in)."""
        progress = data.get("progress")
        self.progress: Optional[Progress] = _build(Progress, progress) if progress else None
        """Trials ended of its maximum (absent in a submission's answer)."""
        self.trial_counts: Dict[str, int] = data.get("trial_counts", {})
        """Its candidate trials by state."""
        hv = data.get("hypervolume")
        self.hypervolume: Optional[Hypervolume] = _build(Hypervolume, hv) if hv else None
        """Hypervolume of the validated and tested fronts, when the objective has a reference point."""
        self.waiting_for: Optional[str] = data.get("waiting_for")
        """Set while no live worker can run its trials (``waiting for a worker with onnxruntime``)."""


    @property
    def running(self) -> bool:
        """Whether it is still running (its final models included)."""
        return self.status == "running"

    @property
    def best(self) -> Optional[LeaderboardEntry]:
        """Its best trial by reward, as last read."""
        best = self.raw.get("best_trial")
        return LeaderboardEntry.from_json(best) if best else None

    def __repr__(self) -> str:
        ended = f", {self.progress.trials_ended}/{self.progress.max_trials} trials" if self.progress else ""
        return f"Search(id={self.id}, name={self.name!r}, status={self.status!r}{ended})"

    def refresh(self) -> "Search":
        """Reads the search again: status, progress, counts, best trial, final models."""
        self._set(self._transport.get_json(f"/searches/{self.id}"))
        return self

    def cancel(self) -> "Search":
        """Cancels it (``ConflictError`` if it already ended); pending and running trials stop."""
        self._set(self._transport.post_json(f"/searches/{self.id}/cancel"))
        return self

    def train_final(
        self, top_k: Optional[int] = None, epochs: Optional[int] = None, training: Optional[Dict[str, Any]] = None
    ) -> "Search":
        """Queues the final training of a finished search's best architectures; returns the search, running again.

        Each is trained from scratch on training + validation data and tested
        once; ``wait()`` then follows them (``search.train_final(top_k=2).wait()``),
        and ``final_queued`` says how many were queued. Leave a setting out
        for the server's default. ``ConflictError`` while the search runs or
        once it has final models; ``SpecError`` for bad settings.
        """
        body: Dict[str, Any] = {}
        if top_k is not None:
            body["top_k"] = top_k
        if epochs is not None:
            body["epochs"] = epochs
        if training is not None:
            body["training"] = training
        queued = self._transport.post_json(f"/searches/{self.id}/final", body)
        self.refresh()
        self.final_queued = int(queued["queued"])
        return self

    def leaderboard(self, sort: str = "reward", top: Optional[int] = None) -> Table[LeaderboardEntry]:
        """Its ranked trials, best first, by ``sort`` (one of ``RANK_KEYS``); ``top`` keeps the first ones.

        Returns a list of ``LeaderboardEntry`` with ``.to_pandas()``.
        """
        return leaderboard(self._transport, self.id, sort, top)

    def final_models(self, baselines: bool = False) -> Table[Trial]:
        """Its final models, fastest first; ``baselines=True`` adds the zoo baselines trained beside them.

        The baselines (``trial.baseline`` names the zoo entry) are trained
        with the same final recipe as reference points, not picked by the search.
        """
        listed = self._transport.get_json(f"/searches/{self.id}/final")
        trials = (Trial(self._transport, t) for t in listed["trials"])
        return TrialTable(t for t in trials if baselines or t.baseline is None)

    def pareto(self, front_only: bool = False) -> Pareto:
        """The validated front, the tested front of its final models, and hypervolumes."""
        return Pareto.from_json(self._transport.get_json(f"/searches/{self.id}/pareto", {"front_only": front_only}))

    def trials(self, state: Optional[str] = None) -> Table[Trial]:
        """Its trials in index order, optionally only those in ``state``."""
        listed = self._transport.get_json(f"/searches/{self.id}/trials", {"state": state})
        return TrialTable(Trial(self._transport, t) for t in listed["trials"])

    def trial(self, trial_id: int) -> Trial:
        """One trial by id."""
        return Trial(self._transport, self._transport.get_json(f"/trials/{trial_id}"))

    def wait(
        self,
        progress: bool = True,
        timeout: Optional[float] = None,
        min_interval: float = 1.0,
        poll_interval: float = 5.0,
    ) -> "Search":
        """Blocks until the search ends (final models included) and returns it, refreshed.

        It follows the server's event stream and reads the search again when a
        trial changes, at most once per ``min_interval`` seconds, so it adds at
        most one request a second. Where the stream is unavailable it polls
        every ``poll_interval`` seconds instead. ``progress`` draws a bar
        (tqdm when installed, plain lines on stderr otherwise). A search
        cancelled meanwhile returns with ``status == "cancelled"``.
        ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        reporter = Reporter(progress)
        try:
            self._wait(reporter, deadline, max(min_interval, 0.0), max(poll_interval, min_interval))
        finally:
            reporter.close()
        return self

    def _wait(self, reporter: Reporter, deadline: Optional[float], min_interval: float, poll_interval: float) -> None:
        detail = self._transport.get_json(f"/searches/{self.id}")
        self._set(detail)
        reporter.update(SearchState(detail))
        if not self.running:
            return
        last_read = time.monotonic()
        follower = _EventFollower(self._transport, self.id)
        changed = False
        try:
            while self.running:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"search {self.id} still {self.status} after the timeout")
                # Read the search again when an event says something changed (but
                # not sooner than min_interval after the last read); with the
                # stream open and quiet, every EVENTS_READ_TIMEOUT anyway; once
                # the stream is gone, every poll_interval.
                if not follower.alive:
                    due = last_read + poll_interval
                elif changed:
                    due = last_read + min_interval
                else:
                    due = last_read + EVENTS_READ_TIMEOUT
                if now >= due:
                    detail = self._transport.get_json(f"/searches/{self.id}")
                    last_read = time.monotonic()
                    self._set(detail)
                    reporter.update(SearchState(detail))
                    changed = False
                    continue
                wait_for = due - now
                if deadline is not None:
                    wait_for = min(wait_for, max(deadline - now, 0.0))
                try:
                    item = follower.events.get(timeout=wait_for)
                except queue.Empty:
                    continue
                # A failed or ended stream leaves follower.alive false: polling from now on.
                if isinstance(item, str) and item != "closed":
                    changed = True
        finally:
            follower.stop()


class _EventFollower:
    """Reads the event stream of one search on a thread and hands relevant events over a queue."""

    def __init__(self, transport: Transport, search_id: int) -> None:
        self.events: "queue.Queue[Any]" = queue.Queue()
        self.failures = 0
        self._transport = transport
        self._search_id = search_id
        self._stream: Any = None
        self._stopped = threading.Event()
        self._dead = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"nas-events-{search_id}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the stream is open (or opening); false once it failed."""
        return not self._dead.is_set()

    def _run(self) -> None:
        try:
            self._stream = self._transport.events({"search": self._search_id}, EVENTS_READ_TIMEOUT)
            if self._stopped.is_set():
                self._stream.close()
                return
            for kind, data in self._stream:
                if self._stopped.is_set():
                    return
                if kind in _CHANGES and (not isinstance(data, dict) or data.get("search_id") == self._search_id):
                    self.events.put(kind)
                elif kind == "lagged":
                    self.events.put(kind)
        except Exception as err:  # noqa: BLE001 - any failure of the stream means: poll instead
            if not self._stopped.is_set():
                self.failures += 1
                self.events.put(err)
        finally:
            self._dead.set()
            self.events.put("closed")

    def stop(self) -> None:
        """Closes the stream and lets the thread end."""
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a stream another thread reads may raise
                pass


def leaderboard(transport: Transport, search_id: int, sort: str, top: Optional[int]) -> Table[LeaderboardEntry]:
    """Every ranked trial of a search (or its first ``top``), following the server's pages."""
    if sort not in RANK_KEYS:
        raise ValueError(f"sort must be one of {', '.join(RANK_KEYS)}, not {sort!r}")
    rows: Table[LeaderboardEntry] = Table()
    cursor: Optional[str] = None
    while True:
        limit = 1000 if top is None else min(1000, top - len(rows))
        if limit <= 0:
            return rows
        page = transport.get_json(
            f"/searches/{search_id}/leaderboard", {"sort": sort, "limit": limit, "cursor": cursor}
        )
        rows.extend(LeaderboardEntry.from_json(e) for e in page["entries"])
        cursor = page.get("next_cursor")
        if not cursor or not page["entries"]:
            return rows


class TrialTable(Table[Trial]):
    """Trials as a list; ``to_pandas()`` flattens each trial's result."""

    def to_pandas(self) -> Any:
        """One row per trial: id, index, phase, state, baseline, accuracies, latency, size."""
        import pandas  # type: ignore[import-untyped]

        rows = []
        for t in self:
            r = t.result
            rows.append(
                {
                    "trial_id": t.id,
                    "index": t.index,
                    "phase": t.phase,
                    "state": t.state,
                    "baseline": t.baseline,
                    "source_index": t.source_index,
                    "val_accuracy": r.val_accuracy if r else None,
                    "test_accuracy": t.test_accuracy,
                    "latency_ms": r.latency_ms.p50 if r else None,
                    "params": r.params if r else None,
                    "macs": r.macs if r else None,
                    "epochs": r.epochs if r else None,
                }
            )
        return pandas.DataFrame(rows)

