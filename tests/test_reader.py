"""ResponseReader: a table of conformance cases, each fed whole, byte by byte and split.

Every case in CASES is a raw byte stream, the request method, optional
limits, and either the expected response or the expected exception class.
Each case runs three ways: in one feed, one byte per feed, and (for short
cases) in two pieces at every split point. The outcome must not depend on
how the bytes were split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from warmline.errors import ConnectionClosed, ProtocolError, ResponseTooLarge, WarmlineError
from warmline.http11._reader import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    MAX_CHUNK_LINE_SIZE,
    ResponseReader,
)
from warmline.http11._response import Response

Fields = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Ok:
    """The expected outcome of a valid case."""

    status: int
    body: bytes
    keep_alive: bool
    headers: Fields | None = None  # None: not checked
    reason: str | None = None
    version: str = "1.1"
    trailers: Fields = field(default_factory=list)
    eof: bool = False  # complete only at end of file (close-delimited body)


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    expect: Ok | type[WarmlineError]
    method: str = "GET"
    limits: dict[str, int] = field(default_factory=dict)


def ok(name: str, raw: bytes, expect: Ok, method: str = "GET", **limits: int) -> Case:
    return Case(name, raw, expect, method, limits)


def bad(
    name: str,
    raw: bytes,
    error: type[WarmlineError] = ProtocolError,
    method: str = "GET",
    **lim: int,
) -> Case:
    return Case(name, raw, error, method, lim)


def head(*lines: bytes, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    """A response head from a status line and field lines."""
    return b"".join(line + b"\r\n" for line in (status, *lines)) + b"\r\n"


def cl(body: bytes, *lines: bytes, status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    """A response with a Content-Length body."""
    return head(b"Content-Length: %d" % len(body), *lines, status=status) + body


def chunked(*chunks: bytes, trailers: bytes = b"", status: bytes = b"HTTP/1.1 200 OK") -> bytes:
    """A chunked response with the given chunks (empty ones left out: they would end it)."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks if c)
    return head(b"Transfer-Encoding: chunked", status=status) + body + b"0\r\n" + trailers + b"\r\n"


CHUNKED_HEAD = head(b"Transfer-Encoding: chunked")

CASES: list[Case] = [
    # -- Content-Length bodies -------------------------------------------------------
    ok(
        "content-length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
        Ok(
            200,
            b"hello",
            True,
            [(b"Content-Length", b"5"), (b"Content-Type", b"text/plain")],
            reason="OK",
        ),
    ),
    ok("content-length zero", cl(b""), Ok(200, b"", True)),
    ok("lower-case name", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi", Ok(200, b"hi", True)),
    ok("upper-case name", b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\n\r\nhi", Ok(200, b"hi", True)),
    ok("leading zeros", head(b"Content-Length: 002") + b"hi", Ok(200, b"hi", True)),
    ok(
        "body with CRLFs inside",
        cl(b"a\r\n\r\nb\r\n"),
        Ok(200, b"a\r\n\r\nb\r\n", True),
    ),
    ok("binary body", cl(bytes(range(256))), Ok(200, bytes(range(256)), True)),
    # -- fields ------------------------------------------------------------------------
    ok(
        "optional whitespace stripped, empty value, colon in value",
        head(
            b"Content-Length: 0",
            b"X-Spaces:   a b  \t",
            b"X-Tab:\tv",
            b"X-Empty:",
            b"X-Empty-Ws:   ",
            b"X-Time: 12:00:00",
        ),
        Ok(
            200,
            b"",
            True,
            [
                (b"Content-Length", b"0"),
                (b"X-Spaces", b"a b"),
                (b"X-Tab", b"v"),
                (b"X-Empty", b""),
                (b"X-Empty-Ws", b""),
                (b"X-Time", b"12:00:00"),
            ],
        ),
    ),
    ok(
        "repeated fields kept in order",
        head(b"Set-Cookie: a=1", b"Content-Length: 0", b"set-cookie: b=2"),
        Ok(
            200,
            b"",
            True,
            [(b"Set-Cookie", b"a=1"), (b"Content-Length", b"0"), (b"set-cookie", b"b=2")],
        ),
    ),
    ok(
        "every token character in a name",
        head(b"!#$%&'*+-.^_`|~09azAZ: x", b"Content-Length: 0"),
        Ok(200, b"", True, [(b"!#$%&'*+-.^_`|~09azAZ", b"x"), (b"Content-Length", b"0")]),
    ),
    ok(
        "obs-text and control characters in a value are kept",
        head(b"X-Latin: caf\xe9\x01\x7f", b"Content-Length: 0"),
        Ok(200, b"", True, [(b"X-Latin", b"caf\xe9\x01\x7f"), (b"Content-Length", b"0")]),
    ),
    ok("no fields at all, HTTP/1.1: close-delimited", head(), Ok(200, b"", False, [], eof=True)),
    # -- status line ------------------------------------------------------------------
    ok("empty reason", cl(b"", status=b"HTTP/1.1 200 "), Ok(200, b"", True, reason="")),
    ok("no reason, no SP", cl(b"", status=b"HTTP/1.1 200"), Ok(200, b"", True, reason="")),
    ok(
        "reason with spaces",
        cl(b"", status=b"HTTP/1.1 404 Not Found"),
        Ok(404, b"", True, reason="Not Found"),
    ),
    ok(
        "latin-1 reason",
        cl(b"", status=b"HTTP/1.1 200 \xc7a va"),
        Ok(200, b"", True, reason="\xc7a va"),
    ),
    ok("status 100-599 bounds: 599", cl(b"", status=b"HTTP/1.1 599 X"), Ok(599, b"", True)),
    ok("unknown status 299", cl(b"x", status=b"HTTP/1.1 299 X"), Ok(299, b"x", True)),
    # -- chunked ------------------------------------------------------------------------
    ok(
        "chunked",
        chunked(b"hello", b" ", b"world"),
        Ok(200, b"hello world", True, [(b"Transfer-Encoding", b"chunked")]),
    ),
    ok("chunked, no data", chunked(), Ok(200, b"", True)),
    ok(
        "chunked, case-insensitive coding",
        head(b"Transfer-Encoding: Chunked") + b"2\r\nhi\r\n0\r\n\r\n",
        Ok(200, b"hi", True),
    ),
    ok(
        "chunked, hex sizes any case, leading zeros",
        CHUNKED_HEAD + b"A\r\n0123456789\r\n000b\r\nabcdefghijk\r\nc\r\n0123456789ab\r\n0\r\n\r\n",
        Ok(200, b"0123456789abcdefghijk0123456789ab", True),
    ),
    ok(
        "chunked, extensions ignored",
        CHUNKED_HEAD + b'5;name=value;flag\r\nhello\r\n3 ; q="a;b"\r\nabc\r\n0;last\r\n\r\n',
        Ok(200, b"helloabc", True),
    ),
    ok(
        "chunked, CRLFs in chunk data",
        CHUNKED_HEAD + b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
        Ok(200, b"\r\n\r\n", True),
    ),
    ok(
        "chunked, trailers",
        chunked(b"data", trailers=b"X-Checksum: abc\r\nX-Other:  v \r\n"),
        Ok(200, b"data", True, trailers=[(b"X-Checksum", b"abc"), (b"X-Other", b"v")]),
    ),
    ok(
        "chunked, HTTP/1.0: read, then close",
        chunked(b"abc", status=b"HTTP/1.0 200 OK"),
        Ok(200, b"abc", False, version="1.0"),
    ),
    # -- close-delimited ---------------------------------------------------------------
    ok(
        "close-delimited, HTTP/1.1",
        head(b"Content-Type: text/plain") + b"until the end",
        Ok(200, b"until the end", False, eof=True),
    ),
    ok(
        "close-delimited, HTTP/1.0",
        head(status=b"HTTP/1.0 200 OK") + b"old\r\n\r\nserver",
        Ok(200, b"old\r\n\r\nserver", False, version="1.0", eof=True),
    ),
    ok(
        "close-delimited, keep-alive asked but impossible",
        head(b"Connection: keep-alive") + b"x",
        Ok(200, b"x", False, eof=True),
    ),
    ok("close-delimited, empty", head(b"X: y"), Ok(200, b"", False, eof=True)),
    # -- keep-alive rules ---------------------------------------------------------------
    ok("HTTP/1.1 default keep-alive", cl(b"x"), Ok(200, b"x", True)),
    ok("HTTP/1.1 Connection: close", cl(b"x", b"Connection: close"), Ok(200, b"x", False)),
    ok("HTTP/1.1 Connection: CLOSE", cl(b"x", b"Connection: CLOSE"), Ok(200, b"x", False)),
    ok("HTTP/1.1 Connection list", cl(b"x", b"Connection: foo, Close"), Ok(200, b"x", False)),
    ok(
        "HTTP/1.1 two Connection fields",
        cl(b"x", b"Connection: keep-alive", b"connection: close"),
        Ok(200, b"x", False),
    ),
    ok("HTTP/1.1 Connection: upgrade", cl(b"x", b"Connection: Upgrade"), Ok(200, b"x", True)),
    ok(
        "HTTP/1.0 default close",
        cl(b"x", status=b"HTTP/1.0 200 OK"),
        Ok(200, b"x", False, version="1.0"),
    ),
    ok(
        "HTTP/1.0 keep-alive",
        cl(b"x", b"Connection: Keep-Alive", status=b"HTTP/1.0 200 OK"),
        Ok(200, b"x", True, version="1.0"),
    ),
    ok(
        "HTTP/1.0 keep-alive in a list",
        cl(b"x", b"Connection: foo,keep-alive", status=b"HTTP/1.0 200 OK"),
        Ok(200, b"x", True, version="1.0"),
    ),
    ok(
        "HTTP/1.0 keep-alive and close",
        cl(b"x", b"Connection: keep-alive, close", status=b"HTTP/1.0 200 OK"),
        Ok(200, b"x", False, version="1.0"),
    ),
    # -- responses without a body --------------------------------------------------------
    ok(
        "HEAD with Content-Length", head(b"Content-Length: 1000"), Ok(200, b"", True), method="HEAD"
    ),
    ok(
        "HEAD with a huge Content-Length",
        head(b"Content-Length: 999999999999"),
        Ok(200, b"", True),
        method="HEAD",
    ),
    ok("HEAD with chunked", CHUNKED_HEAD, Ok(200, b"", True), method="HEAD"),
    ok("HEAD, no length", head(b"X: y"), Ok(200, b"", True), method="HEAD"),
    ok("204", head(status=b"HTTP/1.1 204 No Content"), Ok(204, b"", True)),
    ok(
        "204 with a length",
        head(b"Content-Length: 0", status=b"HTTP/1.1 204 No Content"),
        Ok(204, b"", True),
    ),
    ok(
        "304 with a length",
        head(b"Content-Length: 100", status=b"HTTP/1.1 304 Not Modified"),
        Ok(304, b"", True),
    ),
    ok(
        "CONNECT refused with a body",
        cl(b"no", status=b"HTTP/1.1 407 Auth"),
        Ok(407, b"no", True),
        method="CONNECT",
    ),
    # -- interim responses --------------------------------------------------------------
    ok(
        "100 Continue skipped",
        b"HTTP/1.1 100 Continue\r\n\r\n" + cl(b"done"),
        Ok(200, b"done", True, [(b"Content-Length", b"4")]),
    ),
    ok(
        "several interim responses",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + cl(b"ok"),
        Ok(200, b"ok", True, [(b"Content-Length", b"2")]),
    ),
    ok(
        "interim response with a Content-Length has no body",
        head(b"Content-Length: 5", status=b"HTTP/1.1 100 Continue") + cl(b"body"),
        Ok(200, b"body", True),
    ),
    ok(
        "unknown 1xx skipped",
        head(status=b"HTTP/1.1 199 Whatever") + chunked(b"x"),
        Ok(200, b"x", True),
    ),
    # -- limits, at the limit (accepted) ---------------------------------------------------
    ok(
        "exactly max_headers fields",
        head(*[b"X-%d: v" % i for i in range(4)], b"Content-Length: 0"),
        Ok(200, b"", True),
        max_headers=5,
    ),
    ok(
        "head exactly max_head_size",
        cl(b"", b"X: " + b"a" * 39),
        Ok(200, b"", True),
        max_head_size=len(cl(b"", b"X: " + b"a" * 39)),
    ),
    ok("body exactly max_body_size", cl(b"12345"), Ok(200, b"12345", True), max_body_size=5),
    ok(
        "chunked exactly max_body_size",
        chunked(b"123", b"45"),
        Ok(200, b"12345", True),
        max_body_size=5,
    ),
    ok(
        "close-delimited exactly max_body_size",
        head(b"X: y") + b"12345",
        Ok(200, b"12345", False, eof=True),
        max_body_size=5,
    ),
    # -- framing errors ---------------------------------------------------------------------
    bad(
        "conflicting repeated content-length",
        head(b"Content-Length: 2", b"Content-Length: 3") + b"hi",
    ),
    bad("conflicting content-length list", head(b"Content-Length: 2, 3") + b"hi"),
    # Identical repeats too (RFC 9110 §8.6 would allow them): a smuggling shape.
    bad(
        "identical repeated content-length",
        head(b"Content-Length: 2", b"Content-Length: 2") + b"hi",
    ),
    bad("identical content-length list", head(b"Content-Length: 2, 2") + b"hi"),
    bad("content-length list with a hole", head(b"Content-Length: 2,,2") + b"hi"),
    bad("negative content-length", head(b"Content-Length: -2") + b"hi"),
    bad("signed content-length", head(b"Content-Length: +2") + b"hi"),
    bad("hex content-length", head(b"Content-Length: 0x2") + b"hi"),
    bad("content-length with inner space", head(b"Content-Length: 1 2") + b"hi"),
    bad("empty content-length", head(b"Content-Length:") + b"hi"),
    bad("content-length with a unit", head(b"Content-Length: 2b") + b"hi"),
    bad("non-ASCII digit content-length", head("Content-Length: \u0662".encode()) + b"hi"),
    bad("content-length with 19 digits", head(b"Content-Length: 1" + b"0" * 18), ResponseTooLarge),
    bad("content-length and chunked", head(b"Content-Length: 2", b"Transfer-Encoding: chunked")),
    bad("chunked and content-length", head(b"Transfer-Encoding: chunked", b"Content-Length: 2")),
    bad("transfer-encoding identity", head(b"Transfer-Encoding: identity") + b"x"),
    bad("transfer-encoding gzip", head(b"Transfer-Encoding: gzip") + b"x"),
    bad(
        "transfer-encoding gzip, chunked", head(b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n"
    ),
    bad("transfer-encoding chunked, identity", head(b"Transfer-Encoding: chunked, identity")),
    bad("transfer-encoding chunked twice", head(b"Transfer-Encoding: chunked, chunked")),
    bad(
        "transfer-encoding repeated",
        head(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
    ),
    bad("transfer-encoding with a parameter", head(b"Transfer-Encoding: chunked;x=1")),
    bad("empty transfer-encoding", head(b"Transfer-Encoding:") + b"x"),
    bad("101 Switching Protocols", head(b"Upgrade: websocket", status=b"HTTP/1.1 101 Switching")),
    bad("2xx to CONNECT", head(status=b"HTTP/1.1 200 Connection established"), method="CONNECT"),
    # -- chunk errors --------------------------------------------------------------------------
    bad("non-hex chunk size", CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n"),
    bad("empty chunk size", CHUNKED_HEAD + b"\r\nhello\r\n0\r\n\r\n"),
    bad("signed chunk size", CHUNKED_HEAD + b"+5\r\nhello\r\n0\r\n\r\n"),
    bad("negative chunk size", CHUNKED_HEAD + b"-5\r\nhello\r\n0\r\n\r\n"),
    bad("0x chunk size", CHUNKED_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n"),
    bad("chunk size, leading space", CHUNKED_HEAD + b" 5\r\nhello\r\n0\r\n\r\n"),
    bad("chunk size, trailing space", CHUNKED_HEAD + b"5 \r\nhello\r\n0\r\n\r\n"),
    bad("chunk size, trailing garbage", CHUNKED_HEAD + b"5x\r\nhello\r\n0\r\n\r\n"),
    bad("chunk size, underscore", CHUNKED_HEAD + b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"),
    bad("chunk size, 17 hex digits", CHUNKED_HEAD + b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"),
    bad("chunk size overflow", CHUNKED_HEAD + b"f" * 16 + b"\r\nhello\r\n", ResponseTooLarge),
    bad("missing CRLF after chunk data", CHUNKED_HEAD + b"5\r\nhelloX\r\n0\r\n\r\n"),
    bad("LF only after chunk data", CHUNKED_HEAD + b"5\r\nhello\n0\r\n\r\n"),
    bad("bare LF ending a chunk-size line", CHUNKED_HEAD + b"5\nhello\r\n0\r\n\r\n"),
    bad("bare CR in a chunk-size line", CHUNKED_HEAD + b"5\rx\r\nhello\r\n0\r\n\r\n"),
    bad("LF-only chunked body", CHUNKED_HEAD + b"5\nhello\n0\n\n"),
    bad("NUL in a chunk extension", CHUNKED_HEAD + b"5;a=\x00\r\nhello\r\n0\r\n\r\n"),
    bad("bare LF in a chunk extension", CHUNKED_HEAD + b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    bad(
        "chunk-size line too long",
        CHUNKED_HEAD + b"5;" + b"x" * MAX_CHUNK_LINE_SIZE + b"\r\nhello\r\n0\r\n\r\n",
        ResponseTooLarge,
    ),
    bad("obs-fold in trailers", chunked(b"x", trailers=b"X: a\r\n b\r\n")),
    bad("bad trailer name", chunked(b"x", trailers=b"X Y: a\r\n")),
    bad("bare LF in trailers", chunked(b"x", trailers=b"X: a\nY: b\r\n")),
    bad("LF-only trailer end", CHUNKED_HEAD + b"0\r\nX: a\n\n"),
    # -- head errors -------------------------------------------------------------------------
    bad("obs-fold", head(b"X: a", b" continued", b"Content-Length: 0")),
    bad("obs-fold with tab", head(b"X: a", b"\tcontinued", b"Content-Length: 0")),
    bad("obs-fold on the first field", head(b" X: a", b"Content-Length: 0")),
    bad("space before colon", head(b"Content-Length : 0")),
    bad("tab before colon", head(b"X\t: a", b"Content-Length: 0")),
    bad("empty name", head(b": a", b"Content-Length: 0")),
    bad("empty name, last field", head(b"Content-Length: 0", b":a")),
    bad("line without colon", head(b"Content-Length: 0", b"garbage")),
    bad("separator in name", head(b"X(y): a", b"Content-Length: 0")),
    bad("slash in name", head(b"X/y: a", b"Content-Length: 0")),
    bad("non-ASCII name", head(b"X-\xe9: a", b"Content-Length: 0")),
    bad("DEL in name", head(b"X\x7f: a", b"Content-Length: 0")),
    bad("NUL in value", head(b"X: a\x00b", b"Content-Length: 0")),
    bad("NUL in name", head(b"X\x00: a", b"Content-Length: 0")),
    bad("NUL in reason", cl(b"", status=b"HTTP/1.1 200 O\x00K")),
    bad("bare CR in value", head(b"X: a\rb", b"Content-Length: 0")),
    bad("bare LF in value", head(b"X: a\nb", b"Content-Length: 0")),
    bad("bare CR before CRLF", head(b"X: a\r", b"Content-Length: 0")),
    bad("bare LF line ends", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi"),
    bad("bare LF line ends, CRLF later", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi\r\n\r\n"),
    bad("bare LF after the status line", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
    bad("bare CR line ends", b"HTTP/1.1 200 OK\rContent-Length: 0\r\r\n\r\n"),
    bad("mixed line ends", b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"),
    bad("CRLF then LF ends the head", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"),
    # -- status line errors ----------------------------------------------------------------
    bad("two-digit status", cl(b"", status=b"HTTP/1.1 20 OK")),
    bad("four-digit status", cl(b"", status=b"HTTP/1.1 2000 OK")),
    bad("status below 100", cl(b"", status=b"HTTP/1.1 099 OK")),
    bad("status above 599", cl(b"", status=b"HTTP/1.1 600 OK")),
    bad("non-digit status", cl(b"", status=b"HTTP/1.1 2x0 OK")),
    bad("no SP before reason", cl(b"", status=b"HTTP/1.1 200OK")),
    bad("tab before reason", cl(b"", status=b"HTTP/1.1 200\tOK")),
    bad("two SP before status", cl(b"", status=b"HTTP/1.1  200 OK")),
    bad("no SP after version", cl(b"", status=b"HTTP/1.1200 OK")),
    bad("HTTP/2", cl(b"", status=b"HTTP/2 200")),
    bad("HTTP/2.0", cl(b"", status=b"HTTP/2.0 200 OK")),
    bad("HTTP/1.2", cl(b"", status=b"HTTP/1.2 200 OK")),
    bad("HTTP/0.9-like", cl(b"", status=b"HTTP/0.9 200 OK")),
    bad("lower-case protocol", cl(b"", status=b"http/1.1 200 OK")),
    bad("ICY", cl(b"", status=b"ICY 200 OK")),
    bad("leading space", cl(b"", status=b" HTTP/1.1 200 OK")),
    bad("leading CRLF", b"\r\n" + cl(b"")),
    bad("empty status line", b"\r\n\r\n"),
    bad("version only", b"HTTP/1.1\r\n\r\n"),
    bad(
        "HTTP/2 server preface (SETTINGS frame)",
        b"\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x00\x01\x00\x00",
    ),
    bad("HTTP/2 client preface echoed", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    bad("HTML instead of a response", b"<html><body>hello</body></html>\n"),
    bad("TLS alert instead of plaintext", b"\x15\x03\x01\x00\x02\x02\x50"),
    # -- limit errors ------------------------------------------------------------------------
    bad(
        "too many fields",
        head(*[b"X-%d: v" % i for i in range(5)], b"Content-Length: 0"),
        ResponseTooLarge,
        max_headers=5,
    ),
    bad(
        "head one byte over max_head_size",
        cl(b"", b"X: " + b"a" * 40),
        ResponseTooLarge,
        max_head_size=len(cl(b"", b"X: " + b"a" * 39)),
    ),
    bad(
        "endless head",
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 40,
        ResponseTooLarge,
        max_head_size=100,
    ),
    bad("content-length over max_body_size", cl(b"123456"), ResponseTooLarge, max_body_size=5),
    bad("chunked over max_body_size", chunked(b"123", b"456"), ResponseTooLarge, max_body_size=5),
    bad(
        "close-delimited over max_body_size",
        head(b"X: y") + b"123456",
        ResponseTooLarge,
        max_body_size=5,
    ),
    bad(
        "too many trailers",
        chunked(b"x", trailers=b"".join(b"T-%d: v\r\n" % i for i in range(4))),
        ResponseTooLarge,
        max_headers=3,
    ),
    bad(
        "trailer section too large",
        chunked(b"x", trailers=b"T: " + b"v" * 200 + b"\r\n"),
        ResponseTooLarge,
        max_head_size=100,
    ),
    bad(
        "interim response over the head limit",
        head(b"X: " + b"v" * 200, status=b"HTTP/1.1 103 Early Hints") + cl(b""),
        ResponseTooLarge,
        max_head_size=100,
    ),
]

assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"


# -- running a case ---------------------------------------------------------------------------


def run(
    pieces: Sequence[bytes], method: str = "GET", *, eof: bool = False, **limits: Any
) -> tuple[Response, ResponseReader]:
    """Feed ``pieces`` to a fresh reader; return the one response it produced."""
    reader = ResponseReader(**limits)
    reader.start(method)
    result = None
    for piece in pieces:
        got = reader.feed(piece)
        if got is not None:
            assert result is None, "a response was returned twice"
            result = got
            assert not reader.expecting
    if eof:
        assert result is None, "a close-delimited response completed before end of file"
        assert reader.expecting
        result = reader.feed_eof()
    assert result is not None, "the response did not complete"
    return result, reader


def splits(raw: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """The ways a case is fed: whole, byte by byte, and in two pieces for short cases.

    Whole twice: the second time, a valid head is memoised and takes the
    reader's one-step fast path, which must agree with the general one.
    """
    yield "whole", [raw]
    yield "whole again (memoised head)", [raw]
    yield "bytewise", [raw[i : i + 1] for i in range(len(raw))]
    if len(raw) <= 400:
        for cut in range(1, len(raw)):
            yield f"split at {cut}", [raw[:cut], raw[cut:]]
    else:
        for cut in (1, 2, 3, len(raw) // 2, len(raw) - 2, len(raw) - 1):
            yield f"split at {cut}", [raw[:cut], raw[cut:]]


def check_ok(case: Case, expect: Ok, pieces: list[bytes]) -> None:
    response, reader = run(pieces, case.method, eof=expect.eof, **case.limits)
    assert response.status == expect.status
    assert response.content == expect.body
    assert reader.keep_alive is expect.keep_alive
    assert response.http_version == expect.version
    assert reader.leftover == b""
    assert reader.received_any
    if expect.headers is not None:
        assert response.raw_headers == expect.headers
    if expect.reason is not None:
        assert response.reason == expect.reason
    assert list(response.raw_trailers) == expect.trailers


def check_bad(case: Case, error: type[WarmlineError], pieces: list[bytes]) -> None:
    reader = ResponseReader(**case.limits)
    reader.start(case.method)
    with pytest.raises(WarmlineError) as info:
        for piece in pieces:
            assert reader.feed(piece) is None, "an invalid response was returned"
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert reader.keep_alive is False
    assert not reader.expecting
    # The reader stays failed.
    with pytest.raises(ProtocolError):
        reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ProtocolError):
        reader.start()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case(case: Case) -> None:
    for how, pieces in splits(case.raw):
        try:
            if isinstance(case.expect, Ok):
                check_ok(case, case.expect, pieces)
            else:
                check_bad(case, case.expect, pieces)
        except AssertionError as exc:
            raise AssertionError(f"{case.name} ({how}): {exc}") from exc


# -- leftover bytes, unsolicited data -----------------------------------------------------------


def test_piggy_backed_second_response_is_leftover() -> None:
    first, second = cl(b"one"), cl(b"two")
    reader = ResponseReader()
    reader.start()
    response = reader.feed(first + second)
    assert response is not None
    assert response.content == b"one"
    assert reader.leftover == second
    assert reader.keep_alive is False
    assert not reader.expecting
    with pytest.raises(ProtocolError, match="unsolicited"):
        reader.start()
    assert reader.keep_alive is False


def test_garbage_after_chunked_response_is_leftover() -> None:
    reader = ResponseReader()
    reader.start()
    raw = chunked(b"abc")
    assert reader.feed(raw[:-1]) is None
    response = reader.feed(raw[-1:] + b"junk")
    assert response is not None
    assert response.content == b"abc"
    assert reader.leftover == b"junk"
    assert reader.keep_alive is False


def test_leftover_after_bodyless_response() -> None:
    reader = ResponseReader()
    reader.start("HEAD")
    response = reader.feed(head(b"Content-Length: 3") + b"abc")
    assert response is not None
    assert response.content == b""
    assert reader.leftover == b"abc"
    assert reader.keep_alive is False


def test_data_after_the_response_is_unsolicited() -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.feed(cl(b"x")) is not None
    assert reader.keep_alive is True
    with pytest.raises(ProtocolError, match="unsolicited"):
        reader.feed(b"H")
    assert reader.keep_alive is False
    with pytest.raises(ProtocolError):
        reader.start()


def test_data_before_start_is_unsolicited() -> None:
    reader = ResponseReader()
    assert not reader.expecting
    with pytest.raises(ProtocolError, match="unsolicited"):
        reader.feed(cl(b"x"))
    with pytest.raises(ProtocolError):
        reader.feed(b"")
    assert reader.keep_alive is False


def test_empty_feeds_are_harmless() -> None:
    reader = ResponseReader()
    assert reader.feed(b"") is None
    reader.start()
    assert reader.feed(b"") is None
    assert reader.received_any is False
    raw = cl(b"abc")
    for piece in (raw[:5], b"", raw[5:]):
        response = reader.feed(piece)
    assert response is not None
    assert reader.feed(b"") is None
    assert reader.keep_alive is True


def test_bytearray_and_memoryview_input() -> None:
    raw = cl(b"body", b"X: y")
    for convert in (bytearray, memoryview):
        reader = ResponseReader()
        reader.start()
        response = reader.feed(convert(raw))  # type: ignore[arg-type]
        assert response is not None
        assert type(response.content) is bytes
        assert response.content == b"body"
        assert all(type(n) is bytes and type(v) is bytes for n, v in response.raw_headers)


def test_start_while_outstanding_is_refused() -> None:
    reader = ResponseReader()
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="outstanding"):
        reader.start()


# -- reuse across requests ------------------------------------------------------------------------


def test_many_responses_on_one_connection() -> None:
    reader = ResponseReader()
    bodies = [b"", b"a", b"bb" * 1000]
    for i, body in enumerate(bodies * 3):
        reader.start("HEAD" if i == 4 else "GET")
        if i == 4:
            raw = head(b"Content-Length: %d" % len(body))
        else:
            raw = chunked(body) if i % 2 else cl(body)
        response = None
        for piece in (raw[:7], raw[7:]):
            response = reader.feed(piece) or response
        assert response is not None
        assert response.content == (b"" if i == 4 else body)
        assert reader.keep_alive is True
        assert reader.leftover == b""


def test_state_is_not_carried_over() -> None:
    reader = ResponseReader()
    reader.start("HEAD")
    assert reader.feed(head(b"Content-Length: 3")) is not None
    reader.start("GET")  # not HEAD any more: the body must be read
    assert reader.feed(head(b"Content-Length: 3")) is None
    response = reader.feed(b"abc")
    assert response is not None
    assert response.content == b"abc"


def test_large_body_in_pieces_is_joined_once() -> None:
    body = bytes(range(256)) * 32768  # 8 MiB
    raw = cl(body)
    reader = ResponseReader()
    reader.start()
    response = None
    for i in range(0, len(raw), 65536):
        got = reader.feed(raw[i : i + 65536])
        assert got is None or i + 65536 >= len(raw)
        response = got or response
    assert response is not None
    assert response.content == body


# -- end of file ----------------------------------------------------------------------------


def test_eof_when_idle_returns_none() -> None:
    reader = ResponseReader()
    assert reader.feed_eof() is None
    assert reader.keep_alive is False
    with pytest.raises(ConnectionClosed) as info:
        reader.start()
    assert info.value.received_any is False


def test_eof_after_a_complete_response_returns_none() -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.feed(cl(b"x")) is not None
    assert reader.feed_eof() is None
    assert reader.keep_alive is False


def test_eof_before_any_byte_is_a_stale_connection() -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.received_any is False
    with pytest.raises(ConnectionClosed) as info:
        reader.feed_eof()
    assert info.value.received_any is False
    assert reader.keep_alive is False
    assert not reader.expecting


@pytest.mark.parametrize(
    "partial",
    [
        b"H",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        cl(b"hello")[:-1],
        chunked(b"hello")[:-1],
        chunked(b"hello", trailers=b"X: y\r\n")[:-3],
    ],
)
def test_eof_in_the_middle_of_a_response(partial: bytes) -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.feed(partial) is None
    assert reader.received_any is True
    with pytest.raises(ConnectionClosed) as info:
        reader.feed_eof()
    assert info.value.received_any is True
    assert reader.keep_alive is False
    with pytest.raises(ProtocolError):
        reader.feed(b"x")
    assert reader.feed_eof() is None  # nothing more to report


def test_eof_completes_a_close_delimited_body() -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.feed(head(status=b"HTTP/1.0 200 OK")) is None
    assert reader.feed(b"part one, ") is None
    assert reader.feed(b"part two") is None
    assert reader.expecting
    response = reader.feed_eof()
    assert response is not None
    assert response.content == b"part one, part two"
    assert reader.keep_alive is False
    assert not reader.expecting
    with pytest.raises(ConnectionClosed):
        reader.start()


def test_received_any_counts_interim_responses() -> None:
    reader = ResponseReader()
    reader.start()
    assert reader.feed(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    assert reader.received_any is True
    assert reader.expecting


# -- reset --------------------------------------------------------------------------------------


def test_reset_after_error() -> None:
    reader = ResponseReader()
    reader.start()
    with pytest.raises(ProtocolError):
        reader.feed(b"garbage\r\n\r\n")
    with pytest.raises(ProtocolError):
        reader.start()
    reader.reset()
    assert reader.keep_alive is True
    assert not reader.expecting
    reader.start()
    response = reader.feed(cl(b"ok"))
    assert response is not None
    assert response.content == b"ok"


def test_reset_forgets_partial_data_and_leftover() -> None:
    reader = ResponseReader()
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Le")
    reader.reset()
    assert reader.received_any is False
    reader.start()
    response = reader.feed(cl(b"new") + b"extra")
    assert response is not None
    assert reader.leftover == b"extra"
    reader.reset()
    assert reader.leftover == b""
    reader.start()
    assert reader.feed(cl(b"again")) is not None


def test_reset_after_eof() -> None:
    reader = ResponseReader()
    reader.feed_eof()
    reader.reset()
    reader.start()
    assert reader.feed(cl(b"x")) is not None


# -- limits ---------------------------------------------------------------------------------------


def test_default_limits() -> None:
    assert DEFAULT_MAX_HEAD_SIZE == 64 * 1024
    assert DEFAULT_MAX_HEADERS == 100
    assert DEFAULT_MAX_BODY_SIZE == 64 * 1024 * 1024
    reader = ResponseReader()
    reader.start()
    fields = [b"X-%d: v" % i for i in range(DEFAULT_MAX_HEADERS - 1)]
    assert reader.feed(cl(b"", *fields)) is not None
    reader.start()
    with pytest.raises(ResponseTooLarge):
        reader.feed(cl(b"", *fields, b"X-Last: v"))


def test_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        ResponseReader(max_body_size=-1)


def test_endless_head_dripped_stops_at_the_limit() -> None:
    reader = ResponseReader()  # default 64 KiB head limit
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    fed = 17
    with pytest.raises(ResponseTooLarge):
        while fed <= DEFAULT_MAX_HEAD_SIZE:
            reader.feed(b"X-Drip: y\r\n"[fed % 11 : fed % 11 + 1])
            fed += 1
    assert fed <= DEFAULT_MAX_HEAD_SIZE + 1
    assert len(reader._buf) == 0  # released


def test_endless_chunk_extension_stops_at_the_limit() -> None:
    reader = ResponseReader()
    reader.start()
    reader.feed(CHUNKED_HEAD + b"5;")
    with pytest.raises(ResponseTooLarge):
        for _ in range(MAX_CHUNK_LINE_SIZE):
            reader.feed(b"x")


def test_endless_close_delimited_body_stops_at_the_limit() -> None:
    reader = ResponseReader(max_body_size=1000)
    reader.start()
    reader.feed(head(b"X: y"))
    with pytest.raises(ResponseTooLarge):
        for _ in range(101):
            reader.feed(b"0123456789")


def test_garbage_is_rejected_before_the_head_limit() -> None:
    reader = ResponseReader()
    reader.start()
    with pytest.raises(ProtocolError, match=r"not an HTTP/1\.x response"):
        reader.feed(b"HTTP/2")


# -- errors are normalised ---------------------------------------------------------------------


def test_internal_errors_become_protocol_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from warmline.http11 import _reader

    def boom(*_: object) -> int:
        raise IndexError("internal")

    monkeypatch.setattr(_reader, "_content_length", boom)
    monkeypatch.setattr(_reader, "_HEADS", {})  # analyse the head anew
    reader = ResponseReader()
    reader.start()
    with pytest.raises(ProtocolError) as info:
        reader.feed(cl(b"x"))
    assert isinstance(info.value.__cause__, IndexError)
    assert reader.keep_alive is False


def test_error_messages_name_the_problem() -> None:
    cases = {
        head(b"X: a", b" folded"): "obsolete line folding",
        head(b"X : a"): "invalid header field name",
        head(b"nocolon"): "without a colon",
        head(b"X: a\x00"): "NUL",
        head(b"X: a\rb"): "bare CR or LF",
        head(b": a"): "empty header field name",
    }
    for raw, message in cases.items():
        reader = ResponseReader()
        reader.start()
        with pytest.raises(ProtocolError, match=message):
            reader.feed(raw)


def test_repeated_head_with_bodyless_status_keeps_extra_bytes_out_of_the_body() -> None:
    # The second time round the head is memoised (the fast path); a 304's
    # Content-Length must still not frame a body, whatever follows it.
    raw = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 4\r\n\r\n"
    for _ in range(2):
        reader = ResponseReader()
        reader.start("GET")
        response = reader.feed(raw + b"evil")
        assert response is not None
        assert response.status == 304
        assert response.content == b""
        assert reader.leftover == b"evil"
        assert not reader.keep_alive


def test_repeated_head_answering_head_has_no_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"
    for method in ("GET", "HEAD", "GET", "HEAD"):
        reader = ResponseReader()
        reader.start(method)
        response = reader.feed(raw + b"body")
        assert response is not None
        if method == "HEAD":
            assert response.content == b""
            assert reader.leftover == b"body"
        else:
            assert response.content == b"body"
            assert reader.keep_alive


def test_endless_interim_responses_stop_at_a_limit() -> None:
    from warmline.http11._reader import MAX_INTERIM_RESPONSES

    reader = ResponseReader()
    reader.start("GET")
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    for _ in range(MAX_INTERIM_RESPONSES):
        assert reader.feed(interim) is None
    with pytest.raises(ResponseTooLarge, match="1xx"):
        reader.feed(interim)
    # A few, then the final response, are fine on a fresh exchange.
    reader = ResponseReader()
    reader.start("GET")
    response = reader.feed(interim * 3 + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert response is not None
    assert response.content == b"x"
