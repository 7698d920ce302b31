"""JSON in and out, through orjson when it is installed.

orjson (the ``fast`` extra) is several times faster than the standard library
and returns ``bytes`` directly, which is what the request writer sends. Without
it, the standard library's encoder is used with compact separators and UTF-8
output, so both back ends produce the same bytes for plain data
(``{"a":1,"b":"é"}``). Known differences, inherited from the back ends: orjson
rejects non-``str`` dict keys and writes NaN/Infinity as ``null``; the
standard library turns ``int`` keys into strings and writes ``NaN``. Both
raise ``TypeError`` for a value they cannot serialise (``Decimal``, ``set``...)
and ``ValueError`` (``json.JSONDecodeError``) for malformed input.
"""

from __future__ import annotations

import json as _stdlib_json
from collections.abc import Callable
from typing import Any

__all__ = ["BACKEND", "dumps", "loads"]


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

dumps: Callable[[Any], bytes]
"""Serialise an object to compact UTF-8 JSON ``bytes``."""
loads: Callable[[bytes | bytearray | memoryview | str], Any]
"""Parse JSON from ``bytes``, ``bytearray``, ``memoryview`` or ``str``."""

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is installed in the dev environment
    BACKEND = "json"
    dumps = _stdlib_dumps
    loads = _stdlib_loads
else:
    BACKEND = "orjson"
    dumps = orjson.dumps
    loads = orjson.loads
