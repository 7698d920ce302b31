"""The adapters without their extra: one clear ImportError naming the extra."""

from __future__ import annotations

import importlib
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("warmline.contrib.httpx", "httpx", "httpx"),
        ("warmline.contrib.requests", "requests", "requests"),
        ("warmline.contrib.aiohttp", "aiohttp", "aiohttp"),
    ],
)
def test_missing_extra_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, module: str, blocked: str, extra: str
) -> None:
    for name in list(sys.modules):
        if name == blocked or name.startswith(blocked + "."):
            monkeypatch.setitem(sys.modules, name, None)  # None makes import fail
    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'warmline\[{extra}\]'"):
        importlib.import_module(module)
