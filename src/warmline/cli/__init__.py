"""The ``warmline`` command: ``warmline bench`` (later ``warmline load``).

``main(argv)`` returns the exit code: 0 when the run produced figures, 1 when
no case produced any, 2 for a usage error or a problem the user can fix (bad
URL, unreachable server, port in use, unknown client, the bench extra not
installed), one line and no traceback; 130 / 143 when interrupted by SIGINT /
SIGTERM, after the server was stopped.

Only ``warmline bench`` needs the ``bench`` extra, and it checks for it before
importing any of it; ``--help`` and ``--version`` work on a bare install.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import signal
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Interrupted(BaseException):
    """SIGINT or SIGTERM: unwinds through every finally, then exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Option help wrapped between words only; description and epilog as written.

    argparse's default wrapping breaks at hyphens and inside long words, so
    ``warmline-threads`` became ``warmline-`` / ``threads`` and ``urllib3``
    ``ur`` / ``llib3``: names a user has to copy back. ``_split_lines`` is the
    hook argparse's own RawTextHelpFormatter overrides.
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(
            " ".join(text.split()), width, break_on_hyphens=False, break_long_words=False
        )


def _wrap(text: str, indent: str = "") -> str:
    """One paragraph of the description or epilog, wrapped between words."""
    return textwrap.fill(
        text,
        _TEXT_WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


# The description and epilog are wrapped here, once, at a width that fits a
# standard 80-column terminal with argparse's own margin.
_TEXT_WIDTH = 78


def _version() -> str:
    try:
        return importlib.metadata.version("warmline")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare tree
        return "unknown (not installed)"


def _bench_epilog() -> str:
    """Run length, the scenario names and the client names, for ``bench --help``."""
    from warmline._bench.clients import CLIENTS
    from warmline._bench.runner import DEFAULT_ROUNDS, QUICK_ROUNDS, SCENARIOS

    width = max(len(s.key) for s in SCENARIOS)
    return "\n".join(
        [
            _wrap(
                f"Run length: by default every installed client runs every scenario "
                f"{DEFAULT_ROUNDS} times, interleaved (about 5 minutes on a 2-core "
                f"machine: 318 s measured with every client and both proxies installed); "
                f"--quick runs "
                f"{QUICK_ROUNDS} round with shorter cases, under a minute."
            ),
            "",
            "scenarios (--scenarios, default all):",
            *(_scenario_line(s.key.ljust(width), s.title) for s in SCENARIOS),
            _wrap(
                "The proxy scenarios start their proxy on the server's CPU: pproxy (PyPI) "
                "for proxy, tinyproxy (Debian) for proxy-tls; every client goes through the "
                "same proxy the same way (absolute-form for http, a CONNECT tunnel for "
                "https); a proxy that is not installed is listed as not run.",
                "  ",
            ),
            _wrap(
                "tail runs warmline-client and warmline-client+hedge through a relay of ours "
                "(on the server's CPU) and adds the hedges' extra requests; spin runs "
                "warmline-threads with and without spin against raw-socket and pycurl; "
                "each is listed as not run without its clients. The adapter rows "
                "(httpx+warmline, httpx-sync+warmline, requests+warmline) show their CPU "
                "against the stack they replace (CPU vs stock).",
                "  ",
            ),
            "",
            "clients (--clients, default all installed; a missing one is listed as not run):",
            _wrap(", ".join(CLIENTS), "  "),
        ]
    )


def _scenario_line(key: str, title: str) -> str:
    """``  key  title``, the title wrapped under itself."""
    indent = " " * (len(key) + 4)
    return textwrap.fill(
        title,
        _TEXT_WIDTH,
        initial_indent=f"  {key}  ",
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _requests_help() -> str:
    from warmline._bench.runner import BUDGETS, FANOUT_WIDTH

    full, fresh = BUDGETS[False, False], BUDGETS[False, True]
    quick, quick_fresh = BUDGETS[True, False], BUDGETS[True, True]
    return (
        f"timed requests per case (default {full.requests:,}, {fresh.requests:,} when each "
        f"request opens a new connection; with --quick {quick.requests:,} and "
        f"{quick_fresh.requests:,}; a fan-out step counts as {FANOUT_WIDTH}). A time cap "
        f"applies: the timed part of a case also stops after {full.time_cap_s:g}s "
        f"({quick.time_cap_s:g}s with --quick), "
        f"whichever comes first, so a slow client takes no longer than a fast one; the "
        f"report counts the requests actually made."
    )


def _parser() -> _Parser:
    from warmline._bench.runner import (
        ASYNC_CONCURRENCY,
        DEFAULT_ROUNDS,
        FANOUT_WIDTH,
        QUICK_ROUNDS,
        SYNC_CONCURRENCY,
    )

    parser = _Parser(prog="warmline", description="Warm HTTP/1.1 connection pools.")
    parser.add_argument("--version", action="version", version=f"warmline {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench",
        help="benchmark warmline against its peers on a loopback server",
        formatter_class=_HelpFormatter,
        description=_wrap(
            "Start a loopback server on 127.0.0.1 (nginx when installed, else granian), "
            "run every installed client on it in fresh processes, and report client CPU "
            "per request, requests/s and latency percentiles, with ratios to warmline. "
            "Needs the bench extra: pip install 'warmline[bench]'."
        ),
        epilog=_bench_epilog(),
    )
    bench.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    bench.add_argument(
        "--url",
        help="benchmark this server instead of the embedded one (GET of its path; "
        "scenarios get and newconn only)",
    )
    bench.add_argument("--clients", help="comma-separated client names, listed below")
    bench.add_argument(
        "--concurrency",
        help="keep-alive GET concurrencies (get and proxy), comma-separated (default "
        f"{','.join(map(str, ASYNC_CONCURRENCY))} for asyncio clients, "
        f"{','.join(map(str, SYNC_CONCURRENCY))} for threaded ones)",
    )
    bench.add_argument("--requests", type=int, metavar="N", help=_requests_help())
    bench.add_argument("--tls", action="store_true", help="run every scenario over TLS")
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="report directory (default: ./bench-results): bench-report.md, .json and .png",
    )
    bench.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    bench.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help=f"rounds to take the median of (default {DEFAULT_ROUNDS}, {QUICK_ROUNDS} with "
        "--quick)",
    )
    bench.add_argument(
        "--port",
        type=int,
        help="main port of the embedded server (default: a free one). The other ports, "
        f"the {FANOUT_WIDTH - 1} more exchanges of the fan-out scenario and the TLS "
        "listeners, are always free ports picked at start; all listen on 127.0.0.1 only",
    )
    bench.add_argument(
        "--scenarios", help="comma-separated scenario names, listed below (default all)"
    )
    bench.add_argument(
        "--no-micro", action="store_true", help="skip the micro-benchmarks (run after the cases)"
    )
    bench.add_argument(
        "--live",
        action="store_true",
        help="show the running client's pool stats (per origin) under the progress bar",
    )
    return parser


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_url(url: str) -> str | None:
    """Why ``url`` is not a usable server URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad --url {url!r}: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"bad --url {url!r}: expected http://host[:port][/path] or https://..."
    if port == 0:
        return f"bad --url {url!r}: port 0"
    return None


def _options(args: argparse.Namespace) -> Any:
    """The runner's Options, or a one-line error string."""
    from warmline._bench.clients import CLIENTS
    from warmline._bench.runner import SCENARIO_KEYS, Options

    clients = _split(args.clients)
    if clients == ["all"]:
        clients = None
    unknown = [c for c in clients or [] if c not in CLIENTS]
    if unknown:
        return f"unknown client {', '.join(unknown)}; known: {', '.join(CLIENTS)}"
    scenarios = _split(args.scenarios)
    bad = [s for s in scenarios or [] if s not in SCENARIO_KEYS]
    if bad:
        return f"unknown scenario {', '.join(bad)}; known: {', '.join(SCENARIO_KEYS)}"
    try:
        concurrency = [int(c) for c in _split(args.concurrency) or []] or None
    except ValueError:
        return f"--concurrency takes integers, like 1,16,64 (got {args.concurrency!r})"
    if concurrency and not all(1 <= c <= 1024 for c in concurrency):
        return "--concurrency values must be between 1 and 1024"
    if args.requests is not None and args.requests < 1:
        return "--requests must be at least 1"
    if args.rounds is not None and not 1 <= args.rounds <= 100:
        return "--rounds must be between 1 and 100"
    if args.url is not None:
        problem = _check_url(args.url)
        if problem:
            return problem
        if args.port is not None:
            return "--port is for the embedded server; it makes no sense with --url"
        if args.tls and not args.url.startswith("https:"):
            return "--tls with --url: give an https:// URL"
    if args.port is not None and not 1 <= args.port <= 65535:
        return f"--port must be between 1 and 65535 (got {args.port})"
    return Options(
        quick=args.quick,
        url=args.url,
        clients=clients,
        concurrency=concurrency,
        requests=args.requests,
        tls=args.tls,
        out=args.out,
        rounds=args.rounds,
        port=args.port,
        scenarios=scenarios,
        micro=not args.no_micro,
        live=_LIVE_INTERVAL_S if args.live else None,
    )


@contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise _Interrupted, so every finally (server stop) runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Interrupted(signum)

    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


# bench --live: how often a child sends its pools' stats.
_LIVE_INTERVAL_S = 0.5


class _RichProgress:
    """The runner's progress as a rich bar on stderr; notes and errors as lines.

    With ``bench --live`` the children's pool stats (``live()``) are drawn
    under the bar, and the last table seen is printed when the run ends.
    """

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        class _WithTable(Progress):
            table: Any = None

            def get_renderables(self) -> Any:
                yield from super().get_renderables()
                if self.table is not None:
                    yield self.table

        self.console = console
        self.bar = _WithTable(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            refresh_per_second=4,
        )
        self.task = self.bar.add_task("starting", total=None)

    def __enter__(self) -> _RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
        if self.bar.table is not None:
            self.console.print(self.bar.table)

    def live(self, snapshot: dict[str, Any]) -> None:
        """A child's pool stats, ``{origin: stats().to_dict() summed}`` (--live)."""
        if snapshot:  # between cases a child has no pool: keep the last table
            self.bar.table = _live_table(snapshot)

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total, completed=0)

    def step(self, label: str, line: dict[str, Any]) -> None:
        if line.get("error") or line.get("unavailable"):
            self.console.print(f"{label}: [red]{line.get('error') or line.get('unavailable')}[/]")
            text = "error"
        elif "cpu_us_per_req" in line:
            text = f"{line['rps']:,.0f} req/s, {line['cpu_us_per_req']:.1f} µs CPU/req"
        else:
            text = "done"
        self.bar.update(self.task, advance=1, description=f"{label}: {text}")

    def note(self, text: str) -> None:
        self.console.print(text)


def _live_table(snapshot: dict[str, Any]) -> Any:
    """The children's stats dicts as ``warmline.stats_table`` draws them."""
    import dataclasses

    from warmline._policy import PoolStats
    from warmline._stats_view import stats_table

    names = {f.name for f in dataclasses.fields(PoolStats)} - {"histograms"}

    class _Snapshot:
        def stats(self) -> dict[str, PoolStats]:
            rows = {}
            for origin, stats in snapshot.items():
                known = {k: v for k, v in stats.items() if k in names}
                with contextlib.suppress(TypeError):  # a field missing: skip the row
                    rows[origin] = PoolStats(**known)
            return rows

    return stats_table(_Snapshot(), title="pools (live)")


# The one line a user without the bench extra gets, instead of a traceback.
_BENCH_EXTRA_HINT = "pip install 'warmline[bench]'"


def _missing_for_bench(args: argparse.Namespace) -> list[str]:
    """The modules this bench run cannot do without that are not installed.

    ``find_spec`` only, so nothing is imported. Everything else the bench
    uses is optional by design and reported, not fatal: a missing peer or
    uvloop is a "not run" row, trustme drops the TLS scenarios, a missing
    proxy (pproxy, tinyproxy) its proxy scenario, h11 or
    httptools a micro-benchmark. rich draws the progress and the tables,
    matplotlib the chart the report promises; granian is the embedded server
    when nginx is not installed.
    """
    from warmline._server import launch

    needed = ["rich", "matplotlib"]
    if args.url is None and launch.nginx_path() is None:
        needed.append("granian")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _bench(args: argparse.Namespace) -> int:
    missing = _missing_for_bench(args)
    if missing:
        print(
            f"warmline bench: error: needs the bench extra ({', '.join(missing)} not "
            f"installed): {_BENCH_EXTRA_HINT}",
            file=sys.stderr,
        )
        return 2
    from rich.console import Console

    from warmline._bench import report as reports
    from warmline._bench.runner import BenchError, run

    options = _options(args)
    if isinstance(options, str):
        print(f"warmline bench: error: {options}", file=sys.stderr)
        return 2
    err = Console(stderr=True)
    if not err.is_terminal:
        # Piped or captured, rich assumes 80 columns and cuts the tables'
        # cells ("htt…"); the report's own tables get 160 alike (below).
        err = Console(stderr=True, width=160)
    try:
        with _signals_raise(), _RichProgress(err) as progress:
            result = run(options, progress)
    except BenchError as exc:
        print(f"warmline bench: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the embedded server failed to start
        message = str(exc).strip().splitlines()
        print(f"warmline bench: error: {message[0] if message else exc}", file=sys.stderr)
        return 2
    except (_Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, _Interrupted) else signal.SIGINT
        print("warmline bench: interrupted; the server was stopped", file=sys.stderr)
        return 128 + int(signum)
    paths, problems = reports.write_all(result, options.out)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        out = Console()
        # Not a terminal (a pipe, a file): wide enough for the tables anyway.
        reports.print_terminal(result, out if out.is_terminal else Console(width=160))
    for problem in problems:
        err.print(problem)
    err.print(f"{result['duration_s']:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0 if any(r.get("cpu_us_per_req") for r in result["rows"]) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``warmline`` command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    parser.print_help(sys.stderr)
    return 2
