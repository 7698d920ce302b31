"""Cost of recording one latency sample, warmline's histogram against libraries.

    taskset -c 1 uv run python -m benchmarks.bench_histogram [--number 200000]

Prints ns per call from Python (timeit, best of 7) for
``LatencyHistogram.record`` and for every installed peer among hdrhistogram,
ddsketch and fastdigest (peers that are not installed are skipped), plus an
empty method call for scale. The budget from issue 12 is 1 % of a pooled
request's client CPU: 80-150 ns per request.
"""

from __future__ import annotations

import argparse
import importlib.util
import timeit
from collections.abc import Callable

from warmline._histogram import LatencyHistogram

SAMPLE_S = 47e-6  # a typical loopback request: 47 µs
SAMPLE_NS = 47_000


class _Empty:
    def record(self, seconds: float) -> None:
        pass


def _ns_per_call(fn: Callable[[float], object], arg: float, number: int) -> float:
    best = min(timeit.repeat("f(x)", globals={"f": fn, "x": arg}, number=number, repeat=7))
    return best / number * 1e9


def _peers() -> list[tuple[str, Callable[[float], object], float]]:
    out: list[tuple[str, Callable[[float], object], float]] = []
    if importlib.util.find_spec("hdrh") is not None:
        from hdrh.histogram import HdrHistogram

        hdr = HdrHistogram(1, 100_000_000_000, 2)  # 1 ns .. 100 s, 2 digits (1 %)
        out.append(("hdrhistogram record_value (ns)", hdr.record_value, SAMPLE_NS))
    if importlib.util.find_spec("ddsketch") is not None:
        from ddsketch import DDSketch

        out.append(("ddsketch add (1 %)", DDSketch(0.01).add, SAMPLE_S))
    if importlib.util.find_spec("fastdigest") is not None:
        from fastdigest import TDigest

        out.append(("fastdigest TDigest.update", TDigest().update, SAMPLE_S))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows: list[tuple[str, Callable[[float], object], float]] = [
        ("empty method call", _Empty().record, SAMPLE_S),
        ("warmline LatencyHistogram.record", LatencyHistogram().record, SAMPLE_S),
        *_peers(),
    ]
    for name, fn, arg in rows:
        # The slow pure-Python peers get fewer rounds; ns per call is unchanged.
        number = args.number if "warmline" in name or "empty" in name else args.number // 4
        print(f"{name:36s} {_ns_per_call(fn, arg, number):7.1f} ns")


if __name__ == "__main__":
    main()
