"""Loopback servers for ``warmline bench`` and the tests: granian and nginx.

Not part of the public API. Everything here listens on 127.0.0.1 only.
"""
