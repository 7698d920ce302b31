"""JSON bodies: Decimal written exactly by both back ends (orjson and json)."""

from __future__ import annotations

import json as stdlib_json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import warmline._json as wjson
import warmline.http11._writer as writer_module
from warmline.errors import InvalidRequest
from warmline.http11._writer import RequestWriter

Dumps = Callable[[Any], bytes]
BACKENDS: dict[str, Dumps] = {
    "default": wjson.dumps,  # orjson in the dev environment
    "stdlib": wjson._stdlib_dumps_decimal,
}


@pytest.fixture(params=["orjson", "stdlib"])
def writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RequestWriter:
    """A writer on each JSON back end; the stdlib one forced as if orjson were absent."""
    if request.param == "orjson":
        assert wjson.BACKEND == "orjson"
    else:
        monkeypatch.setattr(writer_module, "_plain_json_dumps", wjson._stdlib_dumps)
        monkeypatch.setattr(writer_module, "_json_dumps", _stdlib_dumps_full)
    return RequestWriter("h", user_agent=None)


def _stdlib_dumps_full(obj: Any) -> bytes:
    """What ``wjson.dumps`` is when orjson is not installed."""
    try:
        return wjson._stdlib_dumps(obj)
    except TypeError:
        return wjson._stdlib_dumps_decimal(obj)


def body(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"px": Decimal("1.10")}, b'{"px":1.10}'),
        ({"px": Decimal("65000.50"), "qty": Decimal("0.00100")}, b'{"px":65000.50,"qty":0.00100}'),
        ([Decimal("1E+2"), Decimal("-0"), Decimal("1.23E-7")], b"[1E+2,-0,1.23E-7]"),
        (Decimal("3"), b"3"),
        (
            {"a": [{"b": Decimal("-2.5")}], "c": "é", "d": None, "e": 1.5},
            b'{"a":[{"b":-2.5}],"c":"\xc3\xa9","d":null,"e":1.5}',
        ),
        ((Decimal("1"), (Decimal("2"),)), b"[1,[2]]"),
    ],
)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_decimal_keeps_its_digits(backend: str, value: object, expected: bytes) -> None:
    assert BACKENDS[backend](value) == expected


@pytest.mark.parametrize("text", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_decimal_without_json_number_is_invalid(backend: str, text: str) -> None:
    with pytest.raises(InvalidRequest, match="JSON has no number"):
        BACKENDS[backend]({"px": [Decimal(text)]})


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_other_errors_stay_standard(backend: str) -> None:
    dumps = BACKENDS[backend]
    with pytest.raises(TypeError):
        dumps({"px": Decimal(1), "bad": {1, 2}})
    with pytest.raises(TypeError):
        dumps({Decimal(1): 1})  # JSON keys are strings; no back end takes a Decimal key
    loop: list[object] = [Decimal(1)]
    loop.append(loop)
    with pytest.raises((ValueError, TypeError)):  # orjson: TypeError (recursion limit)
        dumps(loop)


def test_stdlib_walk_follows_stdlib_rules() -> None:
    """Keys, floats and strings come out exactly as json.dumps writes them."""
    value = {7: Decimal("1.0"), 2.5: 'x\n"', False: float("nan"), None: [], "k": {}}
    expected = stdlib_json.dumps(
        {**value, 7: 1.0}, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert wjson._stdlib_dumps_decimal(value) == expected


def test_plain_data_takes_the_fast_path_unchanged() -> None:
    """Without a Decimal, dumps is the back end's own output."""
    value = {"a": [1, 2.5, None, True], "b": "é"}
    assert wjson.dumps(value) == wjson.plain_dumps(value) == wjson._stdlib_dumps(value)


def test_writer_sends_decimal_digits(writer: RequestWriter) -> None:
    request = writer.build("POST", "/order", json={"px": Decimal("1.10"), "side": "BUY"})
    assert body(request) == b'{"px":1.10,"side":"BUY"}'
    assert b"Content-Length: 24\r\n" in request
    assert b"Content-Type: application/json\r\n" in request


def test_writer_refuses_nan_decimal_with_context(writer: RequestWriter) -> None:
    with pytest.raises(InvalidRequest, match="Decimal") as caught:
        writer.build("POST", "/order", json={"px": Decimal("NaN")})
    assert caught.value.path == "/order"


def test_writer_still_refuses_unserialisable(writer: RequestWriter) -> None:
    with pytest.raises(TypeError):
        writer.build("POST", "/order", json={"s": {1}})


# Decimals as JSON holds them: finite; any exponent the parser must keep.
decimals = st.decimals(allow_nan=False, allow_infinity=False)
json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | decimals,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _exact(tree: object) -> Iterator[object]:
    """Decimal as its exact text, so 1.10 and 1.1 differ; other leaves as they are."""
    if isinstance(tree, dict):
        yield from ((key, *_exact(value)) for key, value in tree.items())
    elif isinstance(tree, list):
        yield from (item for value in tree for item in _exact(value))
    elif isinstance(tree, Decimal):
        yield ("decimal", str(tree))
    elif isinstance(tree, int) and not isinstance(tree, bool):
        yield ("decimal", str(tree))  # parsed back through parse_int=Decimal
    else:
        yield tree


@settings(max_examples=150, deadline=None)
@given(json_trees)
def test_decimal_round_trips_exactly(tree: object) -> None:
    outputs = set()
    for backend, dumps in BACKENDS.items():
        try:
            raw = dumps(tree)
        except TypeError:  # orjson: integers beyond 64 bits
            assert backend == "default"
            continue
        outputs.add(raw)
        parsed = stdlib_json.loads(raw, parse_float=Decimal, parse_int=Decimal)
        assert list(_exact(parsed)) == list(_exact(tree))
    assert len(outputs) == 1  # both back ends write the same bytes
