"""Sans-I/O HTTP/1.1 request writer: a request in, one ``bytes`` object out.

The writer serialises everything that never changes for a connection once, at
construction: the ``Host`` line (RFC 9112 §3.2), the ``User-Agent`` and the
default headers. A request then costs one cache lookup when it repeats a
previous plain call (same method and path, nothing else), and otherwise the
work of its variable parts only: the query string, the per-request headers and
the body. Nothing is written anywhere; the caller sends the returned bytes in
one ``write``.

Decisions, for the record (each also documented on :meth:`RequestWriter.build`):

* Method: matched case-insensitively and sent upper-cased (aiohttp and
  requests do the same), so ``"get"`` sends ``GET``. Any other method must be a
  token (RFC 9110 §9.1, §5.6.2).
* Path: must start with ``/``; a full URL is an error. A ``#fragment`` is
  dropped, as every URL-based client does (RFC 9112 §3.2: the request-target
  has no fragment). Dot segments are sent as given. ``OPTIONS *`` is accepted
  (asterisk-form, RFC 9112 §3.2.4). Characters not allowed raw in a path or
  query (RFC 3986 §3.3, §3.4) are percent-encoded as UTF-8; a ``%`` followed
  by two hex digits is kept, any other ``%`` becomes ``%25``.
* Query parameters: RFC 3986 unreserved characters are kept, everything else
  is percent-encoded (space as ``%20``). ``bool`` is sent as ``true``/``false``
  (httpx does the same), ``None`` skips the parameter (as requests does), a list
  or tuple repeats the key, ``Decimal`` is sent in positional notation.
* Headers: names must be tokens; values may hold visible ASCII, SP, HTAB and
  obs-text (latin-1 0x80-0xFF, RFC 9110 §5.5), nothing else: CR, LF, NUL and
  the other controls raise :class:`~warmline.errors.InvalidRequest`, as does a
  character outside latin-1. Leading and trailing SP/HTAB are stripped (a
  recipient strips them anyway, RFC 9110 §5.5). A per-request header replaces
  every default header of the same name (case-insensitive); ``Host`` may be
  replaced this way too. ``Content-Length`` and ``Transfer-Encoding`` are
  computed by the writer and refused from the caller.
* Bodies: ``Content-Length`` always (never chunked); ``json=`` adds
  ``Content-Type: application/json`` unless one is set and writes ``Decimal``
  as a JSON number with its own digits; a body larger than
  ``max_body_size`` (default 64 MiB) is refused.
* Wrong Python types (a param value of an unsupported type, a header value
  that is not ``str``, non-bytes content) raise ``TypeError``, not
  ``InvalidRequest``: they are programming errors, not bad requests.
* Error messages name the header, never echo its value (it may be a secret).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final, TypeAlias, TypeVar

from warmline._json import dumps as _json_dumps
from warmline._json import plain_dumps as _plain_json_dumps
from warmline.errors import InvalidRequest
from warmline.http11._upload import StreamArg, StreamedBody, Upload, is_streamed, make_upload

__all__ = [
    "CACHE_SIZE",
    "DEFAULT_MAX_REQUEST_BODY_SIZE",
    "DEFAULT_USER_AGENT",
    "ContentArg",
    "HeadersArg",
    "ParamsArg",
    "RequestWriter",
]

HeadersArg: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
ParamsArg: TypeAlias = Mapping[str, object] | Iterable[tuple[str, object]]
ContentArg: TypeAlias = bytes | bytearray | memoryview | str | StreamArg
# The pools' request tuple: method, path, params, headers, content, json and a
# last item (the timeout) that the writer does not read.
RequestArgs: TypeAlias = tuple[
    str, str, ParamsArg | None, HeadersArg | None, ContentArg | None, object, object
]

# The writer copies the body into the one bytes object it returns, so a body
# costs twice its size in memory while the request is written. Past a few tens
# of MiB that is a streaming upload, which this writer does not do; fail loudly
# instead of allocating without bound. Raise it, or pass None, to lift it.
DEFAULT_MAX_REQUEST_BODY_SIZE: Final = 64 * 1024 * 1024

# Bound of every per-writer cache (built requests, request lines, header names,
# query keys). A cache that reaches it is cleared and refilled: a working set
# larger than the bound just pays the uncached price, memory stays bounded, and
# the hit path has no bookkeeping at all (an LRU would cost on every hit).
CACHE_SIZE: Final = 256

_ALPHA_DIGIT: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 3986 §2.3 unreserved; the only characters a query key/value keeps raw.
_UNRESERVED: Final = _ALPHA_DIGIT + "-._~"
_SUB_DELIMS: Final = "!$&'()*+,;="  # RFC 3986 §2.2
# RFC 3986 §3.3 pchar, plus "/" (segments) and "?" (query, §3.4). "%" is
# handled apart: kept only as the start of a valid pct-encoded triplet.
_TARGET_SAFE: Final = _UNRESERVED + _SUB_DELIMS + ":@/?"
_TARGET_SAFE_OR_PCT: Final = _TARGET_SAFE + "%"
# RFC 9110 §5.6.2 tchar: what a method or a field name is made of.
_TCHAR: Final = _ALPHA_DIGIT + "!#$%&'*+-.^_`|~"
_HEXDIG: Final = frozenset("0123456789ABCDEFabcdef")
# RFC 9110 §5.5 field-value octets: VCHAR, SP, HTAB, obs-text. Everything else
# (CR, LF, NUL, the other controls, DEL) is refused.
_FIELD_VALUE_OCTETS: Final = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))

# str.translate tables: one entry per byte value (of UTF-8 seen as latin-1).
_QUERY_QUOTE: Final = [chr(b) if chr(b) in _UNRESERVED else f"%{b:02X}" for b in range(256)]
_TARGET_QUOTE: Final = [chr(b) if chr(b) in _TARGET_SAFE else f"%{b:02X}" for b in range(256)]

# Methods whose content has a defined meaning: without a body they get an
# explicit "Content-Length: 0" (RFC 9110 §8.6 "SHOULD send"; nginx answers 411
# without it). The others send no length when they carry no body.
_LENGTH_REQUIRED: Final = frozenset({"POST", "PUT", "PATCH"})
# The writer computes the framing itself (RFC 9112 §6); a caller's value would
# either duplicate it or contradict the body actually sent.
_FRAMING_FIELDS: Final = frozenset({"content-length", "transfer-encoding"})

# Flags of a learnt per-request header name.
_REPLACES_DEFAULT: Final = 1
_IS_CONTENT_TYPE: Final = 2
_IS_HOST: Final = 4

_CRLF: Final = b"\r\n"
_VERSION_CRLF: Final = b" HTTP/1.1\r\n"
_JSON_CONTENT_TYPE: Final = b"Content-Type: application/json\r\n"
_EMPTY_BODY_LENGTH: Final = b"Content-Length: 0\r\n\r\n"
_ZERO_LENGTH: Final = _EMPTY_BODY_LENGTH


# "Content-Length: N\r\n\r\n" for the body sizes seen, shared by all writers:
# formatting an int costs several times a dict hit. Bounded like the caches.
_LENGTH_LINES: dict[int, bytes] = {}


def _length_line(size: int) -> bytes:
    """The Content-Length line and the blank line that ends the head."""
    line = b"Content-Length: %d\r\n\r\n" % size
    if len(_LENGTH_LINES) >= 4 * CACHE_SIZE:
        _LENGTH_LINES.clear()
    _LENGTH_LINES[size] = line
    return line


def _package_version() -> str:
    """The installed version, without importing importlib.metadata if avoidable."""
    version = getattr(sys.modules.get("warmline"), "__version__", None)
    if isinstance(version, str):
        return version
    # importlib.metadata costs tens of milliseconds to import; paid once.
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("warmline")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


DEFAULT_USER_AGENT: Final = f"warmline/{_package_version()}"


# -- validation helpers (construction time, or cache misses) -------------------


def _only(text: str, allowed: str) -> bool:
    """Whether ``text`` is non-empty ASCII made only of ``allowed`` characters."""
    # rstrip(chars) stops at the first character not in the set, so an empty
    # result means every character was allowed; C speed, no regex.
    return text.isascii() and bool(text) and not text.rstrip(allowed)


def _valid_pct_triplets(text: str) -> bool:
    """Whether every ``%`` in ``text`` starts a ``%XX`` hex triplet."""
    i = text.find("%")
    while i >= 0:
        if text[i + 1 : i + 2] not in _HEXDIG or text[i + 2 : i + 3] not in _HEXDIG:
            return False
        i = text.find("%", i + 3)
    return True


def _encode_target(target: str, method: str) -> str:
    """Percent-encode what may not appear raw in an origin-form target.

    RFC 3986 §3.3/§3.4: pchar, "/" and "?" stay; a valid ``%XX`` stays; every
    other character (CR, LF, NUL, SP, controls, non-ASCII...) is sent as the
    %XX of its UTF-8 bytes, so none of them can ever reach the wire raw.
    """
    if _only(target, _TARGET_SAFE_OR_PCT) and _valid_pct_triplets(target):
        return target
    try:
        raw = target.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            "path is not valid Unicode (lone surrogate)", method=method, path=target
        ) from exc
    text = raw.decode("latin-1")  # one character per byte, for translate
    out: list[str] = []
    start = 0
    i = text.find("%")
    while i >= 0:  # keep valid triplets, quote every other "%"
        out.append(text[start:i].translate(_TARGET_QUOTE))
        triplet = text[i : i + 3]
        if _valid_pct_triplets(triplet):
            out.append(triplet)
            start = i + 3
        else:
            out.append("%25")
            start = i + 1
        i = text.find("%", start)
    out.append(text[start:].translate(_TARGET_QUOTE))
    return "".join(out)


def _quote(text: str) -> str:
    """Percent-encode all but RFC 3986 unreserved characters (UTF-8)."""
    if text.isascii():
        if not text.rstrip(_UNRESERVED):
            return text
        return text.translate(_QUERY_QUOTE)
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest("query parameter is not valid Unicode (lone surrogate)") from exc
    return raw.decode("latin-1").translate(_QUERY_QUOTE)


def _normalise_method(method: str) -> str:
    """Upper-case a method and check it is a token (RFC 9110 §9.1)."""
    if not isinstance(method, str):
        raise TypeError(f"method must be str, not {type(method).__name__}")
    if _only(method, _TCHAR):
        return method.upper()
    raise InvalidRequest(f"invalid method {method!r}: not an HTTP token (RFC 9110 §9.1)")


def _check_host(host: str) -> None:
    """Check a Host value: RFC 3986 §3.2.2 host, optional ``:port``."""
    if not isinstance(host, str):
        raise TypeError(f"host must be str, not {type(host).__name__}")
    if not host.isascii():
        raise InvalidRequest(
            f"invalid host {host!r}: not ASCII; encode an internationalised name "
            "with IDNA first (host.encode('idna'))"
        )
    if host.startswith("["):  # IP-literal; IPvFuture and RFC 6874 zone ids too
        name, bracket, port = host[1:].partition("]")
        ok = bool(bracket) and _only(name, _UNRESERVED + _SUB_DELIMS + ":%")
        colon, port = port[:1], port[1:]
        ok = ok and (colon == ":" or not port)
    else:
        name, colon, port = host.partition(":")
        ok = _only(name, _UNRESERVED + _SUB_DELIMS + "%")
    if ok and colon:
        ok = _only(port, "0123456789") and len(port) <= 5 and int(port) <= 65535
    if not ok or not _valid_pct_triplets(name):
        raise InvalidRequest(
            f"invalid host {host!r}: expected name, IPv4, or [IPv6], with an optional :port"
        )


def _check_absolute_prefix(prefix: str) -> str:
    """Check an absolute-form prefix: ``""`` or ``http://`` and a valid authority."""
    if not isinstance(prefix, str):
        raise TypeError(f"absolute_form_prefix must be str, not {type(prefix).__name__}")
    if prefix:
        scheme, sep, authority = prefix.partition("://")
        if not sep or scheme not in ("http", "https"):
            raise InvalidRequest(f"absolute_form_prefix must be http://host[:port], got {prefix!r}")
        _check_host(authority)
    return prefix


def _normalise_base_path(base_path: str) -> str:
    """``"api/v3/"`` -> ``"/api/v3"``; ``""`` and ``"/"`` -> ``""``; encoded once."""
    if not isinstance(base_path, str):
        raise TypeError(f"base_path must be str, not {type(base_path).__name__}")
    if "?" in base_path or "#" in base_path:
        raise InvalidRequest(f"base_path {base_path!r} must not contain a query or fragment")
    stripped = base_path.strip("/")
    return _encode_target("/" + stripped, "") if stripped else ""


def _check_name(name: str) -> str:
    """Check a field name is a token (RFC 9110 §5.1) the caller may set; lower it."""
    if not isinstance(name, str):
        raise TypeError(f"header name must be str, not {type(name).__name__}")
    if not _only(name, _TCHAR):
        raise InvalidRequest(f"invalid header name {name!r}: not an HTTP token (RFC 9110 §5.1)")
    lower = name.lower()
    if lower in _FRAMING_FIELDS:
        raise InvalidRequest(
            f"header {name!r} is computed by the writer from the body; do not set it"
        )
    return lower


def _check_value(value: str, name: str) -> str:
    """Check a field value (RFC 9110 §5.5) and strip surrounding whitespace.

    Raises:
        InvalidRequest: CR, LF, NUL or another control character, or a
            character outside latin-1. The message names the header only.
    """
    if not isinstance(value, str):
        raise TypeError(f"header {name!r}: value must be str, not {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"header {name!r}: value has a character outside latin-1 (RFC 9110 §5.5)"
        ) from exc
    bad = raw.translate(None, _FIELD_VALUE_OCTETS)
    if bad:
        raise InvalidRequest(
            f"header {name!r}: value contains control character 0x{bad[0]:02X} "
            "(CR, LF, NUL and other controls are refused, RFC 9110 §5.5)"
        )
    return str.__str__(value).strip(" \t")


def _header_items(headers: HeadersArg) -> Iterable[tuple[str, str]]:
    """The (name, value) pairs of a mapping or an iterable of pairs."""
    if type(headers) is dict or isinstance(headers, Mapping):
        return headers.items()
    return headers


def _param_text(value: object, key: str) -> str:
    """A scalar query value as percent-encoded text (slow path, any type)."""
    if isinstance(value, str):
        return _quote(str.__str__(value))
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # digits and "-": all unreserved; IntEnum-safe
    if isinstance(value, float):
        return _quote(float.__repr__(value))
    if isinstance(value, Decimal):
        return _quote(format(value, "f"))  # positional: 1E-7 -> 0.0000001
    raise TypeError(
        f"query parameter {key!r}: unsupported value type {type(value).__name__} "
        "(use str, int, float, bool, Decimal, None, or a list/tuple of those)"
    )


def _body_bytes(content: ContentArg) -> bytes | bytearray | memoryview:
    """The body as a byte buffer whose ``len()`` is its size in bytes."""
    if isinstance(content, bytes | bytearray):
        return content
    if isinstance(content, str):
        try:
            return content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest("content is not valid Unicode (lone surrogate)") from exc
    if isinstance(content, memoryview):
        # len() of a memoryview counts items, not bytes; cast to bytes.
        return content.cast("B") if content.c_contiguous else content.tobytes()
    if is_streamed(content):
        raise StreamedBody  # the shell's separate path: build_head() and the pieces
    raise TypeError(
        f"content must be bytes, bytearray, memoryview, str, an iterable or async "
        f"iterable of bytes, or a binary file object, not {type(content).__name__}"
    )


_T = TypeVar("_T")


def _cache_put(cache: dict[str, dict[str, _T]], method: str, path: str, value: _T) -> None:
    """Store ``value`` under ``cache[method][path]``, keeping CACHE_SIZE in all."""
    if sum(map(len, cache.values())) >= CACHE_SIZE:  # a few methods: cheap, and a miss
        cache.clear()
    cache.setdefault(method, {})[path] = value


class RequestWriter:
    """Serialises HTTP/1.1 requests for one origin into single ``bytes`` objects.

    Everything that is the same for every request on a connection (``Host``,
    ``User-Agent``, default headers) is validated and serialised once, here.
    A writer holds bounded caches and no connection state. It takes no lock
    and needs none: its caches only ever hold values derived from their keys,
    so threads sharing a writer can at worst build an entry twice.

    Args:
        host: The ``Host`` header value exactly as it is sent: ``"api.x.com"``,
            ``"127.0.0.1:8080"``, ``"[::1]:8443"``. Checked against RFC 3986
            §3.2.2; an internationalised name must be IDNA-encoded first.
        base_path: Prepended to every request path, e.g. ``"/api/v3"``. A
            missing leading ``/`` is added and trailing ``/`` are removed.
        headers: Default headers, sent with every request in the order given,
            after ``Host`` and ``User-Agent``. A ``Host`` here replaces the one
            built from ``host`` (virtual hosting).
        user_agent: The ``User-Agent`` value, or ``None`` to send none. A
            ``User-Agent`` in ``headers`` takes precedence.
        max_body_size: Largest body :meth:`build` accepts, in bytes, or
            ``None`` for no limit.
        absolute_form_prefix: ``"http://host:port"`` to send absolute-form
            targets (``GET http://host:port/path``, RFC 9112 §3.2.2), as a
            request to a forward proxy must; ``""`` (the default) sends
            origin-form. Applied when a request line is first built, so a
            cached request costs the same either way.

    Raises:
        InvalidRequest: A bad host, base path, header name or value.
        TypeError: A host, base path, header name or value that is not ``str``.
        ValueError: A negative ``max_body_size``.

    Example:
        >>> w = RequestWriter("127.0.0.1:8080", user_agent=None)
        >>> w.build("GET", "/time")
        b'GET /time HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\n\\r\\n'
    """

    __slots__ = (
        "_base_path",
        "_default_has_content_type",
        "_default_lines",
        "_default_names",
        "_host",
        "_lines",
        "_max_body_size",
        "_names",
        "_prefix",
        "_query_keys",
        "_requests",
        "_tail",
        "_tail_empty",
        "_tail_zero",
        "_without",
    )

    def __init__(
        self,
        host: str,
        *,
        base_path: str = "",
        headers: HeadersArg | None = None,
        user_agent: str | None = DEFAULT_USER_AGENT,
        max_body_size: int | None = DEFAULT_MAX_REQUEST_BODY_SIZE,
        absolute_form_prefix: str = "",
    ) -> None:
        _check_host(host)
        self._host = host
        self._prefix = _check_absolute_prefix(absolute_form_prefix)
        self._base_path = _normalise_base_path(base_path)
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be >= 0 or None, not {max_body_size}")
        self._max_body_size = sys.maxsize if max_body_size is None else max_body_size
        lines = self._default_header_lines(host, headers, user_agent)
        # (lowercase name, serialised line), in the order they are sent.
        self._default_lines: tuple[tuple[str, bytes], ...] = tuple(lines)
        self._default_names = frozenset(name for name, _ in lines)
        self._default_has_content_type = "content-type" in self._default_names
        # " HTTP/1.1\r\nHost: ...\r\n<defaults>": everything after the target.
        self._tail = _VERSION_CRLF + b"".join(line for _, line in lines)
        self._tail_empty = self._tail + _CRLF
        self._tail_zero = self._tail + _EMPTY_BODY_LENGTH
        # method -> path -> built request / request line (see _cache_put).
        self._requests: dict[str, dict[str, bytes]] = {}
        self._lines: dict[str, dict[str, tuple[bytes, bytes | None, bool]]] = {}
        self._names: dict[str, tuple[bytes, str, int]] = {}
        self._query_keys: dict[str, bytes] = {}
        self._without: dict[frozenset[str], bytes] = {}

    @staticmethod
    def _default_header_lines(
        host: str, headers: HeadersArg | None, user_agent: str | None
    ) -> list[tuple[str, bytes]]:
        """Validate the default headers and serialise them, Host first."""
        lines: list[tuple[str, bytes]] = []
        host_line = b""
        for name, value in _header_items(headers) if headers is not None else ():
            lower = _check_name(name)
            line = f"{name}: {_check_value(value, name)}\r\n".encode("latin-1")
            if lower == "host":
                if host_line:
                    raise InvalidRequest("more than one Host header (RFC 9112 §3.2)")
                host_line = line
            else:
                lines.append((lower, line))
        if user_agent is not None and not any(n == "user-agent" for n, _ in lines):
            value = _check_value(user_agent, "User-Agent")
            lines.insert(0, ("user-agent", f"User-Agent: {value}\r\n".encode("latin-1")))
        # RFC 9110 §7.2: a user agent SHOULD send Host as the first field line.
        lines.insert(0, ("host", host_line or b"Host: " + host.encode("ascii") + _CRLF))
        return lines

    @property
    def host(self) -> str:
        """The ``host`` this writer was built for (as given)."""
        return self._host

    @property
    def base_path(self) -> str:
        """The normalised, percent-encoded base path (``""`` when none)."""
        return self._base_path

    def __repr__(self) -> str:
        return f"RequestWriter(host={self._host!r}, base_path={self._base_path!r})"

    def build(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None = None,
        json: object = None,
    ) -> bytes:
        """Serialise one request: request line, headers, blank line, body.

        A call with only ``method`` and ``path`` returns a cached ``bytes``
        object when the same pair was built before (the cache holds up to
        :data:`CACHE_SIZE` pairs and is cleared when full).

        Args:
            method: ``GET``, ``POST``... in any case (sent upper-cased); any
                other token is accepted as an extension method.
            path: Starts with ``/`` and may carry a query; appended to the base
                path. A ``#fragment`` is dropped; unsafe characters are
                percent-encoded as UTF-8 (RFC 3986 §3.3).
            params: Query parameters, appended with ``?`` (or ``&`` after an
                existing query). Values: ``str``, ``int``, ``float``, ``bool``
                (``true``/``false``), ``Decimal``; ``None`` skips the key; a
                list or tuple repeats it.
            headers: Per-request headers, sent after the defaults; a name that
                matches a default header (case-insensitive) replaces it.
            content: The body; ``str`` is encoded as UTF-8.
            json: A body serialised as JSON; adds ``Content-Type:
                application/json`` unless a ``Content-Type`` is set (default
                or per-request). ``None`` means no body: send JSON ``null``
                as ``content=b"null"``. A ``Decimal`` is written with its
                own digits (``Decimal("1.10")`` → ``1.10``).

        Returns:
            The whole request. ``Content-Length`` is sent for every body, and
            as ``0`` for ``POST``/``PUT``/``PATCH`` without one.

        Raises:
            InvalidRequest: Bad method, path, header, both ``content`` and
                ``json``, ``Content-Length``/``Transfer-Encoding`` given, a
                body over ``max_body_size``, or a NaN/infinite ``Decimal`` in
                ``json`` (JSON has no such number).
            TypeError: An argument of an unsupported type (a param value, a
                header value that is not ``str``, a JSON-unserialisable body).
        """
        # One function on purpose: on CPython 3.11 each extra call on this path
        # costs as much as a whole header line; only cold paths are split out.
        if params is None and headers is None and content is None and json is None:
            try:
                # Nested dicts: two lookups are cheaper than building a tuple key.
                return self._requests[method][path]
            except KeyError:
                return self._build_plain(method, path)
        try:
            try:
                line, separator, length_required = self._lines[method][path]
            except KeyError:
                line, separator, length_required = self._request_line(method, path)
            pieces: list[bytes | bytearray | memoryview] = [line]
            if params:
                if separator is None:
                    raise InvalidRequest("the '*' target takes no query")
                self._append_query(params, separator, pieces)
            if headers is None:
                if content is None and json is None:
                    pieces.append(self._tail_zero if length_required else self._tail_empty)
                    return b"".join(pieces)
                pieces.append(self._tail)
                has_content_type = self._default_has_content_type
            else:
                has_content_type = self._append_head(headers, pieces)
            if json is not None:
                if content is not None:
                    raise InvalidRequest("give content or json, not both")
                body: bytes | bytearray | memoryview
                try:
                    body = _plain_json_dumps(json)
                except TypeError:  # a Decimal, or a real error: the cold path decides
                    body = _json_dumps(json)
                if not has_content_type:
                    pieces.append(_JSON_CONTENT_TYPE)
            elif content is not None:
                body = _body_bytes(content)
            else:
                pieces.append(_EMPTY_BODY_LENGTH if length_required else _CRLF)
                return b"".join(pieces)
            size = len(body)
            if size > self._max_body_size:
                raise InvalidRequest(
                    f"body too large for the writer: {size} bytes > max_body_size="
                    f"{self._max_body_size}"
                )
            pieces += (_LENGTH_LINES.get(size) or _length_line(size), body)
            return b"".join(pieces)
        except InvalidRequest as exc:
            # Helpers deep down do not know the request; add it where we do.
            exc.with_context(method=method, path=path)
            raise

    def build_request(self, req: RequestArgs) -> bytes:
        """:meth:`build` for the pools' request tuple (method, path, params,
        headers, content, json, timeout; the last is not read here).

        The tuple is unpacked here, where its items are used: cheaper than
        unpacking it in the caller and passing four keywords on (callgrind:
        ~300 instructions less per pooled GET).
        """
        method, path, params, headers, content, json, _ = req
        if params is None and headers is None and content is None and json is None:
            try:
                return self._requests[method][path]
            except KeyError:
                return self._build_plain(method, path)
        return self.build(method, path, params=params, headers=headers, content=content, json=json)

    def build_head(
        self,
        method: str,
        path: str,
        *,
        params: ParamsArg | None = None,
        headers: HeadersArg | None = None,
        content: ContentArg | None,
    ) -> tuple[bytes, Upload]:
        """The head of a request whose ``content`` is streamed, and its body.

        Off the hot path (taken after :meth:`build` raised StreamedBody): the
        head is built as for an empty body, whose ``Content-Length: 0`` line
        is then replaced by the streamed body's framing.
        """
        upload = make_upload(content)
        request = self.build(method, path, params=params, headers=headers, content=b"")
        assert request.endswith(_ZERO_LENGTH)
        return request[: -len(_ZERO_LENGTH)] + upload.framing, upload

    def _build_plain(self, method: str, path: str) -> bytes:
        """Build and cache a request that has no params, headers or body."""
        line, _, length_required = self._request_line(method, path)
        request = line + (self._tail_zero if length_required else self._tail_empty)
        _cache_put(self._requests, method, path, request)
        return request

    def _request_line(self, method: str, path: str) -> tuple[bytes, bytes | None, bool]:
        """``(b"GET /base/path", query separator, length required)``, cached."""
        try:
            return self._lines[method][path]
        except KeyError:
            pass
        name = _normalise_method(method)
        if not isinstance(path, str):
            raise TypeError(f"path must be str, not {type(path).__name__}")
        separator: bytes | None
        if path == "*" and name == "OPTIONS":
            # RFC 9112 §3.2.4: to a proxy, OPTIONS * is the bare authority.
            target, separator = ("" if self._prefix else "*"), None
        elif not path.startswith("/"):
            raise InvalidRequest(
                "path must start with '/' (the pool's origin is fixed; a full URL is not accepted)",
                method=method,
                path=path,
            )
        else:
            # RFC 9112 §3.2: the target carries no fragment; drop it like a URL would.
            target = _encode_target(self._base_path + path.partition("#")[0], method)
            separator = b"?" if "?" not in target else b"" if target[-1] in "?&" else b"&"
        entry = (
            f"{name} {self._prefix}{target}".encode("ascii"),
            separator,
            name in _LENGTH_REQUIRED,
        )
        _cache_put(self._lines, method, path, entry)
        return entry

    def _append_query(
        self, params: ParamsArg, separator: bytes, pieces: list[bytes | bytearray | memoryview]
    ) -> None:
        """Append ``?k=v&k=v`` (RFC 3986 §3.4) to the request line pieces.

        The pieces go straight into the request's one final join: no
        intermediate query string is built.
        """
        if type(params) is dict or isinstance(params, Mapping):
            items: Iterable[tuple[str, object]] = params.items()
        else:
            items = params
        keys = self._query_keys
        for key, value in items:
            try:
                prefix = keys[key]
            except KeyError:
                prefix = self._learn_query_key(key)
            if type(value) is str:
                # Fast path: letters and digits need no quoting (symbols, ids).
                data = (value if value.isascii() and value.isalnum() else _quote(value)).encode()
            elif type(value) is int:
                data = b"%d" % value  # digits and "-": all unreserved
            elif value is None:
                continue  # requests' behaviour: an absent optional parameter
            elif isinstance(value, list | tuple):
                for item in value:
                    if item is not None:
                        pieces += (separator, prefix, _param_text(item, key).encode())
                        separator = b"&"
                continue
            else:
                data = _param_text(value, key).encode()
            pieces += (separator, prefix, data)
            separator = b"&"

    def _learn_query_key(self, key: str) -> bytes:
        """Quote a query key once and cache ``b"key="``."""
        if not isinstance(key, str):
            raise TypeError(f"query parameter name must be str, not {type(key).__name__}")
        prefix = (_quote(str.__str__(key)) + "=").encode("ascii")
        if len(self._query_keys) >= CACHE_SIZE:
            self._query_keys.clear()
        self._query_keys[key] = prefix
        return prefix

    def _append_head(
        self, headers: HeadersArg, pieces: list[bytes | bytearray | memoryview]
    ) -> bool:
        """Append the head after the target, per-request headers merged in.

        Returns:
            Whether a ``Content-Type`` is among the headers sent.
        """
        names = self._names
        # The default head goes first; replaced below if a header overrides it.
        at = len(pieces)
        pieces.append(self._tail)
        flags_seen = 0
        replaced: set[str] | None = None
        host_line = b""
        for name, given in _header_items(headers):
            try:
                prefix, lower, flags = names[name]
            except KeyError:
                prefix, lower, flags = self._learn_name(name)
            # Fast path: printable ASCII has no CR/LF/NUL/control to refuse.
            if type(given) is str and given.isascii() and given.isprintable():
                value = given.strip(" ").encode()
            else:
                value = _check_value(given, name).encode("latin-1")
            if flags:
                flags_seen |= flags
                if flags & _REPLACES_DEFAULT:
                    replaced = replaced or set()
                    replaced.add(lower)
                if flags & _IS_HOST:
                    if host_line:
                        raise InvalidRequest("more than one Host header (RFC 9112 §3.2)")
                    host_line = prefix + value + _CRLF
                    continue
            pieces += (prefix, value, _CRLF)
        if replaced is not None:
            # RFC 9110 §7.2: Host stays the first field line.
            pieces[at] = _VERSION_CRLF + host_line + self._defaults_without(replaced)
        return self._default_has_content_type or bool(flags_seen & _IS_CONTENT_TYPE)

    def _learn_name(self, name: str) -> tuple[bytes, str, int]:
        """Validate a per-request header name once and cache its flags."""
        lower = _check_name(name)
        flags = _REPLACES_DEFAULT if lower in self._default_names else 0
        if lower == "content-type":
            flags |= _IS_CONTENT_TYPE
        elif lower == "host":
            flags |= _IS_HOST
        entry = (f"{name}: ".encode("ascii"), lower, flags)
        if len(self._names) >= CACHE_SIZE:
            self._names.clear()
        self._names[name] = entry
        return entry

    def _defaults_without(self, replaced: set[str]) -> bytes:
        """The default header lines minus the replaced names, cached."""
        key = frozenset(replaced)
        try:
            return self._without[key]
        except KeyError:
            pass
        lines = b"".join(line for lower, line in self._default_lines if lower not in key)
        if len(self._without) >= CACHE_SIZE:
            self._without.clear()
        self._without[key] = lines
        return lines
