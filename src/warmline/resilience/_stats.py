"""Per-origin counters of what a client's retry and hedge policies did."""

from __future__ import annotations

import dataclasses

__all__ = ["ResilienceStats"]


@dataclasses.dataclass(slots=True)
class ResilienceStats:
    """What a client's retry and hedge policies did for one origin.

    ``client.resilience_stats()`` returns copies; the client updates its own
    without a lock (one ``+= 1`` each, as the pools count their stats).

    Attributes:
        retries: Attempts sent again after a retryable status or error.
        hedges_sent: Extra attempts sent while an earlier one was still out.
        hedges_won: Requests answered by a hedge rather than the first attempt.
    """

    retries: int = 0
    hedges_sent: int = 0
    hedges_won: int = 0
