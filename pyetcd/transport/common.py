"""Settings, reports and the state shared by the pieces of one PeerTransport."""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pyetcd.transport.wire import Status


@dataclass(frozen=True)
class TransportOptions:
    queue_limit: int = 4096            # messages waiting for one peer; more are dropped (and counted)
    queue_bytes: int = 64 << 20        # bytes waiting for one peer; likewise
    backoff_initial: float = 0.1       # first reconnect delay; doubles per failed round ...
    backoff_max: float = 2.0           # ... up to this; each delay is jittered down by up to half
    dial_timeout: float = 1.0          # TCP (+TLS) connect, and the handshake answer
    handshake_timeout: float = 5.0     # an inbound connection must say who it is within this
    write_timeout: float = 5.0         # a peer that takes nothing from its socket this long is dead
    log_interval: float = 5.0          # repeated warnings about one peer: at most one per interval
    max_frame_bytes: int = 64 << 20    # a larger frame closes the connection as garbage
    write_buffer_high: int = 1 << 20   # socket buffer above which a peer's queue holds its messages
    snapshot_chunk_bytes: int = 1 << 20
    snapshot_idle_timeout: float = 30.0  # each step of a snapshot transfer, the verdict included
    snapshot_dir: str | None = None    # where received snapshots are spooled (default: tempdir)


@dataclass(frozen=True)
class Rejection:
    """A handshake refused, on either side: ``inbound`` when the remote tried to reach us."""
    peer_id: int
    status: Status
    message: str
    inbound: bool


MessageHandler = Callable[[int, bytes], None]
SnapshotHandler = Callable[[int, bytes, str], Awaitable[None]]


class RateLimit:
    """True at most once per ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -interval

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


@dataclass
class Context:
    member_id: int
    cluster_id: int
    options: TransportOptions
    on_message: MessageHandler
    on_snapshot: SnapshotHandler | None
    on_unreachable: Callable[[int], None] | None
    on_rejected: Callable[[Rejection], None] | None
    ssl_server: ssl.SSLContext | None
    ssl_client: ssl.SSLContext | None
    rng: random.Random
    logger: logging.Logger
    cluster_info: Callable[[], bytes] | None = None
    removed: set[int] = field(default_factory=set)
    tasks: set[asyncio.Task] = field(default_factory=set)

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def backoff(self, attempt: int) -> float:
        o = self.options
        delay = min(o.backoff_max, o.backoff_initial * (2 ** min(attempt, 32)))
        return delay * self.rng.uniform(0.5, 1.0)

    def unreachable(self, peer_id: int) -> None:
        if self.on_unreachable is not None:
            self._call(self.on_unreachable, peer_id)

    def rejected(self, rejection: Rejection) -> None:
        if self.on_rejected is not None:
            self._call(self.on_rejected, rejection)

    def _call(self, callback: Callable, arg: object) -> None:
        try:
            callback(arg)
        except Exception:
            self.logger.exception("peer transport callback failed")

    def log(self, level: int, msg: str, **fields: object) -> None:
        fields = {"local-member-id": f"{self.member_id:x}", **fields}
        self.logger.log(level, msg, extra={"fields": fields}, stacklevel=2)
