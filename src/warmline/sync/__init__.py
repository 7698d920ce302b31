"""The blocking shell: Connection (a socket) and AtomicClientPool (thread-safe)."""

from warmline.sync._connection import Connection, open_connection
from warmline.sync._pool import AtomicClientPool, AtomicClientSlot

__all__ = ["AtomicClientPool", "AtomicClientSlot", "Connection", "open_connection"]
