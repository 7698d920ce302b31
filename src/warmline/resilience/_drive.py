"""The hedge race's loop, once for asyncio tasks and once for a thread executor.

Both only move attempts and results between a :class:`HedgeRace` (which
decides) and the shell's ``send`` (which sends the request once on a
connection of its own): a client gives one that calls its origin's pool, a
pool one that sends on another of its slots. See :mod:`._race` for the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import FIRST_COMPLETED, Future, wait
from functools import partial
from typing import Any, TypeVar

from warmline.resilience._race import HedgeRace

__all__ = ["race_async", "race_sync"]

R = TypeVar("R")


def _consume(task: asyncio.Task[Any]) -> None:
    # A loser's error is expected; reading it keeps asyncio from logging
    # "Task exception was never retrieved".
    if not task.cancelled():
        task.exception()


async def race_async(race: HedgeRace, send: Callable[[int], Coroutine[Any, Any, R]]) -> R:
    """Run ``race`` with asyncio tasks: the first response of its attempts.

    Args:
        race: The request's race (its first attempt counted as sent).
        send: ``send(i)`` makes the coroutine of attempt ``i``: the request
            sent once, on a connection no other attempt holds.

    Returns:
        The winning attempt's response. The losers are cancelled (their
        pools abandon their connections, whose state is unknown, and heal);
        when the caller is cancelled, every attempt is cancelled and awaited
        first, so no task outlives the request.

    Raises:
        Exception: The earliest attempt's error, once every attempt failed.
    """
    loop = asyncio.get_running_loop()
    clock = time.monotonic

    def start(index: int) -> asyncio.Task[R]:
        task = loop.create_task(send(index))
        task.add_done_callback(_consume)
        return task

    tasks = [start(0)]
    pending: set[asyncio.Task[R]] = {tasks[0]}
    winner = -1
    try:
        while True:
            done, pending = await asyncio.wait(
                pending, timeout=race.wait(clock()), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if race.timer(clock()):
                    task = start(len(tasks))
                    tasks.append(task)
                    pending.add(task)
                continue
            for index, task in enumerate(tasks):
                if task not in done:
                    continue
                exc = task.exception()
                if exc is None:
                    winner = index
                    race.won(index, clock())
                    return task.result()
                error = race.failed(index, exc)
                if error is not None:
                    raise error
    except BaseException:
        live = [tasks[i] for i in race.losers(winner)]
        for task in live:
            task.cancel()
        if live:  # the caller was cancelled: no attempt outlives it
            await asyncio.wait(live)
        raise
    finally:
        for i in race.losers(winner):
            tasks[i].cancel()


def race_sync(
    race: HedgeRace,
    submit: Callable[[Callable[[], R]], Future[R]],
    send: Callable[[int], R],
    interrupt: Callable[[int], None],
) -> R:
    """Run ``race`` on a thread executor: the first response of its attempts.

    Args:
        race: The request's race (its first attempt counted as sent).
        submit: Starts a call on another thread (``executor.submit``).
        send: ``send(i)`` sends attempt ``i`` and returns its response, on a
            connection no other attempt holds.
        interrupt: ``interrupt(i)`` stops attempt ``i`` from another thread
            (a blocking read cannot be cancelled: the shell shuts its socket
            down, so that its connection is discarded, never reused). Called
            for every loser; it must do nothing when the attempt already
            ended.

    Returns:
        The winning attempt's response.

    Raises:
        Exception: The earliest attempt's error, once every attempt failed.
    """
    clock = time.monotonic
    futures = [submit(partial(send, 0))]
    pending: set[Future[R]] = {futures[0]}
    winner = -1
    try:
        while True:
            done, pending = wait(pending, timeout=race.wait(clock()), return_when=FIRST_COMPLETED)
            if not done:
                if race.timer(clock()):
                    index = len(futures)
                    future = submit(partial(send, index))
                    futures.append(future)
                    pending.add(future)
                continue
            for index, future in enumerate(futures):
                if future not in done:
                    continue
                exc = future.exception()
                if exc is None:
                    winner = index
                    race.won(index, clock())
                    return future.result()
                error = race.failed(index, exc)
                if error is not None:
                    raise error
    finally:
        for i in race.losers(winner):
            futures[i].cancel()  # one not started yet never runs
            interrupt(i)
