"""The outgoing message stream to one peer: a bounded queue, one connection, reconnects.

Messages queue in a deque; one callback per event-loop iteration writes everything queued in a
single write. The queue only drains while the connection is up and the socket takes data, so a
dead or slow peer holds at most ``queue_limit`` messages / ``queue_bytes`` bytes; beyond that
new messages are dropped and counted (Raft tolerates loss).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
import time

from pyetcd.transport.common import Context, RateLimit, Rejection
from pyetcd.transport.wire import (KIND_STREAM, STATUS, HandshakeError, Hello, PeerURL, Status,
                                   frames, parse_url)


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, peer: "PeerStream") -> None:
        loop = asyncio.get_running_loop()
        self.peer = peer
        self.answered: asyncio.Future[tuple[Status, str]] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.abandoned = False
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.abandoned:
            transport.abort()
            return
        self.peer.open.add(self)
        ctx = self.peer.ctx
        transport.set_write_buffer_limits(high=ctx.options.write_buffer_high)
        transport.write(Hello(KIND_STREAM, ctx.member_id, ctx.cluster_id, self.peer.peer_id).encode())

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return  # nothing but the handshake answer ever comes back on a stream
        self._buf += data
        if len(self._buf) >= STATUS.size:
            code, length = STATUS.unpack_from(self._buf)
            if len(self._buf) >= STATUS.size + length:
                text = self._buf[STATUS.size:STATUS.size + length].decode(errors="replace")
                try:
                    status = Status(code)
                except ValueError:
                    status = Status.FAILED
                self.answered.set_result((status, text))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ConnectionError("connection closed during handshake"))
        self._forget()
        self.peer._lost(self)

    def abandon(self) -> None:
        """A dial that failed or was cancelled: close the connection and forget it for good.

        uvloop may close the transport of a cancelled create_connection and still call
        connection_made afterwards, with no connection_lost to follow; nothing may wait for it.
        """
        self.abandoned = True
        if self.transport is not None:
            self.transport.abort()
        self._forget()

    def _forget(self) -> None:
        self.peer.open.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.peer._pause(self)

    def resume_writing(self) -> None:
        self.peer._resume(self)


class PeerStream:
    """Everything this member sends to one peer, in order, over one connection at a time."""

    def __init__(self, ctx: Context, peer_id: int, urls: list[str]) -> None:
        self.ctx = ctx
        self.peer_id = peer_id
        self.urls = self._parse(ctx, peer_id, urls)
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.sent = 0
        self.sent_bytes = 0
        self.dropped = 0
        self.active_since: float | None = None
        self._loop = asyncio.get_running_loop()
        self._proto: _StreamProtocol | None = None
        self.open: set[_StreamProtocol] = set()  # connected, including ones still in handshake
        self._url: PeerURL | None = None
        self._paused_since: float | None = None
        self._flush_scheduled = False
        self._wake = asyncio.Event()
        self._unlogged_drops = 0
        self._drop_log = RateLimit(ctx.options.log_interval)
        self._fail_log = RateLimit(ctx.options.log_interval)
        self._closed = False
        self._task = ctx.spawn(self._run(), f"peer-stream-{peer_id:x}")

    @staticmethod
    def _parse(ctx: Context, peer_id: int, urls: list[str]) -> list[PeerURL]:
        parsed = [parse_url(u) for u in urls]
        if not parsed:
            raise ValueError(f"peer {peer_id:x}: no peer URLs")
        if any(u.tls for u in parsed) and ctx.ssl_client is None:
            raise ValueError(f"peer {peer_id:x}: https peer URL needs a client TLS context")
        return parsed

    # -- data path ---------------------------------------------------------------------------

    def enqueue(self, data: bytes) -> None:
        limits = self.ctx.options
        if len(self.queue) >= limits.queue_limit or self.queued_bytes + len(data) > limits.queue_bytes:
            self._drop()
            return
        self.queue.append(data)
        self.queued_bytes += len(data)
        if not self._flush_scheduled and self._paused_since is None and self._proto is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        proto = self._proto
        if proto is None or self._paused_since is not None or not self.queue:
            return
        items = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        payload = frames(items)
        self.sent += len(items)
        self.sent_bytes += len(payload)
        assert proto.transport is not None
        proto.transport.write(payload)

    def _drop(self) -> None:
        self.dropped += 1
        self._unlogged_drops += 1
        if self._drop_log():
            self.ctx.log(logging.WARNING, "dropped messages to peer; its queue is full",
                         **{"remote-peer-id": f"{self.peer_id:x}", "dropped": self._unlogged_drops,
                            "queued": len(self.queue), "active": self.active_since is not None})
            self._unlogged_drops = 0

    def _pause(self, proto: _StreamProtocol) -> None:
        if proto is self._proto:
            self._paused_since = time.monotonic()

    def _resume(self, proto: _StreamProtocol) -> None:
        if proto is self._proto:
            self._paused_since = None
            self._flush()

    def _lost(self, proto: _StreamProtocol) -> None:
        if proto is self._proto:
            self._proto = None
            self._wake.set()

    # -- connection management ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            proto = await self._connect()
            if proto is None:
                self.ctx.unreachable(self.peer_id)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.ctx.backoff(attempt)):
                        await self._wake.wait()
                attempt += 1
                continue
            if self._closed:  # shutdown() came while the connection was being made
                assert proto.transport is not None
                proto.transport.abort()
                break
            attempt = 0
            self._proto, self._paused_since = proto, None
            self.active_since = time.monotonic()
            self.ctx.log(logging.INFO, "peer stream established", **{"remote-peer-id": f"{self.peer_id:x}"})
            self._flush()
            await self._watch(proto)
            self.active_since = None
            self._proto = None
            self.ctx.log(logging.WARNING, "lost peer stream", **{"remote-peer-id": f"{self.peer_id:x}"})
            self.ctx.unreachable(self.peer_id)

    async def _watch(self, proto: _StreamProtocol) -> None:
        """Return once the connection is gone; kill it if the peer stops reading."""
        timeout = self.ctx.options.write_timeout
        while not proto.closed.done():
            await asyncio.wait([proto.closed], timeout=timeout / 4)
            paused = self._paused_since
            if paused is not None and time.monotonic() - paused > timeout and proto.transport:
                self.ctx.log(logging.WARNING, "peer stopped reading its stream; reconnecting",
                             **{"remote-peer-id": f"{self.peer_id:x}"})
                proto.transport.abort()
                await proto.closed

    async def _connect(self) -> _StreamProtocol | None:
        errors = []
        for url in list(self.urls):
            created: list[_StreamProtocol] = []
            ok = False
            try:
                async with asyncio.timeout(self.ctx.options.dial_timeout):
                    proto = await self._dial(url, created)
                    status, text = await proto.answered
                if status is not Status.OK:
                    raise HandshakeError(status, text)
                self._url, ok = url, True
                return proto
            except HandshakeError as e:
                self._rejected(e)
                errors.append(f"{url.host}:{url.port}: {e}")
            except (OSError, TimeoutError, ssl.SSLError) as e:
                errors.append(f"{url.host}:{url.port}: {e or type(e).__name__}")
            finally:
                if not ok:
                    for proto in created:
                        proto.abandon()  # also when we are being cancelled
        if self._fail_log():
            self.ctx.log(logging.WARNING, "cannot reach peer", **{"remote-peer-id": f"{self.peer_id:x}",
                                                                  "errors": errors})
        return None

    async def _dial(self, url: PeerURL, created: list[_StreamProtocol]) -> _StreamProtocol:
        """Connect; ``created`` gets the protocol as soon as it exists, even if we are cancelled."""
        def factory() -> _StreamProtocol:
            proto = _StreamProtocol(self)
            created.append(proto)
            return proto

        tls = self.ctx.ssl_client if url.tls else None
        _, proto = await self._loop.create_connection(factory, url.host, url.port, ssl=tls,
                                                      server_hostname=url.host if tls else None)
        return proto

    def _rejected(self, e: HandshakeError) -> None:
        if self._fail_log():
            self.ctx.log(logging.ERROR, "peer refused our stream", **{"remote-peer-id": f"{self.peer_id:x}",
                                                                      "error": str(e)})
        self.ctx.rejected(Rejection(self.peer_id, e.status, str(e), inbound=False))

    # -- control -------------------------------------------------------------------------------

    def update(self, urls: list[str]) -> None:
        new = self._parse(self.ctx, self.peer_id, urls)
        self.urls = new
        if self._proto is not None and self._url not in new and self._proto.transport is not None:
            self._proto.transport.abort()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop the stream: cancel reconnecting, abort every connection, forget the queue."""
        self._closed = True
        self._task.cancel()
        self._proto = None
        self.active_since = None
        for proto in self.open:
            assert proto.transport is not None
            proto.transport.abort()
        self.queue.clear()
        self.queued_bytes = 0

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for proto in list(self.open):
            await proto.closed
