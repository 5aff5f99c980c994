"""Auto-compaction (etcd's v3compactor): the leader proposes compactions on a schedule.

``--auto-compaction-mode periodic`` with retention P (a Go duration, or a whole number of hours):
every P/10 (at most every hour) the compactor notes the store's revision, and every P (at most
every hour) the leader compacts to the revision noted P ago, so at least P of history is kept.
``--auto-compaction-mode revision`` with retention N: every five minutes the leader compacts to
the current revision minus N. A retention of 0 turns it off.

Every member notes revisions; only the leader proposes (a Compact through Raft, as a client's).
A compaction that fails is logged and the next turn tries again. Time is the loop's, so the
whole-member simulation can drive it.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Awaitable, Callable

from pyetcd import errors
from pyetcd.etcdctl.gofmt import GoError, duration_string, parse_duration
from pyetcd.logutil import log

logger = logging.getLogger("pyetcd.v3compactor")

PERIODIC = "periodic"
REVISION = "revision"
MODES = (PERIODIC, REVISION)
MAX_PERIODIC_INTERVAL = 3600.0
REVISION_INTERVAL = 300.0  # etcd checks a revision retention every five minutes


def parse_retention(mode: str, text: str) -> float:
    """Seconds (periodic) or revisions (revision) to keep; 0 is off. Raises ValueError with
    etcd's message. A bare number is hours or revisions; anything else a Go duration (which
    etcd takes, in nanoseconds, as a revision count too)."""
    if text.isdigit():
        return int(text) * 3600.0 if mode == PERIODIC else int(text)
    try:
        seconds = parse_duration(text)
    except GoError as e:
        raise ValueError(f"error parsing CompactionRetention: {e}") from None
    return seconds if mode == PERIODIC else int(seconds * 1e9)


class AutoCompactor:
    def __init__(self, mode: str, retention: float, current_rev: Callable[[], int], is_leader: Callable[[], bool],
                 compact: Callable[[int], Awaitable[object]],
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._mode = mode
        self._retention = retention
        self._current_rev = current_rev
        self._is_leader = is_leader
        self._compact = compact
        self._sleep = sleep
        self._last = 0  # the revision last compacted to by this compactor

    async def run(self) -> None:
        if self._mode == PERIODIC:
            await self._run_periodic()
        else:
            await self._run_revision()

    async def _run_periodic(self) -> None:
        period = self._retention
        interval = min(period, MAX_PERIODIC_INTERVAL)
        step = min(period / 10, interval)
        ticks_per_compaction = max(1, round(interval / step))
        noted: collections.deque[int] = collections.deque(maxlen=round(period / step) + 1)
        fields = {"compact-period": duration_string(period)}
        tick = 0
        while True:
            noted.append(self._current_rev())
            if tick and tick % ticks_per_compaction == 0 and len(noted) == noted.maxlen:
                await self._compact_to(noted[0], "auto periodic compaction", fields)  # noted one period ago
            tick += 1
            await self._sleep(step)

    async def _run_revision(self) -> None:
        fields = {"revision-compaction-retention": int(self._retention)}
        while True:
            await self._sleep(REVISION_INTERVAL)
            await self._compact_to(self._current_rev() - int(self._retention), "auto revision compaction", fields)

    async def _compact_to(self, rev: int, what: str, fields: dict[str, object]) -> None:
        if rev <= self._last or not self._is_leader():
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        log(logger, logging.INFO, f"starting {what}", revision=rev, **fields)
        try:
            await self._compact(rev)
        except errors.EtcdError as e:
            if e == errors.ErrCompacted:
                self._last = rev  # compacted there or beyond already
            log(logger, logging.WARNING, f"failed {what}", revision=rev, **fields, error=e.message)
            return
        self._last = rev
        log(logger, logging.INFO, f"completed {what}", revision=rev, **fields,
            took=duration_string(loop.time() - start))
