"""Issue 9, item 14: pools and ``os.fork()``.

A pool created in a parent and used in a child must not share its sockets
with the parent: each process gets its own responses (the scripted server
echoes each request line, and records which connection carried it), and the
parent's pool keeps working. A
heal pending at fork time runs in the child (its heal worker thread does not
survive the fork). The asyncio pool belongs to its loop: a child using it
from a new loop gets PoolError and leaves the parent's connections alone.

Each child reports through a pipe and always ends with ``os._exit``; the
parent kills a child that has not reported in time (a hang is a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import select
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from warmline import AtomicClientPool, Backoff, PoolError

from .faultproxy import FaultProxy, PoolDriver
from .scripted import Recorder

REQUESTS = 100
CHILD_BOUND_S = 30.0
FAST = Backoff(initial=0.05, maximum=0.2, multiplier=2.0, jitter=0.0)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()  # a leaked socket or transport is reported by the test that leaked it


def fork_child(child: Callable[[], dict[str, Any]]) -> tuple[int, int]:
    """Fork; the child runs ``child()`` and writes its JSON report to a pipe.

    Returns:
        The child's pid and the read end of the pipe (parent side).
    """
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when forking a process that runs threads (the
        # test servers and the proxy do); that is the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_fd)
            report = child()
        except BaseException as exc:
            report = {"crash": f"{type(exc).__name__}: {exc}"}
            code = 1
        try:
            os.write(write_fd, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def child_report(pid: int, read_fd: int) -> dict[str, Any]:
    """The child's report; kills it (and fails) if it does not report in time."""
    data = b""
    deadline = time.monotonic() + CHILD_BOUND_S
    try:
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([read_fd], [], [], left)
            if not readable:
                break
            chunk = os.read(read_fd, 65536)
            if not chunk:
                os.waitpid(pid, 0)
                return json.loads(data) if data else {"crash": "no report"}  # type: ignore[no-any-return]
            data += chunk
    finally:
        os.close(read_fd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"hang: the child did not report within {CHILD_BOUND_S} s")


def echo_run(get: Callable[[str, int], Any], who: str, count: int) -> dict[str, Any]:
    """``count`` requests tagged ``who``: how many came back with their own answer.

    The server echoes each request line, so an answer meant for the other
    process (or for an earlier request) is told apart from one's own.
    """
    own, foreign, errors = 0, 0, []
    for i in range(count):
        try:
            response = get(who, i)
            if f"?who={who}&i={i} ".encode() in response.content:
                own += 1
            else:
                foreign += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    return {"own": own, "foreign": foreign, "errors": errors[:5], "error_count": len(errors)}


def sync_get(pool: AtomicClientPool) -> Callable[[str, int], Any]:
    def get(who: str, i: int) -> Any:
        return pool.get("/echo", params={"who": who, "i": str(i)}, timeout=2, acquire_timeout=5)

    return get


def connections_of(server: Recorder, who: str) -> set[int]:
    """The server-side connections that carried requests tagged ``who``."""
    tag = f"?who={who}&".encode()
    return {index for index, line in server.seen if tag in line}


@pytest.fixture
def echo_server() -> Iterator[Recorder]:
    with Recorder(echo=True) as server:
        yield server


@pytest.mark.timeout(60)
def test_parent_and_child_each_get_their_own_responses(echo_server: Recorder) -> None:
    """Item 14: a thread pool used on both sides of a fork, at the same time.

    Each side gets its own answers, and no connection ever carries requests
    of both processes: the child reconnects instead of writing on sockets it
    inherited (which the parent had used before the fork, and goes on using).
    """
    with AtomicClientPool.connect(echo_server.url, connections=2, reconnect=FAST) as pool:
        get = sync_get(pool)
        assert echo_run(get, "warm", 4)["own"] == 4
        pid, read_fd = fork_child(lambda: echo_run(get, "child", REQUESTS))
        parent = echo_run(get, "parent", REQUESTS)
        child = child_report(pid, read_fd)
        assert child.get("own") == REQUESTS, child
        assert parent["own"] == REQUESTS, parent
        assert echo_run(get, "after", 10)["own"] == 10
    parents = set().union(*(connections_of(echo_server, w) for w in ("warm", "parent", "after")))
    shared = connections_of(echo_server, "child") & parents
    assert not shared, f"the child wrote on the parent's connections {sorted(shared)}"


@pytest.mark.timeout(60)
def test_a_heal_pending_at_fork_runs_in_the_child(echo_server: Recorder) -> None:
    """Item 14: the slot was reconnecting when the process forked; the child heals it.

    The heal worker thread does not exist in the child: without a restart the
    slot stays "reconnecting" for ever there.
    """
    with (
        FaultProxy(echo_server.url) as proxy,
        AtomicClientPool.connect(
            proxy.url, connections=1, reconnect=FAST, connect_timeout=1
        ) as pool,
    ):
        proxy.refuse()
        proxy.reset_all()
        time.sleep(0.1)
        assert pool.try_acquire() is None  # the dead slot goes to reconnect
        time.sleep(0.1)  # the reconnect was refused: it waits in its backoff
        get = sync_get(pool)
        pid, read_fd = fork_child(lambda: echo_run(get, "child", 3))
        proxy.accept()
        child = child_report(pid, read_fd)
        assert child.get("own") == 3, child
        assert echo_run(get, "parent", 3)["own"] == 3


@pytest.mark.timeout(60)
def test_asyncio_pool_in_a_child_raises_and_spares_the_parent(echo_server: Recorder) -> None:
    """Item 14 (asyncio): a child using the parent's ClientPool from its own loop gets
    PoolError, and writes nothing on the parent's connections."""
    with PoolDriver("aio", echo_server.url, connections=2, reconnect=FAST) as driver:
        pool = driver.pool

        async def use_in_child() -> dict[str, Any]:
            try:
                await asyncio.wait_for(
                    pool.get("/echo", params={"who": "child", "i": "0"}, timeout=2), 5
                )
            except PoolError as exc:
                return {"outcome": "PoolError", "message": str(exc)}
            except BaseException as exc:
                return {"outcome": type(exc).__name__, "message": str(exc)}
            return {"outcome": "a response"}

        pid, read_fd = fork_child(lambda: asyncio.run(use_in_child()))

        def get(who: str, i: int) -> Any:
            return driver.get("/echo", params={"who": who, "i": str(i)}, timeout=2)

        parent = echo_run(get, "parent", 30)
        child = child_report(pid, read_fd)
        assert child.get("outcome") == "PoolError", child
        assert parent["own"] == 30, parent
        # A response to anything the child wrote would surface here as foreign.
        after = echo_run(get, "after", 10)
        assert after["own"] == 10, after
    assert connections_of(echo_server, "child") == set(), "the child wrote on a connection"
