"""The simulated network: peer messages, snapshot streams and client calls between hosts.

A host is the host part of a URL (``m1`` in ``http://m1:2380``); members listen on their peer
URLs (SimTransport, transport.py) and serve their client URLs. Faults, set by the fault
injector at any time:

- ``blocked``: directed host pairs whose traffic is lost (asymmetric partitions);
- ``drop`` / ``dup``: the chance a peer message is lost / delivered twice (a forwarded
  proposal, MsgProp, only if ``duplicate_proposals``: see FINDINGS.md, F1);
- ``long_delay``: the chance a message or snapshot stream takes seconds (well past the election
  timeout), so stale messages and streams from deposed leaders arrive late;
- ``slow_snapshots``: the chance a snapshot stream takes seconds (a stale one finishes last);
- ``reorder``: messages of one link overtake each other (otherwise a link is FIFO, as TCP).

The fault injector can also react to snapshot streams (``on_snapshot_sending(sender host)``,
``on_snapshot_arriving(receiver host, message)``, ``on_snapshot_installed(receiver host)``):
pausing a sender mid-stream makes a deposed leader's stale stream land late; crashing a receiver
at the install of one that cuts its log short, or killing it right after it took one, tests the
restart after an install. It can watch peer messages too (``on_delivered``), and act right
after a follower has acknowledged entries (``after_ack``).

A message's destination is resolved when it arrives: one still queued when its receiver
restarts reaches the new process, as a sender's queue does once it has reconnected. Code on
the receiving side runs in the receiving member's process (so it stops when that one dies);
a call whose callee dies or is cut off fails on the caller's side as a timeout or a reset.
"""
from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import random
from typing import Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

from membersim.process import Process, ProcessKilled
from membersim.trace import Trace

T = TypeVar("T")

BASE_DELAY = (0.0002, 0.002)   # seconds, one way
LONG_DELAY = (0.5, 4.0)
SNAPSHOT_DELAY = (0.005, 0.05)
LONG_SNAPSHOT_DELAY = (1.0, 6.0)
REPORT_INTERVAL = 0.1          # unreachable / rejection reports per peer, at most one per interval


def host_of(url: str) -> str:
    return urlsplit(url).hostname or url


class Unreachable(ConnectionError):
    """The callee is not listening, or the link to it is down (before anything was sent)."""


class CallLost(ConnectionError):
    """The call was sent, but its answer did not come back (callee died, link cut, too slow)."""


class Network:
    def __init__(self, loop: asyncio.AbstractEventLoop, rng: random.Random, trace: Trace) -> None:
        self.loop = loop
        self.rng = rng
        self.trace = trace
        self.blocked: set[tuple[str, str]] = set()
        # directed host pairs whose messages are lost although the link looks up (a black hole:
        # the sender is not told, as with a TCP stream that stalls without a reset)
        self.black_holed: set[tuple[str, str]] = set()
        self.drop = 0.0
        self.dup = 0.0
        self.long_delay = 0.0
        self.slow_snapshots = 0.0
        self.reorder = False
        self.duplicate_proposals = False
        self.on_snapshot_sending: Callable[[str], None] = lambda host: None
        self.on_snapshot_arriving: Callable[[str, bytes], None] = lambda host, message: None
        self.on_snapshot_installed: Callable[[str], None] = lambda host: None
        # (receiver host, sender host, serialized raft message): a peer message arrived
        self.on_delivered: Callable[[str, str, bytes], None] | None = None
        # host -> (index, action): run action once that host has sent an MsgAppResp accepting
        # entries up to index (a reactive fault that waits for a follower's acknowledgement)
        self.after_ack: dict[str, tuple[int, Callable[[], None]]] = {}
        self.stats: collections.Counter[str] = collections.Counter()  # snapshot streams, by outcome
        self.serial = itertools.count(1)  # names unique in the run (spooled snapshot files)
        self.listeners: dict[str, object] = {}       # peer URL -> SimTransport
        self.client_ports: dict[str, tuple[Process, object]] = {}  # client URL -> (process, EtcdServer)
        self._last_arrival: dict[tuple[str, str], float] = {}
        self._reported: dict[tuple, float] = {}
        self._wire = contextvars.Context()  # what is on the wire belongs to no process

    def heal(self) -> None:
        self.blocked.clear()
        self.black_holed = set()
        self.drop = self.dup = self.long_delay = self.slow_snapshots = 0.0
        self.reorder = False

    def link_up(self, src: str, dst: str) -> bool:
        return (src, dst) not in self.blocked

    def delay(self, long_chance: float | None = None) -> float:
        chance = self.long_delay if long_chance is None else long_chance
        if chance and self.rng.random() < chance:
            return self.rng.uniform(*LONG_DELAY)
        return self.rng.uniform(*BASE_DELAY)

    def once_per_interval(self, key: tuple) -> bool:
        now = self.loop.time()
        if now - self._reported.get(key, -REPORT_INTERVAL) < REPORT_INTERVAL:
            return False
        self._reported[key] = now
        return True

    # ---- peer messages -------------------------------------------------------------------------

    def transmit(self, src_host: str, url: str, arrive: Callable[[], None],
                 duplicable: Callable[[], bool] = lambda: True) -> bool:
        """Put one message on the wire to url; ``arrive()`` runs when (and each time) it gets there.
        False when it cannot even leave (nobody listens there, or the link is down).
        ``duplicable()`` is asked before a duplicate is made."""
        dst_host = host_of(url)
        if url not in self.listeners or not self.link_up(src_host, dst_host):
            return False
        rng = self.rng
        if (src_host, dst_host) in self.black_holed or (self.drop and rng.random() < self.drop):
            return True
        copies = 2 if self.dup and rng.random() < self.dup and duplicable() else 1
        for _ in range(copies):
            at = self.loop.time() + self.delay()
            if not self.reorder:
                link = (src_host, dst_host)
                at = max(at, self._last_arrival.get(link, 0.0))
                self._last_arrival[link] = at
            self.loop.call_at(at, arrive, context=self._wire)
        return True

    def carry(self, at: float, arrive: Callable[..., None], *args: object) -> None:
        """``arrive(*args)`` runs at ``at`` as something on the wire: it belongs to no process
        (a message its dead sender had sent still arrives)."""
        self.loop.call_at(at, arrive, *args, context=self._wire)

    # ---- calls into another process --------------------------------------------------------------

    async def remote(self, src_host: str, dst_host: str, process: Process, call: Callable[[], Awaitable[T]],
                     timeout: float, *, long_chance: float | None = None) -> T:
        """Run ``call()`` in ``process`` (one request there, one answer back) and return its result
        or raise its exception; CallLost if the answer does not make it back within timeout."""
        await asyncio.sleep(self.delay(long_chance))
        if not process.alive or not self.link_up(src_host, dst_host):
            raise CallLost(f"{dst_host}: connection reset")
        task = self.loop.create_task(call(), context=process.context)
        task.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task, process.death()}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            raise CallLost(f"{dst_host}: {'connection reset' if done else f'no answer within {timeout:g}s'}")
        await asyncio.sleep(self.delay())
        exc = None if task.cancelled() else task.exception()
        if task.cancelled() or isinstance(exc, ProcessKilled) or not self.link_up(dst_host, src_host):
            raise CallLost(f"{dst_host}: connection reset")
        if exc is not None:
            raise exc
        return task.result()

    async def call_client_port(self, src_host: str, url: str, method: Callable[[object], Awaitable[T]],
                               timeout: float) -> T:
        """A client call to the member serving ``url``: ``method(server)`` runs in its process."""
        port = self.client_ports.get(url)
        if port is None or not self.link_up(src_host, host_of(url)):
            raise Unreachable(f"{url}: connection refused")
        process, server = port
        return await self.remote(src_host, host_of(url), process, lambda: method(server), timeout)


def _retrieve(task: asyncio.Task) -> None:
    """A call whose caller gave up still finishes; its outcome is nobody's concern."""
    if not task.cancelled():
        task.exception()
