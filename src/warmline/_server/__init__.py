"""Loopback servers for ``warmline bench`` and the tests: granian and nginx.

Not part of the public API. Everything here listens on 127.0.0.1 only.

Shipped in the wheel so that the installed ``warmline bench`` and the test
suite share one server setup, at no cost to the library: nothing imports this
package but the bench and the tests, and it imports only the standard
library. granian runs as a child process (``python -m granian``), never in
ours, so it is needed only when a server is started, and only without nginx
(``tests/test_install.py`` checks both in a venv without extras).
"""
