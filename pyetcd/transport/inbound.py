"""Connections other members open to us: check the handshake, then deliver their frames."""
from __future__ import annotations

import asyncio
import collections
import logging

from pyetcd.transport.common import Context, Rejection
from pyetcd.transport.snapshot import receive_snapshot
from pyetcd.transport.wire import (HELLO, KIND_CLUSTER, KIND_STREAM, LENGTH, MAGIC, HandshakeError, Hello,
                                   Status, decode_hello, encode_status, frame)


class Inbound:
    """The registry of live inbound connections, so they can be closed by peer or all at once."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.connections: set[InboundProtocol] = set()
        self.streams: dict[int, InboundProtocol] = {}
        self.received_bytes: collections.Counter[int] = collections.Counter()  # by sender, streams only

    def protocol(self) -> "InboundProtocol":
        return InboundProtocol(self)

    def drop_peer(self, peer_id: int) -> None:
        for conn in list(self.connections):
            if conn.peer_id == peer_id:
                conn.abort()

    async def close(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        for conn in list(self.connections):
            await conn.closed


class InboundProtocol(asyncio.Protocol):
    def __init__(self, registry: Inbound) -> None:
        self.registry = registry
        self.ctx = registry.ctx
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.peer_id: int | None = None
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._stream = False
        self._snapshot: asyncio.StreamReader | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.registry.connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(self.ctx.options.handshake_timeout, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.registry.connections.discard(self)
        if self.registry.streams.get(self.peer_id) is self:  # type: ignore[arg-type]
            del self.registry.streams[self.peer_id]  # type: ignore[arg-type]
        if self._snapshot is not None:
            self._snapshot.feed_eof()
        self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._stream:
            self.registry.received_bytes[self.peer_id] += len(data)  # type: ignore[index]
            self._frames(data)
        elif self._snapshot is not None:
            self._snapshot.feed_data(data)
        else:
            self._buf += data
            if len(self._buf) >= HELLO.size or not MAGIC.startswith(self._buf[:len(MAGIC)]):
                self._handshake()

    def _frames(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        deliver, sender, unpack = self.ctx.on_message, self.peer_id, LENGTH.unpack_from
        end, off = len(view), 0
        while end - off >= 4:
            (size,) = unpack(view, off)
            stop = off + 4 + size
            if stop > end:
                if size > self.ctx.options.max_frame_bytes:
                    self._garbage(size)
                    return
                break
            try:
                deliver(sender, bytes(view[off + 4:stop]))  # type: ignore[arg-type]
            except Exception:
                self.ctx.logger.exception("peer message handler failed")
            off = stop
        if buf:
            del buf[:off]
        elif off < end:
            self._buf = bytearray(data[off:])

    def _garbage(self, size: int) -> None:
        self.ctx.log(logging.ERROR, "peer sent an oversized frame; closing its stream",
                     **{"remote-peer-id": f"{self.peer_id:x}", "frame-size": size})
        self.abort()

    def _handshake(self) -> None:
        assert self.transport is not None and self._timer is not None
        self._timer.cancel()
        data = bytes(self._buf)
        self._buf = bytearray()
        try:
            hello = decode_hello(data)
            if hello.kind == KIND_CLUSTER:
                self._answer_cluster_info()
                return
            self._check(hello)
        except HandshakeError as e:
            self._refuse(e, decode_sender(data))
            return
        self.peer_id = hello.sender
        self.transport.write(encode_status(Status.OK))
        rest = data[HELLO.size:]
        if hello.kind == KIND_STREAM:
            old = self.registry.streams.get(hello.sender)
            if old is not None:
                old.abort()  # the peer reconnected; its previous stream is dead
            self.registry.streams[hello.sender] = self
            self._stream = True
            if rest:
                self._frames(rest)
        else:
            reader = asyncio.StreamReader(limit=self.ctx.options.snapshot_chunk_bytes)
            reader.set_transport(self.transport)
            self._snapshot = reader
            if rest:
                reader.feed_data(rest)
            self.ctx.spawn(receive_snapshot(self.ctx, hello.sender, reader, self.transport),
                           f"snapshot-from-{hello.sender:x}")

    def _answer_cluster_info(self) -> None:
        """A joining member asks for the cluster's ID and members: one answer, then close.

        Refusals name no sender: the asker is no member yet, there is no Rejection to report.
        """
        assert self.transport is not None
        ctx = self.ctx
        if ctx.cluster_info is None:
            self._refuse(HandshakeError(Status.FAILED, f"member {ctx.member_id:x} does not serve cluster "
                                                       "information"), None)
            return
        try:
            info = ctx.cluster_info()
        except Exception as e:
            ctx.logger.exception("cluster information callback failed")
            self._refuse(HandshakeError(Status.FAILED, f"member {ctx.member_id:x} cannot tell its cluster: {e}"),
                         None)
            return
        self.transport.write(encode_status(Status.OK) + frame(info))
        self.transport.close()

    def _check(self, hello: Hello) -> None:
        ctx = self.ctx
        if hello.cluster != ctx.cluster_id:
            raise HandshakeError(Status.CLUSTER_MISMATCH,
                                 f"cluster ID mismatch: member {ctx.member_id:x} is in cluster "
                                 f"{ctx.cluster_id:x}, member {hello.sender:x} claims cluster {hello.cluster:x}")
        if hello.receiver != ctx.member_id:
            raise HandshakeError(Status.WRONG_MEMBER,
                                 f"member ID mismatch: connection from {hello.sender:x} is meant for "
                                 f"member {hello.receiver:x}, this is member {ctx.member_id:x}")
        if hello.sender in ctx.removed:
            raise HandshakeError(Status.MEMBER_REMOVED,
                                 f"the member {hello.sender:x} has been permanently removed from the cluster")

    def _refuse(self, e: HandshakeError, sender: int | None) -> None:
        assert self.transport is not None
        self.ctx.log(logging.ERROR, "refused peer connection", error=str(e),
                     **{"remote-peer-id": f"{sender:x}" if sender is not None else None,
                        "remote-addr": str(self.transport.get_extra_info("peername"))})
        self.transport.write(encode_status(e.status, str(e)))
        self.transport.close()
        if sender is not None:
            self.ctx.rejected(Rejection(sender, e.status, str(e), inbound=True))


def decode_sender(data: bytes) -> int | None:
    """The sender id of a handshake, if it is ours at all."""
    try:
        return decode_hello(data).sender
    except HandshakeError:
        return None
