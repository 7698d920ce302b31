"""``warmline.get(url)`` and friends: one request on a short-lived Client.

The slow path, for scripts and the REPL: each call opens a connection, sends
one request and closes everything (no pool outlives the call). Anything that
sends more than a few requests should keep a :class:`warmline.Client` or
:class:`warmline.AsyncClient` open instead.
"""

from __future__ import annotations

from typing import Any

from warmline._policy import TimeoutArg
from warmline._pool._verbs import ClientVerbs
from warmline.http11 import Response
from warmline.http11._writer import ContentArg, HeadersArg, ParamsArg
from warmline.sync._client import Client

__all__ = ["delete", "get", "head", "options", "patch", "post", "put", "request"]


class _OneShot(ClientVerbs[Response]):
    __slots__ = ()

    def _call(
        self,
        method: str,
        url: str,
        params: ParamsArg | None,
        headers: HeadersArg | None,
        content: ContentArg | None,
        json: Any,
        timeout: TimeoutArg,
    ) -> Response:
        with Client(keep_alive=False) as client:
            response: Response = client._call(method, url, params, headers, content, json, timeout)
            return response


_ONE_SHOT = _OneShot()
request = _ONE_SHOT.request
get = _ONE_SHOT.get
head = _ONE_SHOT.head
post = _ONE_SHOT.post
put = _ONE_SHOT.put
patch = _ONE_SHOT.patch
delete = _ONE_SHOT.delete
options = _ONE_SHOT.options
