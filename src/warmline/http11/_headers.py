"""Case-insensitive, immutable, lazily decoded view over received header fields.

The reader hands over the header fields exactly as they arrived: a list of
``(name, value)`` byte pairs, names in the case the server sent, values with
the optional whitespace stripped (RFC 9112 §5.1). Nothing is decoded until a
caller asks for a field, because most callers read one or two fields of a
response, if any.

Field names and values are decoded as ISO-8859-1 (latin-1), which maps every
byte to one code point and so never fails: RFC 9110 §5.5 says field values
are historically latin-1 and that non-ASCII octets are opaque data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar, overload

__all__ = ["Headers"]

RawFields = Sequence[tuple[bytes, bytes]]
_T = TypeVar("_T")


def _encode_key(key: str) -> bytes | None:
    """Lower-cased latin-1 bytes of ``key``, or ``None`` if no field can match it."""
    try:
        return key.lower().encode("latin-1")
    except (UnicodeEncodeError, AttributeError):
        # A key that is not latin-1 text cannot equal any received name.
        return None


class Headers(Mapping[str, str]):
    """Received header fields: an immutable, case-insensitive ``Mapping[str, str]``.

    Repeated fields are kept in the order received. ``h[name]`` and
    ``h.get(name)`` return the *first* value of a field (like aiohttp's
    ``CIMultiDict``); :meth:`get_all` returns every value. Iteration and
    ``len()`` are over the distinct field names, lower-cased; :meth:`multi_items`
    gives every field with its name as received.

    Lookups scan the raw pairs without decoding them (a response carries a
    handful of fields and is read once or twice); the distinct-key index is only
    built when iterating, measuring or comparing.

    Example:
        >>> h = Headers([(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a=1"),
        ...              (b"set-cookie", b"b=2")])
        >>> h["content-type"], h.get_all("Set-Cookie"), len(h)
        ('text/plain', ['a=1', 'b=2'], 2)
    """

    __slots__ = ("_index", "_raw")

    def __init__(self, raw: RawFields = ()) -> None:
        """Wrap received ``(name, value)`` byte pairs (not copied; do not mutate them)."""
        self._raw = raw
        self._index: dict[str, str] | None = None

    @property
    def raw(self) -> RawFields:
        """The ``(name, value)`` byte pairs as received."""
        return self._raw

    def _find(self, key: str) -> bytes | None:
        # Compare lengths first: it rules out almost every field without
        # lower-casing it.
        target = _encode_key(key)
        if target is None:
            return None
        size = len(target)
        for name, value in self._raw:
            if len(name) == size and name.lower() == target:
                return value
        return None

    def __getitem__(self, key: str) -> str:
        value = self._find(key)
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        """The first value of field ``key`` (any case), or ``default``."""
        value = self._find(key)
        return default if value is None else value.decode("latin-1")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(key) is not None

    def get_all(self, key: str) -> list[str]:
        """Every value of field ``key`` (any case), in the order received; ``[]`` if absent."""
        target = _encode_key(key)
        if target is None:
            return []
        return [v.decode("latin-1") for n, v in self._raw if n.lower() == target]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every field as ``(name, value)``, names as received, in order."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]

    def _first_values(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                if key not in index:
                    index[key] = value.decode("latin-1")
            self._index = index
        return index

    def __iter__(self) -> Iterator[str]:
        """Iterate over the distinct field names, lower-cased, in first-seen order."""
        return iter(self._first_values())

    def __len__(self) -> int:
        """The number of distinct field names (repeated fields count once)."""
        return len(self._first_values())

    def __eq__(self, other: object) -> bool:
        """Equal to another ``Headers`` with the same fields (names compared
        case-insensitively, order of values kept), or to a mapping with the same
        first values."""
        if isinstance(other, Headers):
            mine = [(n.lower(), v) for n, v in self._raw]
            return mine == [(n.lower(), v) for n, v in other._raw]
        if isinstance(other, Mapping):
            theirs = {str(k).lower(): v for k, v in other.items()}
            return self._first_values() == theirs
        return NotImplemented

    # Defining __eq__ makes instances unhashable, like dict; say so explicitly.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.multi_items()!r})"
