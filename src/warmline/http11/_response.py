"""The complete HTTP response object handed out by the reader.

A :class:`Response` is built once per request on the hot path, so it is a
``__slots__`` class whose constructor only stores references: the reason
phrase, the header mapping and the text are decoded when first read.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Sequence
from typing import Any

from warmline.http11._headers import Headers

__all__ = ["Response", "split_fields"]

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
    """A complete HTTP/1.1 (or 1.0) response.

    Attributes:
        status: The status code (100-599).
        http_version: ``"1.1"`` or ``"1.0"``.
        raw_headers: Header fields as ``(name, value)`` bytes, names as
            received, values stripped of optional whitespace, in order.
        content: The whole body (chunked coding removed, any content coding
            such as gzip left as sent).
        raw_trailers: Trailer fields of a chunked body, like ``raw_headers``.

    Example:
        >>> r = Response(200, "OK", "1.1", [(b"Content-Type", b"application/json")], b'{"a":1}')
        >>> r, r.headers["content-type"], r.json()
        (<Response [200 OK]>, 'application/json', {'a': 1})
    """

    __slots__ = (
        "_fields",
        "_headers",
        "_reason",
        "content",
        "http_version",
        "raw_trailers",
        "status",
    )

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

    def __repr__(self) -> str:
        reason = self.reason
        return f"<Response [{self.status} {reason}]>" if reason else f"<Response [{self.status}]>"
