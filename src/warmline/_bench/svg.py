"""A bench report as an SVG bar chart, with no plotting library.

One panel per case (scenario and concurrency), one horizontal bar per client
row: its client CPU µs per request (the bench's steady figure) on a log
scale, since the rows span three orders of magnitude (20 µs to 14 ms).
warmline's own rows and the adapter rows are drawn in one colour, the peers
in another, so the eye finds the pairs. The docs' chart is made with::

    uv run warmline bench --scenarios get,ccxt
    uv run python -m warmline._bench.svg bench-results/bench-report.json docs/img/bench.svg \\
        get@1,get@16,ccxt

``warmline bench`` also writes ``bench-report.svg`` next to its other files.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

__all__ = ["main", "render"]

_BAR_H: Final = 16
_GAP: Final = 4
_LABEL_W: Final = 230
_PLOT_W: Final = 470
_VALUE_W: Final = 70
_TITLE_H: Final = 26
_WIDTH: Final = _LABEL_W + _PLOT_W + _VALUE_W
_OURS: Final = "#e8710a"
_PEER: Final = "#7f8c9a"
_FONT: Final = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def _ours(client: str) -> bool:
    return client.startswith("warmline") or client.endswith("+warmline")


Rows = Sequence[dict[str, Any]]


def _cases(rows: Rows, scenarios: Sequence[str] | None) -> list[tuple[str, int]]:
    keys = dict.fromkeys((r["scenario"], r["conc"]) for r in rows if r.get("cpu_us_per_req"))
    if scenarios is None:
        return list(keys)
    # "get" takes every concurrency of get, "get@16" only that one.
    wanted = {(s.partition("@")[0], s.partition("@")[2]) for s in scenarios}
    return [k for k in keys if (k[0], "") in wanted or (k[0], str(k[1])) in wanted]


def _scale(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """The log10 range of the axis: whole decades around every figure."""
    values = [r["cpu_us_per_req"] for r in rows]
    return math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))


def _x(value: float, lo: float, hi: float) -> float:
    return _LABEL_W + _PLOT_W * (math.log10(value) - lo) / (hi - lo)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _panel(title: str, rows: Sequence[dict[str, Any]], top: int, lo: float, hi: float) -> list[str]:
    out = [f'<text x="0" y="{top + 16}" font-weight="600" font-size="13">{escape(title)}</text>']
    y = top + _TITLE_H
    for decade in range(int(lo), int(hi) + 1):
        x = _x(10.0**decade, lo, hi)
        bottom = y + len(rows) * (_BAR_H + _GAP)
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
    for r in rows:
        value = r["cpu_us_per_req"]
        width = max(_x(value, lo, hi) - _LABEL_W, 1.0)
        colour = _OURS if _ours(r["client"]) else _PEER
        label = escape(f"{r['client']} ({r['loop']})")
        mid = y + _BAR_H - 4
        out += [
            f'<text x="{_LABEL_W - 6}" y="{mid}" text-anchor="end" font-size="12">{label}</text>',
            f'<rect x="{_LABEL_W}" y="{y}" width="{width:.1f}" height="{_BAR_H}" fill="{colour}"/>',
            f'<text x="{_LABEL_W + width + 4:.1f}" y="{mid}" font-size="11">'
            f"{_figure(value)}</text>",
        ]
        y += _BAR_H + _GAP
    return out


def _axis(top: int, lo: float, hi: float) -> list[str]:
    out = []
    for decade in range(int(lo), int(hi) + 1):
        x = _x(10.0**decade, lo, hi)
        out.append(
            f'<text x="{x:.1f}" y="{top + 12}" text-anchor="middle" font-size="11"'
            f' fill="#555">{10**decade:,}</text>'
        )
    out.append(
        f'<text x="{_LABEL_W + _PLOT_W / 2}" y="{top + 28}" text-anchor="middle" font-size="11"'
        ' fill="#555">client CPU µs per request (log scale; lower is better)</text>'
    )
    return out


def render(report: dict[str, Any], scenarios: Sequence[str] | None = None) -> str:
    """The SVG text of ``report``'s CPU figures, for ``scenarios`` (None: all;
    ``"get@16"`` is one concurrency of a scenario).

    Raises:
        ValueError: No row of those scenarios has a figure.
    """
    rows = [r for r in report["rows"] if r.get("cpu_us_per_req")]
    cases = _cases(rows, scenarios)
    rows = [r for r in rows if (r["scenario"], r["conc"]) in cases]
    if not rows:
        raise ValueError("no row has a CPU figure for those scenarios")
    lo, hi = _scale(rows)
    titles = {s["key"]: s["title"] for s in report.get("scenarios", []) if "key" in s}
    body: list[str] = []
    top = 0
    for scenario, conc in cases:
        case_rows = [r for r in rows if (r["scenario"], r["conc"]) == (scenario, conc)]
        title = titles.get(scenario) or case_rows[0].get("title") or scenario
        title = f"{title}, {conc} in flight" if scenario == "get" else title
        body += _panel(_short(title.split(": ")[0]), case_rows, top, lo, hi)
        top += _TITLE_H + len(case_rows) * (_BAR_H + _GAP) + 10
    body += _axis(top, lo, hi)
    server = report.get("server", {})
    note = (
        f"warmline bench {report.get('started', '')}, server {server.get('name', '?')}"
        f" {server.get('version', '')}"
    )
    body += [
        f'<rect x="0" y="{top + 40}" width="10" height="10" fill="{_OURS}"/>',
        f'<text x="14" y="{top + 49}" font-size="11">warmline and its adapters</text>',
        f'<rect x="170" y="{top + 40}" width="10" height="10" fill="{_PEER}"/>',
        f'<text x="184" y="{top + 49}" font-size="11">the peers</text>',
        f'<text x="0" y="{top + 66}" font-size="10" fill="#777">{escape(note)}</text>',
    ]
    height = top + 74
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}"'
        f' viewBox="0 0 {_WIDTH} {height}" style="{_FONT}" role="img"'
        ' aria-label="warmline bench: client CPU per request">\n'
        f'<rect width="{_WIDTH}" height="{height}" fill="#fff"/>\n' + "\n".join(body) + "\n</svg>\n"
    )


def _short(title: str, limit: int = 110) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m warmline._bench.svg REPORT.json OUT.svg [SCENARIO[@CONC],...]``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text())
    scenarios = args[2].split(",") if len(args) == 3 else None
    try:
        svg = render(report, scenarios)
    except ValueError as exc:
        print(f"no chart: {exc}", file=sys.stderr)
        return 1
    Path(args[1]).parent.mkdir(parents=True, exist_ok=True)
    Path(args[1]).write_text(svg, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
