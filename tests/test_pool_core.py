"""The sans-I/O pool core alone: a fake clock, fake connections, no sockets.

Table-driven transitions, and a hypothesis state machine over random
sequences of everything a shell can tell the core, checking the invariants
after every step.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import warmline._pool
from warmline._policy import Backoff
from warmline._pool import (
    PROVEN_AFTER_S,
    TRANSITIONS,
    Admission,
    IllegalTransition,
    Plan,
    PoolCore,
    Slot,
    SlotState,
    Waiter,
    check_timeout,
    connect_verdict,
)
from warmline._pool._state import move
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    PoolClosed,
    ProxyError,
)

NO_JITTER = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)


class FakeConn:
    def __init__(self, opened_at: float, served: bool = False) -> None:
        self.opened_at = opened_at
        self.served = served
        self.closed = False


def warm_core(size: int = 2, now: float = 0.0, **kw: object) -> PoolCore[FakeConn]:
    core: PoolCore[FakeConn] = PoolCore(size, backoff=NO_JITTER, **kw)  # type: ignore[arg-type]
    plan: Plan[FakeConn] = Plan()
    for slot in core.start_connect():
        core.opened(slot, FakeConn(now), now, plan)
    return core


# -- the table ---------------------------------------------------------------------


@pytest.mark.parametrize("old", list(SlotState))
@pytest.mark.parametrize("new", list(SlotState))
def test_move_follows_the_table(old: SlotState, new: SlotState) -> None:
    slot: Slot[FakeConn] = Slot(0)
    slot.state = old
    if new in TRANSITIONS[old]:
        move(slot, new)
        assert slot.state is new
    else:
        with pytest.raises(IllegalTransition):
            move(slot, new)
        assert slot.state is old


def test_closed_is_final() -> None:
    assert TRANSITIONS[SlotState.CLOSED] == frozenset()


# -- rules, one by one -------------------------------------------------------------


def test_pop_is_lifo_and_push_returns() -> None:
    core = warm_core(3)
    first = core.pop()
    assert first is core.slots[2] and first.state is SlotState.IN_USE
    core.push(first)
    assert core.pop() is first


def test_waiters_are_served_first_come_first_served() -> None:
    core = warm_core(1)
    slot = core.pop()
    assert slot is not None
    waiters = [Waiter() for _ in range(3)]
    plan: Plan[FakeConn] = Plan()
    for w in waiters:
        core.add_waiter(w, plan)
    assert not plan.wake and core.stats.acquire_waits == 3
    core.release(slot, True, 1.0, plan)
    assert plan.wake == [waiters[0]] and waiters[0].slot is slot
    assert slot.state is SlotState.IN_USE and not core.ready


def test_removed_waiter_is_skipped_and_removal_reports_service() -> None:
    core = warm_core(1)
    slot = core.pop()
    assert slot is not None
    a, b = Waiter(), Waiter()
    plan: Plan[FakeConn] = Plan()
    core.add_waiter(a, plan)
    core.add_waiter(b, plan)
    assert core.remove_waiter(a) is True
    core.release(slot, True, 1.0, plan)
    assert b.slot is slot and a.slot is None
    assert core.remove_waiter(b) is False  # already served: the caller owns the slot


def test_idle_close_of_a_proven_connection_heals_at_once() -> None:
    core = warm_core(1)
    plan: Plan[FakeConn] = Plan()
    slot = core.slots[0]
    core.lost(slot, PROVEN_AFTER_S + 0.3, plan)  # keep-alive timeout, never served
    assert slot.state is SlotState.HEALING and slot.failures == 0
    assert slot.next_attempt == PROVEN_AFTER_S + 0.3  # no backoff: not a failure


def test_a_connection_dropped_at_once_meets_the_backoff() -> None:
    core = warm_core(1)
    plan: Plan[FakeConn] = Plan()
    slot = core.slots[0]
    core.lost(slot, 0.001, plan)  # accepted and dropped
    assert slot.failures == 1 and slot.next_attempt == pytest.approx(0.101)
    conn = FakeConn(0.2)
    core.opened(slot, conn, 0.2, plan)
    core.lost(slot, 0.201, plan)
    assert slot.failures == 2 and slot.next_attempt == pytest.approx(0.401)


def test_open_failed_backs_off_and_counts() -> None:
    core = warm_core(1)
    plan: Plan[FakeConn] = Plan()
    slot = core.slots[0]
    core.lost(slot, 5.0, plan)
    assert core.open_failed(slot, 5.0, plan) == 1
    assert slot.next_attempt == pytest.approx(5.1)
    assert core.due(5.05) == [] and core.due(5.1) == [slot]
    assert core.next_due() == pytest.approx(5.1)
    assert core.stats.reconnect_failures == 1
    core.opened(slot, FakeConn(5.2), 5.2, plan)
    assert slot.state is SlotState.READY and core.stats.reconnects == 1


def test_release_of_an_unusable_slot_heals_and_double_release_is_ignored() -> None:
    core = warm_core(1)
    slot = core.pop()
    assert slot is not None
    conn = slot.conn
    plan: Plan[FakeConn] = Plan()
    core.release(slot, False, 2.0, plan)
    assert plan.close == [conn] and plan.heal == [slot] and slot.conn is None
    core.release(slot, True, 2.0, plan)  # a second release: nothing happens
    assert slot.state is SlotState.HEALING and not core.ready


def test_close_fails_waiters_and_returns_in_flight_connections() -> None:
    core = warm_core(2)
    busy = core.pop()
    assert busy is not None
    in_flight_conn = busy.conn
    other = core.pop()
    assert other is not None
    w = Waiter()
    plan: Plan[FakeConn] = Plan()
    core.add_waiter(w, plan)
    core.release(other, True, 1.0, plan)  # serves w
    w2 = Waiter()
    core.add_waiter(w2, plan)
    plan = Plan()
    in_flight = core.close(plan)
    assert in_flight_conn in in_flight and isinstance(w2.error, PoolClosed)
    assert all(s.state is SlotState.CLOSED for s in core.slots)
    late = Waiter()
    core.add_waiter(late, plan)
    assert isinstance(late.error, PoolClosed) and late in plan.wake
    core.release(busy, True, 2.0, plan)  # after close: nothing to do
    assert not core.ready


def test_lazy_core_opens_on_demand_and_empties() -> None:
    core: PoolCore[FakeConn] = PoolCore(2, backoff=NO_JITTER, lazy=True)
    plan: Plan[FakeConn] = Plan()
    w = Waiter()
    core.add_waiter(w, plan)
    slot = w.slot
    assert slot is not None and slot.state is SlotState.OPENING
    core.opened(slot, FakeConn(0.0), 0.0, plan, keep=True)
    assert slot.state is SlotState.IN_USE
    core.release(slot, False, 1.0, plan)
    assert slot.state is SlotState.EMPTY and slot in core.empty


def test_keep_alive_false_never_reuses() -> None:
    core = warm_core(1, keep_alive=False)
    slot = core.pop()
    assert slot is not None and not core.fast
    plan: Plan[FakeConn] = Plan()
    core.release(slot, True, 1.0, plan)
    assert slot.state is SlotState.HEALING and plan.close


def test_max_lifetime_and_idle_timeout_age_slots() -> None:
    core = warm_core(1, max_lifetime=10.0, idle_timeout=3.0)
    slot = core.slots[0]
    assert not core.aged(slot, 2.0)
    assert core.aged(slot, 3.5)  # idle too long
    plan: Plan[FakeConn] = Plan()
    core.sweep(3.5, plan)
    assert slot.state is SlotState.HEALING


def test_admission_limits_total_and_evicts_lru_of_lazy_pools() -> None:
    admission = Admission(2)
    a: PoolCore[FakeConn] = PoolCore(2, backoff=NO_JITTER, lazy=True, admission=admission)
    b: PoolCore[FakeConn] = PoolCore(2, backoff=NO_JITTER, lazy=True, admission=admission)
    plan: Plan[FakeConn] = Plan()
    held = []
    for _ in range(2):  # two at once: both of a's slots open
        w = Waiter()
        a.add_waiter(w, plan)
        assert w.slot is not None and w.slot.state is SlotState.OPENING
        a.opened(w.slot, FakeConn(0.0), 0.0, plan, keep=True)
        held.append(w.slot)
    for slot in held:
        a.release(slot, True, 1.0, plan)
    assert admission.open == 2 and len(a.ready) == 2
    w = Waiter()
    plan = Plan()
    b.add_waiter(w, plan)  # over the total: a's LRU idle connection goes
    assert w.slot is not None and len(plan.close) == 1 and len(a.ready) == 1
    assert admission.open == 2


def test_admission_hands_a_freed_permit_to_the_waiting_pool() -> None:
    admission = Admission(1)
    a: PoolCore[FakeConn] = PoolCore(1, backoff=NO_JITTER, lazy=True, admission=admission)
    b: PoolCore[FakeConn] = PoolCore(1, backoff=NO_JITTER, lazy=True, admission=admission)
    plan: Plan[FakeConn] = Plan()
    wa = Waiter()
    a.add_waiter(wa, plan)
    assert wa.slot is not None
    a.opened(wa.slot, FakeConn(0.0), 0.0, plan, keep=True)
    wb = Waiter()
    b.add_waiter(wb, plan)
    assert wb.slot is None  # a's one connection is in use: nothing to evict
    plan = Plan()
    a.release(wa.slot, False, 1.0, plan)  # closes: the permit frees
    assert plan.redispatch == [b]
    b.dispatch(plan)
    assert wb.slot is not None and admission.open == 1


def test_after_fork_forgets_everything_and_heals() -> None:
    core = warm_core(2)
    slot = core.pop()
    w = Waiter()
    core.add_waiter(w, Plan())
    inherited = core.after_fork()
    assert len(inherited) == 2 and not core.waiters and not core.ready
    assert all(s.state is SlotState.HEALING and s.conn is None for s in core.slots)
    assert slot is not None and core.due(0.0) == core.slots


def test_stale_retry_rule() -> None:
    core = warm_core(1)
    stale = ConnectionClosed("x", received_any=False)
    assert core.retry_stale(stale, "GET") and core.stats.stale_retries == 1
    assert not core.retry_stale(stale, "POST")
    assert not core.retry_stale(ConnectionClosed("x", received_any=True), "GET")
    off = warm_core(1, retry_stale=False)
    assert not off.retry_stale(stale, "GET")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0, 0.0), (1, 1.0), (2.5, 2.5), (float("inf"), None)],
)
def test_check_timeout_accepts(value: object, expected: float | None) -> None:
    assert check_timeout(value, "t") == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError)],
)
def test_check_timeout_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="t must"):
        check_timeout(value, "t")


def test_connect_verdict() -> None:
    assert connect_verdict([], 2, 2, "o") is None
    timeouts = [ConnectTimeout("slow"), ConnectTimeout("slow")]
    assert type(connect_verdict(timeouts, 2, 1, "o")) is ConnectTimeout
    mixed = [ConnectTimeout("slow"), ConnectError("refused")]
    assert type(connect_verdict(mixed, 2, 1, "o")) is ConnectError
    assert connect_verdict(mixed[:1], 2, 1, "o") is None
    refused = [ProxyError("407", proxy="http://***@p:1", status=407)]
    verdict = connect_verdict(refused, 1, 1, "o")
    assert isinstance(verdict, ProxyError) and verdict.status == 407
    interrupt = KeyboardInterrupt()
    assert connect_verdict([interrupt], 1, 1, "o") is interrupt


# -- the state machine ---------------------------------------------------------------


class CoreMachine(RuleBasedStateMachine):
    """Random sequences of what a shell tells the core; invariants after each."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.core: PoolCore[FakeConn] = warm_core(3)
        self.leased: list[Slot[FakeConn]] = []
        self.queue: list[Waiter] = []  # waiting, in arrival order
        self.served: list[Waiter] = []  # the order waiters were served in
        self.arrivals: list[Waiter] = []

    def carry_out(self, plan: Plan[FakeConn]) -> None:
        for w in plan.wake:
            if w.slot is not None:
                self.served.append(w)
                self.leased.append(w.slot)
            if w in self.queue:
                self.queue.remove(w)

    @rule(dt=st.floats(0, 2))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def try_acquire(self) -> None:
        if self.core.closed:
            return
        slot = self.core.pop()
        if slot is not None:
            self.leased.append(slot)

    @rule()
    def acquire(self) -> None:
        w = Waiter()
        plan: Plan[FakeConn] = Plan()
        self.core.add_waiter(w, plan)
        if w.error is None and w.slot is None:
            self.queue.append(w)
            self.arrivals.append(w)
        elif w.slot is not None:
            self.arrivals.append(w)
        self.carry_out(plan)

    @precondition(lambda self: bool(self.leased))
    @rule(i=st.integers(0, 100), usable=st.booleans())
    def release(self, i: int, usable: bool) -> None:
        slot = self.leased.pop(i % len(self.leased))
        plan: Plan[FakeConn] = Plan()
        self.core.release(slot, usable, self.now, plan)
        self.carry_out(plan)

    @precondition(lambda self: bool(self.core.ready))
    @rule(i=st.integers(0, 100))
    def idle_connection_lost(self, i: int) -> None:
        slot = self.core.ready[i % len(self.core.ready)]
        plan: Plan[FakeConn] = Plan()
        self.core.lost(slot, self.now, plan)
        self.carry_out(plan)

    @rule(ok=st.booleans())
    def heal_due(self, ok: bool) -> None:
        for slot in self.core.due(self.now):
            plan: Plan[FakeConn] = Plan()
            if ok:
                self.core.opened(slot, FakeConn(self.now), self.now, plan)
            else:
                self.core.open_failed(slot, self.now, plan)
            self.carry_out(plan)

    @precondition(lambda self: bool(self.queue))
    @rule(i=st.integers(0, 100))
    def waiter_gives_up(self, i: int) -> None:
        w = self.queue.pop(i % len(self.queue))
        assert self.core.remove_waiter(w)
        self.arrivals.remove(w)

    @rule()
    def close(self) -> None:
        plan: Plan[FakeConn] = Plan()
        self.core.close(plan)
        self.carry_out(plan)
        self.leased.clear()
        self.queue.clear()

    @invariant()
    def each_slot_in_one_state_and_the_sum_holds(self) -> None:
        counts = self.core.counts()
        assert sum(counts.values()) == len(self.core.slots)
        assert {id(s) for s in self.core.ready} == {
            id(s) for s in self.core.slots if s.state is SlotState.READY
        }
        assert len(self.core.ready) == counts["ready"]

    @invariant()
    def leases_are_in_use(self) -> None:
        if not self.core.closed:
            assert all(s.state is SlotState.IN_USE for s in self.leased)
            assert len({id(s) for s in self.leased}) == len(self.leased)
            assert len(self.leased) == self.core.counts()["in_use"]

    @invariant()
    def no_waiter_waits_while_a_slot_is_ready(self) -> None:
        assert not (self.core.waiters and self.core.ready)

    @invariant()
    def waiters_are_served_in_arrival_order(self) -> None:
        order = [w for w in self.arrivals if w in self.served]
        assert order == [w for w in self.served if w in self.arrivals]

    @invariant()
    def counters_add_up(self) -> None:
        stats = self.core.stats
        assert stats.reconnects >= 0 and stats.reconnect_failures >= 0
        snap = self.core.snapshot()
        assert snap.ready + snap.in_use + snap.reconnecting <= snap.size


CoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_core_state_machine = CoreMachine.TestCase


_IO_MODULES = {"asyncio", "socket", "threading", "select", "time", "selectors", "ssl"}


@pytest.mark.parametrize("module", ["_core", "_state", "_verbs"])
def test_the_core_imports_no_io_module(module: str) -> None:
    # DESIGN.md: the sans-I/O core knows no sockets, loops, threads or clocks
    # (the shells hand it the time); checked on the source, not by running.
    source = Path(warmline._pool.__file__).with_name(f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert "warmline" in imported or module == "_state"  # the parse found the imports
    assert not imported & _IO_MODULES
