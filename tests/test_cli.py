"""`warmline bench`: argument handling and the server's lifecycle.

The server must be stopped whatever happens: a child that crashes, a child
that hangs, Ctrl-C (SIGINT) or SIGTERM in the middle of a run.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warmline._bench import runner
from warmline._bench.clients import CLIENTS
from warmline._server.launch import free_port
from warmline.cli import main


def gone(pid: int) -> bool:
    """True when no process ``pid`` exists (we reaped ours; zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


# ------------------------------------------------------------------ arguments
def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "bench" in capsys.readouterr().err


def test_unknown_client(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--clients", "warmline,curl-ish"])
    one_line_error(capsys, code, "unknown client curl-ish", "raw-proto")


def test_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, main(["bench", "--scenarios", "get,nope"]), "unknown scenario nope")


@pytest.mark.parametrize("value", ["1,x", "0", "2000", "1.5"])
def test_bad_concurrency(capsys: pytest.CaptureFixture[str], value: str) -> None:
    one_line_error(capsys, main(["bench", "--concurrency", value]), "--concurrency")


@pytest.mark.parametrize("argv", [["--requests", "0"], ["--rounds", "0"], ["--port", "70000"]])
def test_bad_numbers(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    one_line_error(capsys, main(["bench", *argv]), argv[0])


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--requests", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--requests" in err


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/", "http://", "127.0.0.1:8080", "http://127.0.0.1:99999/"]
)
def test_bad_url(capsys: pytest.CaptureFixture[str], url: str) -> None:
    one_line_error(capsys, main(["bench", "--url", url]), "bad --url")


def test_url_with_port_or_plain_tls(capsys: pytest.CaptureFixture[str]) -> None:
    one_line_error(capsys, main(["bench", "--url", "http://127.0.0.1:1", "--port", "8080"]))
    one_line_error(capsys, main(["bench", "--url", "http://127.0.0.1:1", "--tls"]), "https")


def test_unreachable_server(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/small"
    code = main(["bench", "--url", url, "--out", str(tmp_path)])
    one_line_error(capsys, code, "cannot reach", url)


def test_port_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["bench", "--port", str(port), "--scenarios", "get", "--out", str(tmp_path)])
    one_line_error(capsys, code, f"port {port}", "in use")


# ------------------------------------------------------- without the bench extra
BENCH_HINT = "pip install 'warmline[bench]'"


@pytest.mark.parametrize("module", ["rich", "matplotlib"])
def test_bench_without_its_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    one_line_error(capsys, main(["bench", "--quick"]), BENCH_HINT, f"{module} not installed")


def test_bench_without_granian_or_nginx(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "granian", None)
    monkeypatch.setattr(runner.launch, "nginx_path", lambda: None)
    one_line_error(capsys, main(["bench", "--quick"]), BENCH_HINT, "granian not installed")
    # An external server needs neither: the run gets past the check.
    url = f"http://127.0.0.1:{free_port()}/small"
    one_line_error(capsys, main(["bench", "--url", url, "--out", str(tmp_path)]), "cannot reach")


# ----------------------------------------------------------------- --help, --version
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"warmline {importlib.metadata.version('warmline')}"


def bench_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_help_explains_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(bench_help(capsys).split())  # unwrapped, whatever the width
    # The default run length, and what the time cap is.
    assert "every scenario 3 times" in text and "about 5 minutes" in text
    assert "(CPU vs stock)" in text and "warmline-client+hedge through a relay" in text
    assert "default 20,000" in text and "2,000 when each request opens a new connection" in text
    assert "A time cap applies: the timed part of a case also stops after 0.3s" in text
    # The default --out, and what the other ports are.
    assert "(default: ./bench-results)" in text
    assert "The other ports, the 4 more exchanges of the fan-out scenario and the TLS" in text
    # Every scenario name, with its meaning.
    for scenario in runner.SCENARIOS:
        assert f" {scenario.key} {scenario.title} " in f"{text} "
    assert "pip install 'warmline[bench]'" in text


KNOWN_NAMES = {*CLIENTS, *runner.SCENARIO_KEYS, "bench-results", "127.0.0.1"}


@pytest.mark.parametrize("columns", [40, 60, 80, 100, 160])
def test_help_never_splits_a_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    # argparse used to wrap "warmline-threads" after the hyphen and "urllib3"
    # inside the word. The width comes from COLUMNS, as in a terminal.
    monkeypatch.setenv("COLUMNS", str(columns))
    lines = bench_help(capsys).splitlines()
    words = " ".join(lines).replace(",", " ").split()
    for name in CLIENTS:
        assert name in words, name
    for line, following in itertools.pairwise(lines):
        assert not re.search(r"\w-$", line), line  # broken after a hyphen
        if line.split() and following.split():
            joined = (line.split()[-1] + following.split()[0]).strip(",.;:()")
            assert joined not in KNOWN_NAMES, (line, following)


# ------------------------------------------------------------- server lifecycle
CRASH_AFTER_ONE = """
import json, os, sys
spec = json.loads(sys.argv[1])
case = spec["cases"][0]
line = {"id": case["id"], "requests": 10, "errors": 0, "wall_s": 0.01, "rps": 1000.0,
        "cpu_s": 0.001, "cpu_us_per_req": 100.0}
print(json.dumps(line), flush=True)
os._exit(3)
"""


def small_options(tmp_path: Path, child: list[str], **kw: object) -> runner.Options:
    opts = runner.Options(
        clients=["raw-proto"],
        scenarios=["get"],
        concurrency=[1, 2, 4],
        requests=20,
        rounds=1,
        micro=False,
        out=tmp_path,
        child=child,
    )
    for key, value in kw.items():
        setattr(opts, key, value)
    return opts


def test_server_stopped_when_every_child_crashes(tmp_path: Path) -> None:
    opts = small_options(tmp_path, [sys.executable, "-c", "import os; os._exit(3)"])
    report = runner.run(opts)
    pids = report["server"]["pids"]
    assert pids and wait_gone(pids)
    rows = report["rows"]
    assert len(rows) == 6  # raw-proto on 2 loops x 3 concurrencies
    for row in rows:
        assert row["error"] and "rc 3" in row["error"]
        assert row["rps"] is None


def test_a_crash_costs_only_its_case(tmp_path: Path) -> None:
    # Each child answers its first case, then dies: the next case errors and
    # the rest go on in a new child.
    opts = small_options(tmp_path, [sys.executable, "-c", CRASH_AFTER_ONE], clients=["raw-socket"])
    report = runner.run(opts)
    by_conc = {row["conc"]: row for row in report["rows"]}
    assert by_conc[1]["error"] is None and by_conc[1]["cpu_us_per_req"] == 100.0
    assert "rc 3" in by_conc[2]["error"]
    assert by_conc[4]["error"] is None  # answered by the second child
    assert wait_gone(report["server"]["pids"])


def test_a_hung_child_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    hang = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    opts = small_options(
        tmp_path,
        [sys.executable, "-c", hang],
        concurrency=[1],
        clients=["raw-socket"],
        case_timeout=0.5,
        startup_timeout=2.0,
    )
    t0 = time.monotonic()
    report = runner.run(opts)
    assert time.monotonic() - t0 < 20
    assert report["rows"][0]["error"] == "timed out after 2.5 s"
    assert wait_gone([int(marker.read_text())])
    assert wait_gone(report["server"]["pids"])


def start_bench(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """A real `warmline bench` subprocess, and its server's PIDs once it is up."""
    cmd = [
        sys.executable,
        "-m",
        "warmline.cli",
        "bench",
        "--clients",
        "raw-proto,raw-socket",
        "--scenarios",
        "get,post",
        "--rounds",
        "5",
        "--no-micro",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("server:"):
            return proc, [int(p) for p in line.rsplit("pids", 1)[1].split()]
    proc.kill()
    proc.wait(timeout=10)
    proc.stderr.close()
    raise AssertionError("no server line from warmline bench")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_stops_the_server(tmp_path: Path, sig: signal.Signals) -> None:
    proc, pids = start_bench(tmp_path)
    try:
        assert pids and not any(gone(p) for p in pids)
        time.sleep(1.5)  # into the cases
        assert proc.poll() is None
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
        assert proc.stderr is not None
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert rc == 128 + sig
    assert "interrupted" in rest and "Traceback" not in rest
    assert wait_gone(pids)
    assert not (tmp_path / "bench-report.json").exists()


def test_json_progress_and_files(tmp_path: Path) -> None:
    # A tiny full pass through the CLI: stdout is exactly the JSON report.
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "warmline.cli",
        "bench",
        "--clients",
        "raw-socket",
        "--scenarios",
        "get",
        "--concurrency",
        "1",
        "--requests",
        "50",
        "--rounds",
        "2",
        "--no-micro",
        "--json",
        "--out",
        str(out),
    ]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=55, env=env)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report == json.loads((out / "bench-report.json").read_text())
    (row,) = report["rows"]
    assert (row["client"], row["scenario"], row["conc"], row["rounds"]) == (
        "raw-socket",
        "get",
        1,
        2,
    )
    assert row["errors"] == 0 and row["error"] is None


def test_granian_when_nginx_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without nginx the bench serves the same endpoints with granian: one
    # process per port (5 for the fan-out), all stopped at the end.
    monkeypatch.setattr(runner.launch, "nginx_path", lambda: None)
    opts = small_options(
        tmp_path,
        list(runner.CHILD),
        clients=["raw-socket"],
        scenarios=["post", "chunked", "fanout"],
    )
    report = runner.run(opts)
    assert report["server"]["name"] == "granian"
    assert len(report["server"]["urls"]) == 5
    assert [r["scenario"] for r in report["rows"]] == ["post", "chunked", "fanout"]
    for row in report["rows"]:
        assert row["error"] is None and row["errors"] == 0, row["problems"]
        assert row["requests"] > 0 and row["server_busy"] is not None
        assert row["new_conns"] is None  # granian has no stub_status
    assert wait_gone(report["server"]["pids"])


def test_live_shows_the_pools_stats(tmp_path: Path) -> None:
    # A tiny run with --live: the children's pool stats reach the terminal
    # (the last table is printed when the run ends), and the run completes.
    cmd = [
        sys.executable,
        "-m",
        "warmline.cli",
        "bench",
        "--live",
        "--clients",
        "warmline",
        "--scenarios",
        "get",
        "--concurrency",
        "2",
        "--requests",
        "200",
        "--rounds",
        "1",
        "--no-micro",
        "--out",
        str(tmp_path / "out"),
    ]
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=55, env=env)
    assert p.returncode == 0, p.stderr
    assert "pools (live)" in p.stderr
    assert "stale retries" in p.stderr and "http://127.0.0.1:" in p.stderr
    # The table's requests column: at least the 200 measured requests of a case.
    counts = [int(n.replace(",", "")) for n in re.findall(r"│\s+([\d,]{3,})\s+│", p.stderr)]
    assert counts and max(counts) >= 200, p.stderr


def test_live_is_off_by_default() -> None:
    assert runner.Options().live is None
