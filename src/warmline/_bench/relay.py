"""A TCP relay that delays every 20th response by 50 ms: the ``tail`` scenario's server.

``python -m warmline._bench.relay LISTEN_PORT UPSTREAM_PORT`` listens on
127.0.0.1 and relays each connection to the server on 127.0.0.1. It counts
the request chunks it relays over all connections; the response to every
``EVERY``-th one is held for ``DELAY_S`` before it is passed on, so ~5 % of
responses are slow whichever connection carries them: a hedge sent on
another connection is (19 times in 20) answered at once. A bench client
sends one small request per chunk, so a chunk is a request here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

__all__ = ["DELAY_S", "EVERY", "main"]

EVERY = 20
DELAY_S = 0.05
HOST = "127.0.0.1"
_counter = [0]


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flags: list[int], upward: bool
) -> None:
    try:
        while data := await reader.read(262144):
            if upward:
                _counter[0] += 1
                if _counter[0] % EVERY == 0:
                    flags[0] += 1
            elif flags[0]:
                flags[0] -= 1
                await asyncio.sleep(DELAY_S)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(upstream: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(HOST, upstream)
    except OSError:
        writer.close()
        return
    flags = [0]  # responses still to delay on this connection
    await asyncio.gather(
        _pump(reader, up_writer, flags, True), _pump(up_reader, writer, flags, False)
    )


async def _main(port: int, upstream: int) -> None:
    server = await asyncio.start_server(lambda r, w: _serve(upstream, r, w), HOST, port)
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 2:
        print("usage: python -m warmline._bench.relay LISTEN_PORT UPSTREAM_PORT", file=sys.stderr)
        return 2
    asyncio.run(_main(int(args[0]), int(args[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
