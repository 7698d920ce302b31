"""Fuzz harness for warmline's ResponseReader (atheris, or a plain-Python loop).

    uv run --with atheris python fuzz/fuzz_reader.py fuzz/corpus -dict=fuzz/http.dict
    uv run --with atheris python fuzz/fuzz_reader.py fuzz/corpus -runs=100000
    uv run python fuzz/fuzz_reader.py --plain [--runs N] [--seed S] [--corpus DIR]

Each input is the byte stream of one connection. It is fed to a reader in
pieces (the split points, the request method and the limits are derived from
a hash of the input, so a corpus file is a plain HTTP response and replays
exactly); after each complete response with ``keep_alive`` the reader is
restarted for the next request, as a pool would reuse the connection.

Invariants (a violation is a crash):

* only WarmlineError subclasses escape ``start``, ``feed`` and ``feed_eof``;
* after any error, ``keep_alive`` is false (the connection is never reused);
* bytes after a response (``leftover``) mean ``keep_alive`` is false;
* the reader never buffers more than its limits (head or chunk-size line
  while waiting; body pieces up to ``max_body_size``, and at most twice that
  in memory, object overhead included), and a response never exceeds them;
* no input takes long: atheris's ``-timeout``; the plain loop fails any input
  that takes over a second (inputs are at most 64 KiB).

The plain mode needs nothing but the standard library: it mutates the corpus
(bit flips, byte and token insertions, deletions, duplications, splices) and
adds random bytes. It is the fallback where atheris (a compiled libFuzzer
binding) cannot be installed; it finds much less than coverage guidance does.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
MAX_INPUT = 64 * 1024
DATA_ONLY = os.environ.get("WARMLINE_FUZZ_DATA_ONLY") == "1"

# Small limits make every limit path reachable from short inputs; the default
# limits check that nothing depends on them being small.
SMALL_LIMITS = {"max_head_size": 512, "max_headers": 12, "max_body_size": 600}
CHUNK_LINE_LIMIT = 4096  # warmline.http11._reader.MAX_CHUNK_LINE_SIZE

# Pieces a mutation inserts: the tokens that HTTP/1.1 framing is made of.
TOKENS = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"\x00",
    b" ",
    b"\t",
    b":",
    b";",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"X: y\r\n",
]

ResponseReader: Any = None
WarmlineError: Any = None


def load(instrument: bool) -> None:
    """Import the reader (under atheris's instrumentation when fuzzing with it)."""
    global ResponseReader, WarmlineError
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["warmline"]):
            from warmline.errors import WarmlineError
            from warmline.http11._reader import ResponseReader
    else:
        from warmline.errors import WarmlineError
        from warmline.http11._reader import ResponseReader


def plan(data: bytes) -> tuple[str, dict[str, int], list[bytes]]:
    """The method, the limits and the pieces to feed, all derived from ``data``."""
    rng = random.Random(zlib.crc32(data))
    method = "HEAD" if rng.random() < 0.15 else "GET"
    limits = SMALL_LIMITS if rng.random() < 0.5 else {}
    cuts = sorted(rng.randrange(len(data) + 1) for _ in range(rng.randrange(8)))
    if rng.random() < 0.05:
        cuts = list(range(len(data)))  # one byte at a time
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return method, limits, pieces


def check_bounded(reader: Any, limits: dict[str, int]) -> None:
    head = limits.get("max_head_size", 64 * 1024)
    body = limits.get("max_body_size", 64 * 1024 * 1024)
    if len(reader._buf) > max(head, CHUNK_LINE_LIMIT):
        raise AssertionError(f"reader buffers {len(reader._buf)} bytes, past its limits")
    pieces = reader._body
    if sum(map(len, pieces)) > body:
        raise AssertionError("reader holds more body than max_body_size")
    # What the pieces cost, not only their data: a body of many tiny chunks
    # (or dripped a byte per read) must not cost many times its limit in
    # object overhead. WARMLINE_FUZZ_DATA_ONLY=1 skips this check.
    held = sum(map(sys.getsizeof, pieces))
    if held > 2 * body + 4096 and not DATA_ONLY:
        raise AssertionError(f"{len(pieces)} body pieces take {held} bytes (limit {body})")


def check_response(response: Any, reader: Any, limits: dict[str, int]) -> None:
    if len(response.content) > limits.get("max_body_size", 64 * 1024 * 1024):
        raise AssertionError("a response body past max_body_size")
    if len(response.raw_headers) > limits.get("max_headers", 100):
        raise AssertionError("a response with more fields than max_headers")
    if reader.leftover and reader.keep_alive:
        raise AssertionError("bytes after a response, yet the connection is reusable")


def one_input(data: bytes) -> None:
    """Feed one connection's bytes; raise only on a broken invariant."""
    method, limits, pieces = plan(data)
    reader = ResponseReader(**limits)
    try:
        reader.start(method)
        for piece in pieces:
            response = reader.feed(piece)
            check_bounded(reader, limits)
            if response is None:
                continue
            check_response(response, reader, limits)
            if not reader.keep_alive:
                return  # the pool closes this connection
            reader.start(method)  # the next request on the kept-alive connection
        reader.feed_eof()
    except WarmlineError:
        if reader.keep_alive:
            raise AssertionError("keep_alive is true after an error") from None
    check_bounded(reader, limits)


# -- plain-Python mode -----------------------------------------------------------------


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds)) if seeds and rng.random() < 0.9 else bytearray()
    if not data or rng.random() < 0.05:
        data += rng.randbytes(rng.randrange(1, 256))
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(6)
        if kind == 0 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data[at:at] = rng.choice(TOKENS)
        elif kind == 2:
            del data[at : at + rng.randrange(1, 8)]
        elif kind == 3:
            data[at:at] = data[at : at + rng.randrange(1, 64)] * rng.randrange(1, 4)
        elif kind == 4 and seeds:
            other = rng.choice(seeds)
            data[at:] = other[rng.randrange(len(other) + 1) :]
        else:
            data[at:at] = bytes([rng.randrange(256)])
    return bytes(data[:MAX_INPUT])


def load_corpus(directory: Path) -> list[bytes]:
    if not directory.is_dir():
        return []
    return [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()]


def save_crash(data: bytes) -> Path:
    CRASHES.mkdir(exist_ok=True)
    path = CRASHES / f"crash-{zlib.crc32(data):08x}"
    path.write_bytes(data)
    return path


def plain(runs: int, seed: int, corpus: Path) -> int:
    load(instrument=False)
    seeds = load_corpus(corpus)
    rng = random.Random(seed)
    slowest = 0.0
    inputs = [*seeds, *(mutate(rng, seeds) for _ in range(runs))]
    for n, data in enumerate(inputs):
        start = time.perf_counter()
        try:
            one_input(data)
        except Exception as exc:
            path = save_crash(data)
            print(f"input {n}: {type(exc).__name__}: {exc}\n  saved to {path}\n  {data[:200]!r}")
            return 1
        took = time.perf_counter() - start
        slowest = max(slowest, took)
        if took > 1.0:
            path = save_crash(data)
            print(f"input {n} took {took:.2f} s (a hang?); saved to {path}")
            return 1
    print(f"plain fuzz: {len(inputs)} inputs (seed {seed}), slowest {slowest * 1000:.1f} ms: OK")
    return 0


def main() -> int:
    if "--plain" in sys.argv[1:]:
        parser = argparse.ArgumentParser(description="plain-Python fuzzing of ResponseReader")
        parser.add_argument("--plain", action="store_true")
        parser.add_argument("--runs", type=int, default=100_000)
        parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
        parser.add_argument("--corpus", type=Path, default=CORPUS)
        args = parser.parse_args()
        return plain(args.runs, args.seed, args.corpus)
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: use `uv run --with atheris ...`, or --plain")
        return 2
    load(instrument=True)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
