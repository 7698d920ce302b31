"""warmline.contrib.prometheus with the real prometheus_client, parsed back."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Mapping
from typing import Any

import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from warmline import AtomicClientPool
from warmline._histogram import LatencyHistogram
from warmline._server.launch import Server
from warmline.contrib.prometheus import PoolCollector, instrument


@dataclasses.dataclass
class FakeStats:
    requests: int = 7
    errors: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: {"ReadTimeout": 2, "ConnectionClosed": 1}
    )
    reconnects: int = 3
    reconnect_failures: int = 1
    stale_retries: int = 4
    acquire_waits: int = 5
    ready: int = 6
    in_use: int = 2
    reconnecting: int = 0
    size: int = 8
    histograms: Mapping[str, LatencyHistogram] | None = None


class FakePool:
    def __init__(self, origin: str, stats: FakeStats) -> None:
        self.origin = origin
        self._stats = stats

    def stats(self) -> FakeStats:
        return self._stats


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by (sample name, sorted labels)."""
    text = generate_latest(registry).decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def lbl(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


ORIGIN = "http://api.example:443"


def test_counters_and_gauges_match_the_snapshot() -> None:
    registry = CollectorRegistry()
    pool = FakePool(ORIGIN, FakeStats())  # held weakly by the collector: keep it
    instrument(pool, registry=registry)
    got = scrape(registry)
    o = lbl(origin=ORIGIN)
    assert got[("warmline_requests_total", o)] == 7
    assert got[("warmline_reconnects_total", o)] == 3
    assert got[("warmline_reconnect_failures_total", o)] == 1
    assert got[("warmline_stale_retries_total", o)] == 4
    assert got[("warmline_acquire_waits_total", o)] == 5
    assert got[("warmline_errors_total", lbl(origin=ORIGIN, kind="ReadTimeout"))] == 2
    assert got[("warmline_errors_total", lbl(origin=ORIGIN, kind="ConnectionClosed"))] == 1
    assert got[("warmline_pool_ready", o)] == 6
    assert got[("warmline_pool_in_use", o)] == 2
    assert got[("warmline_pool_reconnecting", o)] == 0
    assert got[("warmline_pool_size", o)] == 8
    assert not any(name.startswith("warmline_request_duration") for name, _ in got)


def test_histograms_become_le_buckets_and_quantiles() -> None:
    total = LatencyHistogram()
    for ms in range(1, 101):  # 1.5 .. 100.5 ms: none within 1.1 % of a bound
        total.record((ms + 0.5) / 1000)
    stats = FakeStats(histograms={"total": total, "acquire_wait": LatencyHistogram()})
    registry = CollectorRegistry()
    collector = PoolCollector(buckets=(0.01, 0.04, 1.0), quantiles=(50, 99))
    registry.register(collector)
    pool = FakePool(ORIGIN, stats)
    collector.add(pool)
    got = scrape(registry)
    t = {"origin": ORIGIN, "phase": "total"}
    name = "warmline_request_duration_seconds"
    assert got[(name + "_bucket", lbl(**t, le="0.01"))] == 9
    assert got[(name + "_bucket", lbl(**t, le="0.04"))] == 39
    assert got[(name + "_bucket", lbl(**t, le="1.0"))] == 100
    assert got[(name + "_bucket", lbl(**t, le="+Inf"))] == 100
    assert got[(name + "_count", lbl(**t))] == 100
    assert got[(name + "_sum", lbl(**t))] == pytest.approx(5.1)
    summary = "warmline_request_latency_seconds"
    assert got[(summary, lbl(**t, quantile="0.5"))] == pytest.approx(0.0505, rel=0.011)
    assert got[(summary, lbl(**t, quantile="0.99"))] == pytest.approx(0.0995, rel=0.011)
    assert got[(summary + "_count", lbl(**t))] == 100
    # An empty phase has a count of 0 and no quantiles.
    w = {"origin": ORIGIN, "phase": "acquire_wait"}
    assert got[(summary + "_count", lbl(**w))] == 0
    assert (summary, lbl(**w, quantile="0.5")) not in got


def test_sources_with_the_same_origin_are_summed_and_clients_split() -> None:
    h1, h2 = LatencyHistogram(), LatencyHistogram()
    h1.record(0.001)
    h2.record(0.002)

    @dataclasses.dataclass
    class ClientStats:
        origins: Mapping[str, Any]

    client = FakePool(
        "ignored",
        ClientStats(  # type: ignore[arg-type]
            origins={"http://a:80": FakeStats(requests=1), "http://b:80": FakeStats(requests=2)}
        ),
    )
    registry = CollectorRegistry()
    p1 = FakePool(ORIGIN, FakeStats(histograms={"total": h1}))
    p2 = FakePool(ORIGIN, FakeStats(histograms={"total": h2}))
    c = instrument(p1, registry=registry)
    instrument(p2, collector=c)
    instrument(client, collector=c)
    got = scrape(registry)
    assert got[("warmline_requests_total", lbl(origin=ORIGIN))] == 14
    assert got[("warmline_pool_size", lbl(origin=ORIGIN))] == 16
    assert got[("warmline_errors_total", lbl(origin=ORIGIN, kind="ReadTimeout"))] == 4
    assert got[("warmline_requests_total", lbl(origin="http://a:80"))] == 1
    assert got[("warmline_requests_total", lbl(origin="http://b:80"))] == 2
    name = "warmline_request_duration_seconds_count"
    assert got[(name, lbl(origin=ORIGIN, phase="total"))] == 2
    assert h1.count == 1  # the sources' histograms are not modified by a scrape


def test_dropped_and_removed_sources_leave_the_metrics() -> None:
    registry = CollectorRegistry()
    kept = FakePool("http://kept:1", FakeStats())
    collector = instrument(kept, registry=registry)
    collector.add(FakePool("http://dropped:1", FakeStats()))
    gc.collect()
    got = scrape(registry)
    assert ("warmline_requests_total", lbl(origin="http://kept:1")) in got
    assert ("warmline_requests_total", lbl(origin="http://dropped:1")) not in got
    collector.remove(kept)
    assert ("warmline_requests_total", lbl(origin="http://kept:1")) not in scrape(registry)


def test_unweakrefable_source_and_explicit_origin_label() -> None:
    class Slotted:
        __slots__ = ()

        def stats(self) -> FakeStats:
            return FakeStats(requests=9)

    registry = CollectorRegistry()
    instrument(Slotted(), registry=registry, origin="custom")
    assert scrape(registry)[("warmline_requests_total", lbl(origin="custom"))] == 9


def test_a_failing_source_does_not_fail_the_scrape() -> None:
    class Broken:
        origin = "http://broken:1"

        def stats(self) -> FakeStats:
            raise RuntimeError("closed")

    registry = CollectorRegistry()
    broken, pool = Broken(), FakePool(ORIGIN, FakeStats())
    c = instrument(broken, registry=registry)
    instrument(pool, collector=c)
    got = scrape(registry)
    assert got[("warmline_requests_total", lbl(origin=ORIGIN))] == 7
    assert ("warmline_requests_total", lbl(origin="http://broken:1")) not in got


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="stats"):
        PoolCollector().add(object())
    with pytest.raises(ValueError, match="ascending"):
        PoolCollector(buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="quantiles"):
        PoolCollector(quantiles=(150,))


def test_namespace() -> None:
    registry = CollectorRegistry()
    c = PoolCollector(namespace="myapp")
    registry.register(c)
    pool = FakePool(ORIGIN, FakeStats())
    c.add(pool)
    assert scrape(registry)[("myapp_requests_total", lbl(origin=ORIGIN))] == 7


def test_a_real_pool_against_granian(granian: Server) -> None:
    registry = CollectorRegistry()
    with AtomicClientPool.connect(granian.url, connections=2) as pool:
        instrument(pool, registry=registry)
        for _ in range(5):
            assert pool.get("/small").status == 200
        stats = pool.stats()
        got = scrape(registry)
    o = lbl(origin=str(pool.origin))
    assert stats.requests == 5
    assert got[("warmline_requests_total", o)] == stats.requests
    assert got[("warmline_pool_size", o)] == stats.size == 2
    assert got[("warmline_pool_ready", o)] == stats.ready
    assert got[("warmline_pool_in_use", o)] == stats.in_use == 0
    assert got[("warmline_reconnects_total", o)] == stats.reconnects
    assert got[("warmline_stale_retries_total", o)] == stats.stale_retries
    assert not any(k[0] == "warmline_errors_total" for k in got)
