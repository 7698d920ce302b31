"""Building request bytes: warmline's RequestWriter against h11 and a hand-written floor.

    uv run python -m benchmarks.bench_http11_build [--quick]

Pure CPU, no sockets: how long it takes to turn "this method, this path, these
params/headers/body" into the bytes to write. Three scenarios, the calls a
trading client makes most: a repeated GET with nothing else (served from the
writer's cache), a GET with two query parameters, and a POST of a small JSON
order. Every contender produces byte-identical requests (checked first), with
the same default headers (Host, User-Agent, an API key).

Contenders:
  * ``warmline``: ``RequestWriter.build`` (validation, quoting, caching).
  * ``h11``: ``Connection(CLIENT).send(Request)`` + body ``Data`` +
    ``EndOfMessage``. A new ``Connection`` per request: h11 cannot start the
    next cycle before a response has been received, so that is the cheapest
    public way to serialise request after request. The ``h11 Connection()``
    row shows what the constructor alone costs. The query string is built with
    ``urllib.parse.urlencode(..., quote_via=quote)`` and JSON with the same
    ``dumps`` as warmline: h11 does neither itself.
  * ``hand-written``: one ``bytes %`` format with the header block, method and
    path written in as constants; no validation and no quoting. The floor.

Interleaved rounds, each contender timed with ``timeit`` for ~10 ms (quick) or
~25 ms (full) per round; the figure is the fastest round (the least disturbed
on a noisy machine), the median is shown beside it. Quick: < 5 s; full: < 20 s.
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import h11

from warmline._json import plain_dumps as dumps
from warmline.http11._writer import DEFAULT_USER_AGENT, RequestWriter

HOST = "api.exchange.example"
BASE = "/api/v3"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
ORDER = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.00100",
    "price": "65000.50",
}
SYMBOL, LIMIT = "BTCUSDT", 100
PARAMS = {"symbol": SYMBOL, "limit": LIMIT}
SCENARIOS = ("cached GET", "GET + 2 params", "POST small JSON")
Build = Callable[[], bytes]


def _warmline() -> dict[str, Build]:
    writer = RequestWriter(HOST, base_path=BASE, headers={"X-MBX-APIKEY": API_KEY})
    build = writer.build
    return {
        "cached GET": lambda: build("GET", "/ticker/price"),
        "GET + 2 params": lambda: build("GET", "/depth", params=PARAMS),
        "POST small JSON": lambda: build("POST", "/order", json=ORDER),
    }


def _h11() -> dict[str, Build]:
    defaults = [("Host", HOST), ("User-Agent", DEFAULT_USER_AGENT), ("X-MBX-APIKEY", API_KEY)]
    json_type = [("Content-Type", "application/json")]
    connection, request, data, end = h11.Connection, h11.Request, h11.Data, h11.EndOfMessage
    client = h11.CLIENT

    def get() -> bytes:
        conn = connection(client)
        head = conn.send(request(method="GET", target=BASE + "/ticker/price", headers=defaults))
        return b"".join((head, conn.send(end())))

    def get_params() -> bytes:
        conn = connection(client)
        target = f"{BASE}/depth?{urlencode(PARAMS, quote_via=quote)}"
        head = conn.send(request(method="GET", target=target, headers=defaults))
        return b"".join((head, conn.send(end())))

    def post_json() -> bytes:
        conn = connection(client)
        body = dumps(ORDER)
        headers = [*defaults, *json_type, ("Content-Length", str(len(body)))]
        head = conn.send(request(method="POST", target=BASE + "/order", headers=headers))
        return b"".join((head, conn.send(data(data=body)), conn.send(end())))

    return {"cached GET": get, "GET + 2 params": get_params, "POST small JSON": post_json}


def _hand_written() -> dict[str, Build]:
    tail = (
        f" HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {DEFAULT_USER_AGENT}\r\n"
        f"X-MBX-APIKEY: {API_KEY}\r\n"
    ).encode()
    get_fmt = b"GET %s" + tail + b"\r\n"
    params_fmt = b"GET %s?symbol=%s&limit=%d" + tail + b"\r\n"
    post_fmt = b"POST %s" + tail + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    get_path, depth_path, order_path = (
        f"{BASE}{p}".encode() for p in ("/ticker/price", "/depth", "/order")
    )

    def post_json() -> bytes:
        body = dumps(ORDER)
        return post_fmt % (order_path, len(body), body)

    return {
        "cached GET": lambda: get_fmt % get_path,
        "GET + 2 params": lambda: params_fmt % (depth_path, SYMBOL.encode(), LIMIT),
        "POST small JSON": post_json,
    }


CONTENDERS: dict[str, Callable[[], dict[str, Build]]] = {
    "warmline": _warmline,
    "h11": _h11,
    "hand-written": _hand_written,
}


def _check_identical(builds: dict[str, dict[str, Build]]) -> None:
    """Every contender must put the same bytes on the wire, or the race is unfair."""
    for scenario in SCENARIOS:
        reference = builds["warmline"][scenario]()
        for name, funcs in builds.items():
            produced = funcs[scenario]()
            if produced != reference:
                raise AssertionError(f"{name} / {scenario}: {produced!r} != {reference!r}")


def _time(func: Build, budget_s: float) -> tuple[timeit.Timer, int]:
    """A timer for ``func`` and the loop count that takes about ``budget_s``."""
    timer = timeit.Timer(func)
    number = 1
    while (elapsed := timer.timeit(number)) < budget_s / 8:  # also warms the caches
        number *= 4
    return timer, max(1, int(number * budget_s / elapsed))


def _h11_connection() -> bytes:
    h11.Connection(h11.CLIENT)
    return b""


def run(quick: bool = False) -> list[dict[str, object]]:
    """Time every contender on every scenario.

    Returns:
        One row per (scenario, contender): ``scenario``, ``client``,
        ``ns_per_request`` (fastest round), ``median_ns``,
        ``requests_per_second`` and ``ratio_vs_warmline`` (> 1: slower).
    """
    rounds, budget_s = (7, 0.006) if quick else (25, 0.02)
    builds = {name: make() for name, make in CONTENDERS.items()}
    _check_identical(builds)
    timers = {
        (scenario, name): _time(funcs[scenario], budget_s)
        for scenario in SCENARIOS
        for name, funcs in builds.items()
    }
    timers[SCENARIOS[0], "h11 Connection()"] = _time(_h11_connection, budget_s)
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in timers}
    for _ in range(rounds):  # interleaved, so load spikes hit everyone alike
        for key, (timer, number) in timers.items():
            samples[key].append(timer.timeit(number) / number * 1e9)
    rows: list[dict[str, object]] = []
    for scenario in SCENARIOS:
        own = min(samples[scenario, "warmline"])
        for (row_scenario, name), values in samples.items():
            if row_scenario != scenario:
                continue
            best = min(values)
            rows.append(
                {
                    "scenario": scenario,
                    "client": name,
                    "ns_per_request": round(best, 1),
                    "median_ns": round(statistics.median(values), 1),
                    "requests_per_second": round(1e9 / best),
                    "ratio_vs_warmline": round(best / own, 2),
                }
            )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'scenario':<17} {'client':<17} {'ns/req':>9} {'median':>9} {'req/s':>11} "
        f"{'x warmline':>11}"
    )
    return "\n".join(
        [header]
        + [
            f"{row['scenario']:<17} {row['client']:<17} {row['ns_per_request']:>9.0f} "
            f"{row['median_ns']:>9.0f} {row['requests_per_second']:>11,} "
            f"{row['ratio_vs_warmline']:>11.2f}"
            for row in rows
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table with ratios to warmline."""
    parser = argparse.ArgumentParser(description="Request building: warmline vs h11 vs by hand")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (< 5 s)")
    args = parser.parse_args(argv)
    print(_table(run(quick=args.quick)))
    print(
        "\nns/req: fastest interleaved round. x warmline: ns/req over warmline's "
        "(> 1 = slower than warmline).\nh11 rows include one Connection() each; the "
        "'h11 Connection()' row is that constructor alone."
    )


if __name__ == "__main__":
    main()
