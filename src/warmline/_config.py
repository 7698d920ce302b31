"""A pool's validated settings, shared by ClientPool and AtomicClientPool.

Both ``connect()`` methods take the same options; this is where they are
checked and turned into what a pool runs on (origin, request writer, TLS
context, limits), once, for both shells.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from typing import Any, TypedDict

from warmline._hooks import Hooks
from warmline._policy import Backoff, KeepWarm, Origin, Timeouts
from warmline._pool import Admission, PoolCore, check_timeout
from warmline._sockopts import LocalAddress
from warmline._tls import client_context
from warmline.connectors import Proxy, ProxyArg, as_proxy, forward_form, proxy_for
from warmline.http11 import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    RequestWriter,
    ResponseReader,
    accept_encoding,
)
from warmline.http11._writer import HeadersArg
from warmline.resilience._hedge import Hedge
from warmline.resilience._retry import Retry

__all__ = ["DEFAULT_DRAIN_LIMIT", "PoolConfig", "PoolOptions", "choose_proxy"]

# A streamed response closed early keeps its connection when at most this
# much of its body is left (read and dropped): as awc and urllib3 do, reading
# a small rest is cheaper than a new connection (TCP and TLS handshakes);
# reading a large one is not, and may never end.
DEFAULT_DRAIN_LIMIT = 64 * 1024


class PoolOptions(TypedDict, total=False):
    """The options of ``ClientPool.connect`` and ``AtomicClientPool.connect``.

    One behaviour for both pools; every one is a keyword argument of
    ``connect()`` and has the default shown in :meth:`PoolConfig.build`.

    Attributes:
            base_path: Prefix of every request path, e.g. ``"/api/v3"``.
            headers: Default headers, validated and serialised once.
            connections: Number of slots.
            tls: None (verified with the system CA store for https), or an
                ``ssl.SSLContext`` of yours; False with https is an error.
            uds: Connect through this Unix socket (Host comes from ``url``).
            connect_timeout: Seconds to open one connection (TLS included).
            timeout: Default seconds for a whole request; None for none. Also
                the default wait for a slot in ``pool.get()`` and friends. A
                ``warmline.Timeouts`` sets connect, read (inactivity), pool
                (the wait for a slot) and total at once.
            reconnect: Backoff policy for healing dead slots.
            idle_timeout: Reconnect a slot idle longer than this before reuse
                (set it below the server's keep-alive timeout).
            retry_stale: Re-send an idempotent request once on a fresh
                connection when its kept-alive connection turned out closed
                before any response byte.
            require: Fail unless at least this many connect (default: all);
                the others heal in the background. 0 returns at once, every
                slot opening in the background.
            max_body_size, max_head_size, max_headers: Response limits.
            user_agent: User-Agent header; None for warmline's default.
            max_lifetime: Replace a connection older than this when it is
                next idle (never mid-request); reconnects resolve the name again.
            keep_alive: False: every request opens a connection, sends
                ``Connection: close``, and closes it after the response.
            tcp_keepalive: SO_KEEPALIVE with short probes (a silently dead
                peer is noticed within about a minute).
            local_address: Source address of every connection
                (``"127.0.0.2"`` or ``(host, port)``).
            keep_warm: A :class:`~warmline.KeepWarm`: a slot idle for its
                interval sends a cheap request in the background, so no idle
                timeout on the way finds it cold.
            proxy: Reach the origin through this proxy: a URL
                (``http://[user:pass@]host:port``, ``https://...``,
                ``socks5://...``, ``socks5h://...``) or a ``warmline.Proxy``.
                The tunnel opens once per connection, within
                ``connect_timeout``; healing and lifetimes work through it
                unchanged. An http origin behind an HTTP proxy gets
                absolute-form requests instead. Ignored for Unix sockets.
            trust_env: With no ``proxy``, pick one from ``HTTPS_PROXY``,
                ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (read now).
            decompress: Undo ``Content-Encoding`` (gzip, deflate, and br
                or zstd when their extra is installed): every request sends
                ``Accept-Encoding`` with what is installed (a default header,
                serialised once; yours, default or per request, wins), and
                ``Response.content`` is the decoded body (``raw_content``
                the bytes as sent). ``max_body_size`` bounds the decoded
                size too (a decompression bomb stops with ResponseTooLarge);
                a corrupt body raises DecodingError and the connection is
                replaced. A coding that is not installed is returned as sent
                (``text``/``json()`` raise DecodingError). False: no
                ``Accept-Encoding`` is added and bodies come as sent.
            drain_limit: A streamed response closed before its end keeps
                its connection only if the rest is known (Content-Length)
                to be at most this many bytes and arrives within 0.5 s (it
                is read and dropped); otherwise the connection is closed and
                its slot reconnects. Default 64 KiB.
            spin: Thread pool only (``AtomicClientPool``, ``Client``): after
                sending a request, poll the socket without blocking for up to
                this many seconds (e.g. ``50e-6``) before a blocking wait, so a
                fast answer is read without a scheduler wake-up; also asks the
                kernel for SO_BUSY_POLL where it allows it. Trades CPU (a
                core spins for up to ``spin`` per request) for latency. Off
                (None) by default; the asyncio pool refuses it.
            hooks: A :class:`warmline.Hooks`: callbacks at each phase of a
                request and on connection, heal and keep-warm events (see
                :mod:`warmline._hooks`). None (the default) costs nothing:
                the request path is the same code as without the option.
            latency: Keep latency histograms (acquire wait, time to first
                byte, total) in ``stats().histograms``. Off by default: it
                costs ~0.4 us per request (three records, ~130 ns each),
                2-4 % of a pooled GET's client CPU.
            retry: A :class:`warmline.Retry`: the pool's own requests
                (``pool.get()`` and friends, not a leased slot's) are sent
                again on the statuses and errors it lists, within the
                request's total timeout. Off (None) by default.
            hedge: A :class:`warmline.Hedge`: a ``pool.get()`` with no answer
                after ``hedge.after`` goes out again on another slot; the
                first answer wins and the loser's connection is discarded.
                Off (None) by default. Leased slots are never hedged.
    """

    base_path: str
    headers: HeadersArg | None
    connections: int
    tls: ssl.SSLContext | bool | None
    uds: str | None
    connect_timeout: float | None
    timeout: float | Timeouts | None
    reconnect: Backoff | None
    idle_timeout: float | None
    retry_stale: bool
    require: int | None
    max_body_size: int
    max_head_size: int
    max_headers: int
    user_agent: str | None
    max_lifetime: float | None
    keep_alive: bool
    tcp_keepalive: bool
    local_address: LocalAddress
    keep_warm: KeepWarm | None
    proxy: ProxyArg
    trust_env: bool
    decompress: bool
    drain_limit: int
    spin: float | None
    hooks: Hooks | None
    latency: bool
    retry: Retry | None
    hedge: Hedge | None


@dataclasses.dataclass(frozen=True, slots=True)
class PoolConfig:
    """Everything a pool needs besides its slots; see ``ClientPool.connect``."""

    origin: Origin
    writer: RequestWriter
    tls: ssl.SSLContext | None
    connections: int
    need: int  # connections that must open for connect() to succeed
    connect_timeout: float | None
    timeout: float | None
    backoff: Backoff
    idle_timeout: float | None
    retry_stale: bool
    max_head_size: int
    max_headers: int
    max_body_size: int
    max_lifetime: float | None = None
    keep_alive: bool = True
    tcp_keepalive: bool = False
    local_address: LocalAddress = None
    read_timeout: float | None = None
    pool_timeout: float | None = None
    lazy: bool = False
    admission: Admission | None = None
    keep_warm: KeepWarm | None = None
    proxy: Proxy | None = None
    decompress: bool = True
    drain_limit: int = DEFAULT_DRAIN_LIMIT
    spin: float = 0.0
    hooks: Hooks | None = None
    latency: bool = False
    retry: Retry | None = None
    hedge: Hedge | None = None

    @classmethod
    def build(
        cls,
        url: str,
        *,
        base_path: str = "",
        headers: HeadersArg | None = None,
        connections: int = 8,
        tls: ssl.SSLContext | bool | None = None,
        uds: str | None = None,
        connect_timeout: float | None = 5.0,
        timeout: float | Timeouts | None = None,
        reconnect: Backoff | None = None,
        idle_timeout: float | None = None,
        retry_stale: bool = True,
        require: int | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        user_agent: str | None = None,
        max_lifetime: float | None = None,
        keep_alive: bool = True,
        tcp_keepalive: bool = False,
        local_address: LocalAddress = None,
        lazy: bool = False,
        admission: Admission | None = None,
        keep_warm: KeepWarm | None = None,
        proxy: ProxyArg = None,
        trust_env: bool = False,
        decompress: bool = True,
        drain_limit: int = DEFAULT_DRAIN_LIMIT,
        spin: float | None = None,
        hooks: Hooks | None = None,
        latency: bool = False,
        retry: Retry | None = None,
        hedge: Hedge | None = None,
    ) -> PoolConfig:
        """Validate the options of ``connect()``.

        Raises:
            InvalidRequest: A bad URL, default header or TLS option.
            ValueError: ``connections`` below 1, ``require`` out of range, a
                bad proxy URL (in ``proxy`` or, with ``trust_env``, the
                environment).
        """
        origin = Origin.parse(url, uds=uds)
        chosen = choose_proxy(origin, proxy, trust_env)
        _check_int(connections, "connections", 1)
        need = connections if require is None else require
        _check_int(need, "require", 0)
        if need > connections:
            raise ValueError(f"require must be between 0 and connections, got {require!r}")
        for value, name in ((max_body_size, "max_body_size"), (max_head_size, "max_head_size")):
            _check_int(value, name, 1)
        _check_int(max_headers, "max_headers", 1)
        _check_int(drain_limit, "drain_limit", 0)
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a warmline.Retry or None, got {retry!r}")
        if hedge is not None and not isinstance(hedge, Hedge):
            raise TypeError(f"hedge must be a warmline.Hedge or None, got {hedge!r}")
        if spin is not None:
            spin = check_timeout(spin, "spin")
            if spin is None or spin > 1.0:  # inf, or a core burnt for seconds
                raise ValueError("spin must be a finite number of seconds, at most 1")
        read_timeout = pool_timeout = None
        if isinstance(timeout, Timeouts):
            # A Timeouts sets the connect timeout too (the connect_timeout
            # keyword is for a float timeout).
            connect_timeout, read_timeout = timeout.connect, timeout.read
            pool_timeout, timeout = timeout.pool, timeout.total
        connect_timeout = check_timeout(connect_timeout, "connect_timeout")
        timeout = check_timeout(timeout, "timeout")
        max_lifetime = check_timeout(max_lifetime, "max_lifetime")
        if max_lifetime == 0:
            raise ValueError("max_lifetime must be > 0 seconds (or None)")
        idle_timeout = check_timeout(idle_timeout, "idle_timeout")
        if idle_timeout == 0:
            raise ValueError("idle_timeout must be > 0 seconds (or None)")
        if keep_warm is not None and not isinstance(keep_warm, KeepWarm):
            raise TypeError(f"keep_warm must be a warmline.KeepWarm, got {keep_warm!r}")
        if reconnect is not None and not isinstance(reconnect, Backoff):
            raise TypeError(f"reconnect must be a warmline.Backoff, got {reconnect!r}")
        if not isinstance(decompress, bool):
            raise TypeError(f"decompress must be a bool, got {decompress!r}")
        if hooks is not None and not isinstance(hooks, Hooks):
            raise TypeError(f"hooks must be a warmline.Hooks, got {hooks!r}")
        if not isinstance(latency, bool):
            raise TypeError(f"latency must be a bool, got {latency!r}")
        if not keep_alive:
            # RFC 9112 §9.6: tell the server this connection ends here.
            headers = {**dict(headers or {}), "Connection": "close"}
        if decompress:
            headers = _with_accept_encoding(headers)
        writer_kwargs: dict[str, Any] = {"base_path": base_path, "headers": headers}
        if user_agent is not None:
            writer_kwargs["user_agent"] = user_agent
        form = None if chosen is None else forward_form(origin, chosen)
        if form is not None:
            # An http origin behind an HTTP(S) proxy: absolute-form targets,
            # and the proxy's credentials and headers in every request's
            # default headers, serialised once like the others.
            writer_kwargs["absolute_form_prefix"] = form.prefix
            writer_kwargs["headers"] = [*_header_items(headers), *form.headers]
        return cls(
            origin=origin,
            writer=RequestWriter(origin.host_header, **writer_kwargs),
            tls=client_context(origin, tls),
            connections=connections,
            need=need,
            connect_timeout=connect_timeout,
            timeout=timeout,
            backoff=reconnect or Backoff(),
            idle_timeout=idle_timeout,
            retry_stale=retry_stale,
            max_head_size=max_head_size,
            max_headers=max_headers,
            max_body_size=max_body_size,
            max_lifetime=max_lifetime,
            keep_alive=keep_alive,
            tcp_keepalive=tcp_keepalive,
            local_address=local_address,
            read_timeout=read_timeout,
            pool_timeout=pool_timeout,
            lazy=lazy,
            admission=admission,
            keep_warm=keep_warm,
            proxy=chosen,
            decompress=decompress,
            drain_limit=drain_limit,
            spin=spin or 0.0,
            hooks=hooks,
            latency=latency,
            retry=retry,
            hedge=hedge,
        )

    def new_core(self) -> PoolCore[Any]:
        """The pool core (slots, rules) for a pool with these settings."""
        return PoolCore(
            self.connections,
            backoff=self.backoff,
            idle_timeout=self.idle_timeout,
            max_lifetime=self.max_lifetime,
            lazy=self.lazy,
            keep_alive=self.keep_alive,
            keep_warm=None if self.keep_warm is None else self.keep_warm.interval,
            retry_stale=self.retry_stale,
            origin=str(self.origin),
            admission=self.admission,
        )

    def connect_options(self) -> dict[str, Any]:
        """The keyword arguments of both shells' ``open_connection``."""
        return {
            "tls": self.tls,
            "local_address": self.local_address,
            # Probes for a connection that serves one request cost four
            # setsockopt calls for nothing.
            "tcp_keepalive": self.tcp_keepalive and self.keep_alive,
            "read_timeout": self.read_timeout,
            "proxy": self.proxy,
        }

    def ping(self) -> tuple[str, bytes]:
        """The keep-warm request: its method and its bytes."""
        assert self.keep_warm is not None
        method = self.keep_warm.method.upper()
        return method, self.writer.build(method, self.keep_warm.path)

    def new_reader(self) -> ResponseReader:
        """A response reader with this pool's limits, for a new connection."""
        return ResponseReader(
            max_head_size=self.max_head_size,
            max_headers=self.max_headers,
            max_body_size=self.max_body_size,
            decompress=self.decompress,
        )


def choose_proxy(
    origin: Origin,
    proxy: ProxyArg,
    trust_env: bool,
    env: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy to reach ``origin`` through, or None to connect directly.

    An explicit ``proxy`` wins for every origin and the environment is not
    read (httpx does the same); ``NO_PROXY`` only filters the environment's
    proxies. A Unix-socket origin never goes through a proxy.

    Args:
        origin: The pool's origin.
        proxy: ``proxy=`` as the user gave it (URL, Proxy or None).
        trust_env: Whether to read ``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``.
        env: The environment to read (``os.environ`` when None).

    Raises:
        ValueError: A bad proxy URL (never echoing its credentials).
        TypeError: ``proxy`` or ``trust_env`` of the wrong type.
    """
    if not isinstance(trust_env, bool):
        raise TypeError(f"trust_env must be a bool, got {type(trust_env).__name__}")
    chosen = as_proxy(proxy)
    if origin.uds is not None:
        return None
    if chosen is None and trust_env:
        chosen = proxy_for(
            origin.scheme, origin.host, origin.port, os.environ if env is None else env
        )
    return chosen


def _header_items(headers: HeadersArg | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _with_accept_encoding(headers: HeadersArg | None) -> HeadersArg:
    """The default headers plus ``Accept-Encoding`` for the installed decoders,
    unless they already have one (any case)."""
    items = _header_items(headers)
    if any(name.lower() == "accept-encoding" for name, _ in items):
        return items
    return [*items, ("Accept-Encoding", accept_encoding().decode("ascii"))]


def _check_int(value: object, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
