"""The code in README.md and docs/ stays true to the library.

Each ``python`` block must compile (top-level ``await`` allowed), and every
``warmline.<name>`` (and ``warmline.contrib.<module>``) it names must exist,
so a renamed or removed API breaks this test instead of the docs. Most
blocks talk to example hosts, so they are not run here; the blocks marked
``<!-- run -->`` start their own MockServer and run in
tests/test_docs_run.py.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import warmline

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            found.append((f"{page.relative_to(ROOT)} #{i + 1}", code))
    return found


def test_the_docs_have_examples() -> None:
    assert len(blocks()) >= 5


@pytest.mark.parametrize(("where", "code"), blocks(), ids=[w for w, _ in blocks()])
def test_example_compiles_and_names_real_api(where: str, code: str) -> None:
    tree = compile(code, where, "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    for node in ast.walk(tree):
        named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if named and node.value.id == "warmline":  # type: ignore[attr-defined]
            assert hasattr(warmline, node.attr), f"{where}: warmline.{node.attr} does not exist"  # type: ignore[attr-defined]
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("warmline"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{where}: {node.module}.{alias.name}"
