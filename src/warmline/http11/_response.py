"""The complete HTTP response object handed out by the reader.

A :class:`Response` is built once per request on the hot path, so it is a
``__slots__`` class whose constructor only stores references: the reason
phrase, the header mapping and the text are decoded when first read.
"""

from __future__ import annotations

import codecs
import json as _json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, Protocol

from warmline.errors import DecodingError, HTTPStatusError, StreamClosed
from warmline.http11._decoders import Decoder, make_decoder
from warmline.http11._headers import Headers

__all__ = ["BodySource", "Response", "UndecodedResponse", "split_fields"]

# Decoded output per step when streaming without a chunk_size: bounds what
# one small compressed input can expand to in memory at once.
_DECODE_STEP = 64 * 1024


class BodySource(Protocol):
    """Where a streamed response's body comes from (a shell's connection).

    Attributes:
        decompress: Whether ``iter_bytes``/``aiter_bytes`` undo the content coding.
        max_size: The decoded body's limit (``max_body_size``).
    """

    decompress: bool
    max_size: int

    def read_piece(self) -> bytes | None:
        """The next piece as sent (blocking), or None at the end of the body."""
        ...

    async def aread_piece(self) -> bytes | None:
        """The next piece as sent (asyncio), or None at the end of the body."""
        ...

    def release(self, drain: bool = True) -> None:
        """Give the connection back (drained, reused or closed); idempotent."""
        ...

    async def arelease(self, drain: bool = True) -> None:
        """:meth:`release` for asyncio."""
        ...


_loads: Callable[[bytes], Any]
try:  # orjson parses bytes directly and is several times faster than json.
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is an optional speed-up
    _loads = _json.loads

_NO_FIELDS: tuple[tuple[bytes, bytes], ...] = ()
RawFields = list[tuple[bytes, bytes]]


def split_fields(head: bytes) -> RawFields:
    """Split a head the reader validated into ``(name, value)`` pairs.

    Args:
        head: A first line (skipped: the status line, or empty for trailers),
            then field lines, each line ending in CRLF.
    """
    fields = []
    for line in head.split(b"\r\n")[1:-1]:
        name, _, value = line.partition(b":")
        fields.append((name, value.strip(b" \t")))  # OWS (RFC 9112 §5.1)
    return fields


class Response:
    """An HTTP/1.1 (or 1.0) response: complete, or streamed (from ``stream()``).

    A streamed response has its status and headers; its body is read with
    :meth:`aiter_bytes` (decoded), :meth:`aiter_raw` (as sent),
    :meth:`aiter_lines` or :meth:`aread`, then :meth:`aclose` (blocking:
    ``iter_bytes``, ``iter_raw``, ``iter_lines``, ``read``, ``close``).
    On a complete response these give its content at once.

    Attributes:
        status: The status code (100-599).
        http_version: ``"1.1"`` or ``"1.0"``.
        raw_headers: Header fields as ``(name, value)`` bytes, names as
            received, values stripped of optional whitespace, in order.
        content: The whole body, chunked coding removed; decoded (gzip, br...)
            when the pool decompresses (``decompress=True``, the default),
            else as sent.
        raw_trailers: Trailer fields of a chunked body, like ``raw_headers``.

    Example:
        >>> r = Response(200, "OK", "1.1", [(b"Content-Type", b"application/json")], b'{"a":1}')
        >>> r, r.headers["content-type"], r.json()
        (<Response [200 OK]>, 'application/json', {'a': 1})
    """

    __slots__ = (
        "_elapsed",
        "_fields",
        "_headers",
        "_history",
        "_raw",
        "_reason",
        "_source",
        "_url",
        "content",
        "http_version",
        "raw_trailers",
        "status",
    )

    _raw: bytes  # set only when the body was decoded: see raw_content
    # Set only on a streamed response (pool.stream()); None once closed.
    _source: BodySource | None
    # Set only by a client following redirects: see url and history.
    _url: str
    _history: list[Response]
    # Seconds, set by the connection that received it: see elapsed.
    _elapsed: float

    def __init__(
        self,
        status: int,
        reason: str | bytes,
        http_version: str,
        raw_headers: RawFields | bytes,
        content: bytes = b"",
        *,
        raw_trailers: Sequence[tuple[bytes, bytes]] = _NO_FIELDS,
    ) -> None:
        """Store the parts; nothing is decoded or split until it is read.

        Args:
            status: The status code.
            reason: The reason phrase, or its raw bytes (decoded as latin-1 when read).
            http_version: ``"1.1"`` or ``"1.0"``.
            raw_headers: The ``(name, value)`` byte pairs, or the head bytes as the
                reader validated them (see :func:`split_fields`), split when read.
            content: The body.
            raw_trailers: Trailer fields, as ``(name, value)`` byte pairs.
        """
        self.status = status
        self._reason = reason
        self.http_version = http_version
        self._fields = raw_headers
        self.content = content
        self.raw_trailers = raw_trailers
        self._headers: Headers | None = None

    @property
    def raw_content(self) -> bytes:
        """The body as sent, content coding included (chunked coding removed).

        The same object as :attr:`content` unless the body was decoded.
        """
        # ``_raw`` is set only by a decoding reader: the common response
        # stores nothing more, and pays for this only when it is read.
        try:
            return self._raw
        except AttributeError:
            return self.content

    @property
    def url(self) -> str | None:
        """The URL this response answers, when a client following redirects
        (``follow_redirects=True``) made it; else None (the pools know their
        paths, and the hot path stores nothing more)."""
        return getattr(self, "_url", None)

    @property
    def elapsed(self) -> timedelta:
        """The time from sending the request to receiving the response.

        For a whole response, from just before the request is written to the
        moment its last byte is parsed (its body included); for a streamed
        one (``stream()``), to the moment its head is parsed. Measured with
        ``time.perf_counter`` by the connection, per attempt: a retried
        request counts its last attempt, a redirected one its own hop (see
        :attr:`history`). Zero for a response not received on a connection
        (built by hand).
        """
        # A float stored on the hot path; the timedelta is built here.
        try:
            return timedelta(seconds=self._elapsed)
        except AttributeError:
            return timedelta(0)

    @property
    def history(self) -> list[Response]:
        """The redirect responses that led here, oldest first (empty if none)."""
        return getattr(self, "_history", [])

    @property
    def reason(self) -> str:
        """The reason phrase (may be empty; carries no meaning, RFC 9112 §4)."""
        reason = self._reason
        if isinstance(reason, bytes):
            reason = self._reason = reason.decode("latin-1")
        return reason

    @property
    def raw_headers(self) -> RawFields:
        """Header fields as ``(name, value)`` bytes, names as received, in order."""
        fields = self._fields
        if isinstance(fields, bytes):
            fields = self._fields = split_fields(fields)
        return fields

    @property
    def headers(self) -> Headers:
        """Case-insensitive view of :attr:`raw_headers`, built on first access."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self.raw_headers)
        return headers

    @property
    def trailers(self) -> Headers:
        """Case-insensitive view of :attr:`raw_trailers` (empty unless chunked)."""
        return Headers(self.raw_trailers)

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    @property
    def is_success(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def raise_for_status(self) -> Response:
        """Raise HTTPStatusError for a 4xx or 5xx status; return self otherwise.

        Example:
            >>> r = await client.get(url)            # doctest: +SKIP
            >>> data = r.raise_for_status().json()   # doctest: +SKIP
        """
        status = self.status
        if status < 400:
            return self
        kind = "client error" if status < 500 else "server error"
        raise HTTPStatusError(
            f"{kind} {status} {self.reason}".rstrip(),
            status=status,
            response=self,
            origin=None,
            path=self.url,
        )

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter of ``Content-Type``, lower-cased, if any."""
        content_type = self.headers.get("content-type")
        if content_type is None:
            return None
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"').lower() or None
        return None

    @property
    def text(self) -> str:
        """The body decoded with the ``Content-Type`` charset (default UTF-8).

        Undecodable bytes become U+FFFD instead of raising; an unknown charset
        falls back to UTF-8.
        """
        charset = self.charset or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Parse the body as JSON (orjson when installed, else the json module).

        Raises:
            ValueError: The body is not valid JSON (``json.JSONDecodeError`` or
                ``orjson.JSONDecodeError``, both subclasses of ``ValueError``).
        """
        return _loads(self.content)

    # -- streaming ---------------------------------------------------------------
    # A response from ``stream()`` has its head and a body source; the body is
    # read with these. On a whole response they give its content at once.

    @property
    def is_stream_consumed(self) -> bool:
        """Whether this is a whole response, or a stream read to its end or closed."""
        return getattr(self, "_source", None) is None

    def _stream_source(self) -> BodySource | None:
        try:
            source = self._source
        except AttributeError:
            return None  # a whole response (or a stream read with read())
        if source is None:
            raise StreamClosed("the stream is closed: its body can no longer be read")
        return source

    def _stream_decoder(self, source: BodySource) -> Decoder | None:
        if not source.decompress:
            return None
        # Raises DecodingError for a coding this installation cannot undo;
        # iter_raw() still gives the bytes.
        return make_decoder(self.headers.get("content-encoding"), max_size=source.max_size)

    def iter_raw(self) -> Iterator[bytes]:
        """The body as sent (content coding kept), piece by piece as it arrives.

        Raises:
            StreamClosed: The stream was closed (or its slot released) first.
            ReadTimeout, ConnectionClosed, ProtocolError: As for a request.
        """
        source = self._stream_source()
        if source is None:
            if self.raw_content:
                yield self.raw_content
            return
        while (piece := source.read_piece()) is not None:
            yield piece

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """:meth:`iter_raw` for asyncio."""
        source = self._stream_source()
        if source is None:
            if self.raw_content:
                yield self.raw_content
            return
        while (piece := await source.aread_piece()) is not None:
            yield piece

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The decoded body, in pieces of ``chunk_size`` bytes (the last one
        shorter), or as they arrive when None.

        Raises:
            DecodingError: Corrupt, or a coding that is not installed.
            ResponseTooLarge: The decoded body exceeds ``max_body_size``.
            StreamClosed: The stream was closed first.
        """
        chunks = _Chunks(chunk_size)
        source = self._stream_source()
        if source is None:
            yield from chunks.push(self.content)
        else:
            decoder = self._stream_decoder(source)
            for raw in self.iter_raw():
                for out in _decode(decoder, raw, chunk_size):
                    yield from chunks.push(out)
            if decoder is not None:
                decoder.flush()
        yield from chunks.flush()

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """:meth:`iter_bytes` for asyncio."""
        chunks = _Chunks(chunk_size)
        source = self._stream_source()
        if source is None:
            for chunk in chunks.push(self.content):
                yield chunk
        else:
            decoder = self._stream_decoder(source)
            async for raw in self.aiter_raw():
                for out in _decode(decoder, raw, chunk_size):
                    for chunk in chunks.push(out):
                        yield chunk
            if decoder is not None:
                decoder.flush()
        for chunk in chunks.flush():
            yield chunk

    def iter_lines(self) -> Iterator[str]:
        """The decoded body as text lines (charset of ``Content-Type``, else
        UTF-8), without their line endings (``\n``, ``\r\n`` or ``\r``)."""
        lines = _Lines(self.charset)
        for chunk in self.iter_bytes():
            yield from lines.push(chunk)
        yield from lines.flush()

    async def aiter_lines(self) -> AsyncIterator[str]:
        """:meth:`iter_lines` for asyncio."""
        lines = _Lines(self.charset)
        async for chunk in self.aiter_bytes():
            for line in lines.push(chunk):
                yield line
        for line in lines.flush():
            yield line

    def read(self) -> bytes:
        """Read the rest of a streamed body (decoded) into :attr:`content`, and
        give the connection back; on a whole response, its content."""
        source = self._stream_source()
        if source is None:
            return self.content
        self._take_content(list(self.iter_bytes()), source)
        source.release()
        return self.content

    async def aread(self) -> bytes:
        """:meth:`read` for asyncio."""
        source = self._stream_source()
        if source is None:
            return self.content
        self._take_content([chunk async for chunk in self.aiter_bytes()], source)
        await source.arelease()
        return self.content

    def _take_content(self, chunks: list[bytes], source: BodySource) -> None:
        self.content = b"".join(chunks)
        del self._source  # from now on, a whole response

    def close(self) -> None:
        """Stop reading a stream and give its connection back: reused when
        the body was read to its end, or its small rest is drained at once
        (``drain_limit``), else closed (its slot reconnects). Idempotent; a
        no-op on a whole response."""
        source = getattr(self, "_source", None)
        if source is not None:
            self._source = None
            source.release()

    def _abandon(self) -> None:
        """Close a stream without draining (an exception or cancellation ended
        its block): its connection is closed unless the body was complete."""
        source = getattr(self, "_source", None)
        if source is not None:
            self._source = None
            source.release(drain=False)

    async def aclose(self) -> None:
        """:meth:`close` for asyncio."""
        source = getattr(self, "_source", None)
        if source is not None:
            self._source = None
            await source.arelease()

    def __repr__(self) -> str:
        reason = self.reason
        return f"<Response [{self.status} {reason}]>" if reason else f"<Response [{self.status}]>"


def _decode(decoder: Decoder | None, raw: bytes, chunk_size: int | None) -> Iterable[bytes]:
    if decoder is None:
        return (raw,)
    return decoder.iter_feed(raw, chunk_size or _DECODE_STEP)


class _Chunks:
    """Re-cut a stream of bytes into ``size``-byte pieces (None: as they come)."""

    __slots__ = ("_buf", "_size")

    def __init__(self, size: int | None) -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"chunk_size must be a positive int or None, got {size!r}")
        self._size = size
        self._buf = bytearray()

    def push(self, data: bytes) -> Iterator[bytes]:
        size = self._size
        if size is None:
            if data:
                yield data
            return
        buf = self._buf
        if not buf and len(data) == size:
            yield data
            return
        buf += data
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]

    def flush(self) -> Iterator[bytes]:
        if self._buf:
            yield bytes(self._buf)
            self._buf.clear()


class _Lines:
    """Split decoded text into lines across chunk boundaries."""

    __slots__ = ("_decoder", "_pending")

    def __init__(self, charset: str | None) -> None:
        try:
            factory = codecs.getincrementaldecoder(charset or "utf-8")
        except LookupError:
            factory = codecs.getincrementaldecoder("utf-8")
        self._decoder = factory(errors="replace")
        self._pending = ""

    def push(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data)
        lines = text.splitlines(keepends=True)
        # The last line may continue in the next chunk (a "\r" too: its "\n" may follow).
        self._pending = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        return [line.rstrip("\r\n") for line in lines]

    def flush(self) -> list[str]:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [line.rstrip("\r\n") for line in text.splitlines()]


class UndecodedResponse(Response):
    """A response whose ``Content-Encoding`` could not be undone (an unknown
    coding, or br/zstd without its package, or a stack too deep).

    Its :attr:`content` is the body as sent, its ``Content-Encoding`` header
    intact; :attr:`text` and :meth:`json` raise the :class:`DecodingError`
    instead of presenting undecoded bytes as text.

    Attributes:
        error: Why the body could not be decoded.
    """

    __slots__ = ("error",)

    error: DecodingError

    @property
    def text(self) -> str:
        """Raises :attr:`error`: the body is not in a coding this installation reads."""
        raise self.error

    def json(self) -> Any:
        """Raises :attr:`error`: the body is not in a coding this installation reads."""
        raise self.error
