"""What both clients share: their validated options and URL routing.

A client keeps one pool per authority (scheme, host, port; a Unix socket
path is its own). This module turns the client's options into each origin's
:class:`~warmline._config.PoolConfig` and a request URL into the key of its
pool and the request target; the shells (``AsyncClient``, ``Client``) only
create, look up and close pools. Sans-I/O like the rest of ``_pool``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypedDict, TypeVar

from warmline._config import PoolConfig, choose_proxy
from warmline._policy import Backoff, KeepWarm, Limits, Origin, PoolStats, Timeouts
from warmline._pool._core import Admission
from warmline._sockopts import LocalAddress
from warmline.connectors import ProxyArg, as_proxy, proxy_for
from warmline.errors import InvalidRequest, PoolClosed
from warmline.http11 import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS
from warmline.http11._writer import HeadersArg

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ClientBase", "ClientOptions", "ClientSettings"]

# The variables trust_env reads (either case); copied once per client.
_PROXY_VARIABLES: Final = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})

# Routing results kept per URL prefix ("scheme://netloc"); cleared when full,
# so a client fed endless distinct hosts stays bounded.
_ROUTE_CACHE_SIZE: Final = 1024


class ClientSettings:
    """A client's options, validated once; see ``AsyncClient`` for their meaning."""

    def __init__(
        self,
        *,
        headers: HeadersArg | None = None,
        base_url: str | None = None,
        limits: Limits | None = None,
        timeout: Timeouts | float | None = None,
        warm: Mapping[str, int] | None = None,
        keep_alive: bool = True,
        idle_timeout: float | None = None,
        max_lifetime: float | None = None,
        tcp_keepalive: bool = True,
        keep_warm: KeepWarm | None = None,
        local_address: LocalAddress = None,
        tls: ssl.SSLContext | None = None,
        retry_stale: bool = True,
        user_agent: str | None = None,
        reconnect: Backoff | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        proxy: ProxyArg = None,
        trust_env: bool = False,
    ) -> None:
        self.limits = limits if limits is not None else Limits()
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits must be a warmline.Limits, got {limits!r}")
        if timeout is None or isinstance(timeout, int | float):
            timeout = Timeouts(total=timeout)
        if not isinstance(timeout, Timeouts):
            raise TypeError(f"timeout must be a warmline.Timeouts or seconds, got {timeout!r}")
        self.timeouts = timeout
        self.base_url = self._base(base_url)
        self.admission = Admission(self.limits.total)
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"tls must be an ssl.SSLContext or None, got {tls!r}")
        self.proxy = as_proxy(proxy)
        self._env = _proxy_env(trust_env) if self.proxy is None else None
        self._options: dict[str, Any] = {
            "headers": headers,
            "tls": tls,
            "timeout": timeout,
            "reconnect": reconnect,
            "idle_timeout": idle_timeout,
            "retry_stale": retry_stale,
            "max_body_size": max_body_size,
            "max_head_size": max_head_size,
            "max_headers": max_headers,
            "user_agent": user_agent,
            "max_lifetime": max_lifetime,
            "keep_alive": keep_alive,
            "tcp_keepalive": tcp_keepalive,
            "local_address": local_address,
            "keep_warm": keep_warm,
            "admission": self.admission,
        }
        self.warm: dict[str, tuple[str, int]] = {}
        for url, connections in (warm or {}).items():
            origin = Origin.parse(url)
            if isinstance(connections, bool) or not isinstance(connections, int):
                raise TypeError(f"warm[{url!r}] must be an int, got {connections!r}")
            if not 1 <= connections <= self.limits.per_host:
                raise ValueError(f"warm[{url!r}] must be between 1 and Limits.per_host")
            self.warm[str(origin)] = (url, connections)
        if sum(n for _, n in self.warm.values()) > self.limits.total:
            raise ValueError("the warm connections exceed Limits.total")
        # Fail now, not at the first request: build one config.
        self.config("http://127.0.0.1", connections=1, lazy=True, dry_run=True)
        self._routes: dict[str, str] = {}

    @staticmethod
    def _base(base_url: str | None) -> str | None:
        if base_url is None:
            return None
        if not isinstance(base_url, str) or "://" not in base_url:
            raise InvalidRequest(f"base_url must be an absolute URL, got {base_url!r}")
        prefix, _ = _split(base_url)
        Origin.parse(prefix)
        return base_url.rstrip("/")

    def config(
        self, origin_url: str, *, connections: int, lazy: bool, dry_run: bool = False
    ) -> PoolConfig:
        """The PoolConfig of one origin's pool (its proxy chosen per origin)."""
        options = dict(self._options)
        if dry_run:
            options["admission"] = None
        origin = Origin.parse(origin_url)
        if not origin.tls:
            # The client's SSLContext is for its https origins; a plain-http
            # origin's pool would refuse one.
            options["tls"] = None
        return PoolConfig.build(
            origin_url,
            proxy=choose_proxy(origin, self.proxy, self._env is not None, self._env),
            base_path="",
            connections=connections,
            uds=None,
            connect_timeout=None,
            require=None,
            lazy=lazy,
            **options,
        )

    def route(self, url: str) -> tuple[str, str, str]:
        """Split a request URL: (pool key, origin URL, request target).

        Raises:
            InvalidRequest: Not an absolute http(s) URL (nor relative with a
                ``base_url``), userinfo, a bad port or host.
        """
        if not isinstance(url, str):
            raise InvalidRequest(f"URL must be a str, got {type(url).__name__}")
        if "://" not in url:
            if self.base_url is None or not url.startswith("/"):
                raise InvalidRequest(
                    f"URL {url!r} has no scheme and host (give an absolute URL, or a path "
                    "starting with / and a base_url)"
                )
            url = self.base_url + url
        prefix, target = _split(url)
        key = self._routes.get(prefix)
        if key is None:
            try:
                key = str(Origin.parse(prefix))
            except InvalidRequest as exc:
                shown = url if "@" not in prefix else "<a URL with userinfo>"  # no secrets
                raise InvalidRequest(f"invalid URL {shown!r}: {exc.message}") from None
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            self._routes[prefix] = key
        return key, prefix, target


P = TypeVar("P")


class ClientOptions(TypedDict, total=False):
    """The options of ``AsyncClient`` and ``Client`` (documented there)."""

    headers: HeadersArg | None
    base_url: str | None
    limits: Limits | None
    timeout: Timeouts | float | None
    warm: Mapping[str, int] | None
    keep_alive: bool
    idle_timeout: float | None
    max_lifetime: float | None
    tcp_keepalive: bool
    keep_warm: KeepWarm | None
    local_address: LocalAddress
    tls: ssl.SSLContext | None
    retry_stale: bool
    user_agent: str | None
    reconnect: Backoff | None
    max_body_size: int
    max_head_size: int
    max_headers: int
    proxy: ProxyArg
    trust_env: bool


class ClientBase(Generic[P]):
    """The state both clients share: settings, the pools by origin, stats."""

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        self._settings = ClientSettings(**options)
        self._pools: dict[str, P] = {}
        self._closed = False

    def _new_pool(self, key: str, prefix: str) -> P:
        raise NotImplementedError

    def _lookup(self, url: str) -> tuple[P, str]:
        key, prefix, target = self._settings.route(url)
        pool = self._pools.get(key)
        if pool is None:
            if self._closed:
                raise PoolClosed("client is closed", origin=key)
            pool = self._new_pool(key, prefix)
            self._pools[key] = pool
        return pool, target

    def pool(self, origin_url: str) -> P:
        """That origin's pool (created on first use: lazy unless in ``warm``).

        Use its ``try_acquire()`` on the hot path; it shares this client's
        limits.
        """
        return self._lookup(origin_url)[0]

    def stats(self) -> dict[str, PoolStats]:
        """Per origin (``scheme://host:port``): its pool's stats
        (``acquire_waits`` counts requests that waited under the limits)."""
        return {key: pool.stats() for key, pool in self._pools.items()}  # type: ignore[attr-defined]

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {state}: {len(self._pools)} origins>"


def _proxy_env(trust_env: bool) -> dict[str, str] | None:
    """The proxy variables, read once (None: ``trust_env`` is off).

    A client's origins then agree on one environment, whenever their pools
    open. Each variable's proxy URL is checked now, so that a bad one fails
    the constructor (naming the variable, not its value), not a request.
    """
    if not isinstance(trust_env, bool):
        raise TypeError(f"trust_env must be a bool, got {type(trust_env).__name__}")
    if not trust_env:
        return None
    env = {k: v for k, v in os.environ.items() if k.lower() in _PROXY_VARIABLES}
    if "REQUEST_METHOD" in os.environ:
        env["REQUEST_METHOD"] = os.environ["REQUEST_METHOD"]  # CGI: see proxy_for
    unfiltered = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    for scheme in ("http", "https"):
        proxy_for(scheme, "example.invalid", 1, unfiltered)
    return env


def _split(url: str) -> tuple[str, str]:
    """``scheme://netloc`` and the rest (``/`` when empty), without parsing."""
    start = url.find("://") + 3
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    end = min(ends) if ends else len(url)
    target = url[end:]
    if not target.startswith("/"):
        target = "/" + target
    return url[:end], target
