"""The reader's streaming mode: the same bodies as the whole mode, in any split."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmline.errors import ProtocolError
from warmline.http11 import ResponseReader

WIRES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + bytes(range(250)) * 20,
]


def _whole(wire: bytes) -> bytes:
    reader = ResponseReader()
    reader.start("GET")
    response = reader.feed(wire)
    assert response is not None
    return response.content


def _streamed(reader: ResponseReader, wire: bytes, cuts: list[int]) -> tuple[int, bytes]:
    reader.start_stream("GET")
    heads, body, at = [], [], 0
    for cut in [*sorted(cuts), len(wire)]:
        head = reader.feed_stream(wire[at:cut])
        at = max(at, cut)
        if head is not None:
            heads.append(head)
        body.extend(bytes(piece) for piece in reader.take_body())
    assert len(heads) == 1 and reader.body_done and reader.keep_alive
    return heads[0].status, b"".join(body)


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, len(WIRES) - 1), cuts=st.lists(st.integers(0, 5100), max_size=8))
def test_any_split_gives_the_whole_body(index: int, cuts: list[int]) -> None:
    wire = WIRES[index]
    reader = ResponseReader()
    status, body = _streamed(reader, wire, [c for c in cuts if c <= len(wire)])
    assert body == _whole(wire) and status >= 200
    # The same reader then serves a whole response: the streaming mode ended.
    reader.start("GET")
    assert reader.feed(WIRES[0]) is not None


def test_one_byte_at_a_time_and_the_head_first() -> None:
    reader = ResponseReader()
    wire = WIRES[1]
    reader.start_stream("GET")
    heads = [i for i in range(len(wire)) if reader.feed_stream(wire[i : i + 1]) is not None]
    assert heads == [wire.index(b"\r\n\r\n") + 3]  # the head is handed out as soon as complete
    assert b"".join(bytes(p) for p in reader.take_body()) == b"helloabc"
    assert reader.body_left == 0


def test_body_left_counts_a_known_rest() -> None:
    reader = ResponseReader()
    reader.start_stream("GET")
    assert reader.feed_stream(WIRES[-1][:100]) is not None
    assert reader.body_left == 5000 - (100 - WIRES[-1].index(b"\r\n\r\n") - 4)
    with pytest.raises(ProtocolError):
        reader.start("GET")  # still outstanding
