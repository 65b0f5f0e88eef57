"""What ``wait(progress=True)`` draws, with and without tqdm."""

from __future__ import annotations

import io
import sys

import pytest

from nas_client._progress import Reporter, SearchState

RUNNING = {
    "status": "running",
    "progress": {"trials_ended": 3, "max_trials": 12, "fraction": 0.25},
    "trial_counts": {"running": 2, "succeeded": 3},
    "best_trial": {"accuracy": 0.8765},
    "final_models": [],
}


def test_plain_lines_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if not installed
    out = io.StringIO()
    reporter = Reporter(True, out)
    reporter.update(SearchState(RUNNING))
    reporter.update(SearchState(RUNNING))  # unchanged: not printed again
    finals = dict(RUNNING, status="running", final_models=[{"state": "succeeded"}, {"state": "running"}])
    reporter.update(SearchState(finals))
    reporter.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "3/12 trials: running, 2 running, best 87.65%",
        "3/12 trials: running, 2 running, best 87.65%, final models 1/2",
    ]


def test_a_bar_with_tqdm() -> None:
    out = io.StringIO()
    reporter = Reporter(True, out)
    reporter.update(SearchState(RUNNING))
    reporter.close()
    assert "3/12" in out.getvalue() and "best 87.65%" in out.getvalue()


def test_nothing_when_disabled() -> None:
    out = io.StringIO()
    reporter = Reporter(False, out)
    reporter.update(SearchState(RUNNING))
    reporter.close()
    assert out.getvalue() == ""
