"""Choosing a proxy from the environment (``trust_env=True``), as curl and requests do.

The rules, and where curl and requests (urllib) differ, which one is followed:

* Variables: ``https_proxy`` for https origins, ``http_proxy`` for http
  origins, else ``all_proxy``; ``no_proxy`` lists the exceptions. Each is read
  in lower case first, then upper case: the lower case one wins when both are
  set (curl and urllib agree). An empty value counts as unset.
* ``HTTP_PROXY`` in upper case: curl ignores it always; urllib (so requests)
  ignores it only when ``REQUEST_METHOD`` is set, i.e. inside a CGI script,
  where any client can set it through a ``Proxy:`` request header ("httpoxy").
  warmline follows urllib: honoured, except under CGI.
* A proxy URL without a scheme is ``http://`` (both do this).
* ``no_proxy``: entries separated by commas (and spaces). ``*`` alone skips the
  proxy for every host. An entry matches the host itself or any name under
  it on a dot boundary: ``example.com`` and ``.example.com`` and
  ``*.example.com`` all match ``example.com`` and ``api.example.com`` but not
  ``badexample.com`` (curl and urllib; requests' own suffix test also matches
  ``badexample.com``, which is a known bug there). ``host:port`` matches
  that port only (urllib; curl ignores ports). An IP address matches that
  address; a CIDR block (``10.0.0.0/8``, ``fd00::/8``) matches addresses in
  it (curl since 7.86 for both families, requests IPv4 only); IPv6 may be
  written in brackets. Names are never resolved to test a CIDR block.
  Matching is case-insensitive.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from warmline.connectors._proxy import Proxy

__all__ = ["bypasses_proxy", "proxy_for"]


def proxy_for(
    origin_scheme: str, host: str, port: int, env: Mapping[str, str] = os.environ
) -> Proxy | None:
    """The proxy the environment names for an origin, or None to connect directly.

    Args:
        origin_scheme: ``"http"`` or ``"https"`` (any other: None).
        host: The origin's host name or address (no brackets).
        port: The origin's port.
        env: The environment to read (``os.environ`` by default).

    Raises:
        ValueError: The chosen variable holds an invalid proxy URL (the
            message names the variable, not its value).

    Example:
        >>> env = {"https_proxy": "http://127.0.0.1:3128", "no_proxy": ".internal"}
        >>> proxy_for("https", "api.example.com", 443, env)
        Proxy('http://127.0.0.1:3128')
        >>> proxy_for("https", "db.internal", 443, env) is None
        True
    """
    if origin_scheme not in ("http", "https"):
        return None
    name, url = _lookup(env, f"{origin_scheme}_proxy")
    if not url:
        name, url = _lookup(env, "all_proxy")
    if not url or bypasses_proxy(host, port, _get(env, "no_proxy")):
        return None
    if "://" not in url:
        url = "http://" + url
    try:
        return Proxy(url)
    except ValueError as exc:
        raise ValueError(f"${name}: {exc}") from None


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether a ``no_proxy`` list says to connect to ``host:port`` directly."""
    host = host.strip("[]").rstrip(".").lower()
    ip = _ip(host)
    for raw in no_proxy.replace(",", " ").split():
        entry = raw.lower()
        if entry == "*":
            return True
        if _entry_matches(entry, host, ip, port):
            return True
    return False


def _entry_matches(
    entry: str, host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, port: int
) -> bool:
    if "/" in entry:  # CIDR: only ever matches an address
        return ip is not None and _in_network(ip, entry)
    name, entry_port = _split_port(entry)
    if entry_port is not None and entry_port != port:
        return False
    if ip is not None:
        return _ip(name) == ip
    name = name.removeprefix("*").lstrip(".").rstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def _split_port(entry: str) -> tuple[str, int | None]:
    """``"[::1]:8080"`` -> ``("::1", 8080)``; a bare IPv6 address keeps its colons."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        name, _, port = entry.partition(":")
    else:
        return entry, None
    return name, int(port) if port.isdigit() else None


def _in_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidr: str) -> bool:
    try:
        return ip in ipaddress.ip_network(cidr.strip("[]"), strict=False)
    except ValueError:
        return False  # a bad entry matches nothing, as in curl


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _lookup(env: Mapping[str, str], lower: str) -> tuple[str, str]:
    """``(variable name, value)`` of ``lower`` or its upper case twin."""
    value = env.get(lower)
    if value:
        return lower, value.strip()
    upper = lower.upper()
    if upper == "HTTP_PROXY" and "REQUEST_METHOD" in env:
        return upper, ""  # CGI: a client can set HTTP_PROXY (httpoxy)
    return upper, env.get(upper, "").strip()


def _get(env: Mapping[str, str], lower: str) -> str:
    return _lookup(env, lower)[1]
