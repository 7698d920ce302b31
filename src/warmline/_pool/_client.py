"""What both clients share: their validated options and URL routing.

A client keeps one pool per authority (scheme, host, port; a Unix socket
path is its own). This module turns the client's options into each origin's
:class:`~warmline._config.PoolConfig` and a request URL into the key of its
pool and the request target; the shells (``AsyncClient``, ``Client``) only
create, look up and close pools. Sans-I/O like the rest of ``_pool``.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypedDict, TypeVar

from warmline._config import DEFAULT_DRAIN_LIMIT, PoolConfig, choose_proxy
from warmline._hooks import Hooks
from warmline._policy import (
    DEFAULT,
    Backoff,
    KeepWarm,
    Limits,
    Origin,
    PoolStats,
    TimeoutArg,
    Timeouts,
)
from warmline._pool._core import Admission, check_timeout
from warmline._redirects import Hop, next_hop, sensitive_names
from warmline._sockopts import LocalAddress
from warmline.connectors import ProxyArg, as_proxy, proxy_for
from warmline.errors import InvalidRequest, PoolClosed, TooManyRedirects
from warmline.http11 import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS
from warmline.http11._response import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.resilience._drive import HedgeThreads
from warmline.resilience._hedge import Hedge, HedgeTracker
from warmline.resilience._race import HedgeRace
from warmline.resilience._ratelimit import RateLimiter
from warmline.resilience._retry import Retry
from warmline.resilience._stats import ResilienceStats

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ClientBase",
    "ClientOptions",
    "ClientSettings",
    "OriginState",
    "Resilience",
    "ResilienceStats",
    "WeightOf",
]

WeightOf = Callable[[str, str], float]

# The variables trust_env reads (either case); copied once per client.
_PROXY_VARIABLES: Final = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})

# Routing results kept per URL prefix ("scheme://netloc") and per whole URL;
# each cache is cleared when full, so a client fed endless distinct URLs stays
# bounded.
_ROUTE_CACHE_SIZE: Final = 1024


# Statuses that make a limiter pause (RateLimiter.on_response): a response
# with one of these, or a status the retry policy lists, leaves the fast path.
_PAUSE_STATUSES: Final = frozenset({418, 429})


class Resilience:
    """A client's (or a pool's) retry, hedge and rate-limit options, and the
    attempt loop's decisions.

    Sans-I/O: the attempt loop (:mod:`warmline._pool._attempts`, one per
    flavour, driven by the clients and by pools with ``retry=``/``hedge=``)
    asks this object what to do; it is these few lines around it::

        deadline = res.deadline_after(timeout, started)
        hedge = res.hedge_for(method, replayable)
        while True:                       # one pass per attempt
            take from state.limiters (try_take, else a bounded wait)
            budget = res.attempt_timeout(timeout, deadline, now)
            outcome = the response or the WarmlineError of one attempt
                      (hedged: a HedgeRace from res.race(state, now, weight))
            if a response and its status not in res.watched: return it
            wait = res.after(state, attempt, method, outcome, deadline, now, replayable)
            if wait is None: return the response / raise the error
            sleep(wait)

    It exists only when at least one option is set, so a client without
    them keeps its direct path to the pool; with ``direct`` (no limiter
    anywhere), a request that cannot be hedged sends its first attempt
    straight to the pool and looks at it only when it failed or its status
    is ``watched``.

    Attributes:
        retry: The retry policy, or None.
        hedge: The hedge policy, or None.
        total: The client's total timeout per request (seconds), or None.
        watched: Statuses worth a closer look (retry or limiter pause).
        direct: No rate limiter is configured: the first attempt needs no
            token and no per-origin state.
        plain: ``direct`` and no hedge: every first attempt goes straight
            to the pool.
        hedged: The methods the hedge applies to (empty without one).
        timed: The client has a total timeout (retries must fit in it).
    """

    __slots__ = (
        "_limiters",
        "_origins",
        "_weight_of",
        "direct",
        "hedge",
        "hedged",
        "plain",
        "retry",
        "timed",
        "total",
        "watched",
    )

    def __init__(
        self,
        retry: Retry | None,
        hedge: Hedge | None,
        rate_limit: RateLimiter | None,
        rate_limits: Mapping[str, RateLimiter] | None,
        weight_of: WeightOf | None,
        total: float | None,
    ) -> None:
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a warmline.Retry or None, got {retry!r}")
        if hedge is not None and not isinstance(hedge, Hedge):
            raise TypeError(f"hedge must be a warmline.Hedge or None, got {hedge!r}")
        if weight_of is not None and not callable(weight_of):
            raise TypeError(
                f"weight_of must be a callable (method, url) -> float, got {weight_of!r}"
            )
        self.retry = retry
        self.hedge = hedge
        self._weight_of = weight_of
        self.total = total
        self._limiters = _limiters_by_origin(rate_limit, rate_limits)
        self.direct = not self._limiters
        # The happy path's questions, answered once: the first attempt goes
        # straight to the pool when ``plain`` (no limiter, no hedge), or when
        # ``direct`` and the method is not in ``hedged``.
        self.plain = self.direct and hedge is None
        self.hedged = frozenset() if hedge is None else hedge.methods
        self.timed = total is not None
        statuses = retry.statuses if retry is not None else frozenset()
        self.watched = statuses | _PAUSE_STATUSES if self._limiters else statuses
        self._origins: dict[str, OriginState] = {}

    def deadline_after(self, timeout: object, started: float) -> float | None:
        """The request's deadline on the shell's clock; None when it has no total timeout."""
        if timeout is DEFAULT:
            total = self.total
            return None if total is None else started + total
        total = check_timeout(timeout, "timeout")
        return None if total is None else started + total

    @staticmethod
    def time_left(deadline: float | None, now: float) -> float | None:
        """Seconds left before ``deadline`` (at least 0), or None without one."""
        return None if deadline is None else max(0.0, deadline - now)

    @staticmethod
    def attempt_timeout(timeout: TimeoutArg, deadline: float | None, now: float) -> TimeoutArg:
        """An attempt's own timeout: what is left of the request's total, so
        that retries, hedges and their waits never outlast the request."""
        return timeout if deadline is None else max(0.0, deadline - now)

    def hedge_for(self, method: str, replayable: bool) -> Hedge | None:
        """The hedge policy if this request may be hedged: its method is in
        ``hedge.methods`` and its body can be sent twice (not a stream)."""
        hedge = self.hedge
        if hedge is None or method not in hedge.methods or not replayable:
            return None
        return hedge

    def route(self, key: str) -> OriginState:
        """Origin ``key``'s limiters and counters (made on first use)."""
        state = self._origins.get(key)
        if state is None:
            limiters = self._limiters.get(key)
            if limiters is None:
                limiters = self._limiters.get("", ())
            hedging = None if self.hedge is None else self.hedge.tracker()
            state = self._origins.setdefault(key, OriginState(limiters, hedging))
        return state

    def weight(self, method: str, url: str) -> float:
        """A request's weight in its limiters (``weight_of``, else 1)."""
        weight_of = self._weight_of
        return 1.0 if weight_of is None else weight_of(method, url)

    def race(self, state: OriginState, now: float, weight: float) -> HedgeRace:
        """A hedged attempt's race (see :class:`~warmline.resilience._race.HedgeRace`):
        a hedge goes out only if every limiter of the origin grants its
        weight at once."""
        hedge, hedging = self.hedge, state.hedging
        assert hedge is not None and hedging is not None
        limiters = state.limiters
        grant = None
        if limiters:

            def grant() -> bool:
                return all(limiter.try_take(weight) for limiter in limiters)

        return HedgeRace(hedge, hedging, state.stats, now, grant)

    def after(
        self,
        state: OriginState,
        attempt: int,
        method: str,
        outcome: Response | BaseException,
        deadline: float | None,
        now: float,
        replayable: bool,
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None: return the
        response (or raise the error) that ``outcome`` is.

        Called after an error, or a response whose status is ``watched``. A
        429 or 418 with ``Retry-After`` pauses the origin's limiter first
        (its own one, else the client-wide one). A streamed body
        (``replayable`` False) is never sent again. A retry decided here is
        counted in ``state.stats.retries``.
        """
        left = None if deadline is None else deadline - now
        if isinstance(outcome, Response):
            wait = self.after_response(
                state, attempt, method, outcome, time.time(), left, replayable
            )
        else:
            wait = self.after_error(attempt, method, outcome, time.time(), left, replayable)
        if wait is not None:
            state.stats.retries += 1
        return wait

    def after_response(
        self,
        state: OriginState,
        attempt: int,
        method: str,
        response: Response,
        now_epoch: float,
        time_left: float | None,
        replayable: bool = True,
    ) -> float | None:
        """:meth:`after` for a response (uncounted): the limiter pause, then the retry policy."""
        headers_get = response.headers.get
        limiters = state.limiters
        if limiters:
            limiters[-1].on_response(response.status, headers_get, now_epoch=now_epoch)
        if self.retry is None:
            return None
        return self.retry.decide(
            attempt,
            method,
            status=response.status,
            headers_get=headers_get,
            replayable_body=replayable,
            now_epoch=now_epoch,
            time_left=time_left,
        )

    def after_error(
        self,
        attempt: int,
        method: str,
        error: BaseException,
        now_epoch: float,
        left: float | None,
        replayable: bool = True,
    ) -> float | None:
        """:meth:`after` for an error (uncounted): the retry policy's answer."""
        if self.retry is None:
            return None
        return self.retry.decide(
            attempt,
            method,
            error=error,
            replayable_body=replayable,
            now_epoch=now_epoch,
            time_left=left,
        )

    def snapshot(self, keys: list[str]) -> dict[str, ResilienceStats]:
        """A copy of the counters of each origin in ``keys`` (zeros when none)."""
        origins = self._origins
        return {
            k: dataclasses.replace(origins[k].stats) if k in origins else ResilienceStats()
            for k in keys
        }


class OriginState:
    """What the attempt loop needs of one origin, looked up once per request.

    Attributes:
        limiters: Taken before each attempt: the client-wide one, then the
            origin's own; the last one is paused by a 429 or 418.
        stats: This origin's live counters.
        hedging: This origin's hedge budget and latencies (None: no hedge).
    """

    __slots__ = ("hedging", "limiters", "stats")

    def __init__(self, limiters: tuple[RateLimiter, ...], hedging: HedgeTracker | None) -> None:
        self.limiters = limiters
        self.stats = ResilienceStats()
        self.hedging = hedging


def _limiters_by_origin(
    rate_limit: RateLimiter | None, rate_limits: Mapping[str, RateLimiter] | None
) -> dict[str, tuple[RateLimiter, ...]]:
    """``{pool key: limiters}``; the key ``""`` holds the client-wide one alone."""
    if rate_limit is not None and not isinstance(rate_limit, RateLimiter):
        raise TypeError(f"rate_limit must be a warmline.RateLimiter or None, got {rate_limit!r}")
    shared: tuple[RateLimiter, ...] = () if rate_limit is None else (rate_limit,)
    found: dict[str, tuple[RateLimiter, ...]] = {"": shared} if shared else {}
    for url, limiter in (rate_limits or {}).items():
        if not isinstance(limiter, RateLimiter):
            raise TypeError(f"rate_limits[{url!r}] must be a warmline.RateLimiter, got {limiter!r}")
        found[str(Origin.parse(url))] = (*shared, limiter)
    return found


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
        retry: Retry | None = None,
        hedge: Hedge | None = None,
        rate_limit: RateLimiter | None = None,
        rate_limits: Mapping[str, RateLimiter] | None = None,
        weight_of: WeightOf | None = None,
        decompress: bool = True,
        drain_limit: int = DEFAULT_DRAIN_LIMIT,
        spin: float | None = None,
        follow_redirects: bool = False,
        max_redirects: int = 10,
        hooks: Hooks | None = None,
        latency: bool = False,
    ) -> None:
        if not isinstance(follow_redirects, bool):
            raise TypeError(f"follow_redirects must be a bool, got {follow_redirects!r}")
        if isinstance(max_redirects, bool) or not isinstance(max_redirects, int):
            raise TypeError(f"max_redirects must be an int, got {max_redirects!r}")
        if max_redirects < 0:
            raise ValueError(f"max_redirects must be >= 0, got {max_redirects!r}")
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        # Credential headers among the defaults: a redirect may not take
        # them to another origin (see warmline._redirects).
        self.credentials = sensitive_names(headers)
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
            "decompress": decompress,
            "drain_limit": drain_limit,
            "spin": spin,
            "hooks": hooks,
            "latency": latency,
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
        self.resilience: Resilience | None = None
        if retry is not None or hedge is not None or rate_limit is not None or rate_limits:
            self.resilience = Resilience(
                retry, hedge, rate_limit, rate_limits, weight_of, timeout.total
            )

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
    retry: Retry | None
    hedge: Hedge | None
    rate_limit: RateLimiter | None
    rate_limits: Mapping[str, RateLimiter] | None
    weight_of: WeightOf | None
    decompress: bool
    drain_limit: int
    spin: float | None
    follow_redirects: bool
    max_redirects: int
    hooks: Hooks | None
    latency: bool


class ClientBase(Generic[P]):
    """The state both clients share: settings, the pools by origin, stats."""

    #: The flavour's request under the retry/hedge/limiter policies
    #: (:mod:`warmline._pool._attempts`).
    _resilient_fn: Callable[..., Any]
    #: The threads the blocking client's hedged attempts run on.
    _hedges: HedgeThreads | None = None

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        self._settings = ClientSettings(**options)
        self._resilience = self._settings.resilience
        self._hits: dict[str, tuple[P, str]] = {}
        self._follow = self._settings.follow_redirects
        self._pools: dict[str, P] = {}
        self._closed = False
        if self._follow:
            # The verbs call _call: the redirect loop when following, else
            # the class's _send_once itself (no test per request).
            object.__setattr__(self, "_call", self._following)

    # -- one request: the same dispatch for both clients (none of it waits) --------
    def _send_once(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Any:
        """One request, no redirect followed: straight to its origin's pool
        (the pool's own coroutine or response: no frame of the client's),
        or through the retry/hedge/limiter loop when the client has one."""
        pool, target = self._hits.get(url) or self._lookup(url)
        req = (method, target, params, headers, content, json, timeout)
        resilience = self._resilience
        if resilience is None:
            return pool._call(req, DEFAULT)  # type: ignore[attr-defined]
        return self._resilient_fn(resilience, pool, pool._call, url, self._hedges, req, DEFAULT)  # type: ignore[attr-defined]

    _call = _send_once

    def _following(self, *request: Any) -> Any:
        raise NotImplementedError

    def _new_pool(self, key: str, prefix: str) -> P:
        raise NotImplementedError

    def _create(self, key: str, prefix: str) -> P:
        """A new origin's pool, made and registered (the thread client locks this)."""
        if self._closed:
            raise PoolClosed("client is closed", origin=key)
        pool = self._new_pool(key, prefix)
        self._register(key, pool)
        return pool

    def _register(self, key: str, pool: P) -> None:
        """Add ``pool`` as the origin ``key``'s (its name in the resilience counters)."""
        pool._key = key  # type: ignore[attr-defined]
        self._pools[key] = pool

    def _lookup(self, url: str) -> tuple[P, str]:
        """The pool and request target of ``url``; the verbs call it as
        ``self._hits.get(url) or self._lookup(url)``: a URL seen before costs
        one dict lookup (a cache bounded like the routes', cleared when full)."""
        key, prefix, target = self._settings.route(url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._create(key, prefix)
        hits = self._hits
        if len(hits) >= _ROUTE_CACHE_SIZE:
            hits.clear()
        hits[url] = hit = (pool, target)
        return hit

    def _absolute(self, url: str) -> str:
        """``url`` joined to ``base_url`` when relative (redirects need it whole)."""
        base = self._settings.base_url
        return base + url if base is not None and "://" not in url else url

    def _redirected(self, response: Response, hop_from: Hop, history: list[Response]) -> Hop | None:
        """The next hop after ``response``, or None: it is the final response.

        Raises:
            TooManyRedirects: More than ``max_redirects`` hops.
            InvalidRequest: An https to http hop, or credentials would cross origins.
        """
        response._url = hop_from.url
        hop = next_hop(
            response,
            *hop_from,
            default_credentials=self._settings.credentials,
        )
        if hop is None:
            if history:
                response._history = history
            return None
        if len(history) >= self._settings.max_redirects:
            raise TooManyRedirects(
                f"more than {self._settings.max_redirects} redirects",
                method=hop_from.method,
                path=hop_from.url,
            )
        history.append(response)
        return hop

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

    def resilience_stats(self) -> dict[str, ResilienceStats]:
        """Per origin, what ``retry`` and ``hedge`` did (a copy; zeros when off).

        Kept apart from :meth:`stats`, whose values are the pools' own
        ``PoolStats``: a pool counts the attempts it served, the client
        counts which of them were retries and hedges.
        """
        keys = list(self._pools)
        if self._resilience is None:
            return {k: ResilienceStats() for k in keys}
        return self._resilience.snapshot(keys)

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
    end = len(url)
    for c in "/?#":
        at = url.find(c, start, end)
        if at >= 0:
            end = at
    target = url[end:]
    if not target.startswith("/"):
        target = "/" + target
    return url[:end], target
