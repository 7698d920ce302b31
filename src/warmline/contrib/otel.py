"""OpenTelemetry for warmline (extra ``otel``): client spans, duration metric, pool gauges.

:class:`OtelHooks` is a :class:`~warmline._hooks.Hooks` implementation: give
it to a pool or client as ``hooks=`` (with your own hooks through
``CompositeHooks``) and each request gets a CLIENT span following the HTTP
client semantic conventions:

- span name: the method (``GET``); ``_OTHER`` for a non-standard one, whose
  original is in ``http.request.method_original``;
- attributes ``http.request.method``, ``server.address``, ``server.port``,
  ``url.full`` (values of signature-like query parameters redacted),
  ``url.scheme``, ``network.protocol.version`` (``1.1``),
  ``http.response.status_code``, ``error.type`` (the status code for 4xx/5xx,
  else the exception's qualified class name), ``http.request.resend_count``
  after a stale retry, and ``warmline.*`` phase timings in seconds;
- status ERROR for 4xx/5xx and for failures;
- the trace context injected into the request's headers with the globally
  configured propagator (W3C ``traceparent``/``tracestate`` by default);
- the histogram ``http.client.request.duration`` (seconds) recorded once per
  request, with the same low-cardinality attributes (no URL).

:func:`instrument` does both for a pool or client that already exists.

:func:`observe` adds the pool gauges as observable instruments:
``http.client.open_connections`` (``http.connection.state`` = ``idle`` for
ready slots, ``active`` for slots in use) and ``warmline.pool.reconnecting``,
read from ``stats()`` at each collection.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

try:
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, SpanContext, SpanKind, StatusCode, TracerProvider
except ImportError as exc:  # tests/test_contrib_extras.py
    raise ImportError(
        "warmline.contrib.otel needs opentelemetry-api: pip install 'warmline[otel]'"
    ) from exc

from warmline._hooks import CompositeHooks, Hooks, RequestEvent

__all__ = ["OtelHooks", "instrument", "observe", "request_attributes", "traceparent"]

_SCOPE = "warmline"
# The semantic conventions' advice for http.client.request.duration, with
# sub-5 ms bounds added: warm loopback and same-zone requests live there.
DURATION_BUCKETS = (
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY"}
)
# Query parameters whose values are credentials: exchange APIs sign requests
# with ``signature=``; the conventions name the cloud ones.
DEFAULT_REDACTED = frozenset(
    {"signature", "sig", "awsaccesskeyid", "x-goog-signature", "api_key", "apikey", "token"}
)
_MAX_ORIGINS = 1024  # parsed origins cached (bounded memory)


def _version() -> str:
    from warmline import __version__

    return __version__


def traceparent(context: Span | SpanContext) -> str | None:
    """The W3C ``traceparent`` value for a span (or span context), or None if invalid.

    For a request made outside :class:`OtelHooks`, or a shell that injects
    without a propagator: ``00-<trace id>-<span id>-<flags>``.
    """
    ctx = context.get_span_context() if isinstance(context, Span) else context
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


class _Origins:
    """origin string -> (scheme, address, port), parsed once per origin."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, str, int | None]] = {}

    def get(self, origin: str) -> tuple[str, str, int | None]:
        hit = self._cache.get(origin)
        if hit is None:
            if len(self._cache) >= _MAX_ORIGINS:
                self._cache.clear()
            hit = self._cache[origin] = _parse_origin(origin)
        return hit


def _parse_origin(origin: str) -> tuple[str, str, int | None]:
    parts = urlsplit(origin)
    if parts.scheme == "unix":  # the conventions: the socket's path as the address
        return "http", parts.path, None
    return parts.scheme, parts.hostname or "", parts.port


def _redact(path: str, redacted: frozenset[str]) -> str:
    target, sep, query = path.partition("?")
    if not sep or not redacted:
        return path
    fields = []
    for field in query.split("&"):
        name, eq, _ = field.partition("=")
        fields.append(f"{name}=REDACTED" if eq and name.lower() in redacted else field)
    return f"{target}?{'&'.join(fields)}"


def request_attributes(
    event: RequestEvent,
    origins: _Origins | None = None,
    redacted: frozenset[str] = DEFAULT_REDACTED,
) -> dict[str, Any]:
    """The span attributes known at request start (semantic conventions)."""
    scheme, address, port = (origins or _Origins()).get(event.origin)
    method = event.method
    attrs: dict[str, Any] = {
        "http.request.method": method if method in _KNOWN_METHODS else "_OTHER",
        "server.address": address,
        "url.full": event.origin + _redact(event.path, redacted),
        "url.scheme": scheme,
        "network.protocol.version": "1.1",
    }
    if port is not None:
        attrs["server.port"] = port
    if method not in _KNOWN_METHODS:
        attrs["http.request.method_original"] = method
    return attrs


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


_METRIC_KEYS = (
    "http.request.method",
    "server.address",
    "server.port",
    "url.scheme",
    "network.protocol.version",
)


class OtelHooks(Hooks):
    """Hooks that trace each request and record ``http.client.request.duration``.

    Args:
        tracer_provider: Where spans go; the global provider when None.
        meter_provider: Where the duration histogram goes; the global one
            when None.
        inject: Add the trace context to each request's headers.
        redact_query: Query parameter names (lower case) whose values are
            replaced by ``REDACTED`` in ``url.full``.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        inject: bool = True,
        redact_query: Iterable[str] = DEFAULT_REDACTED,
    ) -> None:
        version = _version()
        self._tracer = trace.get_tracer(_SCOPE, version, tracer_provider)
        meter = metrics.get_meter(_SCOPE, version, meter_provider)
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._inject = inject
        self._redacted = frozenset(n.lower() for n in redact_query)
        self._origins = _Origins()
        super().__init__()

    # -- the callbacks (see warmline._hooks for when each is called) -----------

    def on_request_start(self, event: RequestEvent) -> None:
        attrs = request_attributes(event, self._origins, self._redacted)
        span = self._tracer.start_span(
            attrs["http.request.method"] if attrs["http.request.method"] != "_OTHER" else "HTTP",
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )
        if event.scratch is None:
            event.scratch = {}
        event.scratch[self] = (span, attrs)
        if self._inject and span.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            for name, value in carrier.items():
                event.add_header(name, value)

    def on_response_head(self, event: RequestEvent) -> None:
        found = self._state(event)
        if found is None or event.status is None:
            return
        span, attrs = found
        attrs["http.response.status_code"] = event.status
        span.set_attribute("http.response.status_code", event.status)
        if event.status >= 400:
            attrs["error.type"] = str(event.status)
            span.set_attribute("error.type", str(event.status))
            span.set_status(StatusCode.ERROR)

    def on_stale_retry(self, event: RequestEvent) -> None:
        found = self._state(event)
        if found is not None:
            found[0].set_attribute("http.request.resend_count", event.attempt - 1)

    def on_response_end(self, event: RequestEvent) -> None:
        self._finish(event)

    def on_error(self, event: RequestEvent) -> None:
        found = self._state(event)
        if found is None:
            return
        span, attrs = found
        if event.error is not None:
            kind = _error_type(event.error)
            attrs["error.type"] = kind
            span.set_attribute("error.type", kind)
            span.record_exception(event.error)
            span.set_status(StatusCode.ERROR, str(event.error) or kind)
        self._finish(event)

    # -- helpers ------------------------------------------------------------------

    def _state(self, event: RequestEvent) -> tuple[Span, dict[str, Any]] | None:
        scratch = event.scratch
        return None if scratch is None else scratch.get(self)

    def _finish(self, event: RequestEvent) -> None:
        found = None if event.scratch is None else event.scratch.pop(self, None)
        if found is None:  # already ended, or started before these hooks were set
            return
        span, attrs = found
        timings = event.timings
        for name, value in (
            ("warmline.acquire_wait", timings.acquire_wait),
            ("warmline.write", timings.write),
            ("warmline.ttfb", timings.ttfb),
        ):
            if value is not None:
                span.set_attribute(name, value)
        span.end()
        if timings.total is not None:
            metric_attrs = {k: attrs[k] for k in _METRIC_KEYS if k in attrs}
            for k in ("http.response.status_code", "error.type"):
                if k in attrs:
                    metric_attrs[k] = attrs[k]
            self._duration.record(timings.total, metric_attrs)


# -- pool gauges ------------------------------------------------------------------


class _Observed:
    """Sources whose stats() the observable instruments read, held weakly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: list[Callable[[], Any]] = []
        self._origins = _Origins()

    def add(self, source: Any) -> None:
        try:
            ref: Callable[[], Any] = weakref.ref(source)
        except TypeError:
            ref = lambda: source  # noqa: E731 - a source that cannot be weakly held
        with self._lock:
            self._refs.append(ref)

    def snapshots(self) -> list[tuple[Mapping[str, Any], Any]]:
        with self._lock:
            self._refs = [r for r in self._refs if r() is not None]
            live = [r() for r in self._refs]
        out: list[tuple[Mapping[str, Any], Any]] = []
        for source in live:
            try:
                snap = source.stats()
            except Exception:  # a closed or broken source is skipped, not fatal
                continue
            # A client's stats() maps origins to its pools' stats.
            per_origin = snap if isinstance(snap, Mapping) else getattr(snap, "origins", None)
            pairs = (
                per_origin.items()
                if isinstance(per_origin, Mapping)
                else [(str(getattr(source, "origin", "")), snap)]
            )
            for origin, s in pairs:
                _, address, port = self._origins.get(str(origin))
                attrs: dict[str, Any] = {"server.address": address}
                if port is not None:
                    attrs["server.port"] = port
                out.append((attrs, s))
        return out

    def open_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        for attrs, s in self.snapshots():
            yield Observation(s.ready, {**attrs, "http.connection.state": "idle"})
            yield Observation(s.in_use, {**attrs, "http.connection.state": "active"})

    def reconnecting(self, options: CallbackOptions) -> Iterable[Observation]:
        for attrs, s in self.snapshots():
            yield Observation(s.reconnecting, attrs)


_observed_by_provider: weakref.WeakKeyDictionary[Any, _Observed] = weakref.WeakKeyDictionary()
_global_observed: list[_Observed] = []
_observe_lock = threading.Lock()


def observe(source: Any, meter_provider: MeterProvider | None = None) -> None:
    """Report a pool's (or client's) slots as observable metrics.

    Instruments are created once per meter provider; later calls add sources.
    Sources are held weakly (a dropped pool drops out) and read through
    ``stats()`` at each collection, so nothing is paid between collections.

    Raises:
        TypeError: ``source`` has no ``stats()`` method.
    """
    if not callable(getattr(source, "stats", None)):
        raise TypeError(f"{source!r} has no stats() method")
    with _observe_lock:
        observed = _observed_for(meter_provider)
    observed.add(source)


def _observed_for(meter_provider: MeterProvider | None) -> _Observed:
    if meter_provider is None:
        if _global_observed:
            return _global_observed[0]
    else:
        found = _observed_by_provider.get(meter_provider)
        if found is not None:
            return found
    observed = _Observed()
    meter = metrics.get_meter(_SCOPE, _version(), meter_provider)
    meter.create_observable_up_down_counter(
        "http.client.open_connections",
        callbacks=[observed.open_connections],
        unit="{connection}",
        description="Connections of the pool, idle (ready) or active (in use).",
    )
    meter.create_observable_gauge(
        "warmline.pool.reconnecting",
        callbacks=[observed.reconnecting],
        unit="{connection}",
        description="Slots of the pool being reconnected now.",
    )
    if meter_provider is None:
        _global_observed.append(observed)
    else:
        _observed_by_provider[meter_provider] = observed
    return observed


# -- instrument ---------------------------------------------------------------------


def instrument(
    client_or_pool: Any,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    **options: Any,
) -> OtelHooks:
    """Trace and measure an existing pool or client: spans, duration, pool gauges.

    Adds an :class:`OtelHooks` to the hooks it already has (both are called,
    yours first; see ``CompositeHooks``), to every pool of a client and to
    the pools it makes later, and registers its slots with :func:`observe`.
    Requests already in flight are not traced; connections opened before it
    report no open or close events (their requests are timed all the same).

    Example:
        >>> client = warmline.AsyncClient()
        >>> warmline.contrib.otel.instrument(client)   # global providers

    Args:
        client_or_pool: A ``ClientPool``, ``AtomicClientPool``,
            ``AsyncClient`` or ``Client``.
        tracer_provider: Where spans go; the global provider when None.
        meter_provider: Where the metrics go; the global provider when None.
        **options: Passed on to :class:`OtelHooks` (``inject``, ``redact_query``).

    Returns:
        The hooks added (to call, say, ``on_error`` yourself in tests).

    Raises:
        TypeError: Not a warmline pool or client.
    """
    hooks = OtelHooks(tracer_provider, meter_provider, **options)
    settings = getattr(client_or_pool, "_settings", None)
    if settings is not None:  # a client: its pools to come, then those it has
        mine = settings._options.get("hooks")
        settings._options["hooks"] = hooks if mine is None else CompositeHooks(mine, hooks)
        for pool in list(client_or_pool._pools.values()):
            pool._add_hooks(hooks)
    elif callable(getattr(client_or_pool, "_add_hooks", None)):
        client_or_pool._add_hooks(hooks)
    else:
        raise TypeError(f"instrument() takes a warmline pool or client, got {client_or_pool!r}")
    observe(client_or_pool, meter_provider)
    return hooks
