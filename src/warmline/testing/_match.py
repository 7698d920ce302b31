"""Recorded requests and the matchers that select them.

A matcher answers one question about a :class:`RecordedRequest`:
``explain(request)`` returns None when the request matches, else one line
saying why not (``path: expected '/ticker', got '/time'``). Those lines are
what ``MockServer.verify()`` and the 404 of an unmatched request show, so a
failing test reads as a diff of what was expected against what arrived.

Values are compared with a *value spec*: a ``str`` (exact), a compiled
``re.Pattern`` (``fullmatch``; build one with :func:`regex`) or a callable
``(str) -> bool``.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

if TYPE_CHECKING:
    from warmline.testing._server import Expectation

__all__ = [
    "ABSENT",
    "Matcher",
    "RecordedRequest",
    "RequestHeaders",
    "ValueSpec",
    "body",
    "header",
    "json_equals",
    "json_subset",
    "method",
    "path",
    "predicate",
    "query",
    "regex",
]

ValueSpec: TypeAlias = "str | re.Pattern[str] | Callable[[str], bool]"


class _Absent:
    """Sentinel: the query parameter or header must not be present."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
_NO_JSON: Final = object()


class RequestHeaders(Mapping[str, str]):
    """The request's header fields, case-insensitive; repeats joined with ``", "``.

    ``items_raw`` keeps every field as received, in order, names as sent.
    """

    __slots__ = ("_folded", "items_raw")

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.items_raw: tuple[tuple[str, str], ...] = tuple(items)
        folded: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            folded[key] = f"{folded[key]}, {value}" if key in folded else value
        self._folded = folded

    def __getitem__(self, name: str) -> str:
        return self._folded[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._folded

    def __iter__(self) -> Iterator[str]:
        return iter(self._folded)

    def __len__(self) -> int:
        return len(self._folded)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in the order received."""
        key = name.lower()
        return [v for n, v in self.items_raw if n.lower() == key]

    def __repr__(self) -> str:
        return f"RequestHeaders({list(self.items_raw)!r})"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the mock server received, as the journal keeps it.

    Attributes:
        index: Position in the journal (0 for the first request).
        method: Request method, e.g. ``"GET"``.
        target: The request target as sent, e.g. ``"/ticker?symbol=BTCUSDT"``.
        path: The target's path, not percent-decoded.
        query: Query parameters, percent-decoded; a name maps to all its values.
        headers: Case-insensitive header fields.
        body: The body, de-chunked.
        http_version: ``"1.1"`` or ``"1.0"``.
        connection_id: Server-side id of the connection it came on (1, 2...);
            requests on the same kept-alive connection share it.
        time: ``time.monotonic()`` when the request was fully read.
        tls: Whether the connection was TLS.
        transport: ``"tcp"`` or ``"unix"``.
        expectation: The expectation that answered it; None when unmatched.
    """

    index: int
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: RequestHeaders
    body: bytes
    http_version: str
    connection_id: int
    time: float
    tls: bool = False
    transport: str = "tcp"
    expectation: Expectation | None = field(default=None, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return _json.loads(self.body)

    def summary(self) -> str:
        """One line for diffs: ``#3 conn 2 GET /ticker?symbol=BTCUSDT (12 B)``."""
        size = f" ({len(self.body)} B)" if self.body else ""
        return f"#{self.index} conn {self.connection_id} {self.method} {self.target}{size}"


# -- value specs ---------------------------------------------------------------


def regex(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A value spec that matches when the whole value matches ``pattern``."""
    return re.compile(pattern, flags)


def _check_spec(spec: object, what: str) -> None:
    if not (isinstance(spec, str | re.Pattern) or callable(spec)):
        raise TypeError(f"{what} must be a str, a re.Pattern or a callable, got {spec!r}")


def _spec_matches(spec: ValueSpec, value: str) -> bool:
    if isinstance(spec, str):
        return spec == value
    if isinstance(spec, re.Pattern):
        return spec.fullmatch(value) is not None
    return bool(spec(value))


def _spec_text(spec: object) -> str:
    if isinstance(spec, re.Pattern):
        return f"/{spec.pattern}/"
    if callable(spec) and not isinstance(spec, str):
        return getattr(spec, "__name__", repr(spec))
    return repr(spec)


# -- matchers --------------------------------------------------------------------


class Matcher:
    """Base of every matcher: override :meth:`explain` and :meth:`describe`."""

    def explain(self, request: RecordedRequest) -> str | None:
        """None when ``request`` matches; else one line saying why it does not."""
        raise NotImplementedError

    def describe(self) -> str:
        """What this matcher expects, e.g. ``method GET``."""
        raise NotImplementedError

    def matches(self, request: RecordedRequest) -> bool:
        """Whether ``request`` matches."""
        return self.explain(request) is None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class _Method(Matcher):
    def __init__(self, spec: ValueSpec) -> None:
        _check_spec(spec, "method")
        self.spec = spec.upper() if isinstance(spec, str) else spec

    def explain(self, request: RecordedRequest) -> str | None:
        if _spec_matches(self.spec, request.method):
            return None
        return f"method: expected {_spec_text(self.spec)}, got {request.method!r}"

    def describe(self) -> str:
        return f"method {_spec_text(self.spec)}"


class _Path(Matcher):
    def __init__(self, spec: ValueSpec) -> None:
        _check_spec(spec, "path")
        self.spec = spec

    def explain(self, request: RecordedRequest) -> str | None:
        if _spec_matches(self.spec, request.path):
            return None
        return f"path: expected {_spec_text(self.spec)}, got {request.path!r}"

    def describe(self) -> str:
        return f"path {_spec_text(self.spec)}"


def _values_explain(what: str, spec: object, values: list[str]) -> str | None:
    """Shared rule of query and header matching (see :func:`query`)."""
    if spec is ABSENT:
        return None if not values else f"{what}: expected absent, got {values!r}"
    if not values:
        return f"{what}: expected {_spec_text(spec)}, missing"
    if isinstance(spec, list | tuple):
        return None if list(spec) == values else f"{what}: expected {list(spec)!r}, got {values!r}"
    if any(_spec_matches(spec, v) for v in values):  # type: ignore[arg-type]
        return None
    got = values[0] if len(values) == 1 else values
    return f"{what}: expected {_spec_text(spec)}, got {got!r}"


def _check_values(specs: Mapping[str, object], what: str) -> None:
    for name, spec in specs.items():
        if spec is ABSENT:
            continue
        if isinstance(spec, list | tuple):
            if not all(isinstance(v, str) for v in spec):
                raise TypeError(f"{what} {name!r}: a list of values must hold only str")
            continue
        _check_spec(spec, f"{what} {name!r}")


class _Query(Matcher):
    def __init__(self, params: Mapping[str, object], exact: bool) -> None:
        _check_values(params, "query parameter")
        self.params = dict(params)
        self.exact = exact

    def explain(self, request: RecordedRequest) -> str | None:
        for name, spec in self.params.items():
            reason = _values_explain(f"query {name}", spec, request.query.get(name, []))
            if reason:
                return reason
        if self.exact and (extra := sorted(set(request.query) - set(self.params))):
            return f"query: unexpected parameters {extra!r}"
        return None

    def describe(self) -> str:
        parts = ", ".join(f"{k}={_spec_text(v)}" for k, v in self.params.items())
        return f"query {'exactly ' if self.exact else ''}{{{parts}}}"


class _Header(Matcher):
    def __init__(self, name: str, spec: object) -> None:
        _check_values({name: spec}, "header")
        self.name = name
        self.spec = spec

    def explain(self, request: RecordedRequest) -> str | None:
        return _values_explain(f"header {self.name}", self.spec, request.headers.get_all(self.name))

    def describe(self) -> str:
        return f"header {self.name}: {_spec_text(self.spec)}"


class _Body(Matcher):
    def __init__(self, spec: bytes | str | re.Pattern[str] | re.Pattern[bytes]) -> None:
        if not isinstance(spec, bytes | str | re.Pattern):
            raise TypeError(f"body must be bytes, str or a re.Pattern, got {spec!r}")
        self.spec = spec.encode() if isinstance(spec, str) else spec

    def explain(self, request: RecordedRequest) -> str | None:
        spec = self.spec
        if isinstance(spec, bytes):
            ok = spec == request.body
        elif isinstance(spec.pattern, bytes):
            ok = spec.fullmatch(request.body) is not None
        else:
            ok = spec.fullmatch(request.text) is not None
        if ok:
            return None
        return f"body: expected {_spec_text(spec)}, got {_short(request.body)}"

    def describe(self) -> str:
        return f"body {_spec_text(self.spec)}"


def _short(data: bytes, limit: int = 120) -> str:
    return repr(data) if len(data) <= limit else f"{data[:limit]!r}... ({len(data)} B)"


def _parse_json(request: RecordedRequest) -> tuple[Any, str | None]:
    if not request.body:
        return _NO_JSON, "body: expected JSON, got an empty body"
    try:
        return request.json(), None
    except ValueError:
        return _NO_JSON, f"body: expected JSON, got {_short(request.body)}"


class _JsonEquals(Matcher):
    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def explain(self, request: RecordedRequest) -> str | None:
        actual, error = _parse_json(request)
        if error:
            return error
        return None if actual == self.expected else _json_diff(self.expected, actual, "$", False)

    def describe(self) -> str:
        return f"json == {self.expected!r}"


class _JsonSubset(Matcher):
    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def explain(self, request: RecordedRequest) -> str | None:
        actual, error = _parse_json(request)
        return error or _json_diff(self.expected, actual, "$", True)

    def describe(self) -> str:
        return f"json contains {self.expected!r}"


def _json_diff(expected: Any, actual: Any, where: str, subset: bool) -> str | None:
    """The first difference, as ``json $.a.b: expected ..., got ...``; None if none.

    With ``subset``, objects in ``expected`` may leave out keys of ``actual``;
    arrays must have the same length; a ``re.Pattern`` matches a string.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"json {where}: expected an object, got {actual!r}"
        if not subset and (extra := sorted(set(actual) - set(expected))):
            return f"json {where}: unexpected keys {extra!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"json {where}.{key}: expected {value!r}, missing"
            if reason := _json_diff(value, actual[key], f"{where}.{key}", subset):
                return reason
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"json {where}: expected {expected!r}, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            if reason := _json_diff(e, a, f"{where}[{i}]", subset):
                return reason
        return None
    if isinstance(expected, re.Pattern):
        ok = isinstance(actual, str) and expected.fullmatch(actual) is not None
    else:
        # bool is an int in Python but not in JSON: true must not match 1.
        ok = expected == actual and isinstance(expected, bool) == isinstance(actual, bool)
    return None if ok else f"json {where}: expected {_spec_text(expected)}, got {actual!r}"


class _Predicate(Matcher):
    def __init__(self, fn: Callable[[RecordedRequest], bool], description: str) -> None:
        self.fn = fn
        self.description = description

    def explain(self, request: RecordedRequest) -> str | None:
        return None if self.fn(request) else f"{self.description}: false"

    def describe(self) -> str:
        return self.description


# -- the public constructors -----------------------------------------------------


def method(spec: ValueSpec) -> Matcher:
    """Match the request method (a str is compared upper-cased)."""
    return _Method(spec)


def path(spec: ValueSpec) -> Matcher:
    """Match the request path (the target before ``?``, not percent-decoded)."""
    return _Path(spec)


def query(params: Mapping[str, object], *, exact: bool = False) -> Matcher:
    """Match query parameters (percent-decoded).

    Each name maps to a value spec (matches when any of the parameter's
    values matches), a list of str (the values, all of them, in order), or
    :data:`ABSENT`. With ``exact``, no other parameter may be present.
    """
    return _Query(params, exact)


def header(name: str, spec: object) -> Matcher:
    """Match a header field (name case-insensitive); the value as in :func:`query`."""
    return _Header(name, spec)


def body(spec: bytes | str | re.Pattern[str] | re.Pattern[bytes]) -> Matcher:
    """Match the whole body: bytes or str exactly, a pattern with ``fullmatch``."""
    return _Body(spec)


def json_equals(expected: Any) -> Matcher:
    """Match a JSON body equal to ``expected`` (after parsing; key order ignored)."""
    return _JsonEquals(expected)


def json_subset(expected: Any) -> Matcher:
    """Match a JSON body that contains ``expected`` (objects may have more keys)."""
    return _JsonSubset(expected)


def predicate(fn: Callable[[RecordedRequest], bool], description: str = "predicate") -> Matcher:
    """Match when ``fn(request)`` is true; ``description`` names it in diffs."""
    return _Predicate(fn, description)
