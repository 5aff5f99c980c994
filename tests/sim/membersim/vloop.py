"""An asyncio event loop on a virtual clock, for many simulated processes in one thread.

- ``time()`` is virtual. When nothing is ready to run, the loop's "select" jumps the clock to the
  next timer instead of waiting (the idea of CPython's test_asyncio TestLoop); there are no file
  descriptors and no real sockets.
- Every callback is tagged with the Process (process.py) whose context scheduled it, and runs
  only while that process runs (see Process).
- ``run_in_executor`` — what ``asyncio.to_thread`` uses for blocking disk work — runs the
  function on the loop's thread after a seeded virtual delay and hands the result back after a
  second one: a worker thread that starts late and reports late. Killing the process in between
  drops the work or its result.

Same seed, same run: timers due at the same instant run in the order they were scheduled, and
nothing here reads a real clock or starts a thread.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
from asyncio import events
from typing import Any, Callable

from membersim.process import CURRENT, Process, ProcessKilled, State


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set: every task waits for something that cannot happen."""


def owner_of(context: Any) -> Process | None:
    return CURRENT.get() if context is None else context.get(CURRENT)


class _Owned:
    """Runs a handle only while its process runs (mixed into asyncio's handle classes)."""

    __slots__ = ()

    def _run(self) -> None:
        owner = self._owner  # type: ignore[attr-defined]
        if owner is None or owner.state is State.RUNNING:
            super()._run()  # type: ignore[misc]
        elif owner.state is State.PAUSED:
            owner.defer(self)


class OwnedHandle(_Owned, events.Handle):
    __slots__ = ("_owner",)

    def __init__(self, callback, args, loop, context, owner: Process | None) -> None:
        super().__init__(callback, args, loop, context)
        self._owner = owner


class OwnedTimerHandle(_Owned, events.TimerHandle):
    __slots__ = ("_owner", "_seq")

    def __init__(self, when, callback, args, loop, context, owner: Process | None, seq: int) -> None:
        super().__init__(when, callback, args, loop, context)
        self._owner = owner
        self._seq = seq

    def __lt__(self, other: OwnedTimerHandle) -> bool:
        # (asyncio compares the time only: the heap would run timers of one instant in any order)
        return (self._when, self._seq) < (other._when, other._seq)


class _JumpToNextTimer:
    """Stands in for the selector: waiting ``timeout`` seconds is moving the clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list:
        if timeout is None:
            raise Deadlock("no callback ready and no timer set")
        self._loop._now += timeout
        return []

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """``disk_delay(process, synced)``: seconds one step of blocking work of that process takes
    (``synced``: the work synced a file or directory)."""

    def __init__(self, disk_delay: Callable[[Process | None, bool], float]) -> None:
        super().__init__()
        self._now = 0.0
        self._selector = _JumpToNextTimer(self)
        self._clock_resolution = 1e-9
        self._disk_delay = disk_delay
        self._timers = itertools.count()
        self.set_task_factory(self._new_task)

    def time(self) -> float:
        return self._now

    def _process_events(self, event_list: list) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    # ---- callbacks tagged with their process ---------------------------------------------

    def _call_soon(self, callback, args, context):
        handle = OwnedHandle(callback, args, self, context, owner_of(context))
        self._ready.append(handle)
        return handle

    def call_at(self, when, callback, *args, context=None):
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        timer = OwnedTimerHandle(when, callback, args, self, context, owner_of(context), next(self._timers))
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    def _new_task(self, loop: asyncio.AbstractEventLoop, coro, context=None) -> asyncio.Task:
        task = asyncio.Task(coro, loop=self, context=context)
        owner = owner_of(context)
        if owner is not None:
            owner.adopt(task)
        return task

    # ---- blocking work -------------------------------------------------------------------------

    def run_in_executor(self, executor, func, *args) -> asyncio.Future:
        future = self.create_future()
        owner = CURRENT.get()

        def work() -> None:
            syncs = owner.syncs if owner is not None else 0
            result, error = None, None
            try:
                result = func(*args)
            except ProcessKilled:
                return  # the process died in the middle of it: nothing comes back
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, as a thread would
                error = exc
            synced = owner is not None and owner.syncs > syncs
            self.call_later(self._disk_delay(owner, synced), _settle, future, result, error)

        self.call_later(self._disk_delay(owner, False), work)
        return future


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)

