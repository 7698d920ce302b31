"""A pool's validated settings, shared by ClientPool and AtomicClientPool.

Both ``connect()`` methods take the same options; this is where they are
checked and turned into what a pool runs on (origin, request writer, TLS
context, limits), once, for both shells.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

from warmline._policy import Backoff, Origin
from warmline._tls import client_context
from warmline.http11 import RequestWriter, ResponseReader
from warmline.http11._writer import HeadersArg

__all__ = ["PoolConfig"]


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

    @classmethod
    def build(
        cls,
        url: str,
        *,
        base_path: str,
        headers: HeadersArg | None,
        connections: int,
        tls: ssl.SSLContext | bool | None,
        uds: str | None,
        connect_timeout: float | None,
        timeout: float | None,
        reconnect: Backoff | None,
        idle_timeout: float | None,
        retry_stale: bool,
        require: int | None,
        max_body_size: int,
        max_head_size: int,
        max_headers: int,
        user_agent: str | None,
    ) -> PoolConfig:
        """Validate the options of ``connect()``.

        Raises:
            InvalidRequest: A bad URL, default header or TLS option.
            ValueError: ``connections`` below 1, ``require`` out of range.
        """
        origin = Origin.parse(url, uds=uds)
        if connections < 1:
            raise ValueError("connections must be >= 1")
        need = connections if require is None else require
        if not 0 <= need <= connections:
            raise ValueError("require must be between 0 and connections")
        writer_kwargs: dict[str, Any] = {"base_path": base_path, "headers": headers}
        if user_agent is not None:
            writer_kwargs["user_agent"] = user_agent
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
        )

    def new_reader(self) -> ResponseReader:
        """A response reader with this pool's limits, for a new connection."""
        return ResponseReader(
            max_head_size=self.max_head_size,
            max_headers=self.max_headers,
            max_body_size=self.max_body_size,
        )
