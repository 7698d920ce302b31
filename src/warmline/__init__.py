"""warmline: warm HTTP/1.1 connection pools for asyncio and threads.

Pre-connected, self-healing pools of keep-alive connections, so that a request
never pays the TCP and TLS handshake on the hot path: ``ClientPool`` for
asyncio, ``AtomicClientPool`` for threads, on one sans-I/O HTTP/1.1 core.
"""

from importlib.metadata import PackageNotFoundError, version

from warmline._config import PoolOptions
from warmline._histogram import LatencyHistogram
from warmline._hooks import (
    CloseReason,
    CompositeHooks,
    ConnectionEvent,
    HealEvent,
    Hooks,
    KeepWarmEvent,
    PhaseTimings,
    RequestEvent,
)
from warmline._oneshot import delete, get, head, options, patch, post, put, request
from warmline._policy import Backoff, KeepWarm, Limits, PoolStats, Timeouts
from warmline._stats_view import stats_table
from warmline.aio import ClientPool, ClientSlot
from warmline.aio._client import AsyncClient
from warmline.connectors import Proxy
from warmline.errors import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    DecodingError,
    HTTPStatusError,
    InvalidRequest,
    PoolClosed,
    PoolError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    RateLimited,
    ReadTimeout,
    ResponseTooLarge,
    StreamClosed,
    Timeout,
    TooManyRedirects,
    WarmlineError,
    WriteTimeout,
)
from warmline.http11 import Headers, RequestWriter, Response, ResponseReader
from warmline.objpool import LocalPool, Pooled, SyncPool
from warmline.resilience import Hedge, LastGood, RateLimiter, Retry
from warmline.sync import AtomicClientPool, AtomicClientSlot
from warmline.sync._client import Client

try:
    __version__ = version("warmline")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    # clients (any URL)
    "AsyncClient",
    "Client",
    "KeepWarm",
    "Limits",
    "Proxy",
    "Timeouts",
    # pools of connections
    "AtomicClientPool",
    "AtomicClientSlot",
    "Backoff",
    "ClientPool",
    "ClientSlot",
    "PoolOptions",
    "PoolStats",
    "stats_table",
    # observing: hooks and latency histograms
    "CloseReason",
    "CompositeHooks",
    "ConnectionEvent",
    "HealEvent",
    "Hooks",
    "KeepWarmEvent",
    "LatencyHistogram",
    "PhaseTimings",
    "RequestEvent",
    # HTTP/1.1
    "Headers",
    "RequestWriter",
    "Response",
    "ResponseReader",
    # resilience and latency tools
    "Hedge",
    "LastGood",
    "RateLimiter",
    "Retry",
    # object pools
    "LocalPool",
    "Pooled",
    "SyncPool",
    # errors
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "DecodingError",
    "HTTPStatusError",
    "InvalidRequest",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "RateLimited",
    "ReadTimeout",
    "ResponseTooLarge",
    "StreamClosed",
    "Timeout",
    "TooManyRedirects",
    "WarmlineError",
    "WriteTimeout",
    # one request on a short-lived Client (scripts; the slow path)
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "request",
    # version
    "__version__",
]
