"""The sans-I/O pool core shared by the asyncio and thread shells."""

from warmline._pool._core import (
    PROVEN_AFTER_S,
    Admission,
    ConnLike,
    Plan,
    PoolCore,
    Slot,
    Waiter,
    check_timeout,
    connect_verdict,
)
from warmline._pool._state import TRANSITIONS, IllegalTransition, SlotState

__all__ = [
    "PROVEN_AFTER_S",
    "TRANSITIONS",
    "Admission",
    "ConnLike",
    "IllegalTransition",
    "Plan",
    "PoolCore",
    "Slot",
    "SlotState",
    "Waiter",
    "check_timeout",
    "connect_verdict",
]
