"""The HTTP CONNECT handshake (RFC 9110 §9.3.6), sans-I/O: bytes in, bytes out.

The client sends ``CONNECT host:port HTTP/1.1`` with ``Host`` and, when the
proxy has credentials, ``Proxy-Authorization: Basic``; the proxy answers with
a response head. Any 2xx opens the tunnel (and has no body, §9.3.6); anything
else is a :class:`~warmline.errors.ProxyError` carrying the status. The head is
parsed strictly and bounded: a proxy that sends more than
:data:`MAX_HEAD_SIZE` bytes without ending its head, or bytes after a 2xx head
(nothing may come before the client speaks inside the tunnel), is an error.
"""

from __future__ import annotations

from typing import Final

from warmline.connectors._proxy import Proxy
from warmline.errors import ProxyError

__all__ = ["MAX_HEAD_SIZE", "HTTPConnectHandshake", "authority"]

# A CONNECT answer is a status line and a few headers; squid's and tinyproxy's
# are under 1 KiB, error pages included in the head they are not. 16 KiB is
# the bound nginx uses for a large header buffer line; past it, a proxy is not
# answering CONNECT.
MAX_HEAD_SIZE: Final = 16 * 1024

# What a reason phrase quoted in an error may contain: visible ASCII and SP,
# cut to this length, so a hostile proxy cannot put control bytes in a log.
_REASON_MAX: Final = 120


def authority(host: str, port: int) -> str:
    """``host:port`` as a request target or Host value (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HTTPConnectHandshake:
    """One CONNECT exchange: :meth:`start`, then :meth:`feed` until :attr:`done`.

    Args:
        proxy: The HTTP(S) proxy (its credentials and extra headers are sent).
        host: The origin's host name or address.
        port: The origin's port.

    Example:
        >>> hs = HTTPConnectHandshake(Proxy("http://127.0.0.1:3128"), "example.com", 443)
        >>> hs.start()[:37]
        b'CONNECT example.com:443 HTTP/1.1\\r\\nHo'
        >>> hs.feed(b"HTTP/1.1 200 Connection established\\r\\n\\r\\n"), hs.done
        (b'', True)
    """

    __slots__ = ("_buf", "_proxy", "_target", "done", "status")

    def __init__(self, proxy: Proxy, host: str, port: int) -> None:
        self._proxy = proxy
        self._target = authority(host, port)
        self._buf = bytearray()
        self.done = False
        self.status: int | None = None

    def start(self) -> bytes:
        """The CONNECT request, to send first."""
        lines = [f"CONNECT {self._target} HTTP/1.1", f"Host: {self._target}"]
        auth = self._proxy.authorization()
        if auth is not None:
            lines.append(f"Proxy-Authorization: {auth}")
        lines.extend(f"{name}: {value}" for name, value in self._proxy.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the proxy; returns bytes to send next (always empty).

        Raises:
            ProxyError: A non-2xx answer (``status`` set), a malformed or
                oversized head, or bytes after the head.
        """
        if self.done:
            raise self._error("sent bytes after its CONNECT answer")
        buf = self._buf
        buf += data
        while not self.done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_SIZE:
                    raise self._error(f"sent a CONNECT answer head over {MAX_HEAD_SIZE} bytes")
                return b""
            head = bytes(buf[:end])
            del buf[: end + 4]
            self._answer(head)
        if buf:
            raise self._error("sent bytes after its CONNECT answer, before the tunnel was used")
        return b""

    def _answer(self, head: bytes) -> None:
        """Judge one response head: 1xx is skipped, 2xx opens, the rest fail."""
        line = head.split(b"\r\n", 1)[0]
        version, _, rest = line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise self._error(f"did not answer CONNECT with HTTP: {_printable(line)!r}")
        status = int(code)
        if status < 200:
            return  # interim response (RFC 9110 §15.2); the final one follows
        self.status = status
        if status >= 300:
            raise self._error(
                f"refused the tunnel: {status} {_printable(reason)}".rstrip(), status=status
            )
        self.done = True

    def _error(self, what: str, *, status: int | None = None) -> ProxyError:
        proxy = self._proxy.redacted
        return ProxyError(
            f"proxy {proxy} {what} (CONNECT {self._target})", proxy=proxy, status=status
        )


def _printable(raw: bytes) -> str:
    """Remote text made safe to quote: visible ASCII and spaces, bounded."""
    text = raw[:_REASON_MAX].decode("ascii", "replace")
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)
