"""PeerTransport: the member's messaging with the other members of its cluster (etcd's rafthttp).

Messages are opaque bytes addressed to a member id. Each member listens on its peer URLs and
keeps one outgoing stream per peer (peer.py); the streams peers open to us are received in
inbound.py; snapshots go on connections of their own (snapshot.py). Everything runs on the
event loop that called ``start()``; call the methods from that loop's thread.
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from dataclasses import dataclass
from typing import Callable

from pyetcd.transport.common import (Context, MessageHandler, Rejection, SnapshotHandler,
                                     TransportOptions)
from pyetcd.transport.inbound import Inbound
from pyetcd.transport.peer import PeerStream
from pyetcd.transport.snapshot import SnapshotSource, send_snapshot
from pyetcd.transport.wire import parse_url


@dataclass(frozen=True)
class PeerStats:
    active: bool
    queued: int          # messages waiting to be written
    sent: int            # messages handed to the socket
    sent_bytes: int      # bytes of those, with framing
    dropped: int         # messages dropped because the queue was full
    received_bytes: int  # bytes this peer streamed to us, with framing


class PeerTransport:
    """See the package docstring for the contract; the callbacks run on the event loop:

    - ``on_message(from_id, data)``: one call per message, in the order the sender sent them;
      must not block.
    - ``on_snapshot(from_id, metadata, path)``: awaited once a snapshot has fully arrived in the
      temporary file ``path``; returning accepts it (move the file away to keep it, it is deleted
      afterwards), raising refuses it. ``None``: snapshots are refused.
    - ``on_unreachable(peer_id)``: a connection round to the peer (every URL once) failed, or
      its stream broke; repeats once per back-off delay while the peer stays down (tell Raft
      ``ReportUnreachable``).
    - ``on_rejected(Rejection)``: a handshake was refused (cluster ID mismatch, connection meant
      for another member, member removed), either by a peer (``inbound=False``: e.g. we were
      removed, or joined the wrong cluster) or by us.
    - ``cluster_info()``: a serialized ``MemberListResponse`` (the cluster's ID in
      ``header.cluster_id``, the current members) for a member that is joining and asks with
      ``fetch_cluster``; must not block. ``None``: such questions are refused.

    Inbound connections are accepted from any member id of our cluster that was not removed,
    including ids not (yet) added as peers: a member learns of a new member only when it applies
    the configuration change, and the new member may speak first.
    """

    def __init__(self, member_id: int, cluster_id: int, *, on_message: MessageHandler,
                 on_snapshot: SnapshotHandler | None = None,
                 on_unreachable: Callable[[int], None] | None = None,
                 on_rejected: Callable[[Rejection], None] | None = None,
                 cluster_info: Callable[[], bytes] | None = None,
                 ssl_server: ssl.SSLContext | None = None, ssl_client: ssl.SSLContext | None = None,
                 options: TransportOptions | None = None, rng: random.Random | None = None,
                 logger: logging.Logger | None = None) -> None:
        self._ctx = Context(member_id, cluster_id, options or TransportOptions(), on_message, on_snapshot,
                            on_unreachable, on_rejected, ssl_server, ssl_client, rng or random.Random(),
                            logger or logging.getLogger("pyetcd.transport"), cluster_info)
        self._inbound = Inbound(self._ctx)
        self._peers: dict[int, PeerStream] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._stopped = False
        self.listen_urls: list[str] = []  # the bound URLs (actual ports when asked for port 0)

    @property
    def member_id(self) -> int:
        return self._ctx.member_id

    @property
    def cluster_id(self) -> int:
        return self._ctx.cluster_id

    async def start(self, listen_urls: list[str]) -> None:
        """Listen on every URL; https URLs need ``ssl_server``. Port 0 picks a free port."""
        loop = asyncio.get_running_loop()
        try:
            for url in listen_urls:
                u = parse_url(url)
                if u.tls and self._ctx.ssl_server is None:
                    raise ValueError(f"listen peer URL {url!r} is https but no server TLS context was given")
                server = await loop.create_server(self._inbound.protocol, u.host, u.port, reuse_address=True,
                                                  ssl=self._ctx.ssl_server if u.tls else None)
                self._servers.append(server)
                host, port = server.sockets[0].getsockname()[:2]
                if server.sockets[0].family == socket.AF_INET6:
                    host = f"[{host}]"
                self.listen_urls.append(f"{'https' if u.tls else 'http'}://{host}:{port}")
        except BaseException:
            await self.stop()
            raise

    # -- membership -------------------------------------------------------------------------------

    def add_peer(self, peer_id: int, urls: list[str]) -> None:
        """Start streaming to a member. Adding a known peer updates its URLs."""
        if peer_id == self._ctx.member_id:
            raise ValueError(f"member {peer_id:x} cannot be its own peer")
        if peer_id in self._ctx.removed:
            raise ValueError(f"member {peer_id:x} was removed from the cluster; IDs are never reused")
        if peer_id in self._peers:
            self._peers[peer_id].update(urls)
        else:
            self._peers[peer_id] = PeerStream(self._ctx, peer_id, urls)

    def update_peer(self, peer_id: int, urls: list[str]) -> None:
        """New peer URLs; the stream moves if its current URL is no longer among them.

        KeyError for a peer that was never added (or was removed).
        """
        self._peers[peer_id].update(urls)

    def remove_peer(self, peer_id: int) -> None:
        """Stop talking to a member for good and refuse its connections from now on.

        Also for ids that were removed before this process started (known from the membership
        store), so that a removed member cannot come back.
        """
        self._ctx.removed.add(peer_id)
        self._inbound.drop_peer(peer_id)
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            peer.shutdown()
            self._ctx.spawn(peer.wait_closed(), f"close-peer-{peer_id:x}")

    def peers(self) -> list[int]:
        return list(self._peers)

    # -- messages ---------------------------------------------------------------------------------

    def send(self, peer_id: int, data: bytes) -> None:
        """Queue ``data`` for ``peer_id``; never blocks, never raises for a dead or unknown peer."""
        peer = self._peers.get(peer_id)
        if peer is not None:
            peer.enqueue(data)

    def send_many(self, items: list[tuple[int, bytes]]) -> None:
        peers = self._peers
        for peer_id, data in items:
            peer = peers.get(peer_id)
            if peer is not None:
                peer.enqueue(data)

    async def send_snapshot(self, peer_id: int, metadata: bytes, source: SnapshotSource) -> bool:
        """Stream a snapshot (a file path or an async iterable of chunks) on its own connection.

        True once the peer has received all of it and its ``on_snapshot`` returned; False on any
        failure (unknown peer, unreachable, refused, broken, transport stopped).
        """
        peer = self._peers.get(peer_id)
        if peer is None or self._stopped:
            return False
        task = self._ctx.spawn(send_snapshot(self._ctx, peer_id, list(peer.urls), metadata, source),
                               f"snapshot-to-{peer_id:x}")
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._stopped and current is not None and not current.cancelling():
                return False  # stop() cancelled the transfer, not our caller
            raise

    # -- liveness ---------------------------------------------------------------------------------

    def is_active(self, peer_id: int) -> bool:
        """Whether our stream to the peer is connected and past the handshake."""
        peer = self._peers.get(peer_id)
        return peer is not None and peer.active_since is not None

    def active_since(self, peer_id: int) -> float | None:
        """``time.monotonic()`` when the current stream to the peer was established, or None."""
        peer = self._peers.get(peer_id)
        return None if peer is None else peer.active_since

    def stats(self, peer_id: int) -> PeerStats | None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return None
        return PeerStats(peer.active_since is not None, len(peer.queue), peer.sent, peer.sent_bytes, peer.dropped,
                         self._inbound.received_bytes[peer_id])

    # -- shutdown ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Close listeners, streams, snapshot transfers; returns when nothing is left running."""
        self._stopped = True
        for server in self._servers:
            server.close()
        peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            peer.shutdown()
        while self._ctx.tasks:
            tasks = list(self._ctx.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._inbound.close()
        for peer in peers:
            await peer.wait_closed()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
