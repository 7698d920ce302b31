"""The bench's SVG bar chart: well-formed, one bar per row, log-scaled, and the docs' copy."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from warmline._bench import report, svg

NS = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parent.parent


def _row(client: str, loop: str, scenario: str, conc: int, cpu: float | None) -> dict[str, Any]:
    return {
        "client": client,
        "loop": loop,
        "scenario": scenario,
        "conc": conc,
        "cpu_us_per_req": cpu,
    }


REPORT: dict[str, Any] = {
    "started": "2026-12-01T16:00:00",
    "server": {"name": "nginx", "version": "1.22.1"},
    "scenarios": [{"key": "get", "title": "Keep-alive GET /small (~100 B JSON)"}],
    "rows": [
        _row("warmline", "uvloop", "get", 1, 25.0),
        _row("aiohttp", "uvloop", "get", 1, 250.0),
        _row("httpx", "uvloop", "get", 1, 2500.0),
        _row("requests+warmline", "sync", "get", 16, 180.0),
        _row("requests", "sync", "get", 16, 360.0),
        _row("broken", "sync", "get", 16, None),  # a row without figures: no bar
        _row("ccxt", "uvloop", "ccxt", 1, 270.0),
    ],
}


def _bars(text: str) -> list[ET.Element]:
    tree = ET.fromstring(text)
    return [r for r in tree.iter(NS + "rect") if r.get("height") == str(svg._BAR_H)]


def test_one_bar_per_row_with_a_figure_in_two_colours() -> None:
    bars = _bars(svg.render(REPORT))
    assert len(bars) == 6
    fills = [b.get("fill") for b in bars]
    assert fills.count(svg._OURS) == 2 and fills.count(svg._PEER) == 4


def test_widths_follow_a_log_scale() -> None:
    widths = [float(b.get("width") or 0) for b in _bars(svg.render(REPORT, ["get"]))]
    # 25, 250 and 2,500 µs: each tenfold step is the same length.
    assert widths[1] - widths[0] == pytest.approx(widths[2] - widths[1], rel=1e-3)
    assert widths[3] < widths[4]  # 180 < 360


def test_a_scenario_filter_keeps_only_its_panels() -> None:
    text = svg.render(REPORT, ["ccxt"])
    assert len(_bars(text)) == 1 and "aiohttp" not in text
    with pytest.raises(ValueError, match="no row"):
        svg.render(REPORT, ["tls"])


def test_the_command_writes_the_file(tmp_path: Path) -> None:
    source = tmp_path / "r.json"
    source.write_text(__import__("json").dumps(REPORT))
    out = tmp_path / "img" / "bench.svg"
    assert svg.main([str(source), str(out), "get"]) == 0
    assert out.read_text().startswith("<svg ")
    assert svg.main([str(source)]) == 2
    assert svg.main([str(source), str(out), "tls"]) == 1


def test_bench_writes_the_svg_with_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the SVG is under test: the markdown and the PNG have their own.
    monkeypatch.setattr(report, "write_markdown", lambda r, path: path.write_text(""))
    monkeypatch.setattr(report, "write_chart", lambda r, path: "no chart: not here")
    written, problems = report.write_all(REPORT, tmp_path)
    assert tmp_path / "bench-report.svg" in written
    assert svg.render(REPORT) == (tmp_path / "bench-report.svg").read_text()
    assert problems == ["no chart: not here"]


def test_the_docs_chart_is_a_well_formed_bench_chart() -> None:
    text = (ROOT / "docs" / "img" / "bench.svg").read_text()
    assert len(_bars(text)) >= 10
    assert "requests+warmline" in text and "ccxt+warmline" in text
