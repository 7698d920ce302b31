"""What the mock server sends back: replies, sequences and faults.

A responder resolves, for the n-th request an expectation answers, to one
*leaf*: a :class:`Reply` (a well-formed response, possibly delayed, dripped,
chunked or gzipped) or a fault (:class:`Close`, :class:`Reset`,
:class:`Garbage`, :class:`Stall`). :class:`Sequence` and plain callables
choose a leaf per request.

A reply's bytes are built once, when it is created, so answering a request
costs one ``sendall``; that is what lets the server answer thousands of
keep-alive requests a second from one thread per connection.
"""

from __future__ import annotations

import gzip as _gzip
import json as _json
from collections.abc import Callable, Mapping
from collections.abc import Sequence as _Seq
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

if TYPE_CHECKING:
    from warmline.testing._match import RecordedRequest

__all__ = [
    "Close",
    "Garbage",
    "Leaf",
    "Reply",
    "Reset",
    "Responder",
    "ResponderLike",
    "Sequence",
    "Stall",
    "resolve",
]

_UNSET: Final[Any] = object()
_NO_BODY_STATUS: Final = frozenset({204, 304})
_DEFAULT_CHUNK: Final = 4096

HeadersLike: TypeAlias = "Mapping[str, str] | _Seq[tuple[str, str]]"


class ConnIO(Protocol):
    """What a leaf may do to the connection it answers on (implemented by the server)."""

    def sendall(self, data: bytes) -> None:
        """Send bytes; raises OSError when the client or a stop cut the connection."""

    def wait(self, seconds: float | None) -> bool:
        """Sleep up to ``seconds`` (None: until stop); True when the server is stopping."""

    def reset(self) -> None:
        """Close the connection with a TCP RST (SO_LINGER 0)."""


class Responder:
    """Base of everything ``Expectation.respond_with`` accepts (besides callables)."""

    def _leaf(self, request: RecordedRequest, call: int) -> Leaf:
        raise NotImplementedError


ResponderLike: TypeAlias = "Responder | Callable[[RecordedRequest], Responder]"


class Leaf(Responder):
    """A responder that acts on the connection itself."""

    def _leaf(self, request: RecordedRequest, call: int) -> Leaf:
        return self

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        """Answer ``request``; return whether the connection may serve another."""
        raise NotImplementedError


def resolve(responder: ResponderLike, request: RecordedRequest, call: int) -> Leaf:
    """The leaf that answers ``request``, the ``call``-th (from 0) of its expectation."""
    for _ in range(100):  # a callable returning callables forever is a bug, not a hang
        if isinstance(responder, Responder):
            return responder._leaf(request, call)
        if not callable(responder):
            break
        responder = responder(request)
    raise TypeError(f"a responder must be a Responder or return one, got {responder!r}")


@dataclass(frozen=True, eq=False)
class Reply(Leaf):
    """A well-formed HTTP/1.1 response.

    Args:
        status: Status code.
        headers: Extra header fields. A ``Content-Length`` or
            ``Transfer-Encoding`` given here replaces the computed one, so a
            test can send a lying length on purpose.
        body: Body bytes (a str is encoded as UTF-8, with a text/plain type).
        json: A value sent as a JSON body (``application/json``).
        reason: Reason phrase; the standard one when None.
        delay: Seconds to wait before sending anything.
        drip: ``(n_bytes, interval)``: send the response (head included)
            ``n_bytes`` at a time, ``interval`` seconds apart.
        chunked: Send the body with ``Transfer-Encoding: chunked``; True for
            4096-byte chunks, an int for that chunk size.
        gzip: Compress the body and send ``Content-Encoding: gzip``.
        close: Send ``Connection: close`` and close after the response.

    Raises:
        ValueError: An out-of-range status, delay or drip; both body and json.
    """

    status: int = 200
    headers: HeadersLike | None = None
    body: bytes | str = b""
    json: Any = _UNSET
    reason: str | None = None
    delay: float = 0.0
    drip: tuple[int, float] | None = None
    chunked: bool | int = False
    gzip: bool = False
    close: bool = False
    wire: bytes = field(init=False, repr=False)
    head_size: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._validate()
        head, payload = self._build()
        object.__setattr__(self, "wire", head + payload)
        object.__setattr__(self, "head_size", len(head))

    def _validate(self) -> None:
        if not 100 <= self.status <= 999:
            raise ValueError(f"status must be 100..999, got {self.status}")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.drip is not None and (self.drip[0] < 1 or self.drip[1] < 0):
            raise ValueError("drip is (bytes >= 1, interval >= 0)")
        if self.json is not _UNSET and self.body:
            raise ValueError("give body or json, not both")
        if self.chunked is not False and (self.chunked is not True and self.chunked < 1):
            raise ValueError("chunked is True or a chunk size >= 1")
        if not isinstance(self.body, bytes | str):
            raise TypeError(f"body must be bytes or str, got {type(self.body).__name__}")

    def _build(self) -> tuple[bytes, bytes]:
        payload, fields = self._payload()
        given = {name.lower() for name, _ in fields}
        if self.status >= 200 and self.status not in _NO_BODY_STATUS:
            if self.chunked is not False and "transfer-encoding" not in given:
                fields.append(("Transfer-Encoding", "chunked"))
                size = _DEFAULT_CHUNK if self.chunked is True else int(self.chunked)
                payload = _chunk(payload, size)
            elif not given & {"content-length", "transfer-encoding"}:
                fields.append(("Content-Length", str(len(payload))))
        else:
            payload = b""
        if self.close and "connection" not in given:
            fields.append(("Connection", "close"))
        reason = self.reason if self.reason is not None else _reason(self.status)
        lines = [f"HTTP/1.1 {self.status} {reason}"] + [f"{n}: {v}" for n, v in fields]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), payload

    def _payload(self) -> tuple[bytes, list[tuple[str, str]]]:
        fields = list(
            self.headers.items() if isinstance(self.headers, Mapping) else self.headers or ()
        )
        given = {name.lower() for name, _ in fields}
        if self.json is not _UNSET:
            payload = _json.dumps(self.json, separators=(",", ":")).encode()
            default_type: str | None = "application/json"
        elif isinstance(self.body, str):
            payload, default_type = self.body.encode(), "text/plain; charset=utf-8"
        else:
            payload, default_type = self.body, None
        if default_type and "content-type" not in given:
            fields.append(("Content-Type", default_type))
        if self.gzip:
            payload = _gzip.compress(payload, mtime=0)
            fields.append(("Content-Encoding", "gzip"))
        return payload, fields

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        if self.delay and io.wait(self.delay):
            return False
        data = self.wire[: self.head_size] if request.method == "HEAD" else self.wire
        if self.drip is None:
            io.sendall(data)
        elif not _drip(io, data, *self.drip):
            return False
        return not self.close


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _chunk(payload: bytes, size: int) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(piece), piece)
        for piece in (payload[i : i + size] for i in range(0, len(payload), size))
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def _drip(io: ConnIO, data: bytes, n: int, interval: float) -> bool:
    """Send ``data`` n bytes at a time; False when a stop cut it short."""
    for i in range(0, len(data), n):
        if i and io.wait(interval):
            return False
        io.sendall(data[i : i + n])
    return True


_FAULT_REPLY: Final = Reply(body=b"x" * 1024)


@dataclass(frozen=True, eq=False)
class Close(Leaf):
    """Close the connection (FIN) after sending the first ``after`` bytes of ``reply``.

    With ``after=0`` (the default) nothing is sent: the client sees its
    kept-alive connection closed before any response byte.
    """

    after: int = 0
    reply: Reply = _FAULT_REPLY

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        if self.after:
            io.sendall(self.reply.wire[: self.after])
        return False


@dataclass(frozen=True, eq=False)
class Reset(Leaf):
    """Send the first ``after`` bytes of ``reply``, then reset the connection (RST).

    ``after=None`` (the default) sends the head and half the body: a reset
    mid-body.
    """

    after: int | None = None
    reply: Reply = _FAULT_REPLY

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        wire = self.reply.wire
        after = self.after
        if after is None:
            after = self.reply.head_size + (len(wire) - self.reply.head_size) // 2
        if after:
            io.sendall(wire[:after])
        io.reset()
        return False


@dataclass(frozen=True, eq=False)
class Garbage(Leaf):
    """Send ``data`` (not HTTP) and close the connection."""

    data: bytes = b"\x00\xffTHIS IS NOT HTTP\r\n\r\n"

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            raise TypeError(f"Garbage data must be bytes, got {type(self.data).__name__}")

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        io.sendall(self.data)
        return False


@dataclass(frozen=True, eq=False)
class Stall(Leaf):
    """Send the first ``after`` bytes of ``reply``, then nothing for ``seconds``.

    ``seconds=None`` stalls until the server stops, which still happens
    promptly: ``stop()`` wakes every stalled connection and closes it. The
    connection is closed when the stall ends.
    """

    seconds: float | None = None
    after: int = 0
    reply: Reply = _FAULT_REPLY

    def _send(self, io: ConnIO, request: RecordedRequest) -> bool:
        if self.after:
            io.sendall(self.reply.wire[: self.after])
        io.wait(self.seconds)
        return False


class Sequence(Responder):
    """Answer the n-th request with the n-th responder.

    After the last one, the last repeats; with ``cycle=True`` the sequence
    starts over instead.
    """

    def __init__(self, *responders: ResponderLike, cycle: bool = False) -> None:
        if not responders:
            raise ValueError("Sequence needs at least one responder")
        self.responders = responders
        self.cycle = cycle

    def _leaf(self, request: RecordedRequest, call: int) -> Leaf:
        n = len(self.responders)
        chosen = self.responders[call % n if self.cycle else min(call, n - 1)]
        return resolve(chosen, request, call)

    def __repr__(self) -> str:
        return f"Sequence({', '.join(map(repr, self.responders))}, cycle={self.cycle})"
