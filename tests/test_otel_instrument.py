"""warmline.contrib.otel.instrument() on real pools and clients, with the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import warmline
from tests.bodydriver import Driver
from tests.faultproxy import PoolDriver
from warmline._hooks import Hooks, RequestEvent
from warmline._server.launch import Server
from warmline.contrib.otel import instrument, traceparent


class Sdk:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for rm in [] if data is None else data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out.extend(m.data.data_points)
        return out


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    s = Sdk()
    yield s
    s.meter_provider.shutdown()
    s.tracer_provider.shutdown()


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_instrument_a_pool(flavour: str, sdk: Sdk, granian: Server) -> None:
    ends: list[RequestEvent] = []
    pool = PoolDriver(flavour, granian.url, connections=2, hooks=Hooks(on_response_end=ends.append))
    try:
        assert pool.get("/echo").status == 200  # before: not traced
        instrument(pool.pool, sdk.tracer_provider, sdk.meter_provider)
        echoed = json.loads(pool.get("/echo", params={"a": "1"}).content)
        missing = pool.get("/missing")
        assert missing.status == 404
        assert len(ends) == 3  # the user's own hooks still run
        spans = list(sdk.spans.get_finished_spans())
        assert len(spans) == 2
        ok, failed = spans
        assert ok.kind is SpanKind.CLIENT and ok.name == "GET"
        attrs = dict(ok.attributes or {})
        assert attrs["http.request.method"] == "GET"
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["server.port"] == int(granian.url.rsplit(":", 1)[1])
        assert attrs["url.full"] == granian.url + "/echo"
        assert attrs["http.response.status_code"] == 200
        assert attrs["warmline.ttfb"] >= 0
        # The trace context, as the server received it.
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["traceparent"] == traceparent(ok.context)
        assert failed.status.status_code is StatusCode.ERROR
        assert dict(failed.attributes or {})["error.type"] == "404"
        (duration,) = [p for p in sdk.points("http.client.request.duration") if p.count == 1][:1]
        assert duration.sum > 0
        gauges = sdk.points("http.client.open_connections")
        assert sum(p.value for p in gauges) == 2
    finally:
        pool.close()


@pytest.mark.parametrize("kind", ["client-aio", "client-sync"])
def test_instrument_a_client_covers_its_later_pools(kind: str, sdk: Sdk, granian: Server) -> None:
    d = Driver(kind, granian.url, timeout=10.0)
    try:
        instrument(d.target, sdk.tracer_provider, sdk.meter_provider)
        echoed = json.loads(d.get("/echo").content)
        (span,) = sdk.spans.get_finished_spans()
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["traceparent"] == traceparent(span.context)
        assert sdk.points("http.client.open_connections")  # the client's pools, by origin
    finally:
        d.close()


@pytest.mark.parametrize("flavour", ["aio", "sync"])
def test_a_failed_request_is_an_error_span(flavour: str, sdk: Sdk) -> None:
    from tests.scripted import Recorder

    with Recorder() as srv:
        pool = PoolDriver(flavour, srv.url, connections=1)
        try:
            instrument(pool.pool, sdk.tracer_provider, sdk.meter_provider)
            with pytest.raises(warmline.ReadTimeout):
                pool.get("/slow", timeout=0.1)
        finally:
            pool.close()
    (span,) = sdk.spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"].endswith("ReadTimeout")
    (point,) = sdk.points("http.client.request.duration")
    assert point.count == 1


def test_instrument_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="pool or client"):
        instrument(object())
