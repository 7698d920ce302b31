"""The whole-body fast path for chunked responses (``_run_body``) against the general loop.

A memoised chunked head whose body came whole in the same feed, in chunks of
one size (and maybe one last chunk of another), is read with a cached Struct
and checked by rebuilding its wire. These properties feed the same bytes to a
reader as shipped and to one whose fast path is switched off, and require the
same outcome: the same body, keep-alive, leftover and trailers, or the same
error class. Layouts are drawn to hit the fast path often (equal sizes,
a different last chunk) and to break it (data holding the unit's bytes, hex
case and leading zeros, extensions, a corrupted or missing CRLF, trailers,
bytes after the response, the body limit).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import warmline.http11._reader as reader_module
from warmline.errors import ProtocolError, ResponseTooLarge, WarmlineError
from warmline.http11._reader import ResponseReader

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
HEAD10 = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"

Outcome = tuple[object, ...]


@contextmanager
def general_loop_only() -> Iterator[None]:
    """Switch the fast path off: every chunked body takes the general loop."""
    original, runs = reader_module._run_body, reader_module._RUNS
    reader_module._run_body = lambda data, pos, limit: None
    reader_module._RUNS = {}  # and no layout known, for feed's inlined case
    try:
        yield
    finally:
        reader_module._run_body, reader_module._RUNS = original, runs


def outcome(wire: bytes, max_body_size: int = 1 << 20) -> Outcome:
    """What one feed of ``wire`` gives, the same three times.

    A layout is learnt the second time its length comes: the first feed
    takes the general loop, the second learns, the third reads it known.
    """
    outcomes = {once(wire, max_body_size) for _ in range(3)}
    assert len(outcomes) == 1
    return outcomes.pop()


def once(wire: bytes, max_body_size: int) -> Outcome:
    """What one feed of ``wire`` gives, the head already memoised."""
    reader = ResponseReader(max_body_size=max_body_size)
    head = wire[: wire.find(b"\r\n\r\n") + 4]
    reader.start("GET")
    reader.feed(head + b"0\r\n\r\n")  # memoises the head
    reader.start("GET")
    try:
        response = reader.feed(wire)
        if response is None:
            response = reader.feed_eof()
    except WarmlineError as exc:
        return ("error", type(exc))
    assert response is not None
    return (
        "ok",
        response.content,
        reader.keep_alive,
        reader.leftover,
        tuple(response.raw_trailers),
    )


def both(wire: bytes, max_body_size: int = 1 << 20) -> Outcome:
    """The outcome with the fast path, checked equal to the general loop's."""
    fast = outcome(wire, max_body_size)
    with general_loop_only():
        slow = outcome(wire, max_body_size)
    assert fast == slow
    return fast


def size_line(size: int, style: int) -> bytes:
    if style == 1:
        return b"%X" % size
    if style == 2:
        return b"0%x" % size  # a leading zero
    if style == 3:
        return b"%x;ext=1" % size
    if style == 4:
        return b"%x ; a" % size  # BWS before the extension
    return b"%x" % size


# Chunk data drawn from bytes that make up size units, so that data often
# holds a unit (or part of one) of the body it is in.
_TRICKY = st.lists(
    st.sampled_from([b"\r\n", b"1", b"0", b"a", b"A", b"\r", b"\n", b"x", b"\r\n10\r\n"]),
    max_size=8,
)


def filler(tricky: list[bytes], size: int, shift: int) -> bytes:
    pattern = b"".join(tricky) or b"y"
    pattern = pattern[shift % len(pattern) :] + pattern
    return (pattern * (size // len(pattern) + 1))[:size]


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([1, 2, 15, 16, 255, 256, 512, 700]),
    count=st.integers(1, 12),
    last=st.sampled_from([0, 0, 1, 7, 16, 300, 1000]),
    style=st.integers(0, 4),
    last_style=st.integers(0, 4),
    tricky=_TRICKY,
    http10=st.booleans(),
)
def test_valid_layouts_read_as_sent(
    size: int,
    count: int,
    last: int,
    style: int,
    last_style: int,
    tricky: list[bytes],
    http10: bool,
) -> None:
    pieces = [filler(tricky, size, i) for i in range(count)]
    if last:
        pieces.append(filler(tricky, last, count))
    styles = [style] * count + [last_style]
    wire = (HEAD10 if http10 else HEAD) + b"".join(
        size_line(len(p), s) + b"\r\n" + p + b"\r\n" for p, s in zip(pieces, styles, strict=False)
    )
    wire += b"0\r\n\r\n"
    assert both(wire) == ("ok", b"".join(pieces), not http10, b"", ())


def corrupt(wire: bytes, at: int, how: int) -> bytes:
    if how == 0:  # a byte changed
        return wire[:at] + bytes([wire[at] ^ 0x20 or 1]) + wire[at + 1 :]
    if how == 1:  # a byte deleted
        return wire[:at] + wire[at + 1 :]
    if how == 2:  # a byte added
        return wire[:at] + b"\r" + wire[at:]
    if how == 3:  # a CRLF turned into a bare LF
        crlf = wire.find(b"\r\n", at)
        return wire if crlf < 0 else wire[:crlf] + wire[crlf + 1 :]
    return wire[:at] + b"\n" + wire[at + 1 :]  # a byte turned into a bare LF


@settings(max_examples=300, deadline=None)
@given(
    size=st.sampled_from([1, 3, 16, 256, 512]),
    count=st.integers(1, 8),
    last=st.sampled_from([0, 5, 100]),
    style=st.integers(0, 4),
    tricky=_TRICKY,
    where=st.integers(0, 1 << 16),
    how=st.integers(0, 4),
)
def test_broken_layouts_fail_alike(
    size: int, count: int, last: int, style: int, tricky: list[bytes], where: int, how: int
) -> None:
    pieces = [filler(tricky, size, i) for i in range(count)]
    if last:
        pieces.append(filler(tricky, last, 1))
    body = b"".join(size_line(len(p), style) + b"\r\n" + p + b"\r\n" for p in pieces)
    body += b"0\r\n\r\n"
    body = corrupt(body, where % len(body), how)
    result = both(HEAD + body)
    if result[0] == "ok" and how == 0:  # a changed byte keeps the framing, or breaks it
        assert len(result[1]) == sum(map(len, pieces))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    size=st.sampled_from([1, 16, 512]),
    count=st.integers(1, 6),
    after=st.sampled_from(
        [
            b"X-Checksum: 1\r\n\r\n",  # trailers
            b"\r\nHTTP/1.1 200 OK\r\n",  # leftover bytes
            b"\r\n\r\n",  # leftover CRLF
            b"",
        ]
    ),
    zero=st.sampled_from([b"0", b"00", b"0;x", b"0 ;x"]),
)
def test_trailers_leftover_and_last_chunk_variants(
    size: int, count: int, after: bytes, zero: bytes
) -> None:
    pieces = [b"d" * size] * count
    body = b"".join(b"%x\r\n%s\r\n" % (size, p) for p in pieces) + zero + b"\r\n"
    result = both(HEAD + body + (after or b"\r\n"))
    assert result[0] == "ok"
    assert result[1] == b"".join(pieces)


@pytest.mark.parametrize("size", [16, 512])
@pytest.mark.parametrize("last", [0, 10])
def test_the_body_limit_holds_on_the_fast_path(size: int, last: int) -> None:
    pieces = [b"a" * size] * 8 + ([b"b" * last] if last else [])
    wire = HEAD + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    total = 8 * size + last
    assert both(wire, max_body_size=total) == ("ok", b"".join(pieces), True, b"", ())
    assert both(wire, max_body_size=total - 1) == ("error", ResponseTooLarge)


def test_a_zero_sized_last_unit_with_an_extension_is_not_a_chunk() -> None:
    # "0;x" ends the body: what follows is a trailer section, here invalid.
    wire = HEAD + b"10\r\n" + b"a" * 16 + b"\r\n0;x\r\n0\r\n\r\n"
    assert both(wire) == ("error", ProtocolError)


def test_the_fast_path_is_taken_for_equal_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[bytes | None] = []
    original = reader_module._run_body

    def spy(data: bytes, pos: int, limit: int) -> bytes | None:
        taken.append(original(data, pos, limit))
        return taken[-1]

    monkeypatch.setattr(reader_module, "_run_body", spy)
    monkeypatch.setattr(reader_module, "_RUNS", {})
    monkeypatch.setattr(reader_module, "_TRIED", {})
    run = HEAD + b"200\r\n" + b"x" * 512 + b"\r\n200\r\n" + b"y" * 512 + b"\r\n"
    body = b"x" * 512 + b"y" * 512
    expected = ("ok", body, True, b"", ())
    # Seen once: the general loop; twice: learnt by _run_body; then read by
    # feed's inlined copy without calling it.
    assert once(run + b"0\r\n\r\n", 1 << 20) == expected
    assert taken[-1] is None
    assert once(run + b"0\r\n\r\n", 1 << 20) == expected
    assert taken[-1] == body
    calls = len(taken)
    assert once(run + b"0\r\n\r\n", 1 << 20) == expected
    assert len(taken) == calls + 1  # only the head-memoising feed's empty body
    # Two runs (a different last chunk): _run_body every time.
    wire = run + b"7\r\nabcdefg\r\n0\r\n\r\n"
    assert outcome(wire)[1] == body + b"abcdefg"
    assert taken[-1] == body + b"abcdefg"
    # Twenty chunks in two runs, as the benchmark server's /chunked sends them.
    pieces = [b"chunk-%d;" % i * 50 for i in range(20)]
    wire = HEAD + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    assert outcome(wire)[1] == b"".join(pieces)
    assert taken[-1] == b"".join(pieces)


def test_a_layout_cached_for_one_unit_is_relearned_for_another() -> None:
    # The same body length, sizes in the other hex case: the cached layout's
    # unit does not fit, so the layout is learnt again, and both are read.
    data = [b"p" * 0x1A0, b"q" * 0x1A0, b"r" * 0x1A0]
    for line in (b"1a0", b"1A0", b"1a0"):
        wire = HEAD + b"".join(line + b"\r\n" + d + b"\r\n" for d in data) + b"0\r\n\r\n"
        assert both(wire) == ("ok", b"".join(data), True, b"", ())
    # A body of the same length whose second unit differs: not a run.
    wire = HEAD + b"1a0\r\n" + data[0] + b"\r\n1A0\r\n" + data[1] + b"\r\n1a0\r\n" + data[2]
    assert both(wire + b"\r\n0\r\n\r\n") == ("ok", b"".join(data), True, b"", ())


@pytest.mark.parametrize("size", [1, 100, 5000])
def test_one_chunk_is_read_without_a_layout(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader_module, "_RUNS", {})
    wire = HEAD + b"%X\r\n%s\r\n0\r\n\r\n" % (size, b"j" * size)
    assert once(wire, size) == ("ok", b"j" * size, True, b"", ())
    assert not reader_module._RUNS  # nothing learnt for it
    assert both(wire, size - 1) == ("error", ResponseTooLarge)
    assert both(HEAD10 + wire[len(HEAD) :]) == ("ok", b"j" * size, False, b"", ())
