"""warmline.contrib.otel with the real OpenTelemetry SDK, driven by hook events."""

from __future__ import annotations

import dataclasses
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from warmline import AtomicClientPool, ReadTimeout
from warmline._hooks import CompositeHooks, Hooks, RequestEvent, safe_call
from warmline._server.launch import Server
from warmline.contrib.otel import OtelHooks, observe, request_attributes, traceparent

ORIGIN = "http://127.0.0.1:8080"


@dataclasses.dataclass
class Otel:
    hooks: OtelHooks
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    yield Otel(OtelHooks(tracer_provider=tp, meter_provider=mp), spans, reader, tp, mp)
    mp.shutdown()
    tp.shutdown()


def run(
    hooks: Hooks,
    event: RequestEvent,
    *,
    status: int | None = 200,
    error: BaseException | None = None,
) -> None:
    """Drive the callbacks in the order the pools call them."""
    t = event.timings
    for name in ("on_request_start", "on_slot_acquired"):
        cb = getattr(hooks, name)
        if cb is not None:
            assert safe_call(cb, event)
    event.conn_id = 3
    t.acquire_wait, t.write = 0.0001, 0.00002
    if error is not None:
        t.total = 0.002
        event.error = error
        assert hooks.on_error is not None
        assert safe_call(hooks.on_error, event)
        return
    t.ttfb = 0.0004
    event.status = status
    assert hooks.on_response_head is not None
    assert safe_call(hooks.on_response_head, event)
    t.total = 0.0006
    assert hooks.on_response_end is not None
    assert safe_call(hooks.on_response_end, event)


def test_present_callbacks() -> None:
    assert OtelHooks().present == {
        "on_request_start",
        "on_response_head",
        "on_stale_retry",
        "on_response_end",
        "on_error",
    }


def test_a_successful_request_makes_one_client_span(otel: Otel) -> None:
    ev = RequestEvent(ORIGIN, "GET", "/api/v3/time?symbol=BTCUSDT&signature=abc123")
    run(otel.hooks, ev)
    (span,) = otel.finished()
    assert span.name == "GET"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["http.request.method"] == "GET"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == 8080
    assert attrs["url.full"] == (
        "http://127.0.0.1:8080/api/v3/time?symbol=BTCUSDT&signature=REDACTED"
    )
    assert attrs["http.response.status_code"] == 200
    assert attrs["warmline.ttfb"] == 0.0004
    assert "error.type" not in attrs
    assert span.status.status_code is StatusCode.UNSET
    assert ev.scratch == {}  # the span is not kept past the request


def test_traceparent_is_injected_for_the_span(otel: Otel) -> None:
    ev = RequestEvent(ORIGIN, "POST", "/order")
    run(otel.hooks, ev)
    (span,) = otel.finished()
    headers = dict(ev.extra_headers or [])
    ctx = span.get_span_context()
    assert ctx is not None
    flags = int(ctx.trace_flags)
    assert flags & 1  # sampled
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
    assert traceparent(ctx) == headers["traceparent"]


def test_no_injection_when_turned_off() -> None:
    tp = TracerProvider()
    ev = RequestEvent(ORIGIN, "GET", "/")
    run(OtelHooks(tracer_provider=tp, meter_provider=MeterProvider(), inject=False), ev)
    assert ev.extra_headers is None


def test_the_span_is_a_child_of_the_current_span(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        run(otel.hooks, RequestEvent(ORIGIN, "GET", "/"))
    child = next(s for s in otel.finished() if s.name == "GET")
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id


def test_http_error_status_marks_the_span(otel: Otel) -> None:
    run(otel.hooks, RequestEvent(ORIGIN, "GET", "/missing"), status=503)
    (span,) = otel.finished()
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR


def test_a_failure_records_the_exception_and_error_type(otel: Otel) -> None:
    exc = ReadTimeout("no byte within 1.0 s", origin=ORIGIN)
    run(otel.hooks, RequestEvent(ORIGIN, "GET", "/slow"), error=exc)
    (span,) = otel.finished()
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "warmline.errors.ReadTimeout"
    assert "http.response.status_code" not in attrs
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    (point,) = otel.points("http.client.request.duration")
    assert point.attributes["error.type"] == "warmline.errors.ReadTimeout"


def test_builtin_error_type_and_other_method(otel: Otel) -> None:
    run(otel.hooks, RequestEvent(ORIGIN, "PURGE", "/"), error=ConnectionResetError())
    (span,) = otel.finished()
    attrs = dict(span.attributes or {})
    assert span.name == "HTTP"
    assert attrs["http.request.method"] == "_OTHER"
    assert attrs["http.request.method_original"] == "PURGE"
    assert attrs["error.type"] == "ConnectionResetError"


def test_stale_retry_sets_the_resend_count(otel: Otel) -> None:
    ev = RequestEvent(ORIGIN, "GET", "/")
    assert otel.hooks.on_request_start is not None
    otel.hooks.on_request_start(ev)
    ev.attempt = 2
    assert otel.hooks.on_stale_retry is not None
    otel.hooks.on_stale_retry(ev)
    ev.status, ev.timings.total = 200, 0.001
    assert otel.hooks.on_response_end is not None
    otel.hooks.on_response_end(ev)
    (span,) = otel.finished()
    assert dict(span.attributes or {})["http.request.resend_count"] == 1


def test_duration_metric_has_low_cardinality_attributes(otel: Otel) -> None:
    for i in range(3):
        run(otel.hooks, RequestEvent(ORIGIN, "GET", f"/item/{i}"))
    (point,) = otel.points("http.client.request.duration")
    assert point.count == 3
    assert point.sum == pytest.approx(0.0018)
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "server.address": "127.0.0.1",
        "server.port": 8080,
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
    }
    assert point.explicit_bounds[0] == 0.0001


def test_end_without_start_and_double_end_are_ignored(otel: Otel) -> None:
    ev = RequestEvent(ORIGIN, "GET", "/")
    assert otel.hooks.on_response_end is not None
    otel.hooks.on_response_end(ev)  # hooks set after the request started
    assert otel.hooks.on_error is not None
    otel.hooks.on_error(ev)
    run(otel.hooks, ev)
    otel.hooks.on_response_end(ev)  # a second end: still one span
    assert len(otel.finished()) == 1


def test_composes_with_user_hooks(otel: Otel) -> None:
    seen: list[int | None] = []
    both = CompositeHooks(otel.hooks, Hooks(on_response_end=lambda ev: seen.append(ev.status)))
    run(both, RequestEvent(ORIGIN, "GET", "/"))
    assert seen == [200]
    assert len(otel.finished()) == 1


def test_request_attributes_for_unix_and_ipv6_origins() -> None:
    uds = request_attributes(RequestEvent("unix:///run/api.sock", "GET", "/x"))
    assert uds["server.address"] == "/run/api.sock"
    assert "server.port" not in uds
    v6 = request_attributes(RequestEvent("https://[::1]:8443", "GET", "/"))
    assert (v6["server.address"], v6["server.port"], v6["url.scheme"]) == ("::1", 8443, "https")


def test_invalid_span_context_gives_no_traceparent() -> None:
    assert traceparent(trace.INVALID_SPAN) is None


def test_trace_context_reaches_the_server(otel: Otel, granian: Server) -> None:
    # What the pools will do: send event.extra_headers with the request.
    with AtomicClientPool.connect(granian.url, connections=1) as pool:
        ev = RequestEvent(str(pool.origin), "GET", "/echo")
        assert otel.hooks.on_request_start is not None
        otel.hooks.on_request_start(ev)
        r = pool.get("/echo", headers=dict(ev.extra_headers or []))
        ev.status, ev.timings.total = r.status, 0.001
        assert otel.hooks.on_response_end is not None
        otel.hooks.on_response_end(ev)
    received = dict(json.loads(r.content)["headers"])
    (span,) = otel.finished()
    assert received["traceparent"] == traceparent(span.get_span_context())  # type: ignore[arg-type]


@dataclasses.dataclass
class FakeStats:
    ready: int
    in_use: int
    reconnecting: int


class FakePool:
    origin = "http://10.0.0.1:81"

    def stats(self) -> FakeStats:
        return FakeStats(ready=5, in_use=3, reconnecting=1)


def test_observe_reports_pool_gauges(otel: Otel, granian: Server) -> None:
    fake = FakePool()
    observe(fake, otel.meter_provider)
    with AtomicClientPool.connect(granian.url, connections=2) as pool:
        observe(pool, otel.meter_provider)
        points = otel.points("http.client.open_connections")
    by = {
        (p.attributes["server.address"], p.attributes["http.connection.state"]): p.value
        for p in points
    }
    assert by[("10.0.0.1", "idle")] == 5
    assert by[("10.0.0.1", "active")] == 3
    assert by[("127.0.0.1", "idle")] == 2
    assert by[("127.0.0.1", "active")] == 0
    (reconnecting,) = [
        p
        for p in otel.points("warmline.pool.reconnecting")
        if p.attributes["server.address"] == "10.0.0.1"
    ]
    assert reconnecting.value == 1
    del fake
    gc.collect()
    later = otel.points("http.client.open_connections")
    assert all(p.attributes["server.address"] != "10.0.0.1" for p in later)


def test_observe_rejects_objects_without_stats() -> None:
    with pytest.raises(TypeError, match="stats"):
        observe(object())
