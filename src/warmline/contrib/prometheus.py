"""Prometheus metrics for warmline pools and clients (extra ``prometheus``).

A :class:`PoolCollector` reads ``stats()`` from every pool or client
registered with it, on each scrape, and nothing in between: recording costs the
pools nothing beyond their own counters. Example::

    from prometheus_client import start_http_server
    from warmline.contrib.prometheus import instrument

    instrument(pool)              # into prometheus_client's default registry
    start_http_server(9100)

Exposed, each labelled by ``origin`` (names under ``namespace``, default
``warmline``):

- counters ``warmline_requests_total``, ``warmline_errors_total`` (also
  labelled ``kind``, the error class), ``warmline_reconnects_total``,
  ``warmline_reconnect_failures_total``, ``warmline_stale_retries_total``,
  ``warmline_acquire_waits_total``;
- gauges ``warmline_pool_ready``, ``warmline_pool_in_use``,
  ``warmline_pool_reconnecting``, ``warmline_pool_size``;
- when the snapshot carries latency histograms (``stats().histograms``, a
  mapping of phase name to :class:`~warmline._histogram.LatencyHistogram`),
  ``warmline_request_duration_seconds`` (a histogram with ``le`` buckets,
  aggregatable across processes) and ``warmline_request_latency_seconds`` (a
  summary with the quantiles, each within 1.1 %), both also labelled ``phase``.

Sources are duck-typed: anything with ``.stats()`` returning an object with
the fields of :class:`warmline.PoolStats`; a snapshot with an ``origins``
mapping (a client's) is read as one snapshot per origin. Several sources with
the same origin are summed.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

try:
    from prometheus_client.core import (
        REGISTRY,
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.samples import Sample
except ImportError as exc:  # tests/test_contrib_extras.py
    raise ImportError(
        "warmline.contrib.prometheus needs prometheus_client: pip install 'warmline[prometheus]'"
    ) from exc

from warmline._histogram import LatencyHistogram

__all__ = ["DEFAULT_BUCKETS", "PoolCollector", "instrument"]

log = logging.getLogger("warmline")

# Seconds. Starts at 50 µs: a warm loopback or same-zone request is well under
# a millisecond, and those are the latencies warmline exists for.
DEFAULT_BUCKETS = (
    5e-5,
    1e-4,
    2.5e-4,
    5e-4,
    1e-3,
    2.5e-3,
    5e-3,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
DEFAULT_QUANTILES = (50.0, 90.0, 99.0, 99.9)

# (stats field, metric suffix, help text)
_COUNTERS = (
    ("requests", "requests", "Requests that completed with a response."),
    ("reconnects", "reconnects", "Connections opened after the initial connect."),
    ("reconnect_failures", "reconnect_failures", "Reconnect attempts that failed."),
    ("stale_retries", "stale_retries", "Idempotent requests re-sent after a stale connection."),
    ("acquire_waits", "acquire_waits", "acquire() calls that had to wait for a slot."),
)
_GAUGES = (
    ("ready", "pool_ready", "Slots ready now."),
    ("in_use", "pool_in_use", "Slots handed out now."),
    ("reconnecting", "pool_reconnecting", "Slots being healed now."),
    ("size", "pool_size", "Slots in the pool."),
)


class _Origin:
    """What one origin adds up to across the sources of one scrape."""

    __slots__ = ("errors", "histograms", "values")

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.errors: dict[str, float] = {}
        self.histograms: dict[str, LatencyHistogram] = {}

    def add(self, snap: Any) -> None:
        for field, _, _ in (*_COUNTERS, *_GAUGES):
            value = getattr(snap, field, None)
            if isinstance(value, int | float):
                self.values[field] = self.values.get(field, 0) + value
        for kind, n in (getattr(snap, "errors", None) or {}).items():
            self.errors[str(kind)] = self.errors.get(str(kind), 0) + n
        histograms = getattr(snap, "histograms", None)
        if isinstance(histograms, Mapping):
            for phase, h in histograms.items():
                if isinstance(h, LatencyHistogram):
                    mine = self.histograms.setdefault(str(phase), LatencyHistogram())
                    mine.merge(h)


class PoolCollector:
    """A prometheus_client collector over the ``stats()`` of registered sources.

    Sources are held weakly where they allow it, so a pool dropped by the
    program drops out of the metrics instead of being kept alive by them.

    Args:
        namespace: Prefix of every metric name.
        buckets: Upper bounds (seconds, ascending) of the histogram's ``le``
            buckets; ``+Inf`` is added.
        quantiles: Percentiles (0-100) reported by the summary.
    """

    def __init__(
        self,
        *,
        namespace: str = "warmline",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if any(not math.isfinite(b) or b <= 0 for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError("buckets must be finite, positive and strictly ascending")
        if any(not 0.0 <= q <= 100.0 for q in quantiles):
            raise ValueError("quantiles are percentiles in [0, 100]")
        self._prefix = f"{namespace}_" if namespace else ""
        self._buckets = tuple(bounds)
        self._quantiles = tuple(float(q) for q in quantiles)
        self._lock = threading.Lock()
        self._sources: list[tuple[Callable[[], Any], str | None]] = []

    def add(self, source: Any, *, origin: str | None = None) -> None:
        """Report ``source`` (a pool or client) from now on.

        Args:
            source: An object with ``.stats()``.
            origin: The ``origin`` label for a single pool; by default
                ``str(source.origin)``. Ignored for snapshots that carry
                their own ``origins``.

        Raises:
            TypeError: ``source`` has no ``stats()`` method.
        """
        if not callable(getattr(source, "stats", None)):
            raise TypeError(f"{source!r} has no stats() method")
        try:
            ref: Callable[[], Any] = weakref.ref(source)
        except TypeError:  # a slotted object without __weakref__
            ref = _StrongRef(source)
        with self._lock:
            self._sources.append((ref, origin))

    def remove(self, source: Any) -> None:
        """Stop reporting ``source`` (no error if it was not added)."""
        with self._lock:
            self._sources = [(r, o) for r, o in self._sources if r() not in (None, source)]

    def describe(self) -> Iterable[Metric]:
        # Nothing up front: the families depend on what the sources report,
        # and an empty describe() spares the registry a collect() at register.
        return ()

    def collect(self) -> Iterator[Metric]:
        """Read every live source's ``stats()`` now and yield the families."""
        origins = self._gather()
        yield from self._counters(origins)
        yield from self._gauges(origins)
        if any(o.histograms for o in origins.values()):
            yield self._histogram(origins)
            yield self._summary(origins)

    # -- reading the sources ----------------------------------------------------

    def _gather(self) -> dict[str, _Origin]:
        with self._lock:
            self._sources = [(r, o) for r, o in self._sources if r() is not None]
            live = [(r(), o) for r, o in self._sources]
        out: dict[str, _Origin] = {}
        for source, origin in live:
            for label, snap in _snapshots(source, origin):
                out.setdefault(label, _Origin()).add(snap)
        return out

    # -- building the families ----------------------------------------------------

    def _counters(self, origins: dict[str, _Origin]) -> Iterator[Metric]:
        for field, suffix, doc in _COUNTERS:
            fam = CounterMetricFamily(self._prefix + suffix, doc, labels=["origin"])
            for label, o in origins.items():
                if field in o.values:
                    fam.add_metric([label], o.values[field])
            yield fam
        errors = CounterMetricFamily(
            self._prefix + "errors", "Failed requests by error class.", labels=["origin", "kind"]
        )
        for label, o in origins.items():
            for kind, n in sorted(o.errors.items()):
                errors.add_metric([label, kind], n)
        yield errors

    def _gauges(self, origins: dict[str, _Origin]) -> Iterator[Metric]:
        for field, suffix, doc in _GAUGES:
            fam = GaugeMetricFamily(self._prefix + suffix, doc, labels=["origin"])
            for label, o in origins.items():
                if field in o.values:
                    fam.add_metric([label], o.values[field])
            yield fam

    def _histogram(self, origins: dict[str, _Origin]) -> Metric:
        fam = HistogramMetricFamily(
            self._prefix + "request_duration_seconds",
            "Request latency by phase (buckets exact to 1.1 % of each bound).",
            labels=["origin", "phase"],
        )
        for label, o in origins.items():
            for phase, h in sorted(o.histograms.items()):
                cumulative = h.cumulative_counts(self._buckets)
                buckets = [
                    (_float_str(b), float(c))
                    for b, c in zip(self._buckets, cumulative, strict=True)
                ]
                buckets.append(("+Inf", float(h.count)))
                fam.add_metric([label, phase], buckets, sum_value=h.sum)
        return fam

    def _summary(self, origins: dict[str, _Origin]) -> Metric:
        name = self._prefix + "request_latency_seconds"
        fam = SummaryMetricFamily(
            name, "Request latency percentiles by phase (within 1.1 %).", labels=["origin", "phase"]
        )
        for label, o in origins.items():
            for phase, h in sorted(o.histograms.items()):
                count = h.count
                fam.add_metric([label, phase], count_value=count, sum_value=h.sum)
                if not count:
                    continue
                for q, value in h.percentiles(self._quantiles).items():
                    labels = {"origin": label, "phase": phase, "quantile": _float_str(q / 100)}
                    fam.samples.append(Sample(name, labels, float(value or 0.0)))
        return fam


class _StrongRef:
    """Same call shape as weakref.ref, for sources that cannot be weakly held."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __call__(self) -> Any:
        return self._obj


def _snapshots(source: Any, origin: str | None) -> list[tuple[str, Any]]:
    """(origin label, snapshot) pairs of one source; none if its stats() fails."""
    try:
        snap = source.stats()
    except Exception as exc:  # one broken source must not fail the whole scrape
        log.debug("warmline: stats() of %r failed during a scrape: %s", source, exc)
        return []
    per_origin = snap if isinstance(snap, Mapping) else getattr(snap, "origins", None)
    if isinstance(per_origin, Mapping):  # a client: its pools' stats by origin
        return [(str(k), v) for k, v in per_origin.items()]
    if origin is None:
        origin = str(getattr(source, "origin", "") or type(source).__name__)
    return [(origin, snap)]


def _float_str(x: float) -> str:
    """Prometheus' own formatting of a label float (``0.5``, ``1.0``, ``1e-05``)."""
    return repr(float(x))


def instrument(
    source: Any,
    *,
    registry: CollectorRegistry | None = None,
    origin: str | None = None,
    collector: PoolCollector | None = None,
) -> PoolCollector:
    """Report a pool or client in a registry (the default one when not given).

    One collector per registry serves any number of sources: pass the one
    returned by the first call as ``collector=`` to add more, or call
    :meth:`PoolCollector.add`.

    Returns:
        The collector (registered in ``registry`` if it was created here).
    """
    if collector is None:
        collector = PoolCollector()
        (REGISTRY if registry is None else registry).register(collector)
    collector.add(source, origin=origin)
    return collector
