"""The asyncio shell: Connection (an asyncio.Protocol) and ClientPool."""

from warmline.aio._connection import Connection, open_connection
from warmline.aio._pool import ClientPool, ClientSlot

__all__ = ["ClientPool", "ClientSlot", "Connection", "open_connection"]
