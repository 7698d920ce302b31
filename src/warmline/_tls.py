"""TLS settings shared by both shells: verified by default, never a silent downgrade."""

from __future__ import annotations

import ssl

from warmline._policy import Origin
from warmline.errors import InvalidRequest

__all__ = ["client_context", "describe_tls_error"]

_default_context: ssl.SSLContext | None = None


def _system_context() -> ssl.SSLContext:
    # One verified context per process: building one loads the CA store, which
    # costs milliseconds; contexts are safe to share between connections.
    global _default_context
    if _default_context is None:
        ctx = ssl.create_default_context()
        ctx.set_alpn_protocols(["http/1.1"])
        _default_context = ctx
    return _default_context


def client_context(origin: Origin, tls: ssl.SSLContext | bool | None) -> ssl.SSLContext | None:
    """The SSLContext to connect ``origin`` with, or None for plain TCP.

    Args:
        origin: The pool's origin; ``https`` asks for TLS.
        tls: None for the default (verified with the system's CA store when the
            scheme is https), an ``ssl.SSLContext`` of the caller's (the only way
            to relax verification), or False. ``False`` with an https URL is an
            error: turning TLS off must be said in the URL, never by a flag.
    """
    if tls is None or tls is True:
        return _system_context() if origin.tls else None
    if tls is False:
        if origin.tls:
            raise InvalidRequest("tls=False with an https URL: use an http:// URL for plain TCP")
        return None
    if isinstance(tls, ssl.SSLContext):
        if not origin.tls and origin.uds is None:
            raise InvalidRequest("an SSLContext was given for an http:// URL; use https://")
        return tls
    raise InvalidRequest(f"tls must be an ssl.SSLContext, None or False, got {tls!r}")


def describe_tls_error(exc: BaseException) -> str:
    """A clear one-line reason for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    return f"TLS handshake failed: {exc}"
