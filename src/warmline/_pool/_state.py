"""The states of a pool slot and every legal move between them, in one table.

A slot owns at most one connection. Its state says who may touch it:

- ``EMPTY``: no connection; one is opened on first use (a lazy pool's slots
  start here, and return here when their connection ends).
- ``OPENING``: a caller is opening its connection inline (first use of an
  empty slot); the slot belongs to that caller.
- ``READY``: an idle, usable connection, on the pool's ready stack.
- ``IN_USE``: leased to one caller.
- ``HEALING``: its connection ended; a background reconnect is scheduled at
  ``slot.next_attempt``.
- ``CLOSED``: the pool closed; final.

The hot path (pop a ready slot, push it back) sets ``READY``/``IN_USE``
directly; every other move goes through :func:`move`, which checks this table.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

__all__ = ["TRANSITIONS", "IllegalTransition", "SlotState", "move"]


class SlotState(enum.IntEnum):
    EMPTY = 0
    OPENING = 1
    READY = 2
    IN_USE = 3
    HEALING = 4
    CLOSED = 5


EMPTY: Final = SlotState.EMPTY
OPENING: Final = SlotState.OPENING
READY: Final = SlotState.READY
IN_USE: Final = SlotState.IN_USE
HEALING: Final = SlotState.HEALING
CLOSED: Final = SlotState.CLOSED

TRANSITIONS: Final[dict[SlotState, frozenset[SlotState]]] = {
    # first use of a lazy slot; or a waiter given an empty slot to open
    EMPTY: frozenset({OPENING, HEALING, CLOSED}),
    # opened: to its caller (IN_USE) or, at connect(), the stack (READY);
    # failed: back to EMPTY (lazy) or to the healer (warm)
    OPENING: frozenset({IN_USE, READY, EMPTY, HEALING, CLOSED}),
    # leased; its idle connection died or aged out; pool closed
    READY: frozenset({IN_USE, HEALING, EMPTY, CLOSED}),
    # released usable, released dead (warm pool heals, lazy pool empties)
    IN_USE: frozenset({READY, HEALING, EMPTY, CLOSED}),
    # healed (ready, or straight to a waiter); pool closed
    HEALING: frozenset({READY, IN_USE, CLOSED}),
    CLOSED: frozenset(),
}


class IllegalTransition(AssertionError):
    """An internal bug: a slot was moved along an edge the table does not have."""


class _HasState(Protocol):
    state: SlotState


def move(slot: _HasState, new: SlotState) -> None:
    """Move ``slot`` to ``new``, refusing any edge not in :data:`TRANSITIONS`."""
    if new not in TRANSITIONS[slot.state]:
        raise IllegalTransition(f"slot cannot go from {slot.state.name} to {new.name}")
    slot.state = new
