"""The bench's outputs: a terminal table, bench-report.{md,json,png}.

Everything here reads the report dict that :func:`warmline._bench.runner.run`
returns; nothing is measured here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "COLUMNS",
    "micro_table",
    "not_run",
    "print_terminal",
    "problems",
    "scenario_tables",
    "write_all",
    "write_chart",
    "write_markdown",
]

Row = dict[str, Any]


def _num(value: Any, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _share(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _times(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ratio(row: Row) -> str:
    return "-" if row.get("cpu_ratio") is None else f"{row['cpu_ratio']:.2f}x"


def _direct(row: Row) -> str:
    return "-" if row.get("direct_ratio") is None else f"{row['direct_ratio']:.2f}x"


# (header, cell) for every column of a scenario table; "conc" only where it
# varies, "CPU vs direct" only in the proxy scenarios' tables, "extra req"
# only where a client hedged, "peak RSS MiB" only in the download's.
COLUMNS: list[tuple[str, Callable[[Row], str]]] = [
    ("client", lambda r: str(r["client"])),
    ("loop", lambda r: str(r["loop"])),
    ("conc", lambda r: str(r["conc"])),
    ("req/s", lambda r: "error" if r.get("error") else _num(r.get("rps"))),
    ("CPU µs/req", lambda r: _num(r.get("cpu_us_per_req"), 1)),
    ("CPU vs warmline", _ratio),
    ("CPU vs direct", _direct),
    ("CPU vs stock", lambda r: _times(r.get("stock_ratio"))),
    ("p50 µs", lambda r: _num(r.get("p50_us"), 1)),
    ("p99 µs", lambda r: _num(r.get("p99_us"), 1)),
    ("p99.9 µs", lambda r: _num(r.get("p999_us"), 1)),
    ("extra req", lambda r: _share(r.get("extra_share"))),
    ("peak RSS MiB", lambda r: _num(r.get("peak_rss_mib"), 1)),
    ("client busy", lambda r: _pct(r.get("client_busy"))),
    ("server busy", lambda r: _pct(r.get("server_busy"))),
    ("new conns", lambda r: _num(r.get("new_conns"))),
    ("errors", lambda r: _num(r.get("errors"))),
]


def scenario_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per scenario: (title, headers, cells), in the report's order."""
    out = []
    for sc in report["scenarios"]:
        rows = [r for r in report["rows"] if r["scenario"] == sc["key"]]
        if not rows:
            continue
        columns = [c for c in COLUMNS if _shown(c[0], rows)]
        headers = [c[0] for c in columns]
        cells = [[cell(r) for _, cell in columns] for r in rows]
        title = sc["title"] + (" [TLS]" if sc["tls"] and "TLS" not in sc["title"] else "")
        out.append((title, headers, cells))
    return out


def _shown(header: str, rows: Sequence[Row]) -> bool:
    if header == "conc":
        return len({r["conc"] for r in rows}) > 1
    if header == "CPU vs direct":
        return any(r.get("direct_ratio") is not None for r in rows)
    if header == "CPU vs stock":  # the adapter rows: CPU / the stack they replace
        return any(r.get("stock_ratio") is not None for r in rows)
    if header == "extra req":  # the hedged rows: extra requests / requests
        return any(r.get("extra_share") is not None for r in rows)
    if header == "peak RSS MiB":  # the download rows: the child's peak RSS
        return any(r.get("peak_rss_mib") is not None for r in rows)
    return True


def not_run(report: dict[str, Any]) -> list[str]:
    """A line for each scenario and each client that did not run, with the reason."""
    out = [f"scenario {s['scenario']}: {s['reason']}" for s in report.get("skipped", [])]
    return out + [f"{m['client']} ({m['loop']}): {m['reason']}" for m in report["missing"]]


def problems(report: dict[str, Any]) -> list[str]:
    """Each distinct problem once per client: "client loop: message (in: cases)"."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for r in report["rows"]:
        for p in r["problems"]:
            case = r["scenario"] + (f" c={r['conc']}" if r["scenario"] == "get" else "")
            seen.setdefault((r["client"], r["loop"], p), []).append(case)
    total = len({(r["scenario"], r["conc"]) for r in report["rows"]})
    out = []
    for (client, loop, message), cases in seen.items():
        where = "every case" if len(cases) == total else ", ".join(cases)
        out.append(f"{client} {loop}: {message} (in {where})")
    return out


def micro_table(entry: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Any list of micro-benchmark rows as a table: the union of their keys."""
    rows: list[dict[str, Any]] = entry.get("rows") or []
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    return headers, [[fmt(row.get(h, "")) for h in headers] for row in rows]


def _md_table(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    align = ["---" if i < 2 or h == "name" else "---:" for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    opts, server = report["options"], report["server"]
    md = [
        f"# warmline bench, {report['started']}",
        "",
        f"Server: {server['name']} {server['version']} on {', '.join(server['urls'][:2])}"
        f"{' ...' if len(server['urls']) > 2 else ''}. "
        f"Median of {opts['rounds']} round(s), interleaved; total {report['duration_s']:.0f} s"
        + (" (--quick)" if opts["quick"] else "")
        + ".",
        "",
        "CPU µs/req is the client process's user+system CPU (getrusage) over the timed "
        "section, per request: the steady figure to compare by. CPU vs warmline = this "
        "row's CPU / warmline's on the same loop (threads: AtomicClientPool). CPU vs "
        "direct (proxy scenarios) = this row's CPU / the same client's, loop's and "
        "concurrency's without the proxy. Server busy = the server's CPU / wall (with "
        "the proxy's, which shares its CPU): near 100% means the server limits the row. "
        "Latency percentiles are nearest-rank.",
        "",
        *[f"- {note}" for note in report["notes"]],
        "",
    ]
    for title, headers, cells in scenario_tables(report):
        md += [f"## {title}", "", *_md_table(headers, cells), ""]
    trouble = problems(report)
    if trouble:
        md += ["## Problems", "", *[f"- {p}" for p in trouble], ""]
    skipped = not_run(report)
    if skipped:
        md += ["## Not run", "", *[f"- {line}" for line in skipped], ""]
    md += ["## Micro-benchmarks", ""]
    md += _micro_markdown(report["micro"])
    md += ["## Client configurations", ""]
    md += [f"- **{name}**: {config}" for name, config in report["clients"].items()]
    md += ["", "## Versions", "", "```", json.dumps(report["versions"], indent=1), "```", ""]
    path.write_text("\n".join(md))


def _micro_markdown(micro: Sequence[dict[str, Any]]) -> list[str]:
    if not micro:
        return ["not run", ""]
    out: list[str] = []
    for entry in micro:
        if "rows" in entry:
            headers, cells = micro_table(entry)
            out += [f"### {entry['module']}", "", *_md_table(headers, cells), ""]
        else:
            reason = entry.get("unavailable") or entry.get("error")
            out += [f"- {entry['module']}: micro-benchmarks not available ({reason})", ""]
    return out


def write_chart(report: dict[str, Any], path: Path) -> str | None:
    """CPU µs/request per client and scenario, and GET latency; None or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: {exc}"
    rows = [r for r in report["rows"] if r.get("cpu_us_per_req")]
    if not rows:
        return "no chart: no row has figures"
    labels = list(dict.fromkeys(f"{r['client']} ({r['loop']})" for r in rows))
    y = {label: i for i, label in enumerate(reversed(labels))}
    fig, (ax_cpu, ax_lat) = plt.subplots(1, 2, figsize=(14, 0.45 * len(labels) + 2.5), sharey=True)
    series = list(dict.fromkeys((r["scenario"], r["conc"]) for r in rows))
    markers = "os^vD<>phX*P8"
    for i, (scenario, conc) in enumerate(series):
        pts = [r for r in rows if (r["scenario"], r["conc"]) == (scenario, conc)]
        ax_cpu.scatter(
            [r["cpu_us_per_req"] for r in pts],
            [y[f"{r['client']} ({r['loop']})"] for r in pts],
            marker=markers[i % len(markers)],
            label=f"{scenario} c={conc}" if scenario == "get" else scenario,
            alpha=0.8,
        )
    ax_cpu.set_xscale("log")
    ax_cpu.set_xlabel("client CPU µs per request (log)")
    ax_cpu.set_yticks(list(y.values()), list(y.keys()))
    ax_cpu.grid(True, which="both", axis="x", alpha=0.3)
    seq = [r for r in rows if r["scenario"] == "get" and r["conc"] == 1 and r.get("p50_us")]
    for r in seq:
        row_y = y[f"{r['client']} ({r['loop']})"]
        ax_lat.plot([r["p50_us"], r["p99_us"]], [row_y, row_y], color="0.6", zorder=1)
        ax_lat.scatter([r["p50_us"]], [row_y], color="tab:blue", zorder=2)
        ax_lat.scatter([r["p99_us"]], [row_y], color="tab:red", marker="|", s=120, zorder=2)
    ax_lat.set_xscale("log")
    ax_lat.set_xlabel("sequential GET latency µs (log): p50 (dot) to p99 (bar)")
    ax_lat.grid(True, which="both", axis="x", alpha=0.3)
    server = report["server"]
    fig.suptitle(f"warmline bench {report['started']}: {server['name']} {server['version']}")
    handles, names = ax_cpu.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8)
    # Room at the bottom for the legend: one line per 6 entries.
    fig.tight_layout(rect=(0, 0.03 + 0.03 * ((len(names) + 5) // 6), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_all(report: dict[str, Any], out: Path) -> tuple[list[Path], list[str]]:
    """bench-report.{json,md,png,svg} in ``out``: (the files written, problems)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench-report.json", out / "bench-report.md"]
    paths[0].write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, paths[1])
    problem = write_chart(report, out / "bench-report.png")
    if problem is None:
        paths.append(out / "bench-report.png")
    # The SVG bar chart needs no plotting library (the docs' chart is one).
    from warmline._bench import svg

    try:
        (out / "bench-report.svg").write_text(svg.render(report), encoding="utf-8")
        paths.append(out / "bench-report.svg")
    except ValueError:
        pass  # no row has a figure: the PNG's problem (if any) says so
    return paths, [] if problem is None else [problem]


# Narrower headers for the terminal; the markdown keeps the long ones.
_SHORT = {
    "CPU vs warmline": "vs wl",
    "CPU vs direct": "vs direct",
    "CPU vs stock": "vs stock",
    "client busy": "client",
    "server busy": "server",
    "new conns": "conns",
    "errors": "err",
}


def print_terminal(report: dict[str, Any], console: Any) -> None:
    """The scenario tables, what did not run and the micro-benchmarks, with rich."""
    from rich import box
    from rich.table import Table

    for title, headers, cells in scenario_tables(report):
        table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE)
        for i, header in enumerate(headers):
            short = _SHORT.get(header, header)
            table.add_column(short, justify="left" if i < 2 else "right", no_wrap=True)
        for row in cells:
            table.add_row(*row)
        console.print(table)
    for problem in problems(report):
        console.print(f"[yellow]problem: {problem}[/]", highlight=False)
    for line in not_run(report):
        console.print(f"not run: {line}")
    for entry in report["micro"]:
        if "rows" not in entry:
            reason = entry.get("unavailable") or entry.get("error")
            console.print(f"{entry['module']}: micro-benchmarks not available ({reason})")
            continue
        headers, cells = micro_table(entry)
        table = Table(title=f"micro: {entry['module']}", title_justify="left")
        for header in headers:
            table.add_column(header, justify="left" if header == "name" else "right")
        for row in cells:
            table.add_row(*row)
        console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}")
