"""Following redirects on the clients: the rules, sans-I/O.

The clients ask :func:`next_hop` after each response when
``follow_redirects=True``; it says where to go next and with what, or that
the response is final. Rules (RFC 9110 §15.4, and what browsers, curl and
httpx do):

* 301, 302 and 303 turn the request into a GET without a body (a HEAD stays
  a HEAD); 307 and 308 repeat the method and the body unchanged.
* ``Location`` may be relative (resolved against the request's URL, RFC 3986
  §5); a fragment is dropped. A 3xx without a ``Location``, or with one that
  is not an http(s) URL, is the final response, returned as is.
* Credentials never cross origins: when the next URL has another scheme, host
  or port, the request's own ``Authorization``, ``Cookie`` and
  ``Proxy-Authorization`` headers are dropped; and since a client's default
  headers go to every origin it talks to, a redirect to another origin from a
  client whose default headers carry one of them is refused
  (:class:`~warmline.errors.InvalidRequest`) rather than sent along.
* https never silently becomes http: such a redirect is refused with
  :class:`~warmline.errors.InvalidRequest` (follow it yourself if you mean to).
* More than ``max_redirects`` hops: :class:`~warmline.errors.TooManyRedirects`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple
from urllib.parse import urljoin, urlsplit

from warmline.errors import InvalidRequest
from warmline.http11._response import Response
from warmline.http11._upload import is_streamed
from warmline.http11._writer import ContentArg, HeadersArg

__all__ = ["REDIRECT_STATUSES", "SENSITIVE_HEADERS", "Hop", "next_hop", "sensitive_names"]

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
SENSITIVE_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
# Headers that describe a body: dropped with it when the method becomes GET.
_BODY_HEADERS: Final = frozenset({"content-type", "content-length", "transfer-encoding"})


class Hop(NamedTuple):
    """The next request of a redirect chain."""

    method: str
    url: str
    headers: HeadersArg | None
    content: ContentArg | None
    json: Any


def sensitive_names(headers: HeadersArg | None) -> frozenset[str]:
    """The credential headers (lower-cased) among ``headers``."""
    return frozenset(name.lower() for name, _ in _items(headers)) & SENSITIVE_HEADERS


def next_hop(
    response: Response,
    method: str,
    url: str,
    headers: HeadersArg | None,
    content: ContentArg | None,
    json: Any,
    *,
    default_credentials: frozenset[str] = frozenset(),
) -> Hop | None:
    """Where a redirect leads, or None when ``response`` is final.

    Args:
        response: The response to the request below.
        method, url, headers, content, json: That request (``url`` absolute).
        default_credentials: Credential headers among the client's defaults.

    Raises:
        InvalidRequest: An https to http redirect, or one to another origin
            while the client's default headers carry credentials.
    """
    if response.status not in REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if not location:
        return None
    try:
        target = urljoin(url, location.strip()).partition("#")[0]
        parts = urlsplit(target)
        here = urlsplit(url)
        _origin(parts)  # a bad port raises ValueError here
    except ValueError:
        return None  # an invalid Location: the 3xx is the answer
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if here.scheme == "https" and parts.scheme == "http":
        raise InvalidRequest(f"redirect from https to http refused: {_shown(target)}")
    items: list[tuple[str, str]] | None = None if headers is None else list(_items(headers))
    if _origin(here) != _origin(parts):
        if default_credentials:
            raise InvalidRequest(
                f"redirect to another origin ({_shown(target)}) refused: the client's default "
                f"headers carry {', '.join(sorted(default_credentials))}"
            )
        if items is not None:
            items = [(n, v) for n, v in items if n.lower() not in SENSITIVE_HEADERS]
    if response.status in (307, 308):
        if is_streamed(content):
            raise InvalidRequest(
                f"redirect {response.status} to {_shown(target)} not followed: it must send "
                "the body again, and the request body is a stream, which is read only once"
            )
        return Hop(method, target, items, content, json)
    if items is not None:
        items = [(n, v) for n, v in items if n.lower() not in _BODY_HEADERS]
    return Hop("HEAD" if method == "HEAD" else "GET", target, items, None, None)


def _items(headers: HeadersArg | None) -> Iterable[tuple[str, str]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _origin(parts: Any) -> tuple[str, str, int]:
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def _shown(url: str) -> str:
    """A URL for an error message, without any userinfo."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return url
