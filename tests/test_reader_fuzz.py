"""Property tests for ResponseReader (hypothesis).

1. Any split of a valid response stream parses to the same response, the one
   the generator meant.
2. Arbitrary bytes, and mutated valid responses, only ever raise WarmlineError
   subclasses, and the reader never buffers past its limits.
3. The whole-head validation trick accepts exactly the heads that a plain
   line-by-line check accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmline.errors import ProtocolError, WarmlineError
from warmline.http11._reader import MAX_CHUNK_LINE_SIZE, ResponseReader, _check_head
from warmline.http11._response import Response

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FRAMING = {"content-length", "transfer-encoding", "connection"}
# Field-value bytes: VCHAR, SP, HTAB, obs-text (RFC 9110 §5.5); no CR, LF, NUL.
VALUE_BYTES = [9, *range(0x20, 0x7F), *range(0x80, 0x100)]

LIMITS = {"max_head_size": 512, "max_headers": 12, "max_body_size": 600}

names = st.text(TCHARS, min_size=1, max_size=12).filter(lambda n: n.lower() not in FRAMING)
values = st.lists(st.sampled_from(VALUE_BYTES), max_size=20).map(bytes)


@dataclass
class Expected:
    raw: bytes
    method: str
    status: int
    content: bytes
    fields: list[tuple[bytes, bytes]]
    trailers: list[tuple[bytes, bytes]]
    keep_alive: bool
    eof: bool


def field_line(draw: st.DrawFn, name: bytes, value: bytes) -> tuple[bytes, tuple[bytes, bytes]]:
    """A wire field line with random optional whitespace, and the pair it parses to."""
    before = draw(st.sampled_from([b"", b" ", b"  ", b"\t"]))
    after = draw(st.sampled_from([b"", b" ", b"\t "]))
    stripped = value.strip(b" \t")
    return name + b":" + before + stripped + after + b"\r\n", (name, stripped)


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=6))))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = []
    for piece in pieces:
        if not piece:
            continue
        size = draw(st.sampled_from([b"%x", b"%X", b"00%x"])) % len(piece)
        ext = draw(st.sampled_from([b"", b";a=b", b" ;x"]))
        out.append(size + ext + b"\r\n" + piece + b"\r\n")
    out.append(b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n")
    trailers = []
    for _ in range(draw(st.integers(0, 2))):
        line, pair = field_line(draw, draw(names).encode(), draw(values))
        out.append(line)
        trailers.append(pair)
    out.append(b"\r\n")
    return b"".join(out), trailers


@st.composite
def responses(draw: st.DrawFn) -> Expected:
    raw = b""
    for _ in range(draw(st.integers(0, 2))):  # interim responses, skipped
        raw += draw(st.sampled_from([b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Hints\r\n"]))
        if raw.endswith(b"Hints\r\n"):
            raw += b"Link: </a.css>\r\n\r\n"
    version = draw(st.sampled_from(["1.1", "1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 599]))
    method = draw(st.sampled_from(["GET", "GET", "HEAD", "POST"]))
    reason = draw(st.text("abcdefgh XYZ", max_size=10)).encode()
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    # Sizes spread over 0-400 (st.binary alone stays short), filled with a pattern.
    size = draw(st.integers(0, 400))
    body = (draw(st.binary(min_size=1, max_size=16)) * size)[:size]
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive, foo", b"x"]))

    fields = [(draw(names).encode(), draw(values)) for _ in range(draw(st.integers(0, 5)))]
    framing_fields: list[tuple[bytes, bytes]] = []
    if framing == "length":
        framing_fields.append(
            (draw(st.sampled_from([b"Content-Length", b"content-length"])), b"%d" % len(body))
        )
    elif framing == "chunked":
        framing_fields.append(
            (b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"Chunked"])))
        )
    if connection is not None:
        framing_fields.append((b"Connection", connection))
    for pair in framing_fields:
        fields.insert(draw(st.integers(0, len(fields))), pair)

    head = b"HTTP/%s %d %s\r\n" % (version.encode(), status, reason)
    parsed = []
    for name, value in fields:
        line, pair = field_line(draw, name, value)
        head += line
        parsed.append(pair)
    head += b"\r\n"

    no_body = method == "HEAD" or status in {204, 304}
    trailers: list[tuple[bytes, bytes]] = []
    wire_body = b""
    if not no_body:
        if framing == "chunked":
            wire_body, trailers = draw(chunked_body(body))
        else:
            wire_body = body
    tokens = {t.strip().lower() for t in (connection or b"").split(b",")}
    keep_alive = b"close" not in tokens and (version == "1.1" or b"keep-alive" in tokens)
    if not no_body and (framing == "close" or (framing == "chunked" and version == "1.0")):
        keep_alive = False
    return Expected(
        raw=raw + head + wire_body,
        method=method,
        status=status,
        content=b"" if no_body else body,
        fields=parsed,
        trailers=trailers,
        keep_alive=keep_alive,
        eof=framing == "close" and not no_body,
    )


def split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def parse(pieces: list[bytes], method: str, eof: bool) -> tuple[Response, ResponseReader]:
    reader = ResponseReader()
    reader.start(method)
    result = None
    for piece in pieces:
        got = reader.feed(piece)
        if got is not None:
            assert result is None
            result = got
    if eof:
        assert result is None
        result = reader.feed_eof()
    assert result is not None
    return result, reader


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_parses_to_the_same_response(expected: Expected, cuts: list[int]) -> None:
    whole, _ = parse([expected.raw], expected.method, expected.eof)
    response, reader = parse(split(expected.raw, cuts), expected.method, expected.eof)
    for r in (whole, response):
        assert r.status == expected.status
        assert r.content == expected.content
        assert r.raw_headers == expected.fields
        assert list(r.raw_trailers) == expected.trailers
    assert whole.reason == response.reason
    assert reader.keep_alive is expected.keep_alive
    assert reader.leftover == b""


def assert_bounded(reader: ResponseReader) -> None:
    """The reader holds no more than its limits allow."""
    assert len(reader._buf) < max(LIMITS["max_head_size"], MAX_CHUNK_LINE_SIZE)
    assert sum(map(len, reader._body)) <= LIMITS["max_body_size"]


def feed_all(reader: ResponseReader, pieces: list[bytes]) -> None:
    """Feed until an error; only WarmlineError may escape, buffers stay bounded."""
    try:
        for piece in pieces:
            response = reader.feed(piece)
            assert_bounded(reader)
            if response is not None:
                assert len(response.content) <= LIMITS["max_body_size"]
                assert len(response.raw_headers) <= LIMITS["max_headers"]
        reader.feed_eof()
    except WarmlineError:
        assert reader.keep_alive is False
    assert_bounded(reader)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=1500),
    st.lists(st.integers(0, 10_000), max_size=8),
    st.sampled_from(["GET", "HEAD"]),
)
def test_arbitrary_bytes_only_raise_warmline_errors(
    data: bytes, cuts: list[int], method: str
) -> None:
    reader = ResponseReader(**LIMITS)
    reader.start(method)
    feed_all(reader, split(data, cuts))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.0 404 X\r\n", b"HTTP/1.1 100 C\r\n\r\n"]),
    st.lists(
        st.sampled_from(
            [
                b"Content-Length: 5\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"Connection: close\r\n",
                b"X: y\r\n",
                b"\r\n",
                b"5\r\nhello\r\n",
                b"0\r\n",
                b"ffffffff\r\n",
                b"hello",
                b"\n",
                b"\r",
                b" ",
                b":",
                b"\x00",
            ]
        ),
        max_size=30,
    ),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_http_like_token_soup_only_raises_warmline_errors(
    start: bytes, parts: list[bytes], cuts: list[int]
) -> None:
    reader = ResponseReader(**LIMITS)
    reader.start()
    feed_all(reader, split(start + b"".join(parts), cuts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    responses(),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "duplicate"]),
            st.integers(0, 10_000),
            st.sampled_from([b"\r", b"\n", b"\x00", b" ", b":", b"\t", b"0", b"\r\n", b"\xff"]),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_mutated_responses_only_raise_warmline_errors(
    expected: Expected, mutations: list[tuple[str, int, bytes]], cuts: list[int]
) -> None:
    raw = bytearray(expected.raw)
    for kind, where, what in mutations:
        at = where % (len(raw) + 1)
        if kind == "flip" and at < len(raw):
            raw[at] ^= 1 << (where % 8)
        elif kind == "insert":
            raw[at:at] = what
        elif kind == "delete":
            del raw[at : at + 1 + where % 3]
        elif kind == "duplicate":
            raw[at:at] = raw[at : at + 1 + where % 7]
    reader = ResponseReader(**LIMITS)
    reader.start(expected.method)
    feed_all(reader, split(bytes(raw), cuts))


# -- the whole-head check against a line-by-line reference ---------------------------------

# Field lines that are mostly valid, with the ways they can go wrong mixed in.
head_lines = st.builds(
    lambda fold, name, colon, value: fold + name + colon + value,
    st.sampled_from([b""] * 20 + [b" ", b"\t"]),
    st.one_of(
        st.text(TCHARS, min_size=1, max_size=6),
        st.text(TCHARS, min_size=1, max_size=6),
        st.text(TCHARS + "(/ \xe9", max_size=6),
    ).map(lambda t: t.encode("latin-1")),
    st.sampled_from([b":"] * 20 + [b" :", b"", b"\t:"]),
    st.lists(
        st.sampled_from(
            [b"a", b" ", b"\t", b":", b"x y", b"\xe9", b"\x01"] * 10 + [b"\r", b"\n", b"\x00"]
        ),
        max_size=6,
    ).map(b"".join),
)


def reference_accepts(head: bytes) -> bool:
    """RFC 9112 §5 field lines, checked the slow and obvious way."""
    if b"\x00" in head:
        return False
    lines = head.split(b"\r\n")
    if lines[-1] != b"" or any(b"\r" in line or b"\n" in line for line in lines):
        return False
    for line in lines[1:-1]:
        name, colon, _ = line.partition(b":")
        if not colon or not name or any(c not in TCHARS.encode() for c in name):
            return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.lists(head_lines, max_size=6))
def test_whole_head_check_matches_a_line_by_line_check(lines: list[bytes]) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(line + b"\r\n" for line in lines)
    if b"\r\n\r\n" in head:
        return  # never a head: the reader splits at the first empty line
    try:
        _check_head(head, 100)
    except ProtocolError:
        accepted = False
    else:
        accepted = True
    assert accepted is reference_accepts(head), head
