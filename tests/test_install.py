"""The installed library: no required dependency, and a bench that says what it needs.

The heavy test builds the wheel, installs it without extras into a fresh
venv, and runs the ``warmline`` script there, as ``pip install warmline``
would leave a user. It needs ``uv`` (offline once hatchling is in uv's cache).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The bench extra's modules and the test servers' dependencies: the library
# never imports them. (The fast extra, orjson and uvloop, is used when
# installed, on purpose.)
HEAVY = ("granian", "rich", "matplotlib", "h11", "httptools", "trustme", "aiohttp", "httpx")
OPTIONAL = (*HEAVY, "orjson", "uvloop")
# Importing every public module of the library, then the test servers'.
IMPORT_ALL = """
import json, sys
import warmline, warmline.aio, warmline.sync, warmline.http11, warmline.objpool
import warmline.cli, warmline.errors
library = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
internal = sorted(m for m in sys.modules if m.startswith(("warmline._server", "warmline._bench")))
import warmline._server.app, warmline._server.launch
servers = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print(json.dumps({"library": library, "internal": internal, "servers": servers}))
"""


def imports_of(python: str | Path) -> dict[str, list[str]]:
    code = f"HEAVY = {HEAVY!r}\n{IMPORT_ALL}"
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_library_imports_nothing_optional() -> None:
    # Here every extra is installed, so an eager import would show.
    found = imports_of(sys.executable)
    assert found["library"] == []
    assert found["internal"] == []  # the bench and the test servers stay out
    # The test servers' modules import granian only when started (a process).
    assert found["servers"] == []


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel and nothing else; its bin directory."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: cannot build the wheel and a fresh venv")
    tmp = tmp_path_factory.mktemp("bare")
    _run(uv, "build", "--wheel", "--out-dir", tmp / "dist", ROOT)
    (wheel,) = (tmp / "dist").glob("warmline-*.whl")
    venv = tmp / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    # No extras; --no-deps because the library has no required dependency
    # (and the install then needs no index).
    _run(uv, "pip", "install", "--python", python, "--no-deps", wheel)
    return venv / "bin"


def _run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=check
    )


def test_wheel_without_extras_imports(bare_venv: Path) -> None:
    found = imports_of(bare_venv / "python")
    assert found == {"library": [], "internal": [], "servers": []}
    probe = f"import importlib.util as u; print([m for m in {OPTIONAL!r} if u.find_spec(m)])"
    out = _run(bare_venv / "python", "-c", probe)
    assert out.stdout.strip() == "[]"  # truly bare: no extra leaked in


def test_wheel_without_extras_bench_says_what_to_install(bare_venv: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(bare_venv / "warmline"), "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'warmline[bench]'" in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "bench-results").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["--version"], "warmline 0."), (["bench", "--help"], "pip install 'warmline[bench]'")],
)
def test_wheel_without_extras_help_and_version(
    bare_venv: Path, argv: list[str], expected: str
) -> None:
    proc = _run(bare_venv / "warmline", *argv, check=False)
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
