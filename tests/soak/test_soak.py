"""The soak, in the normal test run: ``benchmarks/soak.py`` for a bounded time.

The duration comes from ``WARMLINE_SOAK_SECONDS`` (default 30, shared by the
asyncio and the thread pool); run ``uv run python -m benchmarks.soak
--seconds 60`` for the full one. The figures (requests done, errors by kind,
file descriptors, threads, tasks, memory) are printed to the terminal even
when pytest captures output.
"""

from __future__ import annotations

import logging
import os

import pytest
from benchmarks import soak

from warmline._server.launch import Server

SECONDS = float(os.environ.get("WARMLINE_SOAK_SECONDS", "30"))


# Bounded: the soak itself, then at most a few seconds of settling per pool.
@pytest.mark.timeout(int(SECONDS * 2 + 120))
def test_soak_no_leaks_exactly_one_outcome(
    granian: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest keeps every captured log record until the test ends, and a
    # reconnect warning's record holds the exception, whose traceback holds
    # the pool: the closed pool would look leaked. Records go nowhere here.
    logger = logging.getLogger("warmline")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [logging.NullHandler()])
    lines: list[str] = []
    phases = soak.run(SECONDS, upstream_port=granian.port, out=lines.append)
    report = "\n".join(lines)
    with capsys.disabled():
        print("\n" + report)
    assert [p.flavour for p in phases] == ["aio", "sync"]
    for phase in phases:
        assert phase.outcomes["ok"] > 0, report
        assert phase.requests > phase.outcomes["ok"], "no fault ever bit: " + report
    violations = [f"{p.flavour}: {v}" for p in phases for v in p.violations]
    assert not violations, report
