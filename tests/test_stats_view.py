"""warmline.stats_table: the stats of a pool or client as a rich table."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

import warmline
from warmline._server.launch import Server


def render(table: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return out.getvalue()


@pytest.mark.timeout(30)
def test_a_pool_and_a_client_render(granian: Server) -> None:
    with warmline.AtomicClientPool.connect(granian.url, connections=2) as pool:
        pool.get("/small")
        text = render(warmline.stats_table(pool))
        assert granian.url in text and "requests" in text
        row = next(line for line in text.splitlines() if granian.url in line)
        assert " 2 " in row and " 1 " in row  # size 2, one request
    with warmline.Client() as client:
        client.get(granian.url + "/small")
        client.get(granian.url + "/nope")  # a 404 is a response, not an error
        text = render(warmline.stats_table(client, title="mine"))
        assert "mine" in text and granian.url in text


def test_without_rich_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich.table", None)
    with pytest.raises(ImportError, match="pip install rich"):
        warmline.stats_table(object())
