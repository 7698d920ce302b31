"""The mock server's HTTP/1.1 request parser: small, strict, bounded.

It reads one request at a time from a blocking socket-like object (anything
with ``recv``) and hands back a :class:`ParsedRequest` or raises
:class:`BadRequest` with a status and a reason the server answers with. It is
strict on purpose: the mock server tests HTTP clients, so anything a client
should not send (bare LF, a space before the colon, obsolete line folding,
Content-Length together with Transfer-Encoding, a bad chunk size) is an
error reported back to the test instead of being silently tolerated.

Limits (why): 64 KiB of request head and 100 header fields, like nginx's
and h11's defaults; 16 MiB of body by default, far above what a test sends,
so a runaway client cannot make the server grow without bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = ["BadRequest", "ClientGone", "ParsedRequest", "RequestReader"]

MAX_HEAD_SIZE: Final = 64 * 1024
MAX_HEADERS: Final = 100
MAX_CHUNK_LINE: Final = 1024
_RECV_SIZE: Final = 65536

# RFC 9110 §5.6.2 token, and the request target's allowed characters
# (visible ASCII, RFC 9112 §3.2); methods are tokens too.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET: Final = re.compile(rb"[\x21-\x7e]+")
# A field value: visible characters, SP and HTAB, no CR/LF/NUL (RFC 9110 §5.5).
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_VERSIONS: Final = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}


class _Readable(Protocol):
    def recv(self, bufsize: int, /) -> bytes: ...


class BadRequest(Exception):
    """The client sent something that is not a valid HTTP/1.1 request.

    Attributes:
        status: The status the server answers with (400, 413, 431, 501, 505).
        reason: What was wrong, in words, sent back as the response body.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class ClientGone(Exception):
    """The client closed the connection (cleanly between requests, or mid-request)."""

    def __init__(self, mid_request: bool) -> None:
        super().__init__("client closed the connection" + (" mid-request" if mid_request else ""))
        self.mid_request = mid_request


@dataclass(slots=True)
class ParsedRequest:
    """One request as read off the wire, before the server records it."""

    method: str
    target: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool
    expect_continue: bool


class RequestReader:
    """Reads requests one after another from one connection's socket.

    Bytes read past the end of one request stay buffered for the next, so a
    pipelining client works too (requests are answered in order).
    """

    __slots__ = ("_buf", "_max_body", "_sock")

    def __init__(self, sock: _Readable, max_body_size: int) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._max_body = max_body_size

    def _fill(self, mid_request: bool) -> None:
        data = self._sock.recv(_RECV_SIZE)
        if not data:
            raise ClientGone(mid_request or bool(self._buf))
        self._buf += data

    def read_head(self) -> ParsedRequest:
        """Block until a whole request head is in; parse it (body not read).

        Raises:
            ClientGone: The client closed the connection.
            BadRequest: The head is malformed or too large.
            OSError: The socket failed or timed out.
        """
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self._buf) > MAX_HEAD_SIZE:
                raise BadRequest(431, f"request head larger than {MAX_HEAD_SIZE} bytes")
            self._fill(False)
        if end > MAX_HEAD_SIZE:
            raise BadRequest(431, f"request head larger than {MAX_HEAD_SIZE} bytes")
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        return _parse_head(head)

    def read_body(self, request: ParsedRequest) -> bytes:
        """Read the body the head announced (Content-Length or chunked).

        Raises:
            ClientGone, BadRequest, OSError: As for :meth:`read_head`.
        """
        coding, length = _framing(request.headers)
        if coding:
            return self._read_chunked()
        if length > self._max_body:
            raise BadRequest(413, f"body of {length} bytes exceeds {self._max_body}")
        return self._take(length)

    def _take(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill(True)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise BadRequest(400, "chunk size line too long")
            self._fill(True)
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = _chunk_size(self._line())
            if size == 0:
                break
            if len(body) + size > self._max_body:
                raise BadRequest(413, f"chunked body exceeds {self._max_body} bytes")
            body += self._take(size)
            if self._take(2) != b"\r\n":
                raise BadRequest(400, "chunk data not followed by CRLF")
        # Trailer fields: read and dropped, bounded by the head limit.
        seen = 0
        while line := self._line():
            seen += len(line)
            if seen > MAX_HEAD_SIZE:
                raise BadRequest(431, "trailer section too large")
        return bytes(body)


def _chunk_size(line: bytes) -> int:
    size, _, _ext = line.partition(b";")  # chunk extensions are allowed and ignored
    size = size.rstrip(b" \t")
    if not size or len(size) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in size):
        raise BadRequest(400, f"bad chunk size line {line[:40]!r}")
    return int(size, 16)


def _parse_head(head: bytes) -> ParsedRequest:
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        raise BadRequest(400, "bare CR or LF in the request head (lines end with CRLF)")
    request_line, *lines = head.split(b"\r\n")
    method, target, version = _parse_request_line(request_line)
    if len(lines) > MAX_HEADERS:
        raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
    headers = [_parse_field(line) for line in lines]
    connection = ",".join(v for n, v in headers if n.lower() == "connection").lower()
    tokens = {t.strip() for t in connection.split(",")}
    keep_alive = "close" not in tokens and (version == "1.1" or "keep-alive" in tokens)
    expect = any(n.lower() == "expect" and v.lower() == "100-continue" for n, v in headers)
    _framing(headers)  # reject bad framing now, before any body byte is read
    return ParsedRequest(method, target, version, headers, b"", keep_alive, expect)


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    parts = line.split(b" ")
    if len(parts) != 3:
        raise BadRequest(400, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest(400, f"bad method {method[:40]!r}")
    if not _TARGET.fullmatch(target):
        raise BadRequest(400, f"bad request target {target[:80]!r}")
    if version not in _VERSIONS:
        if version.startswith(b"HTTP/"):
            raise BadRequest(505, f"unsupported HTTP version {version[:20]!r}")
        raise BadRequest(400, f"malformed request line {line[:80]!r}")
    return method.decode("ascii"), target.decode("ascii"), _VERSIONS[version]


def _parse_field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise BadRequest(400, "obsolete line folding in a header field (RFC 9112 §5.2)")
    name, colon, value = line.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        raise BadRequest(400, f"malformed header field {line[:80]!r}")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise BadRequest(400, f"control character in header {name.decode('ascii')!r}")
    return name.decode("ascii"), value.decode("latin-1")


def _framing(headers: list[tuple[str, str]]) -> tuple[bool, int]:
    """Return (chunked, content_length) per RFC 9112 §6, rejecting ambiguity."""
    te = [v for n, v in headers if n.lower() == "transfer-encoding"]
    cl = [v for n, v in headers if n.lower() == "content-length"]
    if te and cl:
        raise BadRequest(400, "both Transfer-Encoding and Content-Length (request smuggling)")
    if te:
        if len(te) != 1 or te[0].lower() != "chunked":
            raise BadRequest(501, f"unsupported Transfer-Encoding {', '.join(te)!r}")
        return True, 0
    if not cl:
        return False, 0
    values = {v.strip() for c in cl for v in c.split(",")}
    value = values.pop() if len(values) == 1 else ""
    # isascii(): str.isdigit() also accepts "²" and other non-ASCII digits.
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest(400, f"bad Content-Length {', '.join(cl)!r}")
    return False, int(value)
