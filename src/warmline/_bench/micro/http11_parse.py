"""Parsing responses: warmline's ResponseReader against httptools (llhttp) and h11.

    uv run python -m benchmarks.bench_http11_parse [--quick]

Pure CPU, no sockets: how long it takes to turn the bytes of a response into
a complete response object (status, fields, body). Four scenarios:

  * ``small``: a 100-byte JSON body with 6 header fields, in one feed: the
    response of a trading REST call.
  * ``64 KiB / 64 KiB feeds`` and ``64 KiB / 16 KiB feeds``: a 64 KiB
    Content-Length body fed in socket-sized pieces.
  * ``chunked``: a 4 KiB body in 8 chunks of 512 bytes, in one feed.
  * ``chunked, 2 runs``: the 8.5 KB body of the end-to-end benchmark's
    ``/chunked`` endpoint, 10 chunks of 400 bytes then 10 of 450, in one feed.

Contenders:
  * ``warmline``: :class:`warmline.http11.ResponseReader` (pure Python:
    bytes methods, the fields split only when read).
  * ``warmline on httptools``: the same contract (limits, keep-alive, 1xx,
    framing checks, errors) implemented on llhttp's callbacks, in this file
    (``HttptoolsReader``), to decide which one warmline should ship.
  * ``httptools``: ``HttpResponseParser`` alone with minimal callbacks that
    collect the fields and the body: no checks, no response object. The floor
    for a C parser driven from Python.
  * ``h11``: ``Connection(our_role=CLIENT)``: send a ``Request``, feed the
    bytes, ``next_event()`` until ``EndOfMessage``, ``start_next_cycle()``.

Every contender is checked first to produce the expected status and body.
Interleaved rounds, each contender timed with ``timeit`` for ~2 ms (quick,
20 rounds) or ~4 ms (full, 80 rounds) of thread CPU time per round
(``time.thread_time``: time spent descheduled on a busy machine does not
count); the figure is the fastest round, the median is shown beside it.
Quick: < 5 s; full: < 30 s.

The figures of the last full run, and why warmline keeps its pure-Python
reader although ``HttptoolsReader`` is faster on small responses (it cannot
pass the conformance corpus), are in the docstring of
``warmline.http11._reader``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

import h11
import httptools

from warmline.errors import ConnectionClosed, ProtocolError, ResponseTooLarge, WarmlineError
from warmline.http11._reader import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    ResponseReader,
)
from warmline.http11._response import Response

JSON_BODY = (
    b'{"symbol":"BTCUSDT","price":"67123.45000000","time":1700000000000,'
    b'"bids":[["1","2"]],"x":"yzzzzzzz"}'
)
assert len(JSON_BODY) == 100
SMALL = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 100\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Server: granian\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Request-Id: 0123456789abcdef\r\n"
    b"\r\n" + JSON_BODY
)
BIG_BODY = bytes(range(256)) * 256  # 64 KiB
BIG = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 65536\r\n\r\n"
BIG += BIG_BODY
CHUNK = bytes(range(256)) * 2  # 512 bytes
CHUNKED_BODY = CHUNK * 8
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + (b"200\r\n" + CHUNK + b"\r\n") * 8
    + b"0\r\n\r\n"
)

RUNS_BODY_PIECES = [b"chunk-%d;" % i * 50 for i in range(20)]  # as the bench server's /chunked
RUNS_BODY = b"".join(RUNS_BODY_PIECES)
RUNS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in RUNS_BODY_PIECES)
    + b"0\r\n\r\n"
)


def pieces(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


SCENARIOS: dict[str, tuple[list[bytes], bytes]] = {
    "small": ([SMALL], JSON_BODY),
    "64 KiB / 64 KiB feeds": (pieces(BIG, 65536), BIG_BODY),
    "64 KiB / 16 KiB feeds": (pieces(BIG, 16384), BIG_BODY),
    "chunked": ([CHUNKED], CHUNKED_BODY),
    "chunked, 2 runs": ([RUNS], RUNS_BODY),
}


class _Stop(Exception):
    """Raised from a callback to stop llhttp at the end of the response head."""


class HttptoolsReader:
    """The ResponseReader contract on httptools (llhttp), for comparison.

    What llhttp cannot do through httptools, and what this class does instead:

    * It cannot be told that a response answers HEAD (llhttp's "skip body"
      return value is not exposed), so a HEAD response stops the parser from
      ``on_headers_complete`` and a fresh parser is made for the next request.
    * It does not say where a message ended, so bytes after a complete
      response are detected (a second message begins, or garbage follows) but
      their exact value is not known: ``leftover`` is then a placeholder.
    * It has no size limits: they are counted in the callbacks (the head size
      only approximately, by the bytes fed before the head completed).
    """

    def __init__(
        self,
        *,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._max_head_size = max_head_size
        self._max_headers = max_headers
        self._max_body_size = max_body_size
        self.reset()

    def reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._expecting = False
        self._failed = False
        self._closed = False
        self._done: Response | None = None
        self._fields: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._in_head = True
        self._reason = b""
        self._head_only = False
        self._chunked = False
        self.keep_alive = True
        self.received_any = False
        self.leftover = b""

    @property
    def expecting(self) -> bool:
        return self._expecting

    def start(self, method: str = "GET") -> None:
        if self._failed:
            raise ProtocolError("the response reader failed earlier")
        if self._closed:
            raise ConnectionClosed("the peer closed the connection", received_any=False)
        if self._expecting:
            raise ProtocolError("start() called while a response is still outstanding")
        if self.leftover:
            self._fail()
            raise ProtocolError("unsolicited data after the previous response")
        self._head_only = method == "HEAD"
        self._expecting = True
        self._done = None
        self._next_message()
        self.received_any = False
        self.keep_alive = False

    def _next_message(self) -> None:
        self._fields = []
        self._body = []
        self._body_size = 0
        self._head_size = 0
        self._in_head = True
        self._chunked = False

    # -- llhttp callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._done is not None:
            raise _Stop  # a second response nobody asked for

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self._fields
        fields.append((name, value))
        if len(fields) > self._max_headers:
            raise ResponseTooLarge(f"more than {self._max_headers} header fields")
        # llhttp reads any Transfer-Encoding; warmline accepts only chunked.
        if len(name) == 17 and name.lower() == b"transfer-encoding":
            if value.lower() != b"chunked" or self._chunked:
                raise ProtocolError(f"unsupported Transfer-Encoding {value!r}")
            self._chunked = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        status = self._parser.get_status_code()
        if status == 101:
            raise ProtocolError("101 Switching Protocols, but no upgrade was requested")
        if self._head_only and status >= 200:
            self._complete()
            raise _Stop

    def on_body(self, body: bytes) -> None:
        size = self._body_size + len(body)
        if size > self._max_body_size:
            raise ResponseTooLarge(f"body larger than {self._max_body_size} bytes")
        self._body_size = size
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            self._next_message()  # an interim response: wait for the final one
        else:
            self._complete()

    def _complete(self) -> None:
        parser = self._parser
        body = self._body
        content = body[0] if len(body) == 1 else b"".join(body)
        version = parser.get_http_version()
        self._done = Response(
            parser.get_status_code(), self._reason, version, self._fields, content
        )
        self.keep_alive = parser.should_keep_alive()

    # -- the contract ---------------------------------------------------------------------

    def _fail(self) -> None:
        self._failed = True
        self._expecting = False
        self.keep_alive = False

    def feed(self, data: bytes) -> Response | None:
        if self._failed:
            raise ProtocolError("the response reader failed earlier")
        if not data:
            return None
        if not self._expecting:
            self._fail()
            raise ProtocolError("unsolicited data")
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            return self._stopped(exc)
        except httptools.HttpParserError as exc:
            if self._done is not None:  # garbage after a complete response
                return self._with_leftover()
            self._fail()
            raise ProtocolError(f"malformed response: {exc}") from exc
        except WarmlineError:
            self._fail()
            raise
        if self._in_head:
            self._head_size += len(data)
            if self._head_size > self._max_head_size:
                self._fail()
                raise ResponseTooLarge("response head too large")
        return self._finish()

    def _stopped(self, exc: Exception) -> Response | None:
        cause = exc.__context__
        if isinstance(cause, WarmlineError):
            self._fail()
            raise cause
        if not isinstance(cause, _Stop) or self._done is None:
            self._fail()
            raise ProtocolError(f"malformed response: {exc}") from exc
        # A HEAD response, or a second message: llhttp is now in an error state.
        self._parser = httptools.HttpResponseParser(self)
        if self._head_only and self._done.status >= 200 and not self.leftover:
            return self._finish()
        return self._with_leftover()

    def _with_leftover(self) -> Response | None:
        self.leftover = b"?"  # llhttp does not say where the response ended
        response = self._finish()
        self.keep_alive = False
        return response

    def _finish(self) -> Response | None:
        response = self._done
        if response is None:
            return None
        self._expecting = False
        return response

    def feed_eof(self) -> Response | None:
        if not self._expecting:
            self._closed = True
            self.keep_alive = False
            return None
        if not self._in_head and not self._chunked and self._done is None:
            self._complete()  # a close-delimited body ends here
            self._expecting = False
            self._closed = True
            self.keep_alive = False
            return self._done
        received_any = self.received_any
        self._fail()
        raise ConnectionClosed("the peer closed the connection", received_any=received_any)


# -- contenders: each returns "parse one response from these pieces" --------------------

Parse = Callable[[], Any]


def _warmline(feeds: list[bytes]) -> Parse:
    reader = ResponseReader()
    start, feed = reader.start, reader.feed
    if len(feeds) == 1:
        data = feeds[0]

        def one() -> Response | None:
            start()
            return feed(data)

        return one

    def many() -> Response | None:
        start()
        for piece in feeds:
            response = feed(piece)
        return response

    return many


def _warmline_httptools(feeds: list[bytes]) -> Parse:
    reader = HttptoolsReader()

    def parse() -> Response | None:
        reader.start()
        for piece in feeds:
            response = reader.feed(piece)
        return response

    return parse


class _Collect:
    """Minimal httptools callbacks: keep the fields and the body, nothing else."""

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


def _httptools(feeds: list[bytes]) -> Parse:
    collect = _Collect()
    parser = httptools.HttpResponseParser(collect)
    feed_data = parser.feed_data

    def parse() -> tuple[int, bytes]:
        collect.fields = []
        collect.body = []
        collect.done = False
        for piece in feeds:
            feed_data(piece)
        return parser.get_status_code(), b"".join(collect.body)

    return parse


def _h11(feeds: list[bytes]) -> Parse:
    conn = h11.Connection(our_role=h11.CLIENT)
    request = h11.Request(method="GET", target="/", headers=[("Host", "example")])
    end = h11.EndOfMessage()
    need_data, data_type, end_type = h11.NEED_DATA, h11.Data, h11.EndOfMessage

    def parse() -> tuple[int, bytes]:
        conn.send(request)
        conn.send(end)
        status = 0
        body = []
        pieces = iter(feeds)
        while True:
            event = conn.next_event()
            if event is need_data:
                conn.receive_data(next(pieces))
            elif type(event) is data_type:
                body.append(bytes(event.data))
            elif type(event) is end_type:
                break
            elif isinstance(event, h11.Response):
                status = event.status_code
        conn.start_next_cycle()
        return status, b"".join(body)

    return parse


CONTENDERS: dict[str, Callable[[list[bytes]], Parse]] = {
    "warmline": _warmline,
    "warmline on httptools": _warmline_httptools,
    "httptools": _httptools,
    "h11": _h11,
}


def _check(name: str, parse: Parse, body: bytes) -> None:
    """Fail loudly if a contender does not parse what the benchmark claims."""
    for _ in range(3):  # and again on the same connection
        result = parse()
        got = (result.status, result.content) if isinstance(result, Response) else result
        if got != (200, body):
            raise AssertionError(f"{name} parsed {got!r:.80}")


def _time_rounds(parses: dict[str, Parse], rounds: int, budget: float) -> dict[str, list[float]]:
    """Interleaved rounds of ``timeit``; ns per call of each round."""
    timers = {name: timeit.Timer(parse, timer=time.thread_time) for name, parse in parses.items()}
    numbers = {}
    for name, timer in timers.items():
        taken = timer.timeit(20) / 20  # calibrate: how many calls fill the budget
        numbers[name] = max(1, int(budget / max(taken, 1e-9)))
    results: dict[str, list[float]] = {name: [] for name in parses}
    for _ in range(rounds):
        for name, timer in timers.items():
            results[name].append(timer.timeit(numbers[name]) / numbers[name] * 1e9)
    return results


def run(quick: bool = False) -> list[dict[str, object]]:
    """Time every contender on every scenario.

    Returns:
        One row per (scenario, parser): ``scenario``, ``parser``,
        ``ns_per_response`` (fastest round), ``median_ns``,
        ``responses_per_s`` and ``vs_warmline`` (time ratio, >1: slower).
    """
    # Many short rounds: on a busy machine the fastest of many is the figure
    # least disturbed by other processes.
    rounds, budget = (20, 0.002) if quick else (80, 0.004)
    rows: list[dict[str, object]] = []
    for scenario, (feeds, body) in SCENARIOS.items():
        parses = {name: make(feeds) for name, make in CONTENDERS.items()}
        for name, parse in parses.items():
            _check(name, parse, body)
        times = _time_rounds(parses, rounds, budget)
        base = min(times["warmline"])
        for name, samples in times.items():
            best = min(samples)
            rows.append(
                {
                    "scenario": scenario,
                    "parser": name,
                    "ns_per_response": round(best),
                    "median_ns": round(statistics.median(samples)),
                    "responses_per_s": round(1e9 / best),
                    "vs_warmline": round(best / base, 2),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (< 5 s)")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick)
    print(
        f"{'scenario':24} {'parser':24} {'ns/response':>12} {'median ns':>10}"
        f" {'responses/s':>12} {'vs warmline':>11}"
    )
    for row in rows:
        print(
            f"{row['scenario']!s:24} {row['parser']!s:24} {row['ns_per_response']:>12}"
            f" {row['median_ns']:>10} {row['responses_per_s']:>12} {row['vs_warmline']:>10}x"
        )


if __name__ == "__main__":
    main()
