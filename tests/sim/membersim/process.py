"""A simulated OS process: the owner of every task and callback started on a member's behalf.

All members share one event loop, so "the member's process" is a context variable: a Process
runs its code in a ``contextvars.Context`` of its own, every task created from there inherits it,
and the loop (vloop.py) tags every callback with the Process whose context scheduled it. The
loop then runs a callback only while its Process is running, keeps it for later while the
Process is paused (SIGSTOP), and drops it once the Process is dead (SIGKILL): a killed member's
coroutines never resume, so no ``finally`` block of theirs runs, as after a real SIGKILL.

Killed tasks stay referenced here until ``dispose()``: a pending task nobody holds would be
garbage-collected mid-run and its coroutine closed, running its ``finally`` blocks at a moment
that depends on the collector.
"""
from __future__ import annotations

import asyncio
import contextvars
import enum
from asyncio import events
from typing import Callable


class ProcessKilled(BaseException):
    """Unwinds the code of a process that just died (a disk crash, a fatal stop).

    A BaseException, so that ``except Exception`` in the member does not swallow it.
    """


class State(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    DEAD = "dead"


CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar("membersim_process", default=None)


class Process:
    """One run of one member, from start to kill (or to the end of the simulation)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = State.RUNNING
        self.syncs = 0  # files and directories its file system synced (a slow disk is slow there)
        self.context = contextvars.Context()
        self.context.run(CURRENT.set, self)
        self._tasks: list[asyncio.Task] = []
        self._deferred: list[events.Handle] = []
        self._on_kill: list[Callable[[], None]] = []
        self._death: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"<Process {self.name} {self.state.value}>"

    @property
    def alive(self) -> bool:
        return self.state is not State.DEAD

    def adopt(self, task: asyncio.Task) -> None:
        """Hold a task of this process (the loop's task factory calls this)."""
        tasks = self._tasks
        tasks.append(task)
        if len(tasks) >= 256 and len(tasks) & (len(tasks) - 1) == 0:  # now and then, forget finished ones
            self._tasks = [t for t in tasks if not t.done()]

    def defer(self, handle: events.Handle) -> None:
        """A callback came due while paused: run it on resume (unless cancelled meanwhile)."""
        self._deferred.append(handle)

    def at_kill(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the process dies (what the kernel does at exit: close files, sockets)."""
        self._on_kill.append(hook)

    def death(self) -> asyncio.Future:
        """Resolved when the process dies (a caller's connection to it breaks then)."""
        if self._death is None:
            self._death = asyncio.get_running_loop().create_future()
            if self.state is State.DEAD:
                self._death.set_result(None)
        return self._death

    def pause(self) -> None:
        if self.state is State.RUNNING:
            self.state = State.PAUSED

    def resume(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.state is not State.PAUSED:
            return
        self.state = State.RUNNING
        deferred, self._deferred = self._deferred, []
        for handle in deferred:
            if not handle.cancelled():
                loop._ready.append(handle)  # type: ignore[attr-defined]  # as the loop does with due timers

    def kill(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Die now: nothing of this process runs again.

        From inside the process's own code (a disk crash, a fatal stop), pass the loop: the
        kernel's part (the kill hooks) then runs once the dying code has unwound, since that
        code may hold locks the hooks take (closing a database waits for its checkpoint).
        """
        if self.state is State.DEAD:
            return
        self.state = State.DEAD
        self._deferred.clear()
        if loop is None:
            self._exit()
        else:
            loop.call_soon(self._exit, context=contextvars.Context())

    def _exit(self) -> None:
        hooks, self._on_kill = self._on_kill, []
        for hook in hooks:
            hook()
        if self._death is not None:
            self._death.set_result(None)

    def dispose(self) -> None:
        """At the end of the simulation: close the frozen coroutines, quietly."""
        for task in self._tasks:
            if task.done():
                continue
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            try:
                task.get_coro().close()
            except BaseException:  # noqa: BLE001 - a dead process's cleanup may fail any way it likes
                pass
        self._tasks.clear()
