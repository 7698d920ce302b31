"""Incremental, bounded decoders for a response body's content codings.

Sans-I/O like the rest of :mod:`warmline.http11`: bytes in, decoded bytes
out. :func:`make_decoder` reads a ``Content-Encoding`` value and returns a
:class:`Decoder` (or ``None`` when there is nothing to decode); the shells
feed it the body as it arrives (chunked coding already removed) and call
:meth:`Decoder.flush` at the end of the body.

Codings: ``gzip`` (and its alias ``x-gzip``, RFC 9110 §8.4.1.3), ``deflate``,
``br`` (extra ``brotli``), ``zstd`` (extra ``zstd``, or the standard library
from Python 3.14), ``identity``, and stacks of them: ``gzip, br`` was gzipped
then brotli-compressed, so it is decoded br first (RFC 9110 §8.4).

Choices, and why:

* **Bounded output.** The decoded size is counted as it is produced and may not
  exceed ``max_size``: every backend is asked for at most the room left plus
  one byte (zlib's ``max_length``, zstd's ``max_length``, brotli's
  ``output_buffer_limit``), so a decompression bomb stops with
  :class:`~warmline.errors.ResponseTooLarge` after producing at most
  ``max_size + 1`` bytes (brotli's C binding may overshoot its limit by one
  internal block, ~32 KiB, or up to 2x for large limits). Inner layers of a stack
  decode in 64 KiB steps, so a bomb inside a bomb stays bounded too.
* **deflate** is meant to be zlib-wrapped (RFC 9110 §8.4.1.2), but some servers
  send raw deflate. Like browsers and curl, both are accepted: the first two
  bytes decide (a zlib header has compression method 8, a window of at most
  32 KiB, no preset dictionary and a multiple-of-31 check value, RFC 1950
  §2.2), anything else is read as raw deflate (RFC 1951). Trying zlib and
  falling back on error (urllib3, httpx) gives the same answer on real streams.
* **gzip** accepts several members one after the other, as RFC 1952 §2.2 and
  Python's ``gzip`` module do. Bytes after the end of a deflate, br or zstd
  stream, or after a gzip member that do not start another member, are a
  :class:`~warmline.errors.DecodingError` (the body is not what its coding
  says; guessing is how corrupt data passes silently).
* **zstd** frames may follow one another (RFC 8878 §3.1). The window the
  decoder will allocate is capped at the larger of 8 MiB (RFC 9659 §3: what a
  decoder must support) and ``max_size``: a frame asking for more memory than the
  body may hold is a :class:`~warmline.errors.DecodingError` before anything
  is allocated.
* **Truncation.** :meth:`Decoder.flush` raises :class:`DecodingError` when a
  stream did not reach its end (a gzip member without its trailer, a zstd
  frame cut short, ...). An entirely empty body is accepted as empty, whatever
  its coding says: servers send ``Content-Encoding: gzip`` on empty 200s.
* **Unsupported codings** (unknown names, br or zstd without their package,
  more than :data:`MAX_CODINGS` layers): :func:`make_decoder` raises
  :class:`DecodingError` naming the coding, before any byte is consumed. The
  shells then keep the body as sent with its header intact and raise that
  error only when decoded content is asked for. aiohttp and httpx pass unknown
  codings through silently; warmline passes the bytes through too, but never
  presents them as decoded.

Backends, measured with ``uv run python -m benchmarks.bench_decoders``
(CPython 3.11.7, 2-core VM, thread CPU time, fastest of 40 rounds; one call
= a new decompressor plus the whole body; a 1 KiB JSON ticker list and a
1 MiB one; full table in :mod:`warmline._bench.micro.decoders`)::

    scenario     backend              ns/call      MB/s
    gzip 1 KiB   zlib                   3 156       324
                 zlib-ng                2 629       389
                 isal                   2 790       367
                 warmline (on isal)     4 363       235
    gzip 1 MiB   zlib               2 398 364       437
                 zlib-ng            1 590 991       659
                 isal               1 042 462     1 006
                 warmline (on isal) 1 024 568     1 023
    br 1 KiB     brotli                 3 001       341
                 brotlicffi            15 299        67
    br 1 MiB     brotli             1 323 028       793
                 brotlicffi         1 675 255       626
    zstd 1 KiB   backports.zstd        18 057        57
                 zstandard              1 673       612
    zstd 1 MiB   backports.zstd       639 433     1 640
                 zstandard            627 963     1 670

gzip/deflate: ISA-L (``isal.isal_zlib``) is 2.3x faster than zlib on large
bodies and zlib-ng 1.5x; on a 1 KiB body all three are within 20% (the
setup of a decompressor dominates). Both speak zlib's API (``max_length``,
``unconsumed_tail``, ``unused_data``), so the first installed of isal,
zlib-ng, zlib is used, chosen once on first use: ``isal`` belongs in the
``fast`` extra. warmline's own cost on top (parse the header, build the
decoder, count, check the end) is ~1.5 us per response.

br: the ``brotli`` C binding (5x faster on small bodies) is preferred to
``brotlicffi`` (for PyPy); both need 1.2 or later for ``output_buffer_limit``
(an older one counts as missing).

zstd: ``compression.zstd`` (Python 3.14+) or its backport ``backports.zstd``
(extra ``zstd``). They bound each call's output (``max_length``), as a bomb
needs; ``zstandard``'s ``decompressobj`` cannot, and ``pyzstd`` is now a
wrapper around the backport. Their catch: a new decompression context per
response costs ~16 us (``zstandard`` reuses one), so on small bodies zstd is
~6x slower than gzip here; it pays off only on large bodies. It is
advertised last in :func:`accept_encoding`, and only when the extra is
installed.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Protocol

from warmline.errors import DecodingError, ResponseTooLarge

__all__ = [
    "MAX_CODINGS",
    "Decoder",
    "accept_encoding",
    "available_codings",
    "gzip_backend",
    "make_decoder",
]

# At most this many content codings in one Content-Encoding stack. Real
# servers apply one; more than a handful is an attack on the decoder (curl
# refuses more than 5 too).
MAX_CODINGS = 5

# Output per step of an inner layer of a stack: bounds the memory between
# layers without a call per tiny piece.
_STEP = 64 * 1024

# RFC 9659 §3: a zstd decoder must support windows of 8 MiB (2**23).
_ZSTD_MIN_WINDOW_LOG = 23

_BROTLI_HINT = "pip install 'warmline[brotli]'"
_ZSTD_HINT = "pip install 'warmline[zstd]'"


class _Codec(Protocol):
    """One layer of decoding. ``step`` gets new input (or ``b""`` to continue)."""

    more: bool  # the last step stopped at max_length: call step(b"", n) again

    def step(self, data: bytes, max_length: int) -> bytes: ...

    def end(self) -> None: ...


# -- gzip and deflate ----------------------------------------------------------------


class _ZlibAPI(Protocol):
    """What zlib, zlib_ng.zlib_ng and isal.isal_zlib have in common."""

    error: type[Exception]

    def decompressobj(self, wbits: int = ...) -> Any: ...


_gzip_module: Any = None  # the chosen backend module, set on first use


def gzip_backend() -> tuple[str, _ZlibAPI]:
    """The gzip/deflate backend in use, as ``(name, module)``: isal, zlib-ng or zlib."""
    global _gzip_module
    if _gzip_module is None:
        _gzip_module = _pick_gzip_backend()
    return _gzip_module.__name__.rpartition(".")[2], _gzip_module


def _pick_gzip_backend() -> ModuleType:
    # Fastest first (see the module docstring for the figures).
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        return zlib_ng
    except ImportError:
        return zlib


class _Inflate:
    """gzip (wbits 31), zlib-wrapped deflate (15) or raw deflate (-15).

    For ``deflate`` (``wbits=0`` at first) the first two bytes pick zlib or raw.
    """

    __slots__ = ("_api", "_fed", "_obj", "_pending", "_wbits", "more")

    def __init__(self, api: _ZlibAPI, wbits: int) -> None:
        self._api = api
        self._wbits = wbits
        self._obj: Any = api.decompressobj(wbits) if wbits else None
        self._pending = b""  # input not consumed yet (a new member, or the sniffed bytes)
        self._fed = False
        self.more = False

    @property
    def name(self) -> str:
        return "gzip" if self._wbits == 31 else "deflate"

    def step(self, data: bytes, max_length: int) -> bytes:
        obj = self._obj
        if self._pending or not data or obj is None or obj.eof:
            obj, data = self._prepare(data)
            if obj is None:
                return b""
        else:
            self._fed = True
        try:
            out: bytes = obj.decompress(data, max_length)
        except self._api.error as exc:
            raise DecodingError(f"corrupt {self.name} stream: {exc}") from exc
        if obj.eof:
            # Input after the end goes through step() again: another member.
            self._pending = obj.unused_data
            self.more = bool(self._pending)
        else:
            self._pending = obj.unconsumed_tail
            # Output that filled max_length may have more behind it even with
            # no input left over: inflate keeps pending output internally.
            self.more = len(out) >= max_length
        return out

    def _prepare(self, data: bytes) -> tuple[Any, bytes]:
        """The uncommon cases of step(): held input, no input, a stream's start or end.

        Returns:
            The decompressor to call with the returned data, or ``None`` when
            there is nothing to do yet.
        """
        if self._pending:
            data = self._pending + data
            self._pending = b""
        elif not data:
            if not self.more:
                return None, data
        else:
            self._fed = True
        obj = self._obj
        if obj is None:  # deflate, flavour not known yet
            return self._sniff(data), data
        if obj.eof:
            return self._next_member(data), data
        return obj, data

    def _sniff(self, data: bytes) -> Any:
        """Pick zlib-wrapped or raw deflate from the first two bytes (RFC 1950 §2.2)."""
        if len(data) < 2:
            self._pending = data
            self.more = False
            return None
        cmf, flg = data[0], data[1]
        zlib_header = cmf & 0x0F == 8 and cmf >> 4 <= 7 and not flg & 0x20
        wbits = 15 if zlib_header and (cmf << 8 | flg) % 31 == 0 else -15
        self._wbits = wbits
        self._obj = self._api.decompressobj(wbits)
        return self._obj

    def _next_member(self, data: bytes) -> Any:
        """Bytes after the end of the stream: another gzip member, or an error."""
        if not data:
            self.more = False
            return None
        if self._wbits != 31:
            raise DecodingError(f"{len(data)} bytes after the end of the {self.name} stream")
        self._obj = self._api.decompressobj(31)
        return self._obj

    def end(self) -> None:
        if self._fed and (self._obj is None or not self._obj.eof or self._pending):
            raise DecodingError(f"truncated {self.name} stream")


# -- br ------------------------------------------------------------------------------


class _Brotli:
    """br (RFC 7932) on ``brotli`` or ``brotlicffi`` 1.2+."""

    __slots__ = ("_error", "_fed", "_obj", "more")

    def __init__(self, module: Any) -> None:
        self._obj = module.Decompressor()
        self._error: type[Exception] = module.error
        self._fed = False
        self.more = False

    def step(self, data: bytes, max_length: int) -> bytes:
        obj = self._obj
        if data:
            if obj.is_finished():
                raise DecodingError(f"{len(data)} bytes after the end of the br stream")
            self._fed = True
        elif not self.more:
            return b""
        try:
            out: bytes = obj.process(data, output_buffer_limit=max_length)
        except self._error as exc:
            raise DecodingError(f"corrupt br stream: {exc}") from exc
        # The C binding can hold output back even when it says it can take
        # more input; it then has filled its buffer to the limit.
        self.more = len(out) >= max_length or not obj.can_accept_more_data()
        return out

    def end(self) -> None:
        if self._fed and not self._obj.is_finished():
            raise DecodingError("truncated br stream")


# -- zstd ----------------------------------------------------------------------------


class _Zstd:
    """zstd (RFC 8878) on ``compression.zstd`` or ``backports.zstd``; frames may follow."""

    __slots__ = ("_fed", "_module", "_obj", "_options", "_pending", "more")

    def __init__(self, module: Any, max_size: int) -> None:
        param = module.DecompressionParameter.window_log_max
        low, high = param.bounds()
        window_log = min(max(_ZSTD_MIN_WINDOW_LOG, (max_size - 1).bit_length(), low), high)
        self._module = module
        self._options = {param: window_log}
        self._obj = module.ZstdDecompressor(options=self._options)
        self._pending = b""  # the start of the next frame
        self._fed = False
        self.more = False

    def step(self, data: bytes, max_length: int) -> bytes:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        elif not data:
            if not self.more:
                return b""
        else:
            self._fed = True
        obj = self._obj
        if obj.eof:
            if not data:
                self.more = False
                return b""
            obj = self._obj = self._module.ZstdDecompressor(options=self._options)
        try:
            out: bytes = obj.decompress(data, max_length)
        except self._module.ZstdError as exc:
            raise DecodingError(f"corrupt zstd stream: {exc}") from exc
        if obj.eof:
            self._pending = obj.unused_data
            self.more = bool(self._pending)
        else:
            self.more = not obj.needs_input
        return out

    def end(self) -> None:
        if self._fed and (not self._obj.eof or self._pending):
            raise DecodingError("truncated zstd stream")


# -- optional modules ------------------------------------------------------------------

_MISSING = object()
_brotli_module: Any = None
_zstd_module: Any = None


def _load_brotli() -> Any:
    """The brotli module to use, or ``_MISSING``; imported once, on first need."""
    global _brotli_module
    if _brotli_module is None:
        _brotli_module = _first_usable_brotli()
    return _brotli_module


def _first_usable_brotli() -> Any:
    # The C binding first: faster (see the benchmark); brotlicffi is for PyPy.
    for name in ("brotli", "brotlicffi"):
        try:
            module = __import__(name)
            # 1.2 added output_buffer_limit, without which a bomb cannot be
            # stopped with bounded memory; an older one counts as missing.
            module.Decompressor().process(b"", output_buffer_limit=1)
        except Exception:  # ImportError, or TypeError/AttributeError: too old
            continue
        return module
    return _MISSING


def _load_zstd() -> Any:
    """``compression.zstd`` (3.14+) or ``backports.zstd``, or ``_MISSING``."""
    global _zstd_module
    if _zstd_module is None:
        try:
            from compression import zstd  # type: ignore[import-not-found,unused-ignore]

            _zstd_module = zstd
        except ImportError:
            try:
                from backports import zstd  # type: ignore[import-not-found,no-redef,unused-ignore]

                _zstd_module = zstd
            except ImportError:
                _zstd_module = _MISSING
    return _zstd_module


def _gzip_codec(max_size: int) -> _Codec:
    return _Inflate(_gzip_module or gzip_backend()[1], 31)


def _deflate_codec(max_size: int) -> _Codec:
    return _Inflate(_gzip_module or gzip_backend()[1], 0)


def _br_codec(max_size: int) -> _Codec:
    return _Brotli(_load_brotli())


def _zstd_codec(max_size: int) -> _Codec:
    return _Zstd(_load_zstd(), max_size)


_FACTORIES: dict[str, Callable[[int], _Codec]] = {
    "gzip": _gzip_codec,
    "deflate": _deflate_codec,
    "br": _br_codec,
    "zstd": _zstd_codec,
}
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3
_LOADERS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "br": (_load_brotli, "brotli (1.2 or later) or brotlicffi", _BROTLI_HINT),
    "zstd": (_load_zstd, "backports.zstd (built into Python 3.14+)", _ZSTD_HINT),
}


def available_codings() -> tuple[str, ...]:
    """The content codings this installation decodes, in preference order."""
    names = ["gzip", "deflate"]
    names.extend(name for name, (load, _, _) in _LOADERS.items() if load() is not _MISSING)
    return tuple(names)


_accept_encoding: bytes | None = None


def accept_encoding() -> bytes:
    """The ``Accept-Encoding`` value for what is installed, e.g. ``b"gzip, deflate, br, zstd"``.

    Computed once (it imports the optional packages to check them).
    """
    global _accept_encoding
    if _accept_encoding is None:
        _accept_encoding = ", ".join(available_codings()).encode("ascii")
    return _accept_encoding


# -- the public decoder ----------------------------------------------------------------

# Content-Encoding values already parsed -> their codings, in decoding order.
# A server repeats one or two values; bounded like the reader's memos.
_PARSED: dict[str | bytes, tuple[str, ...]] = {}
_PARSED_MAX_ENTRIES = 64


def _parse_codings(value: str | bytes) -> tuple[str, ...]:
    """The codings to undo, last applied first; raises DecodingError for any we cannot."""
    codings = _PARSED.get(value)
    if codings is not None:
        return codings
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    names = []
    for item in text.split(","):  # RFC 9110 §5.6.1: empty list elements are allowed
        name = item.strip(" \t").lower()
        name = _ALIASES.get(name, name)
        if not name or name == "identity":
            continue
        if name not in _FACTORIES:
            raise DecodingError(f"unsupported Content-Encoding {name[:64]!r}")
        _check_installed(name)
        names.append(name)
    if len(names) > MAX_CODINGS:
        raise DecodingError(f"more than {MAX_CODINGS} content codings: {text[:128]!r}")
    codings = tuple(reversed(names))
    if len(_PARSED) >= _PARSED_MAX_ENTRIES:
        _PARSED.clear()
    _PARSED[value] = codings
    return codings


def _check_installed(name: str) -> None:
    loader = _LOADERS.get(name)
    if loader is not None and loader[0]() is _MISSING:
        raise DecodingError(
            f"Content-Encoding {name} needs {loader[1]}, which is not installed: {loader[2]}"
        )


class Decoder:
    """Undo the content codings of one response body, incrementally and within a size limit.

    Made by :func:`make_decoder`. Feed it the body (after chunked decoding) in
    any split with :meth:`feed`, then call :meth:`flush` once at the end. After
    it raised, a decoder is spent: discard it (and the connection's body).

    Attributes:
        codings: The codings being undone, in the order they are undone.
        size: Decoded bytes produced so far.

    Example:
        >>> import gzip
        >>> decoder = make_decoder("gzip", max_size=1024)
        >>> decoder.feed(gzip.compress(b"hello")) + decoder.flush()
        b'hello'
    """

    __slots__ = ("_codecs", "_max_size", "codings", "size")

    def __init__(self, codings: tuple[str, ...], *, max_size: int) -> None:
        """Prefer :func:`make_decoder`, which parses and checks the header.

        Args:
            codings: Supported coding names, in the order to undo them.
            max_size: Most decoded bytes allowed in total.
        """
        if max_size < 0:
            raise ValueError("max_size must not be negative")
        self.codings = codings
        if len(codings) == 1:
            self._codecs: list[_Codec] = [_FACTORIES[codings[0]](max_size)]
        else:
            self._codecs = [_FACTORIES[name](max_size) for name in codings]
        self._max_size = max_size
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body; returns what it decodes to (maybe ``b""``).

        Raises:
            DecodingError: The data is not valid for its coding.
            ResponseTooLarge: The decoded body exceeds ``max_size``; at most
                ``max_size + 1`` decoded bytes were produced.
        """
        codecs = self._codecs
        if len(codecs) == 1:  # the common case: one call, no generator
            codec = codecs[0]
            room = self._max_size - self.size
            out = codec.step(data, room + 1)
            if len(out) > room:
                raise ResponseTooLarge(f"decoded body larger than {self._max_size} bytes")
            self.size += len(out)
            if codec.more:
                return out + b"".join(self._pump(0, b"", self._max_size + 1))
            return out
        return b"".join(self._pump(0, data, self._max_size + 1))

    def iter_feed(self, data: bytes, chunk_size: int) -> Iterator[bytes]:
        """Like :meth:`feed`, but yield the output in pieces of about ``chunk_size`` bytes.

        For streaming: a small input can decode to ~1000x its size (deflate's
        ratio limit), so this keeps memory at one piece. Consume it fully
        before the next call. Pieces may overshoot ``chunk_size`` by one
        internal block with the ``brotli`` binding.
        """
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        return self._pump(0, data, chunk_size)

    def flush(self) -> bytes:
        """End of the body: check that every stream was complete.

        Returns:
            Any remaining output (currently always ``b""``: :meth:`feed`
            returns all it can).

        Raises:
            DecodingError: A stream is truncated (an empty body is accepted).
        """
        for codec in self._codecs:
            codec.end()
        return b""

    def _pump(self, index: int, data: bytes, size: int) -> Iterator[bytes]:
        """Push ``data`` through codecs[index:], yielding final output in steps of ``size``."""
        codecs = self._codecs
        codec = codecs[index]
        last = index == len(codecs) - 1
        while True:
            if last:
                out = codec.step(data, min(size, self._max_size - self.size + 1))
                if out:
                    self._count(out)
                    yield out
            else:
                out = codec.step(data, _STEP)
                if out:
                    yield from self._pump(index + 1, out, size)
            if not codec.more:
                return
            data = b""

    def _count(self, out: bytes) -> None:
        size = self.size + len(out)
        if size > self._max_size:
            raise ResponseTooLarge(f"decoded body larger than {self._max_size} bytes")
        self.size = size

    def __repr__(self) -> str:
        return f"<Decoder {', '.join(self.codings)} {self.size}/{self._max_size} bytes>"


def make_decoder(content_encoding: str | bytes | None, *, max_size: int) -> Decoder | None:
    """A decoder for a response's ``Content-Encoding``, or ``None`` if none is needed.

    Args:
        content_encoding: The field's value (several fields joined with
            commas, RFC 9110 §5.3), as received; ``None`` when absent.
        max_size: Most decoded bytes allowed (the client's ``max_body_size``).

    Returns:
        ``None`` when the value is absent, empty or only ``identity``.

    Raises:
        DecodingError: A coding is unknown, needs a package that is not
            installed (the message names the ``pip install``), or the stack is
            deeper than :data:`MAX_CODINGS`. Raised before any byte is
            consumed: the body can still be returned as sent.
    """
    if not content_encoding:
        return None
    codings = _PARSED.get(content_encoding) or _parse_codings(content_encoding)
    if not codings:
        return None
    return Decoder(codings, max_size=max_size)
