"""Pool policy shared by the asyncio and thread shells: no sockets, no awaits.

:class:`Backoff` says how long a slot waits before its next reconnect attempt,
:class:`Origin` is a parsed, validated pool URL, and :class:`StatsCounters`
holds the counters behind ``pool.stats()``. Both shells use these and copy
none of it.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import random
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from warmline._histogram import LatencyHistogram
from warmline.errors import InvalidRequest

__all__ = [
    "DEFAULT",
    "IDEMPOTENT_METHODS",
    "Backoff",
    "Default",
    "FailureLog",
    "KeepWarm",
    "Limits",
    "Origin",
    "PoolStats",
    "StatsCounters",
    "TimeoutArg",
    "Timeouts",
]

log = logging.getLogger("warmline")


class Default(enum.Enum):
    """Sentinel for "use the pool's setting" (None already means "none").

    An enum member, so that ``x is DEFAULT`` is an identity test (no call on
    the hot path) that mypy also narrows.
    """

    DEFAULT = 0

    def __repr__(self) -> str:
        return "<pool default>"


DEFAULT = Default.DEFAULT
TimeoutArg = float | None | Default

# RFC 9110 §9.2.2: a request with one of these methods can be repeated with the
# same effect, so a request that met a stale keep-alive connection may be sent
# again on a fresh one.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential, jittered delays between reconnect attempts.

    The first attempt after a connection dies is immediate (a server closing an
    idle keep-alive connection is the common case and is healed at once); the
    k-th failure then waits ``min(maximum, initial * multiplier**(k-1))``,
    spread by ``±jitter`` so that N slots of one pool don't retry in lockstep.

    Args:
        initial: Delay after the first failed attempt, in seconds.
        maximum: Cap on any delay, in seconds.
        multiplier: Growth factor per failed attempt (>= 1).
        jitter: Relative spread in [0, 1): 0.2 means ±20 %.

    Example:
        >>> b = Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.0)
        >>> [b.delay(k) for k in range(5)]
        [0.0, 0.1, 0.2, 0.4, 0.8]
    """

    initial: float = 0.05
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "multiplier", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Backoff.{name} must be a finite number >= 0, got {value!r}")
        if self.multiplier < 1:
            raise ValueError("Backoff.multiplier must be >= 1")
        if self.jitter >= 1:
            raise ValueError("Backoff.jitter must be < 1")
        if self.initial > self.maximum:
            raise ValueError("Backoff.initial must not exceed Backoff.maximum")

    def delay(self, failures: int, rand: float | None = None) -> float:
        """Seconds to wait before the attempt that follows ``failures`` failures.

        Args:
            failures: Failed attempts so far for this slot (0 for the first try).
            rand: A number in [0, 1) for the jitter; drawn when not given.
        """
        if failures <= 0:
            return 0.0
        # Cap the exponent so huge failure counts cannot overflow a float.
        base = min(self.maximum, self.initial * self.multiplier ** min(failures - 1, 64))
        if not self.jitter:
            return base
        r = random.random() if rand is None else rand
        return min(self.maximum, base * (1.0 + self.jitter * (2.0 * r - 1.0)))

    def bound(self) -> float:
        """Longest single delay this policy can produce (for tests and docs)."""
        return self.maximum


_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """A pool's target: ``http://host[:port]``, ``https://...`` or ``unix:///path``.

    Attributes:
        scheme: ``"http"``, ``"https"`` or ``"unix"``.
        host: Host name or address (brackets stripped for IPv6); ``"localhost"``
            for Unix sockets.
        port: TCP port (0 for Unix sockets).
        uds: Path of the Unix socket, or None.
        host_header: The ``Host`` value to send.
    """

    scheme: str
    host: str
    port: int
    uds: str | None
    host_header: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        if self.uds is not None:
            return f"unix://{self.uds}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @classmethod
    def parse(cls, url: str, *, uds: str | None = None) -> Origin:
        """Parse and validate a pool URL; a path, query or credentials is an error.

        Args:
            url: ``scheme://host[:port]`` (a trailing ``/`` is allowed), or
                ``unix:///path/to.sock``.
            uds: Connect through this Unix socket instead; ``url`` then only
                supplies the Host header and scheme.
        """
        if not isinstance(url, str):
            raise InvalidRequest(f"URL must be a str, got {type(url).__name__}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidRequest(f"invalid URL {url!r}: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme == "unix":
            path = unquote(parts.path)
            if not path or parts.netloc or parts.query or parts.fragment:
                raise InvalidRequest(f"a unix URL is unix:///path/to.sock, got {url!r}")
            return cls("unix", "localhost", 0, path, "localhost")
        if scheme not in _DEFAULT_PORTS:
            raise InvalidRequest(f"URL scheme must be http, https or unix, got {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise InvalidRequest(
                f"a pool URL has no path or query (use base_path=...), got {url!r}"
            )
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest("credentials in the URL are not supported; send a header")
        host = parts.hostname
        if not host or any(c in host for c in "\r\n\0 \t/\\"):
            raise InvalidRequest(f"URL has no valid host: {url!r}")
        port = port if port is not None else _DEFAULT_PORTS[scheme]
        if port == 0:
            raise InvalidRequest(f"URL port must be 1-65535, got {url!r}")
        shown = f"[{host}]" if ":" in host else host
        header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
        return cls(scheme, host, port, uds, header)


class FailureLog:
    """Logs reconnect failures of one pool, at most one line per ``every`` seconds.

    A server that is down for an hour must not flood the log with N slots
    times attempts; the counts are in ``stats()`` anyway.
    """

    __slots__ = ("_every", "_last")

    def __init__(self, every: float = 10.0) -> None:
        self._every = every
        self._last = -every

    def failure(self, origin: Origin, exc: BaseException, failures: int) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            log.warning("warmline: reconnect to %s failed (%d in a row): %s", origin, failures, exc)


@dataclasses.dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool's counters (``pool.stats()``).

    Attributes:
        requests: Requests that completed with a response.
        errors: Failed requests by error class name.
        reconnects: Connections opened after the initial connect.
        reconnect_failures: Reconnect attempts that failed.
        stale_retries: Idempotent requests re-sent after meeting a stale connection.
        acquire_waits: ``acquire()`` calls that had to wait for a slot.
        keep_warm_pings: Background keep-warm requests sent (not in ``requests``).
        hook_errors: Hook callbacks that raised (the requests went on).
        histograms: Latency histograms by phase (``acquire_wait``, ``ttfb``,
            ``total``; seconds) of the requests that got a response, when the
            pool was made with ``latency=True``; copies, yours to keep.
        ready: Slots ready now.
        in_use: Slots handed out now.
        reconnecting: Slots being healed now.
        size: Slots in the pool.
    """

    requests: int
    errors: Mapping[str, int]
    reconnects: int
    reconnect_failures: int
    stale_retries: int
    acquire_waits: int
    ready: int
    in_use: int
    reconnecting: int
    size: int
    keep_warm_pings: int = 0
    hook_errors: int = 0
    histograms: Mapping[str, LatencyHistogram] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the counters, and each histogram's count, min, mean,
        p50/p90/p99/p99.9 and max in seconds (``LatencyHistogram.to_dict``)."""
        out = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("errors", "histograms")
        }
        out["errors"] = dict(self.errors)
        out["histograms"] = {name: h.to_dict() for name, h in self.histograms.items()}
        return out

    as_dict = to_dict  # the earlier name


class StatsCounters:
    """Mutable counters owned by one pool; ``snapshot()`` makes a PoolStats.

    Plain integer attributes: an increment is one bytecode-level add, and the
    thread shell only updates them under the GIL from one place per event, so
    a rare lost increment under free-threading would skew a figure, never state.
    """

    __slots__ = (
        "acquire_waits",
        "errors",
        "hook_errors",
        "keep_warm_pings",
        "reconnect_failures",
        "reconnects",
        "requests",
        "stale_retries",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.reconnects = 0
        self.reconnect_failures = 0
        self.stale_retries = 0
        self.acquire_waits = 0
        self.keep_warm_pings = 0
        self.hook_errors = 0

    def error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1

    def snapshot(self, *, ready: int, in_use: int, reconnecting: int, size: int) -> PoolStats:
        return PoolStats(
            requests=self.requests,
            errors=dict(self.errors),
            reconnects=self.reconnects,
            reconnect_failures=self.reconnect_failures,
            stale_retries=self.stale_retries,
            acquire_waits=self.acquire_waits,
            keep_warm_pings=self.keep_warm_pings,
            hook_errors=self.hook_errors,
            ready=ready,
            in_use=in_use,
            reconnecting=reconnecting,
            size=size,
        )


def _seconds(owner: str, name: str, value: object, *, positive: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner}.{name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner}.{name} must be a finite number {bound} or None, got {value!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each phase of a request may take, in seconds (None: no limit).

    Args:
        connect: Opening one connection, TCP and TLS handshakes included.
        read: The longest gap between two received bytes of a response
            (inactivity: a silently dropped connection cannot hang a request).
        write: Sending the request.
        pool: Waiting for a connection (a free slot or a permit under the
            client's limits); None: ``total``, or no limit.
        total: The whole request, from the call to the last byte.

    A float where a ``Timeouts`` is accepted means ``total``. With the
    defaults no request can hang forever: a connect gives up after 10 s and a
    silent peer after 60 s.

    Example:
        >>> Timeouts(total=2.0).connect
        10.0
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    write: float | None = None
    pool: float | None = None
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool", "total"):
            _seconds("Timeouts", name, getattr(self, name))


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """How many connections a client keeps open (or opening) at once.

    Args:
        total: Across every origin; a request over it waits (FIFO), and the
            least recently used idle connection of another origin is closed
            to make room.
        per_host: Per origin (scheme, host, port; a Unix socket path).
    """

    total: int = 100
    per_host: int = 10

    def __post_init__(self) -> None:
        for name in ("total", "per_host"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be an int >= 1, got {value!r}")
        if self.per_host > self.total:
            raise ValueError("Limits.per_host must not exceed Limits.total")


@dataclasses.dataclass(frozen=True, slots=True)
class KeepWarm:
    """Keep idle connections warm: a slot idle for ``interval`` seconds sends
    ``method path`` in the background (not counted as a user request;
    counted in ``stats().keep_warm_pings``), so that no server or middlebox
    idle timeout finds it cold. A ping that fails sends the slot to heal.

    Set ``interval`` below the shortest idle timeout on the way (servers,
    load balancers, NAT): e.g. 15 s for a 60 s keep-alive timeout.

    Example:
        >>> KeepWarm(interval=15.0, method="HEAD", path="/api/v3/ping").method
        'HEAD'
    """

    interval: float = 15.0
    method: str = "HEAD"
    path: str = "/"

    def __post_init__(self) -> None:
        _seconds("KeepWarm", "interval", self.interval, positive=True)
        if not isinstance(self.method, str) or self.method.upper() not in IDEMPOTENT_METHODS:
            raise ValueError(f"KeepWarm.method must be idempotent, got {self.method!r}")
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ValueError(f"KeepWarm.path must start with '/', got {self.path!r}")
