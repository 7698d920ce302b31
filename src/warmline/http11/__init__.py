"""Sans-I/O HTTP/1.1: bytes in, objects out.

No sockets, no clocks, no awaits. :class:`RequestWriter` turns a request into
one ``bytes`` object; :class:`ResponseReader` is fed whatever bytes arrived, in
any split, and hands back a complete :class:`Response` or ``None`` (need more);
:func:`make_decoder` undoes a body's content codings incrementally.
The asyncio and blocking shells share these and never copy them.
"""

from warmline.http11._decoders import Decoder, accept_encoding, make_decoder
from warmline.http11._headers import Headers
from warmline.http11._reader import (
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    ResponseReader,
)
from warmline.http11._response import Response
from warmline.http11._writer import RequestWriter

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEAD_SIZE",
    "Decoder",
    "Headers",
    "RequestWriter",
    "Response",
    "ResponseReader",
    "accept_encoding",
    "make_decoder",
]
