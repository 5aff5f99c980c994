"""The v2 watcher hub: the last HISTORY events, and watchers waiting for the next match."""
from __future__ import annotations

import asyncio
from collections import deque

from pyetcd.v2store import errors
from pyetcd.v2store.errors import V2Error
from pyetcd.v2store.store import Event

HISTORY = 1000  # etcd's event history size


def matches(event: Event, key: str, recursive: bool) -> bool:
    if event.key == key:
        return True
    if recursive and event.key.startswith(key.rstrip("/") + "/"):
        return True
    # a directory going away ends what was under it
    return event.node.get("dir", False) and event.action in ("delete", "expire", "compareAndDelete") \
        and key.startswith(event.key + "/")


class WatcherHub:
    def __init__(self) -> None:
        self._history: deque[tuple[int, Event | None]] = deque(maxlen=HISTORY)
        self._watchers: list[tuple[str, bool, int, asyncio.Future]] = []  # key, recursive, since,

    def record(self, index: int, event: Event | None) -> None:
        """Index ``index`` was written: ``event``, or None for a write no one can watch."""
        self._history.append((index, event))
        if event is None:
            return
        still = []
        for watcher in self._watchers:
            key, recursive, since, fut = watcher
            if fut.done():
                continue
            if index >= since and matches(event, key, recursive):
                fut.set_result(event)
            else:
                still.append(watcher)
        self._watchers = still

    def reset(self) -> None:
        """The store was replaced (a snapshot installed): its history is gone."""
        self._history.clear()

    @property
    def count(self) -> int:
        return sum(1 for *_, fut in self._watchers if not fut.done())

    def watch(self, key: str, recursive: bool, since: int, current: int) -> Event | asyncio.Future:
        """The first event at or after index ``since`` (0: the next one) for ``key``, or a future
        for it; V2Error 401 when that index has left the history."""
        if since == 0:
            since = current + 1
        if self._history:
            start = self._history[0][0]
            if since < start:
                raise V2Error(errors.EVENT_INDEX_CLEARED,
                              f"the requested history has been cleared [{start}/{since}]", current)
            for index, event in self._history:
                if index >= since and event is not None and matches(event, key, recursive):
                    return event
        fut = asyncio.get_running_loop().create_future()
        self._watchers.append((key, recursive, since, fut))
        return fut
