"""Decoding response bodies: each installed backend of each content coding.

    uv run python -m benchmarks.bench_decoders [--quick]

Pure CPU, no sockets. One call = a new decompressor and the whole body in one
piece, as a response of that size costs. Bodies: a typical 1 KiB JSON
response (a ticker list) and a 1 MiB one, made once from a fixed seed and
compressed with each coding's usual server setting (gzip level 6, brotli
quality 4, zstd level 3).

Contenders, per coding, every one that is installed:

  * gzip: ``zlib`` (stdlib), ``zlib-ng`` (``zlib_ng.zlib_ng``), ``isal``
    (``isal.isal_zlib``), each through ``decompressobj(31).decompress(data,
    max_length)`` as the decoder calls it;
  * br: ``brotli`` (C binding) and ``brotlicffi``, ``Decompressor().process``
    with ``output_buffer_limit``;
  * zstd: ``backports.zstd`` / ``compression.zstd`` (``decompress`` with
    ``max_length``), ``pyzstd`` (a wrapper of the former) and ``zstandard``
    (``decompressobj().decompress``, which cannot bound its output);
  * ``warmline gzip``: :func:`warmline.http11._decoders.make_decoder` with the
    backend it picked, ``feed`` + ``flush``: the whole cost a shell pays.

Every contender is checked first to produce the body. Interleaved rounds,
each contender timed with ``timeit`` for ~2 ms (quick, 10 rounds) or ~4 ms
(full, 40 rounds) of thread CPU time; the figure is the fastest round, the
median beside it. ``MB/s`` is decoded bytes per second. Quick: < 5 s; full:
< 30 s.

Last full run (``taskset -c 1 uv run python -m benchmarks.bench_decoders``,
CPython 3.11.7, 2-core VM, 2026-12-02)::

    scenario     backend                         ns/call    median ns     MB/s  vs best
    gzip 1 KiB   zlib                               3156         3324      324     1.2x
    gzip 1 KiB   zlib-ng                            2629         2770      389     1.0x
    gzip 1 KiB   isal                               2790         2927      367    1.06x
    gzip 1 KiB   warmline gzip (isal_zlib)          4363         4539      235    1.66x
    gzip 1 MiB   zlib                            2398364      2528843      437    2.34x
    gzip 1 MiB   zlib-ng                         1590991      1634011      659    1.55x
    gzip 1 MiB   isal                            1042462      1076673     1006    1.02x
    gzip 1 MiB   warmline gzip (isal_zlib)       1024568      1083804     1023     1.0x
    br 1 KiB     brotli                             3001         3161      341     1.0x
    br 1 KiB     brotlicffi                        15299        16131       67     5.1x
    br 1 MiB     brotli                          1323028      1383362      793     1.0x
    br 1 MiB     brotlicffi                      1675255      1746794      626    1.27x
    zstd 1 KiB   backports.zstd                    18057        18695       57   10.79x
    zstd 1 KiB   pyzstd                            19324        19978       53   11.55x
    zstd 1 KiB   zstandard                          1673         1747      612     1.0x
    zstd 1 MiB   backports.zstd                   639433       680088     1640    1.02x
    zstd 1 MiB   pyzstd                           636561       672655     1647    1.01x
    zstd 1 MiB   zstandard                        627963       676507     1670     1.0x

(see :mod:`warmline.http11._decoders` for the choices made from them).
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import random
import statistics
import time
import timeit
import zlib
from collections.abc import Callable
from typing import Any

from warmline.http11._decoders import gzip_backend, make_decoder

Decode = Callable[[], bytes]
_LIMIT = 1 << 30  # max_length for every call: never reached


def _json_body(size: int) -> bytes:
    """A ticker list as an exchange sends it, cut to ``size`` bytes."""
    rng = random.Random(11)
    rows: list[dict[str, object]] = []
    total = 0
    while total < size:
        row = {
            "symbol": f"{rng.choice('ABCDEFGH')}{rng.randrange(1000)}USDT",
            "price": f"{rng.random() * 1000:.8f}",
            "qty": f"{rng.random():.6f}",
            "time": 1_700_000_000_000 + len(rows),
        }
        rows.append(row)
        total += 80
    return json.dumps(rows, separators=(",", ":")).encode()[:size]


BODIES = {"1 KiB": _json_body(1024), "1 MiB": _json_body(1 << 20)}


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _zlib_like(module: Any, encoded: bytes) -> Decode:
    decompressobj = module.decompressobj

    def decode() -> bytes:
        out: bytes = decompressobj(31).decompress(encoded, _LIMIT)
        return out

    return decode


def _brotli(module: Any, encoded: bytes) -> Decode:
    decompressor = module.Decompressor

    def decode() -> bytes:
        out: bytes = decompressor().process(encoded, output_buffer_limit=_LIMIT)
        return out

    return decode


def _zstd_stdlib(module: Any, encoded: bytes) -> Decode:
    decompressor = module.ZstdDecompressor

    def decode() -> bytes:
        out: bytes = decompressor().decompress(encoded, _LIMIT)
        return out

    return decode


def _zstandard(module: Any, encoded: bytes) -> Decode:
    dctx = module.ZstdDecompressor()

    def decode() -> bytes:
        out: bytes = dctx.decompressobj().decompress(encoded)
        return out

    return decode


def _warmline(header: str, encoded: bytes) -> Decode:
    def decode() -> bytes:
        decoder = make_decoder(header, max_size=_LIMIT)
        assert decoder is not None
        return decoder.feed(encoded) + decoder.flush()

    return decode


def _gzip_contenders(body: bytes) -> dict[str, Decode]:
    encoded = gzip.compress(body, 6)
    found = {
        "zlib": zlib,
        "zlib-ng": _optional("zlib_ng.zlib_ng"),
        "isal": _optional("isal.isal_zlib"),
    }
    contenders = {name: _zlib_like(mod, encoded) for name, mod in found.items() if mod is not None}
    contenders[f"warmline gzip ({gzip_backend()[0]})"] = _warmline("gzip", encoded)
    return contenders


def _br_contenders(body: bytes) -> dict[str, Decode]:
    contenders = {}
    for name in ("brotli", "brotlicffi"):
        module = _optional(name)
        if module is not None:
            encoded = module.compress(body, quality=4)
            contenders[name] = _brotli(module, encoded)
    return contenders


def _zstd_contenders(body: bytes) -> dict[str, Decode]:
    contenders: dict[str, Decode] = {}
    stdlib = _optional("compression.zstd")
    name = "compression.zstd"
    if stdlib is None:
        stdlib, name = _optional("backports.zstd"), "backports.zstd"
    if stdlib is None:
        return contenders
    encoded = stdlib.compress(body, 3)
    contenders[name] = _zstd_stdlib(stdlib, encoded)
    pyzstd = _optional("pyzstd")
    if pyzstd is not None:
        contenders["pyzstd"] = _zstd_stdlib(pyzstd, encoded)
    zstandard = _optional("zstandard")
    if zstandard is not None:
        contenders["zstandard"] = _zstandard(zstandard, encoded)
    return contenders


CODINGS: dict[str, Callable[[bytes], dict[str, Decode]]] = {
    "gzip": _gzip_contenders,
    "br": _br_contenders,
    "zstd": _zstd_contenders,
}


def _time_rounds(decodes: dict[str, Decode], rounds: int, budget: float) -> dict[str, list[float]]:
    """Interleaved rounds of ``timeit``; ns per call of each round."""
    timers = {name: timeit.Timer(fn, timer=time.thread_time) for name, fn in decodes.items()}
    numbers = {}
    for name, timer in timers.items():
        taken = timer.timeit(3) / 3
        numbers[name] = max(1, int(budget / max(taken, 1e-9)))
    results: dict[str, list[float]] = {name: [] for name in decodes}
    for _ in range(rounds):
        for name, timer in timers.items():
            results[name].append(timer.timeit(numbers[name]) / numbers[name] * 1e9)
    return results


def run(quick: bool = False) -> list[dict[str, object]]:
    """Time every installed backend of every coding on both bodies.

    Returns:
        One row per (scenario, backend): ``scenario`` (coding and body size),
        ``backend``, ``ns_per_call`` (fastest round), ``median_ns``,
        ``mb_per_s`` (decoded) and ``vs_best`` (time ratio to the fastest
        backend of that scenario, >1: slower).
    """
    rounds, budget = (10, 0.002) if quick else (40, 0.004)
    rows: list[dict[str, object]] = []
    for coding, contenders in CODINGS.items():
        for size, body in BODIES.items():
            decodes = contenders(body)
            if not decodes:
                continue
            for name, decode in decodes.items():
                if decode() != body:
                    raise AssertionError(f"{name} did not decode the {size} {coding} body")
            times = _time_rounds(decodes, rounds, budget)
            best_of_all = min(min(samples) for samples in times.values())
            for name, samples in times.items():
                best = min(samples)
                rows.append(
                    {
                        "scenario": f"{coding} {size}",
                        "backend": name,
                        "ns_per_call": round(best),
                        "median_ns": round(statistics.median(samples)),
                        "mb_per_s": round(len(body) / best * 1e3),
                        "vs_best": round(best / best_of_all, 2),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (< 5 s)")
    args = parser.parse_args(argv)
    print(
        f"{'scenario':12} {'backend':26} {'ns/call':>12} {'median ns':>12}"
        f" {'MB/s':>8} {'vs best':>8}"
    )
    for row in run(quick=args.quick):
        print(
            f"{row['scenario']!s:12} {row['backend']!s:26} {row['ns_per_call']:>12}"
            f" {row['median_ns']:>12} {row['mb_per_s']:>8} {row['vs_best']:>7}x"
        )


if __name__ == "__main__":
    main()
