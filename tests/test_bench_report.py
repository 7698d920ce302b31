"""`warmline bench` reports: the figures, the files, and one quick run end to end.

Nothing here says which client is faster: only that the figures are there,
positive and consistent with each other.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from warmline._bench import report as reports
from warmline._bench.child import percentile
from warmline._bench.clients import parse_response
from warmline._bench.runner import (
    MICRO_MODULES,
    SCENARIO_KEYS,
    SCENARIOS,
    Options,
    direct_twins,
    summarise,
)


# ------------------------------------------------------------------ pure parts
def test_percentile_is_nearest_rank() -> None:
    ns = [i * 1000 for i in range(1, 101)]  # 1..100 µs
    assert percentile(ns, 0.5) == 50.0
    assert percentile(ns, 0.99) == 99.0
    assert percentile(ns, 0.999) == 100.0
    assert percentile([7000], 0.999) == 7.0


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ncontent-length:5\r\nX: y\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhe\r\n3;x=1\r\nllo\r\n0\r\n\r\n",
    ],
)
def test_floor_parser_frames_any_split(raw: bytes) -> None:
    # The raw floors' parser: None until the whole response is there.
    for cut in range(len(raw)):
        assert parse_response(raw[:cut]) is None
    assert parse_response(raw + b"HTTP/1.1") == (200, b"hello", len(raw))


def run(**kw: Any) -> dict[str, Any]:
    base = {"requests": 100, "errors": 0, "wall_s": 0.01, "rps": 10000.0, "cpu_us_per_req": 20.0}
    return {**base, **kw}


def test_summarise_takes_medians_and_keeps_errors() -> None:
    s = summarise(
        [run(cpu_us_per_req=10.0), run(cpu_us_per_req=30.0), run(cpu_us_per_req=20.0, errors=2)]
    )
    assert s["cpu_us_per_req"] == 20.0
    assert s["rounds"] == s["rounds_ok"] == 3
    assert s["errors"] == 2 and s["error"] is None
    assert s["cpu_spread"] == pytest.approx(1.0)


def test_summarise_of_failed_rounds() -> None:
    s = summarise(
        [{"id": "x", "error": "child exited (rc 3)"}, run(errors=100, first_error="boom")]
    )
    assert s["rounds_ok"] == 0 and s["cpu_us_per_req"] is None
    assert s["error"] == "child exited (rc 3)"
    assert s["problems"] == ["boom", "child exited (rc 3)"]


def fake_report() -> dict[str, Any]:
    def row(client: str, loop: str, scenario: str, conc: int, **kw: Any) -> dict[str, Any]:
        base = {
            "client": client,
            "loop": loop,
            "scenario": scenario,
            "conc": conc,
            "rps": 1000.0,
            "cpu_us_per_req": 50.0,
            "cpu_ratio": 1.0,
            "p50_us": 40.0,
            "p99_us": 90.0,
            "p999_us": 120.0,
            "errors": 0,
            "error": None,
            "problems": [],
        }
        return {**base, **kw}

    return {
        "started": "2026-11-21T00:00:00Z",
        "duration_s": 12.0,
        "options": {"rounds": 3, "quick": False},
        "server": {"name": "nginx", "version": "1.22.1", "urls": ["http://127.0.0.1:1"]},
        "scenarios": [
            {"key": "get", "title": "GET", "tls": False, "fanout": False},
            {"key": "post", "title": "POST", "tls": False, "fanout": False},
            {"key": "proxy", "title": "PROXY", "tls": False, "fanout": False},
        ],
        "rows": [
            row("warmline", "uvloop", "get", 1),
            row("aiohttp", "uvloop", "get", 1, cpu_ratio=2.5, cpu_us_per_req=125.0),
            row("warmline", "uvloop", "get", 16),
            row("warmline", "uvloop", "post", 1),
            row("httpx", "uvloop", "post", 1, error="boom", rps=None, problems=["boom"]),
            row("warmline", "uvloop", "proxy", 1, direct_ratio=1.02),
            row("aiohttp", "uvloop", "proxy", 1, direct_ratio=None),
        ],
        "missing": [{"client": "pycurl", "loop": "sync", "reason": "pycurl is not installed"}],
        "skipped": [{"scenario": "proxy-tls", "reason": "tinyproxy is not installed"}],
        "micro": [
            {"module": "objpool", "rows": [{"name": "take/put", "ns_per_op": 41.5, "ratio": 0.5}]},
            {"module": "http11_parse", "unavailable": "ModuleNotFoundError: nope"},
        ],
        "clients": {"warmline": "ClientPool"},
        "notes": ["server pinned to CPU 1, clients to CPU 0"],
        "versions": {"python": "3.11"},
    }


def test_markdown_is_well_formed(tmp_path: Path) -> None:
    path = tmp_path / "r.md"
    reports.write_markdown(fake_report(), path)
    text = path.read_text()
    tables: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            if not tables or not tables[-1]:
                tables.append([])
            tables[-1].append(line)
        elif tables and tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) == 4  # get, post, proxy, micro objpool
    for table in tables:
        widths = {line.count("|") - line.count("\\|") for line in table}
        assert len(widths) == 1, table
    get_table = tables[0]
    assert len(get_table) == 2 + 3  # header, alignment, one line per row
    assert "| aiohttp | uvloop | 1 | 1,000 | 125.0 | 2.50x |" in get_table[3]
    assert "pycurl (sync): pycurl is not installed" in text
    assert "scenario proxy-tls: tinyproxy is not installed" in text
    # "CPU vs direct" only where a row has it: the proxy table.
    assert "CPU vs direct" not in get_table[0]
    proxy_table = tables[2]
    assert "| CPU vs direct |" in proxy_table[0]
    assert "| 1.00x | 1.02x |" in proxy_table[2]
    assert "| 1.00x | - |" in proxy_table[3]
    assert "http11_parse: micro-benchmarks not available" in text
    assert "httpx uvloop: boom (in post)" in text


def test_micro_rows_print_generically() -> None:
    headers, cells = reports.micro_table(
        {"rows": [{"name": "a", "ns": 1.5}, {"name": "b", "x_ratio": 250.0}]}
    )
    assert headers == ["name", "ns", "x_ratio"]
    assert cells == [["a", "1.50", ""], ["b", "", "250"]]


def test_terminal_output(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    reports.print_terminal(fake_report(), console)
    text = console.export_text()
    assert "aiohttp" in text and "2.50x" in text
    assert "micro-benchmarks not available" in text


def test_each_proxy_scenario_is_compared_with_its_direct_twin() -> None:
    assert direct_twins(SCENARIOS, Options()) == {"proxy": "get", "proxy-tls": "tls"}
    # --tls: every origin is https, get is the direct TLS row.
    with_tls = [s for s in SCENARIOS if s.key not in ("tls", "newconn-tls", "proxy")]
    assert direct_twins(with_tls, Options(tls=True)) == {"proxy-tls": "get"}
    # Without its twin in the run, a proxy scenario has no "CPU vs direct".
    assert direct_twins([s for s in SCENARIOS if s.key != "get"], Options()) == {"proxy-tls": "tls"}


def test_a_missing_proxy_drops_its_scenario_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from warmline._bench import proxies, runner

    monkeypatch.setattr(proxies, "_tinyproxy_path", lambda: None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pproxy" else real_find_spec(name, *a),
    )
    assert "apt-get install tinyproxy" in (proxies.missing_reason("connect") or "")
    assert "pip install pproxy" in (proxies.missing_reason("forward") or "")
    servers = runner.Servers("nginx", "1", ["http://127.0.0.1:1"], [], {})
    undelayed = [s for s in SCENARIOS if not s.delayed and not s.exchange]  # no relay, no exchange
    runner._start_proxies(undelayed, servers, runner.SilentProgress())
    assert servers.processes == [] and servers.proxies == {}
    kept = runner._runnable(undelayed, servers)
    assert [s.key for s in kept] == [s.key for s in undelayed if s.proxy is None]
    skipped = runner._skipped(undelayed, servers)
    assert [s["scenario"] for s in skipped] == ["proxy", "proxy-tls"]
    assert "pproxy is not installed" in skipped[0]["reason"]
    assert "tinyproxy is not installed" in skipped[1]["reason"]


def test_a_client_that_cannot_tunnel_leaves_that_scenario_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from warmline._bench import runner

    monkeypatch.setattr(runner, "missing_reason", lambda name, loop: None)
    servers = runner.Servers(
        "nginx",
        "1",
        ["http://127.0.0.1:1"],
        ["https://127.0.0.1:2"],
        {"small": runner.Endpoint("/small", (100, 100))},
        proxies={"forward": "http://127.0.0.1:3", "connect": "http://127.0.0.1:4"},
    )
    chosen = [s for s in SCENARIOS if s.key in ("get", "proxy", "proxy-tls")]
    groups, missing = runner._plan(
        runner.Options(clients=["aiosonic", "warmline"]), chosen, servers
    )
    ran = {(g.client, c["scenario"]) for g in groups for c in g.cases}
    assert ("aiosonic", "proxy") in ran and ("aiosonic", "proxy-tls") not in ran
    assert ("warmline", "proxy-tls") in ran
    assert {m["client"] for m in missing} == {"aiosonic"}
    assert all(m["reason"].startswith("proxy-tls: aiosonic sends CONNECT") for m in missing)
    tunnel = next(c for g in groups for c in g.cases if c["scenario"] == "proxy-tls")
    assert tunnel["proxy"] == "http://127.0.0.1:4"
    assert tunnel["origins"] == ["https://127.0.0.1:2"]


# ------------------------------------------------------------------ end to end
ASYNC_LOOPS = ("uvloop", "asyncio")
REQUESTS = 200


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    cmd = [
        sys.executable,
        "-m",
        "warmline.cli",
        "bench",
        "--quick",
        "--clients",
        "warmline,raw-proto",
        "--requests",
        str(REQUESTS),
        "--json",
        "--out",
        str(out),
    ]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=110)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads(p.stdout)


@pytest.mark.timeout(120)
def test_quick_run_has_one_row_per_client_and_case(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, data = quick_run
    assert data == json.loads((out / "bench-report.json").read_text())
    keys = [(r["client"], r["loop"], r["scenario"], r["conc"]) for r in data["rows"]]
    assert len(keys) == len(set(keys))
    # A proxy that is not installed: its scenario is listed as not run; so
    # are tail and spin, whose clients were not chosen.
    skipped = {s["scenario"] for s in data["skipped"]}
    assert {"tail", "spin"} <= skipped <= {s.key for s in SCENARIOS if s.proxy or s.clients}
    assert [s["key"] for s in data["scenarios"]] == [k for k in SCENARIO_KEYS if k not in skipped]
    expected = {
        (client, loop, sc.key, conc)
        for client in ("warmline", "raw-proto")
        for loop in ASYNC_LOOPS
        for sc in SCENARIOS
        if sc.key not in skipped
        for conc in ((1, 16, 64) if sc.sweep else (1,))
    }
    assert set(keys) == expected


@pytest.mark.timeout(120)
def test_quick_run_figures_are_positive_and_consistent(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    _, data = quick_run
    for row in data["rows"]:
        name = f"{row['client']} {row['loop']} {row['scenario']} c={row['conc']}"
        assert row["error"] is None, (name, row["problems"])
        assert row["errors"] == 0, (name, row["problems"])
        assert row["rounds"] == row["rounds_ok"] == 1
        for key in ("rps", "cpu_us_per_req", "wall_s", "p50_us", "client_busy"):
            assert row[key] > 0, (name, key)
        assert row["p50_us"] <= row["p99_us"] <= row["p999_us"]
        assert row["server_busy"] is not None and row["server_busy"] >= 0
        (one,) = row["runs"]
        assert 0 < one["requests"] <= REQUESTS
        assert one["rps"] * one["wall_s"] == pytest.approx(one["requests"], rel=1e-6)
        assert one["cpu_us_per_req"] * one["requests"] == pytest.approx(1e6 * one["cpu_s"])
        assert one["samples"] == one["ops"]
        if row["scenario"] == "fanout":
            assert one["requests"] == 5 * one["ops"]
        if row["scenario"] in ("proxy", "proxy-tls"):
            assert row["direct_to"] == {"proxy": "get", "proxy-tls": "tls"}[row["scenario"]]
            assert row["direct_ratio"] > 0
        else:
            assert row["direct_ratio"] is None
        if row["client"] == "warmline":
            assert row["cpu_ratio"] == pytest.approx(1.0)
        else:
            assert row["ratio_to"] == f"warmline {row['loop']}" and row["cpu_ratio"] > 0


@pytest.mark.timeout(120)
def test_quick_run_files(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, data = quick_run
    md = (out / "bench-report.md").read_text()
    for scenario in data["scenarios"]:
        assert f"## {scenario['title']}" in md
    rows_in_md = [line for line in md.splitlines() if line.startswith("| warmline |")]
    assert len(rows_in_md) == sum(r["client"] == "warmline" for r in data["rows"])
    assert (out / "bench-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["server"]["pids"]
    assert len(data["micro"]) == len(MICRO_MODULES)


# ------------------------------------------------------ tail, spin, adapters
def test_the_relay_passes_bytes_and_holds_every_20th_response(tmp_path: Path) -> None:
    import socket
    import time

    from warmline._bench import proxies, relay
    from warmline._server import launch

    server = launch.start_nginx() if launch.nginx_path() else launch.start_granian()
    front = None
    try:
        front = proxies.start_relay(server.port, None)
        held = []
        with socket.create_connection(("127.0.0.1", front.port), timeout=5) as sock:
            for _ in range(relay.EVERY):
                t0 = time.perf_counter()
                sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
                buf = b""
                while parse_response(buf) is None:
                    chunk = sock.recv(65536)
                    assert chunk
                    buf += chunk
                parsed = parse_response(buf)
                assert parsed is not None and parsed[0] == 200 and parsed[2] == len(buf)
                held.append(time.perf_counter() - t0)
        # The hold is the feature under test (a lower bound, not a speed).
        assert held[-1] >= relay.DELAY_S * 0.9
    finally:
        if front is not None:
            front.stop()
        server.stop()


def test_a_relay_that_cannot_start_drops_tail_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from warmline._bench import proxies, runner

    def broken(port: int, cpu: int | None) -> Any:
        raise RuntimeError("relay exited at start: boom")

    monkeypatch.setattr(proxies, "start_relay", broken)
    servers = runner.Servers("nginx", "1", ["http://127.0.0.1:1"], [], {})
    tail = [s for s in SCENARIOS if s.key in ("get", "tail")]
    runner._start_proxies(tail, servers, runner.SilentProgress())
    assert [s.key for s in runner._runnable(tail, servers)] == ["get"]
    assert runner._skipped(tail, servers) == [
        {"scenario": "tail", "reason": "relay exited at start: boom"}
    ]


def test_tail_and_spin_run_their_own_clients_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from warmline._bench import runner

    monkeypatch.setattr(runner, "missing_reason", lambda name, loop: None)
    servers = runner.Servers(
        "nginx",
        "1",
        ["http://127.0.0.1:1"],
        [],
        {"small": runner.Endpoint("/small", (100, 100))},
        delayed="http://127.0.0.1:9",
    )
    chosen = [s for s in SCENARIOS if s.key in ("get", "tail", "spin")]
    groups, _ = runner._plan(runner.Options(quick=True), chosen, servers)
    ran: dict[str, set[str]] = {}
    for g in groups:
        for c in g.cases:
            ran.setdefault(c["scenario"], set()).add(g.client)
    assert ran["tail"] == {"warmline-client", "warmline-client+hedge"}
    assert ran["spin"] == {"warmline-threads", "warmline-threads+spin", "raw-socket", "pycurl"}
    assert "warmline-client+hedge" not in ran["get"] and "warmline-threads+spin" not in ran["get"]
    assert {"httpx+warmline", "httpx-sync+warmline", "requests+warmline"} <= ran["get"]
    tail = next(c for g in groups for c in g.cases if c["scenario"] == "tail")
    assert tail["origins"] == ["http://127.0.0.1:9"] and tail["conc"] == 1
    # Without its clients a scenario is "not run", with the reason.
    groups, _ = runner._plan(runner.Options(clients=["warmline"]), chosen, servers)
    kept, unplanned = runner._planned(chosen, groups)
    assert [s.key for s in kept] == ["get"]
    assert [u["scenario"] for u in unplanned] == ["tail", "spin"]
    assert "warmline-client+hedge" in unplanned[0]["reason"]


def test_adapter_rows_compare_with_the_stack_they_replace() -> None:
    from warmline._bench import runner

    case = {"scenario": "get", "conc": 1, "path": "/small", "origins": ["x"], "id": "get/c1"}
    groups = [
        runner.Group(name, "sync", [case])
        for name in ("requests", "requests+warmline", "warmline-client-threads")
    ]
    runs = {
        ("requests", "sync", "get/c1"): [run(cpu_us_per_req=300.0)],
        ("requests+warmline", "sync", "get/c1"): [run(cpu_us_per_req=100.0)],
        ("warmline-client-threads", "sync", "get/c1"): [run(cpu_us_per_req=40.0)],
    }
    rows = {r["client"]: r for r in runner._rows(groups, runs)}
    assert rows["requests+warmline"]["stock_ratio"] == pytest.approx(1 / 3)
    assert rows["requests+warmline"]["stock_to"] == "requests"
    assert rows["requests"]["stock_ratio"] is None
    tables = reports.scenario_tables(
        {"scenarios": [{"key": "get", "title": "t", "tls": False}], "rows": list(rows.values())}
    )
    headers, cells = tables[0][1], tables[0][2]
    col = headers.index("CPU vs stock")
    assert [c[col] for c in cells] == ["-", "0.33x", "-"]
    assert "extra req" not in headers


def test_the_hedged_row_shows_its_extra_requests() -> None:
    rows = [
        {"client": "warmline-client", "loop": "uvloop", "conc": 1, "extra_share": None},
        {"client": "warmline-client+hedge", "loop": "uvloop", "conc": 1, "extra_share": 0.051},
    ]
    report = {"scenarios": [{"key": "tail", "title": "t", "tls": False}], "rows": rows}
    for row in rows:
        row["scenario"] = "tail"
    ((_, headers, cells),) = reports.scenario_tables(report)
    col = headers.index("extra req")
    assert [c[col] for c in cells] == ["-", "5.1%"]
