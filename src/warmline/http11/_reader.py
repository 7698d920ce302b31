"""Sans-I/O HTTP/1.1 response reader: bytes in, :class:`Response` out.

:class:`ResponseReader` is fed the bytes of one connection as they arrive, in
any split, and returns the final response once it is complete. It does no I/O
and reads no clock; the asyncio and blocking shells own the socket, the
timeouts and the decision to reconnect.

How it parses, and why this way (each step measured; see the figures below):

* The head is found with one ``find(b"\\r\\n\\r\\n")`` and validated with a
  handful of C-level scans over all of it, with no per-field Python work:
  deleting the token characters (``bytes.translate``) leaves every valid field
  line starting with its colon, so one count and one length comparison check
  every field name, the colon, and that each CR and LF belongs to a CRLF.
  The framing fields (Content-Length, Transfer-Encoding, Connection) are found
  with ``find`` in the lower-cased head. Status lines and chunk-size lines
  are memoised in small bounded dicts, since a server repeats them.
* Nothing is decoded or split on the hot path: the response keeps the head
  bytes and splits them into ``(name, value)`` pairs when first read.
* A ``Content-Length`` body that arrived with the head is a slice; a body that
  arrives in pieces is kept as a list of pieces (large tails as memoryviews)
  and joined once, so large bodies stay linear with a single copy.
* Partial heads, chunk-size lines and trailer sections wait in a
  ``bytearray``; the search for their end, and the check for bare CR/LF,
  resume where they stopped, so a head dripped one byte at a time is linear
  too, and every wait is bounded by a limit.

* Content codings (``decompress=True``): the body is decoded in the reader,
  once, when it is complete (:func:`~warmline.http11.make_decoder`). The
  memoised head analysis also says whether a head has a ``Content-Encoding``,
  folded with the status tests into one ``plain`` value, so an uncoded
  response pays nothing for the feature: callgrind of
  ``benchmarks/hotpath.py`` (PYTHONHASHSEED=0, instructions per request)
  went from 35,613 to 35,389 (pool.get) and 31,363 to 31,139 (lease.get)
  with decoding on, streaming, url and history added (the last two as
  unset slots). Decoding lazily in ``Response.content`` instead would
  turn ``content`` into a property: +29 ns per read and +5 ns per response
  (timeit), paid by every uncoded response too.

Strictness (all violations raise :class:`~warmline.errors.ProtocolError`;
limit violations its subclass :class:`~warmline.errors.ResponseTooLarge`):

* Lines end in CRLF. A bare CR or bare LF in the head, a chunk-size line or the
  trailers is an error: RFC 9112 §2.2 lets a recipient accept a bare LF, but a
  client talking to servers it chose has no need to, and tolerating it is how
  response-splitting bugs start.
* Status line: ``HTTP/1.1`` or ``HTTP/1.0`` exactly, SP, three digits
  100-599, then SP and a reason phrase, or nothing (``HTTP/1.1 200`` is
  accepted, as h11 and llhttp accept it). Other versions are rejected, even the
  ``HTTP/1.2`` that RFC 9110 §6.2 asks us to read as 1.1: no server sends it.
* Field names must be tokens (RFC 9110 §5.6.2); so whitespace before the colon
  (RFC 9112 §5.1), obs-fold continuation lines (RFC 9112 §5.2) and empty names
  are errors. NUL anywhere in the head is an error (RFC 9110 §5.5); other
  control characters in values are kept, which §5.5 allows.
* ``Content-Length`` must be 1-18 decimal digits, in exactly one field with
  one value: even identical repeats (``5, 5`` or the field twice), which
  RFC 9110 §8.6 lets a recipient accept, are refused as a smuggling shape.
* ``Transfer-Encoding`` must be exactly ``chunked`` (any case). We never send
  ``TE``, so chunked is the only transfer coding a server may apply (RFC 9110
  §10.1.4, RFC 9112 §7); ``gzip, chunked``, ``identity`` or ``chunked, chunked``
  are errors, not guesses. Both ``Transfer-Encoding`` and ``Content-Length`` is
  an error (RFC 9112 §6.3 point 3 allows treating it as one: it is the shape
  of a smuggling attack). An HTTP/1.0 response with chunked coding is read but
  the connection is then not reused (RFC 9112 §6.1).
* Chunk sizes are 1-16 hex digits, optionally followed by extensions
  (ignored) after ``;``; the CRLF after each chunk's data is required.
* 1xx interim responses are skipped (RFC 9110 §15.2), however many; 101
  Switching Protocols is an error since warmline never asks to upgrade, and so
  is a 2xx answer to CONNECT (a tunnel).
* Responses to HEAD, and 1xx, 204 and 304 responses, have no body whatever
  their headers say (RFC 9112 §6.3 point 1).
* A response with neither length nor chunked coding is delimited by the close
  of the connection (RFC 9112 §6.3 point 8): it completes in
  :meth:`ResponseReader.feed_eof` and the connection is not reusable.

Measured with ``uv run python -m benchmarks.bench_http11_parse`` (CPython
3.11.7, 2-core VM, thread CPU time, fastest of 80 rounds; ns per complete
response, lower is better), in one ``warmline bench`` run on 2026-11-21::

    scenario                 warmline  warmline on httptools  httptools alone    h11
    100 B JSON + 6 fields       1 439                  3 681            1 778  70 481
    64 KiB, 64 KiB feeds        4 990                  6 330            4 371  84 304
    64 KiB, 16 KiB feeds        6 585                  7 981            5 092 112 602
    chunked, 8 x 512 B          8 439                  5 029            2 431 131 660

Chunked bodies, 2026-12-01 (same command and VM, loaded): 4,816 -> 3,559 ns
for the 8 x 512 B response (httptools alone: 1,382; callgrind: 72.9k -> 54.9k
instructions), and 8.0 -> 6.3 us for the 20-chunk body of the bench's
``/chunked`` endpoint (127.7k -> 100.3k instructions), from four changes: a
memoised chunked head goes from ``feed`` straight to its chunks, and with no
trailers and nothing after, finishes there (-0.6 us); chunks of 256 B and
more are kept as views instead of merged (-0.4 us); a run of chunks whose
size unit repeats is read by a tighter inner loop (-0.3 us). What is left is
the Python loop itself, ~300 ns per chunk; taking a run with C-level calls
instead (``map`` over ``startswith`` and slices, or a ``split`` at the unit)
was measured and is slower at these sizes, the split because CPython's
search for a short needle costs ~1.6 instructions per byte scanned.

Chunked bodies, 2026-12-01, later (same command, full run, fastest/median
ns): 3,689/3,793 -> 1,380/1,431 for the 8 x 512 B response (httptools
alone: 1,419/1,459; callgrind: 54.9k -> 23.0k instructions), and
6,597/6,785 -> 2,406/2,486 for the ``/chunked`` body (scenario ``chunked, 2
runs``; httptools alone 2,448/2,510). A body that came whole with a
memoised head, as a few runs of equal chunks (``_run_body``), is no longer
walked chunk by chunk: its layout, learnt the second time a body of its
length comes, is a ``Struct`` that unpacks every chunk's data in one call,
and the wire rebuilt from those pieces with ``unit.join`` and compared with
the data in one more proves every unit (-2.1 us for 8 chunks). Its
common case, one run, is inlined in ``feed`` (-40 ns). A one-chunk body
needs no layout and is sliced directly (2.7 -> 1.6 us for a body of a new
length). What it costs where it does not apply: a multi-chunk body of a
length never seen pays two dict lookups and a failed one-chunk check
before the general loop (+0.1 to 0.3 us on 3.3-4 us).

The small-response figure is the memoised path (a repeated head, see
``_parse_head``); before memoisation it was ~4 800 ns, and under callgrind
the reader went from 41.6k to 11.7k instructions per response (httptools
with Python callbacks: 13.9k).

"warmline on httptools" is this contract implemented on llhttp's callbacks
(``HttptoolsReader`` in the benchmark module), without the memo: faster on
many small chunks, but it fails 26 of the 161 conformance cases of
``tests/test_reader.py``. Some failures are fixable with more Python checks
in its callbacks (costing part of its lead), several are out of reach
through httptools' API: llhttp does not say where a response ended (so no
exact ``leftover``), cannot be told that a response answers HEAD (the parser
must be stopped and rebuilt), and accepts 17+ digit chunk sizes, unbounded
chunk extensions, leading CRLFs, HTTP/0.9 and HTTP/2.0 status lines and
status codes outside 100-599, none of which a callback sees. The
pure-Python reader is therefore the one warmline ships; it also needs no
compiled dependency, and it is 15-50x faster than h11.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct

from warmline.errors import (
    ConnectionClosed,
    DecodingError,
    ProtocolError,
    ResponseTooLarge,
    WarmlineError,
)
from warmline.http11._decoders import Decoder, make_decoder
from warmline.http11._response import Response, UndecodedResponse, split_fields

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEAD_SIZE",
    "MAX_CHUNK_LINE_SIZE",
    "MAX_INTERIM_RESPONSES",
    "ResponseReader",
]

# A response head (status line, fields, the empty line) may not exceed this.
# Precedents: nginx reads request heads into 4 x 8 KiB buffers
# (large_client_header_buffers), h11 and Node.js stop at 16 KiB, aiohttp at
# 8190 bytes per line, curl at 100 KiB (CURL_MAX_HTTP_HEADER). 64 KiB leaves
# room for cookie-heavy or debug-header-heavy APIs while bounding what one
# misbehaving server can make a connection buffer.
DEFAULT_MAX_HEAD_SIZE = 64 * 1024

# The number of header fields (and, separately, of trailer fields). http.client
# (and so urllib3 and requests) stops at 100, aiohttp at 128.
DEFAULT_MAX_HEADERS = 100

# A whole response's body is read into memory, so it must be bounded: 64 MiB
# is far above any JSON/REST payload this library is built for and keeps a
# pool of N connections from being made to hold N unbounded bodies. It also
# bounds a streamed body (pool.stream()); raise it per pool for bulk downloads.
DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024

# No head that fits in the head-size limit of any sane configuration has more
# fields than this; the per-reader limit (max_headers) is compared separately.
_HARD_MAX_FIELDS = 1 << 20

# 1xx interim responses before the final one. Servers send one or two (100
# Continue, 103 Early Hints); an endless stream of them would otherwise hold
# a request until its timeout, or forever without one.
MAX_INTERIM_RESPONSES = 32

# A chunk-size line with its extensions. Extensions are essentially unused;
# 4 KiB is generous (h11 bounds it by its 16 KiB event limit).
MAX_CHUNK_LINE_SIZE = 4096

# Reader states. Everything from _HEAD to _UNTIL_CLOSE means "a response is
# outstanding", which `expecting` tests with one range comparison.
_IDLE = 0  # no request started
_HEAD = 1  # reading a status line and header fields (again after a 1xx)
_BODY = 2  # reading `_remaining` more bytes of a Content-Length body (0: no body)
_CHUNK_LINE = 3  # reading CRLF chunk-size [extensions] CRLF
_CHUNK_DATA = 4  # reading `_remaining` more bytes of chunk data
_TRAILERS = 5  # reading CRLF, the trailer fields and the final CRLF
_UNTIL_CLOSE = 6  # reading a body delimited by the connection's close
_DONE = 7  # the final response was returned
_CLOSED = 8  # the peer closed the connection while nothing was outstanding
_ERROR = 9  # something went wrong; only reset() leaves this state

# RFC 9110 §5.6.2: token = 1*tchar.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEXDIG = b"0123456789abcdefABCDEF"

# Responses that never have a body, whatever their headers say (RFC 9112 §6.3).
_NO_BODY_STATUSES = (204, 304)

# Only these exact version bytes are accepted (see module docstring).
_HTTP11 = b"HTTP/1.1 "
_HTTP10 = b"HTTP/1.0 "

# b"100" .. b"599" -> int: one dict lookup both validates and converts.
_STATUS_CODES = {b"%d" % code: code for code in range(100, 600)}

# Status lines already parsed -> (status, http_version, reason). A server sends
# a handful of distinct status lines, so this turns status-line parsing into
# one dict lookup. Bounded in entries and line length so that a hostile server
# cannot grow it; it caches a pure function, so sharing it between readers and
# threads is safe (dict operations are atomic).
_STATUS_LINES: dict[bytes, tuple[int, str, str]] = {}
_STATUS_LINES_MAX_ENTRIES = 256
_STATUS_LINES_MAX_LENGTH = 64

# Body tails longer than this are kept as memoryviews instead of copies.
_COPY_LIMIT = 4096
# Chunks of at least this size are kept as memoryviews of the data fed in
# (copied once, by the final join) rather than merged into a bytearray (two
# copies more and a malloc): -0.4 us per 8 x 512 B response. A view costs
# ~190 bytes, so memory stays under 1.75x the body for chunks this small.
_VIEW_LIMIT = 256

# Chunk-size units (CRLF chunk-size [ext]) already parsed -> size, for the same
# reason and with the same bounds as _STATUS_LINES: a server repeats a few sizes.
_CHUNK_SIZES: dict[bytes, int] = {}
_CHUNK_SIZES_MAX_ENTRIES = 256
_CHUNK_SIZES_MAX_LENGTH = 32

# The framing fields, searched for in the lower-cased head. The leading LF
# anchors them at a line start (the head has no bare LF by then), the colon
# at the end of the name (whitespace before it was rejected already).
_CONTENT_LENGTH = b"\ncontent-length:"
_TRANSFER_ENCODING = b"\ntransfer-encoding:"
_CONNECTION = b"\nconnection:"
_CONTENT_ENCODING = b"\ncontent-encoding:"


def _check_head(head: bytes, max_fields: int) -> int:
    """Validate the field lines of a head with a few C-speed scans of all of it.

    Args:
        head: A first line (the status line; empty for a trailer section),
            then field lines, each line ending in CRLF.
        max_fields: The most field lines allowed.
    """
    # Delete the token characters. In what is left, a valid field line starts
    # with the colon that ended its name, so "\r\n:" occurs once per field;
    # the deleted CR, LF and NUL must then be exactly those CRLFs and the final
    # one. Any bare CR or LF, NUL, line without a colon, non-token name,
    # whitespace before the colon or obs-fold line breaks that equation.
    rest = head.translate(None, _TCHAR)
    fields = rest.count(b"\r\n:")
    if len(rest) - len(rest.translate(None, b"\r\n\x00")) != 2 * fields + 2:
        raise ProtocolError(_describe_bad_head(head))
    if head.find(b"\n:") >= 0:
        raise ProtocolError("empty header field name (RFC 9112 §5.1)")
    if fields > max_fields:
        raise ResponseTooLarge(f"more than {max_fields} header fields")
    return fields


def _describe_bad_head(head: bytes) -> str:
    """Say what is wrong with a head that failed _check_head (error path only)."""
    if head.find(b"\x00") >= 0:
        return "NUL in the response head (RFC 9110 §5.5)"
    lines = head.split(b"\r\n")
    for line in lines:
        if line.find(b"\r") >= 0 or line.find(b"\n") >= 0:
            return f"bare CR or LF in the response head (RFC 9112 §2.2): {line[:64]!r}"
    for line in lines[1:-1]:
        name, colon, _ = line.partition(b":")
        if line[:1] in {b" ", b"\t"}:
            return f"obsolete line folding (RFC 9112 §5.2): {line[:64]!r}"
        if not colon:
            return f"header line without a colon: {line[:64]!r}"
        if name.translate(None, _TCHAR):
            return f"invalid header field name (RFC 9112 §5.1): {name[:64]!r}"
    return "malformed response head"  # pragma: no cover - _check_head found something


def _parse_status_line(line: bytes) -> tuple[int, str, str]:
    """Parse ``HTTP-version SP 3DIGIT [SP reason-phrase]`` (RFC 9112 §4); memoise it."""
    version = line[:9]
    if version == _HTTP11:
        http_version = "1.1"
    elif version == _HTTP10:
        http_version = "1.0"
    else:
        raise ProtocolError(f"invalid status line {line[:64]!r}")
    status = _STATUS_CODES.get(line[9:12])
    # The SP before the reason phrase may be missing when the phrase is empty,
    # as h11 and llhttp allow.
    if status is None or (len(line) > 12 and line[12] != 32):  # 32: SP
        raise ProtocolError(f"invalid status line {line[:64]!r}")
    parsed = (status, http_version, line[13:].decode("latin-1"))
    if len(line) <= _STATUS_LINES_MAX_LENGTH and len(_STATUS_LINES) < _STATUS_LINES_MAX_ENTRIES:
        _STATUS_LINES[line] = parsed
    return parsed


def _field_value(lower: bytes, key: bytes, at: int) -> bytes:
    """The value of field ``key`` found at ``at`` in a lower-cased head.

    A repeated field's values are joined with commas (RFC 9110 §5.3).
    """
    start = at + len(key)
    stop = lower.find(b"\r", start)
    value = lower[start:stop].strip(b" \t")
    at = lower.find(key, stop)
    while at >= 0:
        start = at + len(key)
        stop = lower.find(b"\r", start)
        value += b"," + lower[start:stop].strip(b" \t")
        at = lower.find(key, stop)
    return value


def _content_length(lower: bytes, at: int) -> int:
    """The Content-Length found at ``at`` in the lower-cased head (RFC 9110 §8.6).

    Exactly one field with one value: RFC 9110 §8.6 lets a recipient take
    identical repeats (``5, 5`` or the field twice) as one, but two lengths are
    the raw material of request/response smuggling, and no sane server sends
    them, so any repeat is refused.
    """
    start = at + len(_CONTENT_LENGTH)
    stop = lower.find(b"\r", start)
    value = lower[start:stop].strip(b" \t")
    if lower.find(_CONTENT_LENGTH, stop) >= 0 or b"," in value:
        raise ProtocolError("more than one Content-Length (RFC 9110 §8.6): refused")
    if not value.isdigit():  # ASCII digits only; rejects signs, spaces, hex, empty
        raise ProtocolError(f"invalid Content-Length {value[:64]!r}")
    if len(value) > 18:  # beyond any body we could hold; keeps int() cheap
        raise ResponseTooLarge(f"Content-Length {value[:64]!r} is too large")
    return int(value)


def _chunk_size(unit: bytes) -> int:
    """Parse ``CRLF chunk-size [chunk-ext]`` (RFC 9112 §7.1); memoise it.

    The memo is keyed by the whole unit, so a hit also vouches for the CRLF
    that ended the previous chunk's data.
    """
    if unit[:2] != b"\r\n":
        raise ProtocolError("missing CRLF after chunk data (RFC 9112 §7.1)")
    line = unit[2:]
    digits, semicolon, extensions = line.partition(b";")
    if semicolon:
        # chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): ignored,
        # but it may not smuggle line breaks or NUL.
        digits = digits.rstrip(b" \t")
        if extensions.translate(None, b"\r\n\x00") != extensions:
            raise ProtocolError("bare CR, LF or NUL in a chunk extension")
    # At most 16 hex digits: no overflow games (RFC 9112 §7.1 asks for that care).
    if not digits or len(digits) > 16 or digits.translate(None, _HEXDIG):
        raise ProtocolError(f"invalid chunk size {line[:64]!r}")
    size = int(digits, 16)
    if len(unit) <= _CHUNK_SIZES_MAX_LENGTH and len(_CHUNK_SIZES) < _CHUNK_SIZES_MAX_ENTRIES:
        _CHUNK_SIZES[unit] = size
    return size


# Chunked bodies of a known layout, read with C calls (see _run_body): the
# length from the first chunk-size unit to the end of the data -> (the first
# unit, the unpack_from of a Struct giving b"" before each run of equal chunks
# and each chunk's data, the runs as (unit, first and end index in what the
# Struct gives, offset) or () when there is one, the body size). A Struct
# costs 0.4 us (8 chunks) to 1.5 us (64) to build, and a layout is learnt the
# second time a body of its length comes, once (_TRIED), so a server sending
# ever-new lengths pays two dict lookups per body; both dicts are bounded
# like _HEADS.
_Run = tuple[
    bytes,
    "Callable[[bytes, int], tuple[bytes, ...]]",
    tuple[tuple[bytes, int, int, int], ...],
    int,
]
_RUNS: dict[int, _Run] = {}
_RUNS_MAX_ENTRIES = 128
# Lengths seen once (False) or learnt not to be a layout _run_body reads (True).
_TRIED: dict[int, bool] = {}
_RUN_MAX_CHUNKS = 64
_RUN_MAX_RUNS = 8
# The last-chunk unit and the final CRLF of a body without trailers.
_LAST_CHUNK = b"\r\n0\r\n\r\n"


def _run_body(data: bytes, pos: int, limit: int) -> bytes | None:
    """The body at ``data[pos:]`` if it has a known layout and nothing else.

    A layout is a few runs of equal chunks (a server writing its body in
    buffers of one size sends one run, maybe then a smaller chunk), then the
    last chunk and the final CRLF, no trailers, ending ``data``. Anything else
    returns ``None`` (also an error, or a body over ``limit``) for the general
    loop to read, and to reject with its own error.

    Soundness: the chunks are unpacked at the offsets of the layout, and the
    wire of each run is then rebuilt from them (``unit.join``, the b"" before
    the run putting a unit first) and compared with ``data``: equal only if
    every unit is the layout's, byte for byte. With the lengths adding up and
    the end compared, nothing else fits. The layout is cached by the body's
    length alone, so a body with another first unit learns its own.

    Figures (timeit, 8 x 512 B): unpack 170 ns, the wire rebuilt and compared
    160 ns, the join 70 ns; a regex validating the run costs 190-280 ns (and
    28 us to compile), its ``findall`` 790 ns, ``split`` 850 ns, slicing each
    chunk 480 ns.
    """
    key = len(data) - pos
    run = _RUNS.get(key)
    if run is None:
        # One chunk needs no layout: read it as it is (a body of a new length).
        end = data.find(b"\r\n", pos + 2, pos + _CHUNK_SIZES_MAX_LENGTH + 2)
        size = _unit_size(data[pos:end]) if end >= 0 else -1
        if size > 0 and end + 2 + size == len(data) - len(_LAST_CHUNK):
            if size > limit or not data.endswith(_LAST_CHUNK):
                return None
            return data[end + 2 : end + 2 + size]
        tried = _TRIED.get(key)
        if tried is None:  # the first body of this length
            if len(_TRIED) >= 2 * _RUNS_MAX_ENTRIES:
                _TRIED.clear()
            _TRIED[key] = False
            return None
        if tried:
            return None
        run = _learn_run(data, pos)
        if run is None:
            return None
    unit, unpack, runs, total = run
    chunks = unpack(data, pos)
    if runs:
        for unit, start, stop, at in runs:
            if not data.startswith(unit.join(chunks[start:stop]), pos + at):
                break
        else:
            unit = b""  # every run fits
    elif data.startswith(unit.join(chunks), pos):
        unit = b""
    if unit:  # a unit differs
        if data.startswith(run[0], pos) or _learn_run(data, pos) is None:
            return None  # not this layout
        return _run_body(data, pos, limit)  # once: the first unit now fits
    if total > limit or not data.endswith(_LAST_CHUNK):
        return None  # the general loop raises ResponseTooLarge where it should
    return b"".join(chunks)


def _learn_run(data: bytes, pos: int) -> _Run | None:
    """The layout of the chunks at ``data[pos:]`` for _run_body, if it is one.

    Its entry in _RUNS is replaced; when this is no such layout, it is
    removed and the length marked in _TRIED.
    """
    key = len(data) - pos
    stop = len(data) - len(_LAST_CHUNK)
    runs: list[tuple[bytes, int, int, int]] = []
    layout: list[str] = []
    at = pos
    chunks = total = 0
    unit = b""
    while at < stop and chunks < _RUN_MAX_CHUNKS:
        # Units longer than those memoised (extensions) are left to the general loop.
        end = data.find(b"\r\n", at + 2, at + _CHUNK_SIZES_MAX_LENGTH + 2)
        size = _unit_size(data[at:end]) if end >= 0 else -1
        if size <= 0:  # a zero size would end the body before `stop`: trailers
            break
        if not unit or not data.startswith(unit, at):  # a new run
            if len(runs) == _RUN_MAX_RUNS:
                break
            unit = data[at : end + 2]
            runs.append((unit, chunks + len(runs), chunks + len(runs) + 2, at - pos))
            layout.append("0s")
        else:
            unit, start, _, offset = runs[-1]
            runs[-1] = (unit, start, chunks + len(runs) + 1, offset)
        layout.append(f"{len(unit)}x{size}s")
        chunks += 1
        total += size
        at = end + 2 + size
    if at != stop or not runs or not data.endswith(_LAST_CHUNK):
        _RUNS.pop(key, None)
        _TRIED[key] = True
        return None
    if len(_RUNS) >= _RUNS_MAX_ENTRIES:
        _RUNS.clear()
    unpack = Struct("".join(layout)).unpack_from
    run = _RUNS[key] = (runs[0][0], unpack, tuple(runs) if len(runs) > 1 else (), total)
    return run


def _unit_size(unit: bytes) -> int:
    """The size a chunk-size unit (without its final CRLF) says; -1 if invalid."""
    size = _CHUNK_SIZES.get(unit, -1)
    if size < 0:
        try:
            size = _chunk_size(unit)
        except ProtocolError:
            return -1
    return size


def _check_chunked(coding: bytes) -> None:
    """Accept only ``Transfer-Encoding: chunked`` (lower-cased; see module docstring)."""
    if coding != b"chunked":
        raise ProtocolError(
            f"unsupported Transfer-Encoding {coding[:64]!r}: only chunked is accepted"
        )


def _keep_alive(lower: bytes, at: int, http11: bool) -> bool:
    """Whether the connection persists after this response (RFC 9112 §9.3).

    ``at`` is where the Connection field is in the lower-cased head.
    """
    start = at + len(_CONNECTION)
    stop = lower.find(b"\r", start)
    value = lower[start:stop].strip(b" \t")
    if lower.find(_CONNECTION, stop) >= 0:
        value = _field_value(lower, _CONNECTION, at)  # repeated: consider them all
    elif value == b"keep-alive":
        return True
    elif value == b"close":
        return False
    # Connection is a comma list of case-insensitive tokens (RFC 9110 §7.6.1).
    tokens = {token.strip(b" \t") for token in value.split(b",")}
    if b"close" in tokens:
        return False
    return http11 or b"keep-alive" in tokens


def _check_line_ends(pending: bytes | bytearray, new: int, end: int) -> None:
    """Reject a bare LF or CR in ``pending[new:end]`` (an incomplete head or trailers).

    Only the new bytes are looked at, so a head dripped byte by byte costs
    linear time; a CR at the very end may still be followed by its LF. Bytes
    past ``end`` (the size limit) are left to the size check, so that the error
    does not depend on how the input was split.
    """
    at = pending.find(b"\n", new, end)
    while at >= 0:
        if at == 0 or pending[at - 1] != 13:  # 13: CR
            raise ProtocolError("bare LF in the response head (RFC 9112 §2.2)")
        at = pending.find(b"\n", at + 1, end)
    at = pending.find(b"\r", max(new - 1, 0), end)
    while 0 <= at < len(pending) - 1:
        if pending[at + 1] != 10:  # 10: LF
            raise ProtocolError("bare CR in the response head (RFC 9112 §2.2)")
        at = pending.find(b"\r", at + 1, end)


def _tail(data: bytes, pos: int) -> bytes | memoryview:
    """``data[pos:]`` to keep as a body piece until the body is joined.

    A large tail is kept as a view, not copied: the join at the end is then
    the only copy of the body (``data`` is always an immutable ``bytes``).
    """
    if not pos:
        return data
    return memoryview(data)[pos:] if len(data) - pos > _COPY_LIMIT else data[pos:]


def _keep(body: list[bytes | bytearray | memoryview], piece: bytes | memoryview) -> None:
    """Add a body piece, merging small ones into one bytearray.

    A list entry costs ~40 bytes of overhead whatever its size, so a body sent
    in tiny pieces (2-byte chunks, 1-byte reads) kept piece by piece would use
    ~20x its size; merged, memory stays within a small factor of the limit.
    Large pieces stay views, copied only by the final join. A first small
    piece is kept as ``bytes`` and turned into a bytearray only when a second
    one follows, so a small body in one piece is never copied again (the join
    of one ``bytes`` returns it).
    """
    if len(piece) >= _COPY_LIMIT:
        body.append(piece)
    elif not body:
        body.append(piece if type(piece) is bytes else bytes(piece))  # no view pins `data`
    elif type(last := body[-1]) is bytearray:
        last += piece
    elif len(last) < _COPY_LIMIT:  # a small first piece: start merging
        merged = bytearray(last)
        merged += piece
        body[-1] = merged
    else:
        body.append(bytearray(piece))


def _check_status_prefix(prefix: bytes | bytearray) -> None:
    """Fail fast on bytes that cannot start an HTTP/1.x status line.

    Without this, a server that answers in HTTP/2 or with garbage would be
    waited on until the head limit or the timeout.
    """
    start = bytes(prefix[:9])
    if not (_HTTP11.startswith(start) or _HTTP10.startswith(start)):
        raise ProtocolError(f"not an HTTP/1.x response: {start!r}")


# What a head says, as (status, http_version, reason, Content-Length or -1,
# chunked, keep-alive, field count, Content-Encoding or None, plain): a pure
# function of the head's bytes. ``plain`` folds the fast path's tests of the
# status and the coding into one compare (``plain > reader._decompress``): 2
# for a final response that may have a body and has no content coding, 1 for
# one with a coding (fast only when the reader does not decode), 0 otherwise;
# compared with the reader's ``_fast_floor`` (2 while streaming: never fast).
_HeadInfo = tuple[int, str, str, int, bool, bool, int, bytes | None, int]

# Heads already analysed -> their _HeadInfo. Bounded in entries and head size
# so that a server sending ever-new heads cannot grow it (it is then simply
# cleared); shared by all readers and threads (dict get/set are atomic, and an
# entry is immutable).
_HEADS: dict[bytes, _HeadInfo] = {}
_HEADS_MAX_ENTRIES = 128
_HEADS_MAX_LENGTH = 1024


def _analyse_head(head: bytes) -> _HeadInfo:
    """Validate a response head and extract what framing needs (see module docstring).

    Args:
        head: The status line and field lines, each ending in CRLF.
    """
    # The field-count limit is the reader's: validate against the hard cap
    # here, the reader compares the count with its own limit.
    fields = _check_head(head, _HARD_MAX_FIELDS)
    line = head[: head.find(b"\r")]
    status, http_version, reason = _STATUS_LINES.get(line) or _parse_status_line(line)
    http11 = http_version == "1.1"
    lower = head.lower()
    at = lower.find(_CONNECTION)
    keep_alive = http11 if at < 0 else _keep_alive(lower, at, http11)
    at = lower.find(_CONTENT_LENGTH)
    length = -1 if at < 0 else _content_length(lower, at)
    at = lower.find(_TRANSFER_ENCODING)
    chunked = at >= 0
    if chunked:
        if length >= 0:
            raise ProtocolError("both Transfer-Encoding and Content-Length (RFC 9112 §6.3)")
        _check_chunked(_field_value(lower, _TRANSFER_ENCODING, at))
    at = lower.find(_CONTENT_ENCODING)
    coding = None if at < 0 else _field_value(lower, _CONTENT_ENCODING, at)
    plain = 0 if status < 200 or status in _NO_BODY_STATUSES else 2 if coding is None else 1
    info = (status, http_version, reason, length, chunked, keep_alive, fields, coding, plain)
    if len(head) <= _HEADS_MAX_LENGTH:
        if len(_HEADS) >= _HEADS_MAX_ENTRIES:
            _HEADS.clear()
        _HEADS[head] = info
    return info


class ResponseReader:
    """Parse the responses of one HTTP/1.1 connection, one request at a time.

    Call :meth:`start` before sending each request, then :meth:`feed` every
    chunk of bytes received until it returns the :class:`Response`, and
    :meth:`feed_eof` when the peer closes. Only :class:`~warmline.errors.WarmlineError`
    subclasses escape :meth:`feed` and :meth:`feed_eof`; after one, the reader
    stays failed (and :attr:`keep_alive` is false) until :meth:`reset`.

    Attributes:
        keep_alive: Whether the connection may carry another request after the
            last complete response. False while a response is outstanding,
            after ``Connection: close``, HTTP/1.0 without keep-alive, a
            close-delimited body, leftover bytes, end of file or any error.
        received_any: Whether any byte of the current response (including 1xx
            interim responses) has arrived; with ``ConnectionClosed`` it tells
            a stale keep-alive connection (safe to retry) from a failed one.
        leftover: Bytes that arrived after the complete response. A server may
            not send a response nobody asked for, so when this is not empty the
            connection must not be reused and :meth:`start` raises.

    Example:
        >>> reader = ResponseReader()
        >>> reader.start("GET")
        >>> reader.feed(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nhi")
        <Response [200 OK]>
        >>> reader.keep_alive
        True
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_buf",
        "_connect",
        "_decoder",
        "_decompress",
        "_delim",
        "_fast_floor",
        "_head_only",
        "_interim",
        "_limit",
        "_max_body_size",
        "_max_head_size",
        "_max_headers",
        "_next_keep_alive",
        "_remaining",
        "_response",
        "_scan",
        "_state",
        "_stream",
        "keep_alive",
        "leftover",
        "received_any",
    )

    def __init__(
        self,
        *,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        decompress: bool = False,
    ) -> None:
        """Create an idle reader with the given limits.

        Args:
            max_head_size: Largest status line plus header section, in bytes,
                including the final empty line; also bounds the trailer section.
            max_headers: Most header fields (and, separately, trailer fields).
            max_body_size: Largest body, in bytes, after removing chunked
                coding, and (with ``decompress``) after decoding it.
            decompress: Undo the body's ``Content-Encoding`` (gzip, deflate,
                br, zstd; see :func:`~warmline.http11.make_decoder`) when the
                response completes: ``content`` is then the decoded body and
                ``raw_content`` the bytes as sent. A corrupt body raises
                DecodingError, one that decodes past ``max_body_size``
                ResponseTooLarge (the reader then fails, like on any
                protocol error: the connection is not reused). Off by default
                here (bytes as sent); the pools turn it on.
        """
        if min(max_head_size, max_headers, max_body_size) < 0:
            raise ValueError("limits must not be negative")
        self._max_head_size = max_head_size
        self._max_headers = max_headers
        self._max_body_size = max_body_size
        self._decompress = bool(decompress)
        # Compared with a memoised head's ``plain`` on the fast path: 0 (bytes
        # as sent), 1 (decoding), 2 while streaming (never the fast path).
        self._fast_floor = int(self._decompress)
        self._buf = bytearray()  # an incomplete head, chunk line or trailer section
        self._body: list[bytes | bytearray | memoryview] = []  # body pieces, joined once at the end
        self.reset()

    def reset(self) -> None:
        """Forget all state, errors and buffered bytes (after a reconnect)."""
        self._state = _IDLE
        self._buf.clear()
        self._body.clear()
        self._body_size = 0
        self._remaining = 0
        self._response: Response | None = None
        self._decoder: Decoder | None = None
        # Streaming: False (off), True (on), or the response whose head is
        # complete and not yet handed out by feed_stream().
        self._stream: Response | bool = False
        self._fast_floor = int(self._decompress)
        self._head_only = False
        self._connect = False
        self._interim = 0
        self._next_keep_alive = False
        self._delim = b""
        self._scan = 0
        self._limit = 0
        self.keep_alive = True
        self.received_any = False
        self.leftover = b""

    @property
    def expecting(self) -> bool:
        """Whether a response is outstanding (started, final response not complete)."""
        return _HEAD <= self._state <= _UNTIL_CLOSE

    def start(self, method: str = "GET") -> None:
        """Expect the response to a request sent with ``method``.

        Call once per request, before writing it. The method matters for
        framing only: a response to ``HEAD`` has no body, a 2xx response to
        ``CONNECT`` would be a tunnel (refused).

        Raises:
            ProtocolError: The reader failed earlier, a response is still
                outstanding, or bytes nobody asked for are buffered (the
                connection must be closed instead).
            ConnectionClosed: The peer already closed the connection
                (``received_any=False``: the request was not sent).
        """
        state = self._state
        if state == _ERROR:
            raise ProtocolError("the response reader failed earlier; reconnect and reset() it")
        if self.leftover:
            leftover = self.leftover
            self._fail()
            raise ProtocolError(f"unsolicited data after the previous response: {leftover[:64]!r}")
        if state == _CLOSED:
            raise ConnectionClosed("the peer closed the connection", received_any=False)
        if _HEAD <= state <= _UNTIL_CLOSE:
            raise ProtocolError("start() called while a response is still outstanding")
        if method == "GET":  # the common case, without upper()
            self._head_only = self._connect = False
        else:
            method = method.upper()  # the writer accepts any case
            self._head_only = method == "HEAD"
            self._connect = method == "CONNECT"
        self._state = _HEAD
        self._interim = 0
        self.received_any = False
        self.keep_alive = False

    def start_stream(self, method: str = "GET") -> None:
        """Like :meth:`start`, for a response whose body is consumed as it arrives.

        Then :meth:`feed_stream` returns the response as soon as its head is
        complete (its ``content`` stays empty), and the body's pieces
        (chunked coding removed, content coding left as sent) are taken with
        :meth:`take_body` until :attr:`body_done`.
        """
        self.start(method)
        self._stream = True
        self._fast_floor = 2

    def feed_stream(self, data: bytes) -> Response | None:
        """Feed bytes of a streamed response (see :meth:`start_stream`).

        Returns:
            The response, once, in the call that completes its head; else ``None``.

        Raises:
            ProtocolError, ResponseTooLarge: As :meth:`feed` (the reader is
                then failed). ``max_body_size`` still bounds the body.
        """
        try:
            self._feed_slow(data)
        except WarmlineError:
            self._fail()
            raise
        except Exception as exc:  # normalise at the boundary, like h11
            self._fail()
            raise ProtocolError(f"malformed response ({type(exc).__name__}: {exc})") from exc
        return self._announce()

    def feed_eof_stream(self) -> Response | None:
        """:meth:`feed_eof` for a streamed response; returns its head if it just completed."""
        self.feed_eof()
        return self._announce()

    def _announce(self) -> Response | None:
        response = self._stream
        if isinstance(response, bool):
            return None
        self._stream = self._state < _DONE  # still streaming unless the body came with it
        return response

    def take_body(self) -> list[bytes | bytearray | memoryview]:
        """The body pieces received since the last call (streaming), in order.

        Pieces are bytes, bytearrays (small pieces merged) or memoryviews of
        the immutable bytes fed in; the reader keeps no reference to them.
        """
        body = self._body
        if not body:
            return []
        pieces = body.copy()
        body.clear()
        return pieces

    @property
    def body_done(self) -> bool:
        """Whether the streamed response's body is complete (or failed)."""
        return self._state >= _DONE

    @property
    def body_left(self) -> int:
        """Bytes of a Content-Length body still to come; -1 when unknown (chunked,
        close-delimited), 0 when complete."""
        state = self._state
        if state >= _DONE:
            return 0
        return self._remaining if state == _BODY else -1

    def feed(self, data: bytes) -> Response | None:
        """Feed bytes received on the connection, in any split.

        Returns:
            The final response once it is complete, else ``None``. Bytes after
            it are kept in :attr:`leftover` (and :attr:`keep_alive` is false).

        Raises:
            ProtocolError: Malformed response, or data while no response is
                expected (unsolicited data); the reader is then failed.
            ResponseTooLarge: A limit was exceeded; the reader is then failed.
        """
        try:
            if self._state == _HEAD and data and not self._buf and type(data) is bytes:
                # The common case: the start of a response, usually all of it.
                self.received_any = True
                end = data.find(b"\r\n\r\n", 0, self._max_head_size)
                head = data[: end + 2] if end > 0 else b""
                info = _HEADS.get(head)
                if info is not None:
                    # A head seen before, and (checked below) a Content-Length
                    # body that is exactly the rest of the data: the whole
                    # response in one step; a chunked body: straight to its
                    # chunks. Anything else takes the general path.
                    status, http_version, reason, length, chunked, keep_alive, fields, _, plain = (
                        info
                    )
                    if (
                        plain > self._fast_floor
                        and not self._head_only
                        and not self._connect
                        and fields <= self._max_headers
                    ):
                        if chunked:  # straight to the chunks, the head known good
                            pos = end + 2
                            run = _RUNS.get(len(data) - pos)
                            if run is not None and not run[2]:
                                # _run_body inlined for one run of equal chunks (-40 ns)
                                chunks = run[1](data, pos)
                                if (
                                    data.startswith(run[0].join(chunks), pos)
                                    and run[3] <= self._max_body_size
                                    and data.endswith(_LAST_CHUNK)
                                ):
                                    self._state = _DONE
                                    self.keep_alive = keep_alive and http_version == "1.1"
                                    content = b"".join(chunks)
                                    return Response(status, reason, http_version, head, content)
                            whole = _run_body(data, pos, self._max_body_size)
                            if whole is not None:
                                self._state = _DONE
                                self.keep_alive = keep_alive and http_version == "1.1"
                                return Response(status, reason, http_version, head, whole)
                            self._response = Response(status, reason, http_version, head)
                            self._next_keep_alive = keep_alive
                            pos = self._start_chunked(http_version == "1.1", end)
                            pos = self._read_chunks(data, pos)
                            if pos < 0:
                                return None
                            if pos == len(data) - 4 and data.endswith(b"\r\n\r\n"):
                                # No trailers, nothing after: _parse_trailers
                                # and _finish inlined (-0.15 us).
                                body = self._body
                                content = b"".join(body)
                                body.clear()
                                response = self._response
                                response.content = content
                                self._response = None
                                self._state = _DONE
                                self.keep_alive = self._next_keep_alive
                                return response
                            return self._parse_trailers(data, pos)
                        if len(data) == end + 4 + length and length <= self._max_body_size:
                            self._state = _DONE
                            self.keep_alive = keep_alive
                            return Response(status, reason, http_version, head, data[end + 4 :])
                return self._run(data)
            return self._feed_slow(data)
        except WarmlineError:
            self._fail()
            raise
        except Exception as exc:  # normalise at the boundary, like h11
            self._fail()
            raise ProtocolError(f"malformed response ({type(exc).__name__}: {exc})") from exc

    def feed_eof(self) -> Response | None:
        """Tell the reader that the peer closed the connection.

        Afterwards :attr:`keep_alive` is false, and :meth:`start` raises
        ``ConnectionClosed(received_any=False)`` until :meth:`reset`.

        Returns:
            The complete response if its body was delimited by the close,
            else ``None`` (nothing was outstanding, or the reader had already
            failed and reported why).

        Raises:
            ConnectionClosed: A response was outstanding and is incomplete;
                ``received_any`` says whether any byte of it had arrived.
        """
        try:
            return self._eof()
        except WarmlineError:
            self._fail()
            raise
        except Exception as exc:  # pragma: no cover - defensive normalisation
            self._fail()
            raise ProtocolError(f"malformed response ({type(exc).__name__}: {exc})") from exc

    # -- internals ---------------------------------------------------------------

    def _fail(self) -> None:
        self._state = _ERROR
        self.keep_alive = False
        self._decoder = None
        self._stream = False
        self._fast_floor = int(self._decompress)
        self._buf.clear()
        self._body.clear()
        self._response = None

    def _eof(self) -> Response | None:
        state = self._state
        if state == _UNTIL_CLOSE:
            body = self._body
            content = b"".join(body)
            body.clear()
            response = self._finish(b"", 0, content)
            self._state = _CLOSED
            return response
        if _HEAD <= state <= _UNTIL_CLOSE:
            received_any = self.received_any
            self._fail()
            what = "in the middle of the response" if received_any else "before any response byte"
            raise ConnectionClosed(
                f"the peer closed the connection {what}", received_any=received_any
            )
        if state != _ERROR:
            self._state = _CLOSED
        self.keep_alive = False
        return None

    def _feed_slow(self, data: bytes) -> Response | None:
        state = self._state
        if state == _ERROR:
            raise ProtocolError("the response reader failed earlier; reconnect and reset() it")
        if not data:
            return None
        if not _HEAD <= state <= _UNTIL_CLOSE:
            raise ProtocolError(f"unsolicited data while no response is expected: {data[:64]!r}")
        if type(data) is not bytes:
            data = bytes(data)
        self.received_any = True
        buf = self._buf
        if buf:
            buf += data
            if buf.find(self._delim, self._scan, self._limit) < 0:
                self._check_waiting(buf, self._scan)
                self._scan = max(self._scan, len(buf) - len(self._delim) + 1)
                return None
            data = bytes(buf)
            buf.clear()
        return self._run(data)

    def _wait(self, data: bytes, pos: int, delim: bytes, min_start: int, limit: int) -> None:
        """Keep ``data[pos:]``, an incomplete unit ending in ``delim``, for the next feed.

        The unit may be at most ``limit`` bytes, delimiter included; the
        delimiter search resumes where it stopped (never before ``min_start``).
        """
        rest = data[pos:] if pos else data
        self._delim = delim
        self._limit = limit
        self._check_waiting(rest, 0)
        self._buf += rest
        self._scan = max(min_start, len(rest) - len(delim) + 1)

    def _check_waiting(self, pending: bytes | bytearray, new: int) -> None:
        """Fail early on an incomplete unit that can no longer become valid.

        Args:
            pending: The unit so far (its delimiter was not found).
            new: Where the bytes not checked before start (less a few, so
                that a pattern across the boundary is seen).
        """
        state = self._state
        if state in {_HEAD, _TRAILERS}:
            if state == _HEAD:
                _check_status_prefix(pending)
            # A server ending lines in bare LF would be waited on for a CRLF CRLF
            # that never comes: reject it as soon as one shows.
            _check_line_ends(pending, new, self._limit)
        elif len(pending) >= 2:  # _CHUNK_LINE
            if pending[:2] != b"\r\n":
                raise ProtocolError("missing CRLF after chunk data (RFC 9112 §7.1)")
            if pending.find(b"\n", 2, self._limit) >= 0:  # and no CRLF was found there
                raise ProtocolError("bare LF in a chunk-size line (RFC 9112 §7.1)")
        if len(pending) >= self._limit:
            what = {_HEAD: "response head", _CHUNK_LINE: "chunk-size line"}.get(
                state, "trailer section"
            )
            raise ResponseTooLarge(f"{what} larger than {self._limit} bytes")

    def _run(self, data: bytes) -> Response | None:
        """Consume ``data`` (every unconsumed byte) until it runs out or a response completes."""
        pos = 0
        while True:
            state = self._state
            if state == _HEAD:
                pos = self._parse_head(data, pos)
                if pos < 0:
                    return None
            elif state == _BODY:
                stop = pos + self._remaining
                if stop <= len(data):
                    body = self._body
                    if body:
                        _keep(body, memoryview(data)[pos:stop])
                        content = b"".join(body)
                        body.clear()
                    else:
                        content = data[pos:stop]
                    return self._finish(data, stop, content)
                _keep(self._body, _tail(data, pos))
                self._remaining = stop - len(data)
                return None
            elif _CHUNK_LINE <= state <= _CHUNK_DATA:
                pos = self._read_chunks(data, pos)
                if pos < 0:
                    return None
            elif state == _TRAILERS:
                return self._parse_trailers(data, pos)
            else:  # _UNTIL_CLOSE
                self._add_body(_tail(data, pos))
                return None

    def _finish(self, data: bytes, pos: int, content: bytes) -> Response:
        """Complete the response; ``data[pos:]`` are bytes nobody asked for."""
        response = self._response
        assert response is not None
        if self._stream is not False:
            self._end_stream(content)
        elif self._decoder is not None:
            content = self._decode(response, content)
            response.content = content
        else:
            response.content = content
        self._response = None
        self._state = _DONE
        if pos < len(data):
            self.leftover = data[pos:]
            self.keep_alive = False
        else:
            self.keep_alive = self._next_keep_alive
        return response

    def _end_stream(self, content: bytes) -> None:
        """The streamed body is complete: its last piece goes to take_body()."""
        if content:
            self._body.append(content)
        if self._stream is True:
            self._stream = False  # else the head is still to be announced
        self._fast_floor = int(self._decompress)

    def _add_body(self, piece: bytes | memoryview) -> None:
        """Add a piece of a close-delimited body, within the body limit."""
        if piece:
            size = self._body_size + len(piece)
            if size > self._max_body_size:
                raise ResponseTooLarge(f"body larger than {self._max_body_size} bytes")
            self._body_size = size
            _keep(self._body, piece)

    def _parse_head(self, data: bytes, pos: int) -> int:
        """Parse the head at ``data[pos:]``; return where the body starts, or -1 to wait.

        This is the hot path. A server repeats the same head bytes (nginx
        changes only its Date field, once a second), so the analysis of a head,
        a pure function of its bytes, is memoised: a repeat costs one slice and
        one dict lookup instead of a dozen C calls.
        """
        limit = self._max_head_size
        end = data.find(b"\r\n\r\n", pos, pos + limit)
        if end < 0:
            self._wait(data, pos, b"\r\n\r\n", 0, limit)
            return -1
        head = data[pos : end + 2]  # the status line and fields, each ending in CRLF
        info = _HEADS.get(head)
        if info is None:
            info = _analyse_head(head)
        status, http_version, reason, length, chunked, keep_alive, fields, coding, _ = info
        if fields > self._max_headers:
            raise ResponseTooLarge(f"more than {self._max_headers} header fields")
        if status < 200:
            if status == 101:
                raise ProtocolError("101 Switching Protocols, but no upgrade was requested")
            self._interim += 1
            if self._interim > MAX_INTERIM_RESPONSES:
                raise ResponseTooLarge(f"more than {MAX_INTERIM_RESPONSES} 1xx responses")
            return end + 4  # an interim response (RFC 9110 §15.2): read the next head
        self._response = response = Response(status, reason, http_version, head)
        if self._stream is not False:
            self._stream = response  # feed_stream() hands it out
            coding = None  # the stream decodes, piece by piece
        self._next_keep_alive = keep_alive
        # Message body length, RFC 9112 §6.3, in its order.
        if self._head_only or status in _NO_BODY_STATUSES:
            self._state = _BODY
            self._remaining = 0
            return end + 4
        if self._connect and status < 300:
            raise ProtocolError("2xx response to CONNECT: tunnels are not supported")
        if coding is not None and self._decompress:
            self._start_decoding(coding)
        if chunked:
            return self._start_chunked(http_version == "1.1", end)
        elif length < 0:
            self._state = _UNTIL_CLOSE
            self._next_keep_alive = False
            self._body_size = 0
            return end + 4
        elif length > self._max_body_size:
            raise ResponseTooLarge(f"Content-Length {length} exceeds {self._max_body_size} bytes")
        self._state = _BODY
        self._remaining = length
        return end + 4

    def _start_decoding(self, coding: bytes) -> None:
        """Decode this response's body when it completes (``decompress=True``).

        A coding this installation cannot decode leaves the body as sent, its
        ``Content-Encoding`` intact, in a response whose ``text`` and
        ``json()`` raise the DecodingError (the bytes are still there).
        """
        response = self._response
        assert response is not None
        try:
            self._decoder = make_decoder(coding, max_size=self._max_body_size)
        except DecodingError as exc:
            self._response = UndecodedResponse(
                response.status, response._reason, response.http_version, response._fields
            )
            self._response.error = exc

    def _decode(self, response: Response, content: bytes) -> bytes:
        """The decoded body; the bytes as sent stay in ``response.raw_content``."""
        decoder = self._decoder
        assert decoder is not None
        self._decoder = None
        response._raw = content
        return decoder.feed(content) + decoder.flush()

    def _start_chunked(self, http11: bool, end: int) -> int:
        """Start reading a chunked body; return where its first chunk-size unit starts."""
        if not http11:  # RFC 9112 §6.1: faulty framing; read it, then close
            self._next_keep_alive = False
        self._state = _CHUNK_LINE
        self._body_size = 0
        return end + 2  # the CRLF ending the head starts the first chunk-size unit

    def _read_chunks(self, data: bytes, pos: int) -> int:
        """Read chunk-size lines and chunk data at ``data[pos:]`` (RFC 9112 §7.1).

        Each chunk-size unit is read as ``CRLF chunk-size [ext] CRLF``: the
        leading CRLF ends the previous chunk's data (or the head, for the first
        chunk), so one delimiter search checks both. Counters live in locals
        inside the loop and are stored back when it stops.

        Returns:
            Where the trailer section starts (after the last chunk), or -1 when
            more bytes are needed.
        """
        body = self._body
        size_of = _CHUNK_SIZES.get
        find = data.find
        length = len(data)
        total = self._body_size
        limit = self._max_body_size
        size = self._remaining if self._state == _CHUNK_DATA else -1
        # _keep() inlined, the loop's main cost with small chunks: `merge` is
        # the bytearray small chunks are appended to while it is the last
        # piece, `view` the one memoryview large chunks are sliced from.
        merge = body[-1] if body and type(body[-1]) is bytearray else None
        view = None
        # The last chunk-size unit with its final CRLF; None matches nothing.
        same: bytes | None = None
        same_length = same_size = 0
        while True:
            if size >= 0:  # chunk data, then the next chunk-size unit
                stop = pos + size
                if stop > length:
                    if pos < length:
                        _keep(body, _tail(data, pos))
                    self._state = _CHUNK_DATA
                    self._remaining = stop - length
                    self._body_size = total
                    return -1
                if size >= _VIEW_LIMIT:
                    if view is None:
                        view = memoryview(data)
                    body.append(view[pos:stop])
                    merge = None
                    if size == same_size:
                        # While the next unit repeats the last one and its
                        # chunk is all here (a server writing its body in
                        # equal buffers), the loop in half the bytecodes.
                        start = stop
                        step = size + same_length
                        while stop + step <= length and data[stop : stop + same_length] == same:
                            body.append(view[stop + same_length : stop + step])
                            stop += step
                        total += (stop - start) // step * size
                elif merge is not None:
                    merge += data[pos:stop]
                    if size == same_size:  # the same inner loop, merging
                        start = stop
                        step = size + same_length
                        while stop + step <= length and data[stop : stop + same_length] == same:
                            merge += data[stop + same_length : stop + step]
                            stop += step
                        total += (stop - start) // step * size
                else:
                    _keep(body, data[pos:stop])
                    last = body[-1]
                    merge = last if type(last) is bytearray else None
                if total > limit:
                    raise ResponseTooLarge(f"chunked body larger than {limit} bytes")
                pos = stop
            if data[pos : pos + same_length] == same:
                # The very bytes of the previous chunk-size unit, its CRLFs
                # included, so the same valid size: servers repeat one size.
                # A slice and a compare instead of a find, a slice and a get.
                size = same_size
                pos += same_length
            else:
                end = find(b"\r\n", pos + 2, pos + MAX_CHUNK_LINE_SIZE)
                if end < 0:
                    self._state = _CHUNK_LINE
                    self._body_size = total
                    self._wait(data, pos, b"\r\n", 2, MAX_CHUNK_LINE_SIZE)
                    return -1
                unit = data[pos:end]  # CRLF chunk-size [ext]
                size = size_of(unit, -1)
                if size < 0:
                    size = _chunk_size(unit)
                if size:
                    same = data[pos : end + 2]
                    same_length = len(same)
                    same_size = size
                pos = end + 2
            if size == 0:
                self._state = _TRAILERS
                return pos - 2  # the CRLF ending this line starts the trailer section
            total += size
            if total > limit:
                raise ResponseTooLarge(f"chunked body larger than {limit} bytes")

    def _parse_trailers(self, data: bytes, pos: int) -> Response | None:
        """Parse ``CRLF *(field-line CRLF) CRLF`` after the last chunk and finish."""
        limit = self._max_head_size
        end = data.find(b"\r\n\r\n", pos, pos + limit)
        if end < 0:
            self._wait(data, pos, b"\r\n\r\n", 0, limit)
            return None
        if end > pos:  # not just the final CRLF: there are trailer fields
            section = data[pos : end + 2]  # an empty first line, then the fields
            _check_head(section, self._max_headers)
            assert self._response is not None
            self._response.raw_trailers = split_fields(section)
        body = self._body
        content = b"".join(body)
        body.clear()
        return self._finish(data, end + 4, content)
