"""Runs of equal chunks: the reader's inner loop and its whole-response fast path.

A server writes a body in buffers of one size, so the reader takes a run of
chunks whose size line repeats in a tighter loop, and a memoised chunked head
straight from ``feed``. These properties check that it is the same parse as
the general one: data that contains the very bytes of the size unit, runs cut
anywhere by the feeds, a corrupted unit in the middle of a run, the body limit.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline.errors import ProtocolError, ResponseTooLarge
from warmline.http11._reader import ResponseReader

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(pieces: list[bytes]) -> bytes:
    return HEAD + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def feed_all(reader: ResponseReader, feeds: list[bytes]) -> bytes:
    reader.start("GET")
    response = None
    for piece in feeds:
        assert response is None
        response = reader.feed(piece)
    assert response is not None
    return response.content


# Chunk data drawn from bytes that make up the size units, so that data often
# contains the unit after it (b"\r\n10\r\n") or a part of it.
_TRICKY = st.lists(st.sampled_from([b"\r\n", b"1", b"0", b"\r", b"\n", b"x", b"\r\n10\r\n"]))


@settings(max_examples=150, deadline=None)
@given(
    size=st.sampled_from([1, 16, 255, 256, 300, 600]),
    count=st.integers(1, 12),
    tricky=_TRICKY,
    cuts=st.lists(st.integers(0, 10_000), max_size=4),
    tail=st.lists(st.integers(1, 700), max_size=2),
)
def test_runs_of_equal_chunks_parse_as_sent(
    size: int, count: int, tricky: list[bytes], cuts: list[int], tail: list[int]
) -> None:
    filler = (b"".join(tricky) or b"y") * (size // max(1, len(b"".join(tricky))) + 1)
    pieces = [(filler[i:] + filler)[:size] for i in range(count)]
    pieces += [b"z" * n for n in tail]  # a different size ends the run
    wire = chunked(pieces)
    points = sorted({c % len(wire) for c in cuts} | {0, len(wire)})
    feeds = [wire[a:b] for a, b in itertools.pairwise(points) if b > a]
    reader = ResponseReader()
    # Twice: the second response has its head and chunk sizes memoised.
    assert feed_all(reader, feeds) == b"".join(pieces)
    assert feed_all(reader, feeds) == b"".join(pieces)
    assert reader.keep_alive


@pytest.mark.parametrize("size", [16, 512])
@pytest.mark.parametrize("bad", [b"\r\n200\n\r\n", b"\n\r200\r\n", b"\r\nzz\r\n", b"x\r\n200\r\n"])
def test_a_broken_unit_in_a_run_is_an_error(size: int, bad: bytes) -> None:
    unit = b"\r\n%x\r\n" % size
    bad = bad.replace(b"200", b"%x" % size)
    data = b"d" * size
    body = (unit + data) * 5 + bad + data + (unit + data) * 3 + b"\r\n0\r\n\r\n"
    wire = HEAD[:-2] + body
    reader = ResponseReader()
    reader.start("GET")
    with pytest.raises(ProtocolError):
        reader.feed(wire)
        reader.feed_eof()


@pytest.mark.parametrize("size", [16, 512])
def test_a_run_stops_at_the_body_limit(size: int) -> None:
    reader = ResponseReader(max_body_size=10 * size)
    wire = chunked([b"a" * size] * 11)
    reader.start("GET")
    with pytest.raises(ResponseTooLarge):
        reader.feed(wire)
    reader = ResponseReader(max_body_size=10 * size)
    assert feed_all(reader, [chunked([b"a" * size] * 10)]) == b"a" * (10 * size)
