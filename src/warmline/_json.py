"""JSON in and out, through orjson when it is installed.

orjson (the ``fast`` extra) is several times faster than the standard library
and returns ``bytes`` directly, which is what the request writer sends. Without
it, the standard library's encoder is used with compact separators and UTF-8
output, so both back ends produce the same bytes for plain data
(``{"a":1,"b":"é"}``).

:class:`~decimal.Decimal` is written exactly, as a JSON number with its own
digits (``Decimal("1.10")`` → ``1.10``, never ``1.1`` or a float's
``1.1000000000000001``): prices and quantities are Decimals in trading code,
and a float round trip would change them. A NaN or infinite Decimal raises
:class:`~warmline.errors.InvalidRequest` (JSON has no such number).

Two entry points: :func:`plain_dumps` is the back end itself and refuses
Decimal with ``TypeError``; :func:`dumps` accepts Decimal too. Callers on a hot
path call ``plain_dumps`` and fall back to ``dumps`` on ``TypeError``: a
``try`` costs nothing on CPython 3.11+, while wrapping orjson in a Python
function costs ~16 ns and ``default=`` on every call ~4 ns (timeit, 6-key
dict, orjson 3.13: 111 ns bare).

Known differences, inherited from the back ends: orjson rejects non-``str``
dict keys and writes float NaN/Infinity as ``null``; the standard library
turns ``int`` keys into strings and writes ``NaN``. Both raise ``TypeError``
for a value they cannot serialise (``set``...) and ``ValueError``
(``json.JSONDecodeError``) for malformed input.
"""

from __future__ import annotations

import json as _stdlib_json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from warmline.errors import InvalidRequest

__all__ = ["BACKEND", "dumps", "loads", "plain_dumps"]


def _stdlib_dumps(obj: Any) -> bytes:
    """Serialise ``obj`` to compact UTF-8 JSON with the standard library."""
    return _STDLIB_ENCODER.encode(obj).encode("utf-8")


def _stdlib_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON from ``str`` or UTF-8 bytes with the standard library."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    return _stdlib_json.loads(data)


# Compact separators: no byte on the wire that the peer has to skip.
# ensure_ascii=False + UTF-8: the same bytes orjson produces (RFC 8259 §8.1).
_STDLIB_ENCODER = _stdlib_json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_encode_leaf = _STDLIB_ENCODER.encode


def _decimal_text(value: Decimal) -> str:
    """A finite Decimal as a JSON number with its own digits.

    ``str(Decimal)`` is ``-?digits(.digits)?(E[+-]digits)?``, which is already
    RFC 8259 §6 number syntax (``1.10``, ``-0``, ``1.23E+7``).

    Raises:
        InvalidRequest: ``value`` is NaN, sNaN or infinite.
    """
    if not value.is_finite():
        raise InvalidRequest(f"JSON has no number for Decimal({str(value)!r})")
    return str(value)


def _stdlib_dumps_decimal(obj: Any) -> bytes:
    """Like :func:`_stdlib_dumps`, writing each Decimal as its own digits.

    The standard library's encoder has no hook that writes raw number text, so
    containers are walked here and every other leaf goes through the encoder
    itself (same escaping, same key and float rules, same errors). Pure
    Python, so only used once the C encoder has refused a Decimal.
    """
    parts: list[str] = []
    _walk(obj, parts, set())
    return "".join(parts).encode("utf-8")


def _walk(obj: Any, parts: list[str], open_ids: set[int]) -> None:
    """Append the JSON text of ``obj`` to ``parts``."""
    if isinstance(obj, Decimal):
        parts.append(_decimal_text(obj))
    elif isinstance(obj, dict):
        _enter(obj, open_ids)
        parts.append("{")
        for index, (key, value) in enumerate(obj.items()):
            parts += ("," if index else "", _encode_leaf(_key_text(key)), ":")
            _walk(value, parts, open_ids)
        parts.append("}")
        open_ids.discard(id(obj))
    elif isinstance(obj, list | tuple):
        _enter(obj, open_ids)
        parts.append("[")
        for index, value in enumerate(obj):
            if index:
                parts.append(",")
            _walk(value, parts, open_ids)
        parts.append("]")
        open_ids.discard(id(obj))
    else:
        parts.append(_encode_leaf(obj))


def _enter(container: object, open_ids: set[int]) -> None:
    """Refuse a container that contains itself, as the standard library does."""
    if id(container) in open_ids:
        raise ValueError("Circular reference detected")
    open_ids.add(id(container))


def _key_text(key: object) -> str:
    """A dict key as the standard library writes it (``1`` → ``"1"``...)."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, int | float):  # bool is an int
        return _encode_leaf(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


plain_dumps: Callable[[Any], bytes]
"""Serialise plain data (no Decimal) to compact UTF-8 JSON ``bytes``; fastest."""
loads: Callable[[bytes | bytearray | memoryview | str], Any]
"""Parse JSON from ``bytes``, ``bytearray``, ``memoryview`` or ``str``."""
_decimal_dumps: Callable[[Any], bytes]

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is installed in the dev environment
    BACKEND = "json"
    plain_dumps = _stdlib_dumps
    loads = _stdlib_loads
    _decimal_dumps = _stdlib_dumps_decimal
else:
    BACKEND = "orjson"
    plain_dumps = orjson.dumps
    loads = orjson.loads

    def _fragment(value: object) -> orjson.Fragment:
        """orjson's ``default=``: a Decimal as raw number text."""
        if isinstance(value, Decimal):
            return orjson.Fragment(_decimal_text(value).encode("ascii"))
        raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")

    def _orjson_dumps_decimal(obj: Any) -> bytes:
        """Like ``orjson.dumps``, writing each Decimal as its own digits."""
        try:
            return orjson.dumps(obj, default=_fragment)
        except orjson.JSONEncodeError as exc:
            # orjson wraps what default= raised; give the caller our own error.
            if isinstance(exc.__cause__, InvalidRequest):
                raise exc.__cause__ from None
            raise

    _decimal_dumps = _orjson_dumps_decimal


def dumps(obj: Any) -> bytes:
    """Serialise ``obj`` to compact UTF-8 JSON ``bytes``, Decimal included.

    Raises:
        InvalidRequest: A NaN or infinite Decimal.
        TypeError: A value JSON cannot hold (``set``, a custom class...).
    """
    try:
        return plain_dumps(obj)
    except TypeError:
        return _decimal_dumps(obj)
