"""The docs site builds strictly, its runnable examples run, and the hot-path
page's state table is the core's.

A ```python block of README.md or docs/*.md preceded by the line
``<!-- run -->`` is a whole program: it starts its own
``warmline.testing.MockServer`` on 127.0.0.1, talks to it, and asserts what
the page says. Each one runs here as ``__main__``, as it would when a reader
pastes it into a file, with nothing added or rewritten. Blocks that talk to
example hosts are not marked; tests/test_docs_examples.py compile-checks
every block.
"""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from warmline._pool._state import TRANSITIONS, SlotState

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = re.compile(r"^<!-- run -->\n```python\n(.*?)^```", re.S | re.M)
# docs/hot-path.md: the marker, then the table whose first two columns are
# a state and the states it may move to.
TABLE = re.compile(r"<!-- transitions -->\n((?:\|.*\n)+)")
STATE = re.compile(r"`([A-Z_]+)`")


def runnable() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, code in enumerate(RUNNABLE.findall(page.read_text())):
            found.append((f"{page.relative_to(ROOT)} run#{i + 1}", code))
    return found


def test_every_new_guide_page_has_a_runnable_example() -> None:
    pages = {where.split(" ")[0] for where, _ in runnable()}
    for name in ("pool-and-client", "hot-path", "lifecycle", "resilience", "observing", "rust"):
        assert f"docs/{name}.md" in pages, f"docs/{name}.md has no <!-- run --> example"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("where", "code"), runnable(), ids=[w for w, _ in runnable()])
def test_example_runs(where: str, code: str) -> None:
    before = set(threading.enumerate())
    namespace = {"__name__": "__main__"}
    exec(compile(code, where, "exec"), namespace)  # our own pages, run as written
    namespace.clear()
    gc.collect()  # a socket the example leaked warns here, under its own name
    # Every MockServer and pool the example made has stopped its threads.
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    for thread in leftover:
        thread.join(2.0)
    assert not [t for t in leftover if t.is_alive()], f"{where} left threads running"


def test_the_state_table_is_the_cores() -> None:
    text = (ROOT / "docs" / "hot-path.md").read_text()
    match = TABLE.search(text)
    assert match is not None, "docs/hot-path.md lost its <!-- transitions --> table"
    documented: dict[SlotState, frozenset[SlotState]] = {}
    for row in match.group(1).splitlines()[2:]:  # after the header and rule
        cells = row.strip("|").split("|")
        (state,) = STATE.findall(cells[0])
        documented[SlotState[state]] = frozenset(SlotState[s] for s in STATE.findall(cells[1]))
    assert documented == dict(TRANSITIONS)


@pytest.mark.timeout(120)
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mkdocstrings", reason="the docs need the dev group's mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "api" / "clients" / "index.html").exists()
    assert (tmp_path / "hot-path" / "index.html").exists()
