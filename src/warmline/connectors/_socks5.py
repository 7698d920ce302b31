"""The SOCKS5 client handshake (RFC 1928, RFC 1929 auth), sans-I/O.

A small state machine: greeting → method selection → (username/password) →
CONNECT → reply. :meth:`Socks5Handshake.start` gives the first bytes to send;
each :meth:`~Socks5Handshake.feed` takes what the proxy sent and gives back
what to send next, until :attr:`~Socks5Handshake.done`. Bytes arrive in any
split: each step waits until its whole message is buffered.

``socks5h://`` sends the origin's name (ATYP 3) and the proxy resolves it;
``socks5://`` sends an address, which the shell resolved (that is I/O) and
passes in as ``host``.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Final

from warmline.connectors._http_connect import authority
from warmline.connectors._proxy import Proxy
from warmline.errors import ProxyError

__all__ = ["REPLY_MEANINGS", "Socks5Handshake"]

_VERSION: Final = 5
_NO_AUTH: Final = 0x00
_USER_PASS: Final = 0x02
_NO_ACCEPTABLE: Final = 0xFF
_CMD_CONNECT: Final = 0x01
_ATYP_IPV4: Final = 0x01
_ATYP_DOMAIN: Final = 0x03
_ATYP_IPV6: Final = 0x04
_ADDRESS_SIZES: Final = {_ATYP_IPV4: 4, _ATYP_IPV6: 16}

# RFC 1928 §6, the REP field.
REPLY_MEANINGS: Final = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


class _Step(enum.Enum):
    METHOD = "method selection"
    AUTH = "authentication"
    REPLY = "CONNECT reply"
    DONE = "done"


class Socks5Handshake:
    """One SOCKS5 CONNECT: :meth:`start`, then :meth:`feed` until :attr:`done`.

    Args:
        proxy: The SOCKS5 proxy (its credentials, if any, are offered with
            RFC 1929 username/password; otherwise only "no authentication").
        host: An IPv4/IPv6 address, or a name (sent as a domain: socks5h).
        port: The origin's port.

    Raises:
        ProxyError: At construction, a name over 255 bytes or not IDNA-encodable.

    Example:
        >>> hs = Socks5Handshake(Proxy("socks5h://127.0.0.1:1080"), "example.com", 443)
        >>> hs.start()
        b'\\x05\\x01\\x00'
        >>> hs.feed(b"\\x05\\x00")
        b'\\x05\\x01\\x00\\x03\\x0bexample.com\\x01\\xbb'
        >>> hs.feed(b"\\x05\\x00\\x00\\x01\\x7f\\x00\\x00\\x01\\x04\\x38"), hs.done
        (b'', True)
    """

    __slots__ = ("_buf", "_proxy", "_request", "_step", "_target", "bound")

    def __init__(self, proxy: Proxy, host: str, port: int) -> None:
        self._proxy = proxy
        self._target = authority(host, port)
        self._request = self._connect_request(host, port)
        self._buf = bytearray()
        self._step = _Step.METHOD
        self.bound: tuple[str, int] | None = None

    @property
    def done(self) -> bool:
        """Whether the tunnel is open."""
        return self._step is _Step.DONE

    def start(self) -> bytes:
        """The greeting: version and the methods offered (RFC 1928 §3)."""
        methods = (_NO_AUTH, _USER_PASS) if self._proxy.credentials else (_NO_AUTH,)
        return bytes((_VERSION, len(methods), *methods))

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the proxy; returns the bytes to send next (may be empty).

        Raises:
            ProxyError: The proxy refused (``status`` is the RFC 1928 reply
                code for a failed CONNECT), rejected the credentials, offered
                no acceptable method, or broke the protocol.
        """
        self._buf += data
        out = b""
        while True:
            if self._step is _Step.DONE:
                if self._buf:
                    raise self._error("sent bytes after its CONNECT reply")
                return out
            step_out = self._advance()
            if step_out is None:
                return out
            out += step_out

    # -- steps ---------------------------------------------------------------
    def _advance(self) -> bytes | None:
        """Run the current step if its message is complete; None if not yet."""
        if self._step is _Step.METHOD:
            return self._on_method()
        if self._step is _Step.AUTH:
            return self._on_auth()
        return self._on_reply()

    def _on_method(self) -> bytes | None:
        msg = self._take(2)
        if msg is None:
            return None
        self._check_version(msg[0], _VERSION)
        method = msg[1]
        if method == _NO_AUTH:
            self._step = _Step.REPLY
            return self._request
        if method == _USER_PASS and self._proxy.credentials:
            self._step = _Step.AUTH
            return self._auth_request()
        if method == _NO_ACCEPTABLE:
            need = "credentials" if not self._proxy.credentials else "another auth method"
            raise self._error(f"accepts none of the offered methods (it needs {need})")
        raise self._error(f"chose method 0x{method:02x}, which was not offered")

    def _on_auth(self) -> bytes | None:
        msg = self._take(2)
        if msg is None:
            return None
        # RFC 1929 §2: the sub-negotiation has its own version, 1.
        self._check_version(msg[0], 1)
        if msg[1] != 0:
            raise self._error(f"rejected the username/password (RFC 1929 status {msg[1]})")
        self._step = _Step.REPLY
        return self._request

    def _on_reply(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 5:
            return None
        self._check_version(buf[0], _VERSION)
        code, atyp = buf[1], buf[3]
        if code != 0:
            meaning = REPLY_MEANINGS.get(code, "unassigned reply code")
            raise self._error(
                f"could not connect: SOCKS5 reply 0x{code:02x} ({meaning})", status=code
            )
        if atyp == _ATYP_DOMAIN:
            size = 1 + buf[4]
        elif atyp in _ADDRESS_SIZES:
            size = _ADDRESS_SIZES[atyp]
        else:
            raise self._error(f"sent a reply with unknown address type {atyp}")
        msg = self._take(4 + size + 2)
        if msg is None:
            return None
        self.bound = _bound_address(atyp, msg[4:-2], struct.unpack("!H", msg[-2:])[0])
        self._step = _Step.DONE
        return b""

    # -- messages ------------------------------------------------------------
    def _auth_request(self) -> bytes:
        user, password = self._proxy.credentials or ("", "")
        u, p = user.encode(), password.encode()
        return bytes((1, len(u))) + u + bytes((len(p),)) + p

    def _connect_request(self, host: str, port: int) -> bytes:
        """VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 §4)."""
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            address = bytes((_ATYP_DOMAIN, *_domain(host, self)))
        else:
            atyp = _ATYP_IPV4 if ip.version == 4 else _ATYP_IPV6
            address = bytes((atyp,)) + ip.packed
        return bytes((_VERSION, _CMD_CONNECT, 0)) + address + struct.pack("!H", port)

    # -- helpers -------------------------------------------------------------
    def _take(self, size: int) -> bytes | None:
        buf = self._buf
        if len(buf) < size:
            return None
        msg = bytes(buf[:size])
        del buf[:size]
        return msg

    def _check_version(self, got: int, want: int) -> None:
        if got != want:
            raise self._error(f"answered with version {got} during {self._step.value}")

    def _error(self, what: str, *, status: int | None = None) -> ProxyError:
        proxy = self._proxy.redacted
        return ProxyError(f"proxy {proxy} {what} (to {self._target})", proxy=proxy, status=status)


def _domain(host: str, hs: Socks5Handshake) -> bytes:
    """Length-prefixed ASCII (IDNA) name; RFC 1928 gives it one length octet."""
    try:
        # ASCII names go as they are (the idna codec would refuse a label
        # like "my_host" that resolvers accept); others are IDNA-encoded.
        name = host.encode("ascii") if host.isascii() else host.encode("idna")
    except UnicodeError:
        raise hs._error("cannot carry this host name (not IDNA-encodable)") from None
    if not 0 < len(name) <= 255:
        raise hs._error("cannot carry a host name over 255 bytes")
    return bytes((len(name),)) + name


def _bound_address(atyp: int, raw: bytes, port: int) -> tuple[str, int]:
    if atyp == _ATYP_DOMAIN:
        return raw[1:].decode("ascii", "replace"), port
    return str(ipaddress.ip_address(raw)), port
