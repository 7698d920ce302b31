"""Hooks, events, CompositeHooks and the safe_call failure policy."""

from __future__ import annotations

import logging
import pickle

import pytest

from warmline import _hooks
from warmline._hooks import (
    HOOK_NAMES,
    CloseReason,
    CompositeHooks,
    ConnectionEvent,
    HealEvent,
    Hooks,
    KeepWarmEvent,
    PhaseTimings,
    RequestEvent,
    safe_call,
)


@pytest.fixture(autouse=True)
def fresh_failure_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_hooks, "_failures", _hooks._HookFailureLog())


def event() -> RequestEvent:
    return RequestEvent("http://127.0.0.1:8080", "GET", "/x?y=1")


def test_no_callback_set_means_nothing_present() -> None:
    h = Hooks()
    assert h.present == frozenset()
    for name in HOOK_NAMES:
        assert getattr(h, name) is None
    assert repr(h) == "<Hooks none>"


def test_keyword_callbacks_are_present_and_called() -> None:
    seen: list[str] = []
    h = Hooks(on_response_end=lambda ev: seen.append(ev.path), on_error=print)
    assert h.present == {"on_response_end", "on_error"}
    assert h.on_response_end is not None
    h.on_response_end(event())
    assert seen == ["/x?y=1"]
    assert h.on_request_start is None


def test_subclass_methods_are_present() -> None:
    class Mine(Hooks):
        def on_slot_acquired(self, event: RequestEvent) -> None:
            self.waits.append(event.timings.acquire_wait)

        def __init__(self) -> None:
            super().__init__(on_error=print)
            self.waits: list[float | None] = []

    h = Mine()
    assert h.present == {"on_slot_acquired", "on_error"}
    ev = event()
    ev.timings.acquire_wait = 0.25
    assert h.on_slot_acquired is not None
    h.on_slot_acquired(ev)
    assert h.waits == [0.25]
    assert repr(h) == "<Mine on_error, on_slot_acquired>"


def test_assigning_later_updates_present_and_checks_callable() -> None:
    h = Hooks()
    h.on_keep_warm = print
    assert h.present == {"on_keep_warm"}
    h.on_keep_warm = None
    assert h.present == frozenset()
    with pytest.raises(TypeError, match="callable"):
        h.on_error = 3  # type: ignore[assignment]


def test_non_callable_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="on_error"):
        Hooks(on_error="print")  # type: ignore[arg-type]


def test_phase_timings_add_up_to_total() -> None:
    t = PhaseTimings()
    assert t.body is None
    t.acquire_wait, t.write, t.ttfb, t.total = 0.001, 0.0005, 0.004, 0.0075
    assert t.body == pytest.approx(0.002)
    assert t.as_dict() == {
        "acquire_wait": 0.001,
        "write": 0.0005,
        "ttfb": 0.004,
        "body": pytest.approx(0.002),
        "total": 0.0075,
    }


def test_request_event_url_headers_and_defaults() -> None:
    ev = event()
    assert ev.url == "http://127.0.0.1:8080/x?y=1"
    assert (ev.conn_id, ev.status, ev.error, ev.attempt) == (None, None, None, 1)
    assert ev.extra_headers is None
    ev.add_header("traceparent", "00-abc-def-01")
    ev.add_header("x-b", "1")
    assert ev.extra_headers == [("traceparent", "00-abc-def-01"), ("x-b", "1")]
    assert not hasattr(ev, "__dict__")  # slotted: no per-event dict
    assert event().timings is not ev.timings


def test_events_are_picklable_with_their_fields() -> None:
    events: list[object] = [
        event(),
        ConnectionEvent("o", 3, reason=CloseReason.IDLE_TIMEOUT),
        HealEvent("o", None, failures=2, duration=0.1, error=OSError("refused")),
        KeepWarmEvent("o", 1, "HEAD", "/", 200, 0.002),
    ]
    for ev in events:
        back = pickle.loads(pickle.dumps(ev))
        assert type(back) is type(ev)
        assert repr(back) == repr(ev)
    assert CloseReason.PEER_CLOSED == "peer_closed"


def test_safe_call_returns_true_when_the_hook_returns() -> None:
    seen: list[object] = []
    assert safe_call(seen.append, 1) is True
    assert seen == [1]


def boom(event: object) -> None:
    raise RuntimeError("hook bug")


def test_safe_call_logs_once_then_rate_limits(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="warmline")
    assert safe_call(boom, event()) is False
    assert safe_call(boom, event()) is False
    assert safe_call(boom, event()) is False
    records = [r for r in caplog.records if r.name == "warmline"]
    assert len(records) == 1
    assert "tests.test_hooks.boom" in records[0].getMessage()
    assert records[0].exc_info is not None


def test_safe_call_logs_again_after_the_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="warmline")
    now = [1000.0]
    monkeypatch.setattr(_hooks.time, "monotonic", lambda: now[0])
    safe_call(boom, 1)
    safe_call(boom, 1)
    safe_call(boom, 1)
    now[0] += 61.0
    safe_call(boom, 1)
    messages = [r.getMessage() for r in caplog.records if r.name == "warmline"]
    assert len(messages) == 2
    assert "2 more failures" in messages[1]


def test_each_hook_function_is_logged_on_its_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="warmline")

    def other(event: object) -> None:
        raise KeyError("x")

    safe_call(boom, 1)
    safe_call(other, 1)
    assert len([r for r in caplog.records if r.name == "warmline"]) == 2


def test_failure_log_memory_is_bounded() -> None:
    log = _hooks._HookFailureLog()
    for i in range(_hooks._MAX_TRACKED * 3):

        def f(event: object) -> None:
            pass

        f.__qualname__ = f"f{i}"
        log.report(f, RuntimeError())
    assert len(log._state) <= _hooks._MAX_TRACKED


def test_base_exceptions_propagate() -> None:
    def interrupt(event: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        safe_call(interrupt, 1)


def test_composite_calls_every_child_in_order() -> None:
    calls: list[str] = []
    a = Hooks(on_response_end=lambda ev: calls.append("a"))
    b = Hooks(on_response_end=lambda ev: calls.append("b"), on_error=lambda ev: calls.append("e"))
    c = CompositeHooks(a, b)
    assert c.present == {"on_response_end", "on_error"}
    assert c.on_response_end is not None
    assert c.on_error is not None
    assert safe_call(c.on_response_end, event()) is True
    assert calls == ["a", "b"]
    # Only one child sets on_error: its own callable, no extra layer.
    assert c.on_error is b.on_error
    assert c.on_keep_warm is None


def test_composite_isolates_a_failing_child(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="warmline")
    calls: list[str] = []
    c = CompositeHooks(Hooks(on_error=boom), Hooks(on_error=lambda ev: calls.append("ok")))
    assert c.on_error is not None
    assert safe_call(c.on_error, event()) is False  # counted by the caller
    assert calls == ["ok"]
    messages = [r.getMessage() for r in caplog.records if r.name == "warmline"]
    assert len(messages) == 1  # logged under the child's name, not twice
    assert "test_hooks.boom" in messages[0]


def test_composite_flattens_and_validates() -> None:
    a, b, c = Hooks(on_error=print), Hooks(), Hooks(on_keep_warm=print)
    outer = CompositeHooks(CompositeHooks(a, b), c)
    assert outer.children == (a, b, c)
    assert CompositeHooks().present == frozenset()
    with pytest.raises(TypeError, match="Hooks objects"):
        CompositeHooks(print)  # type: ignore[arg-type]


def test_hook_names_match_the_hooks_attributes() -> None:
    annotated = {n for n in Hooks.__annotations__ if n.startswith("on_")}
    assert annotated == set(HOOK_NAMES)
    assert len(HOOK_NAMES) == 11
