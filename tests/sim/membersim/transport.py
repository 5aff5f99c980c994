"""SimTransport: pyetcd.transport.PeerTransport's interface over the simulated network.

What the member sees is what the real transport promises (see PeerTransport's docstring): the
same constructor, ``send``/``send_many`` that never block nor raise, ``send_snapshot`` that is
True once the receiver's ``on_snapshot`` returned, callbacks run in the receiving member's
process, and the real handshake's refusals (cluster mismatch, wrong member, removed member)
reported to both sides through ``on_rejected``. A received snapshot is copied, through the
receiver's FileSystem, into its spool directory (``options.snapshot_dir``, else the machine's
temp dir) and the file is deleted after ``on_snapshot`` returns, as the real one does.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable

from pyetcd.fileutil import FileSystem, write_all
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.transport import Rejection, Status, TransportOptions

from membersim.network import LONG_SNAPSHOT_DELAY, SNAPSHOT_DELAY, CallLost, Network, host_of
from membersim.process import Process

_SNAPSHOT_VERDICT_TIMEOUT = 30.0  # the real transport's snapshot_idle_timeout


class SimTransport:
    def __init__(self, network: Network, process: Process, fs: FileSystem, temp_dir: str,
                 member_id: int, cluster_id: int, *, on_message, on_snapshot=None, on_unreachable=None,
                 on_rejected=None, cluster_info=None, ssl_server=None, ssl_client=None,
                 options: TransportOptions | None = None, rng=None, logger: logging.Logger | None = None) -> None:
        self.network = network
        self.process = process
        self.fs = fs
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.on_message = on_message
        self.on_snapshot = on_snapshot
        self.on_unreachable = on_unreachable
        self.on_rejected = on_rejected
        self.cluster_info = cluster_info
        self.options = options or TransportOptions()
        self.spool_dir = self.options.snapshot_dir or temp_dir
        self.listen_urls: list[str] = []
        self.host = ""
        self.removed: set[int] = set()
        self._peers: dict[int, list[str]] = {}
        self._stopped = False
        process.at_kill(self._unlisten)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, listen_urls: list[str]) -> None:
        for url in listen_urls:
            holder = self.network.listeners.get(url)
            if holder is not None and holder is not self:
                raise OSError(98, f"listen {url}: address already in use")
        for url in listen_urls:
            self.network.listeners[url] = self
        self.listen_urls = list(listen_urls)
        self.host = host_of(listen_urls[0])

    async def stop(self) -> None:
        self._stopped = True
        self._unlisten()

    def _unlisten(self) -> None:
        for url in self.listen_urls:
            if self.network.listeners.get(url) is self:
                del self.network.listeners[url]

    # ---- membership ----------------------------------------------------------------------------

    def add_peer(self, peer_id: int, urls: list[str]) -> None:
        if peer_id == self.member_id:
            raise ValueError(f"member {peer_id:x} cannot be its own peer")
        if peer_id in self.removed:
            raise ValueError(f"member {peer_id:x} was removed from the cluster; IDs are never reused")
        self._peers[peer_id] = list(urls)

    def update_peer(self, peer_id: int, urls: list[str]) -> None:
        if peer_id not in self._peers:
            raise KeyError(peer_id)
        self._peers[peer_id] = list(urls)

    def remove_peer(self, peer_id: int) -> None:
        self.removed.add(peer_id)
        self._peers.pop(peer_id, None)

    def peers(self) -> list[int]:
        return list(self._peers)

    # ---- messages ------------------------------------------------------------------------------

    def send(self, peer_id: int, data: bytes) -> None:
        urls = self._peers.get(peer_id)
        if urls is None or self._stopped:
            return
        url = self._reachable_url(urls)
        sent = url is not None and self.network.transmit(
            self.host, url, lambda: self._arrive(url, peer_id, data),
            lambda: self.network.duplicate_proposals or not _is_proposal(data))
        if not sent:
            self._report_unreachable(peer_id)
        elif self.host in self.network.after_ack:
            self._maybe_acked(data)

    def _maybe_acked(self, data: bytes) -> None:
        index, action = self.network.after_ack[self.host]
        m = raft_pb2.Message.FromString(data)
        if m.type == raft_pb2.MsgAppResp and not m.reject and m.index >= index:
            del self.network.after_ack[self.host]
            action()

    def send_many(self, items: list[tuple[int, bytes]]) -> None:
        for peer_id, data in items:
            self.send(peer_id, data)

    def _reachable_url(self, urls: list[str]) -> str | None:
        return next((u for u in urls if u in self.network.listeners), None)

    def _arrive(self, url: str, peer_id: int, data: bytes) -> None:
        """On the wire (no process): hand the message to whoever listens at url now."""
        receiver = self.network.listeners.get(url)
        if receiver is None or self._refused(receiver, peer_id):
            return
        if self.network.on_delivered is not None:
            self.network.on_delivered(receiver.host, self.host, data)
        self.network.loop.call_soon(receiver._deliver, self.member_id, data, context=receiver.process.context)

    def _deliver(self, sender: int, data: bytes) -> None:
        if self._stopped:
            return
        try:
            self.on_message(sender, data)
        except Exception as e:  # noqa: BLE001 - the real transport logs it and goes on: we report it
            self.network.trace.error("peer message handler failed", e)

    def _refused(self, receiver: SimTransport, peer_id: int) -> bool:
        """The real handshake's checks, on the receiver's side; a refusal is reported to both."""
        if self.cluster_id != receiver.cluster_id:
            status = Status.CLUSTER_MISMATCH
        elif peer_id != receiver.member_id:
            status = Status.WRONG_MEMBER
        elif self.member_id in receiver.removed:
            status = Status.MEMBER_REMOVED
        else:
            return False
        if self.network.once_per_interval(("rejected", self.member_id, receiver.member_id)):
            text = f"refused by {receiver.member_id:x}: {status.name}"
            loop = self.network.loop
            if self.on_rejected is not None:
                loop.call_soon(self.on_rejected, Rejection(peer_id, status, text, inbound=False),
                               context=self.process.context)
            if receiver.on_rejected is not None:
                loop.call_soon(receiver.on_rejected, Rejection(self.member_id, status, text, inbound=True),
                               context=receiver.process.context)
        return True

    def _report_unreachable(self, peer_id: int) -> None:
        if self.on_unreachable is not None and self.network.once_per_interval(("unreachable", self.member_id, peer_id)):
            self.network.loop.call_soon(self.on_unreachable, peer_id, context=self.process.context)

    # ---- snapshots -----------------------------------------------------------------------------

    async def send_snapshot(self, peer_id: int, metadata: bytes, source) -> bool:
        urls = self._peers.get(peer_id)
        if urls is None or self._stopped:
            return False
        data = await _read_source(source)
        url = self._reachable_url(urls)
        if url is None or not self.network.link_up(self.host, host_of(url)):
            self._report_unreachable(peer_id)
            return False
        receiver = self.network.listeners[url]
        if self._refused(receiver, peer_id):
            return False
        network = self.network
        network.on_snapshot_sending(self.host)
        slow = network.slow_snapshots and network.rng.random() < network.slow_snapshots
        await asyncio.sleep(network.rng.uniform(*(LONG_SNAPSHOT_DELAY if slow else SNAPSHOT_DELAY)))
        network.stats["snapshot-sent"] += 1
        try:
            accepted = await network.remote(self.host, receiver.host, receiver.process,
                                            lambda: receiver._receive_snapshot(self.member_id, metadata, data),
                                            _SNAPSHOT_VERDICT_TIMEOUT)
        except CallLost:
            accepted = False
        network.stats["snapshot-accepted" if accepted else "snapshot-failed"] += 1
        if accepted:
            network.on_snapshot_installed(receiver.host)
        return accepted

    async def _receive_snapshot(self, sender: int, metadata: bytes, data: bytes) -> bool:
        if self.on_snapshot is None or self._stopped:
            return False
        self.network.on_snapshot_arriving(self.host, metadata)
        fs = self.fs
        path = os.path.join(self.spool_dir, f"snapshot-{sender:x}-{next(self.network.serial)}.tmp")
        try:
            fd = fs.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                chunk = self.options.snapshot_chunk_bytes
                for off in range(0, len(data), chunk):
                    write_all(fs, fd, data[off:off + chunk])
            finally:
                fs.close(fd)
            try:
                await self.on_snapshot(sender, metadata, path)
            except Exception as e:  # noqa: BLE001 - refusing is the handler's right; we note why
                self.network.trace(f"snapshot from {sender:x} refused: {e!r}")
                return False
            return True
        except OSError as e:
            self.network.trace(f"receiving snapshot from {sender:x} failed: {e!r}")
            return False
        finally:
            if fs.exists(path):
                fs.unlink(path)

    # ---- liveness ------------------------------------------------------------------------------

    def is_active(self, peer_id: int) -> bool:
        urls = self._peers.get(peer_id)
        if urls is None:
            return False
        url = self._reachable_url(urls)
        return (url is not None and self.network.listeners[url].member_id == peer_id
                and self.network.link_up(self.host, host_of(url)))

    def active_since(self, peer_id: int) -> float | None:
        return self.network.loop.time() if self.is_active(peer_id) else None


def _is_proposal(data: bytes) -> bool:
    return raft_pb2.Message.FromString(data).type == raft_pb2.MsgProp


async def _read_source(source) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:  # the sender's own file, as the real transport reads it
            return f.read()
    return b"".join([chunk async for chunk in source])


def transport_factory(network: Network, process: Process, fs: FileSystem, temp_dir: str) -> Callable[..., SimTransport]:
    """What Platform.transport is for one process: PeerTransport's constructor, simulated."""
    def make(member_id: int, cluster_id: int, **kwargs) -> SimTransport:
        return SimTransport(network, process, fs, temp_dir, member_id, cluster_id, **kwargs)
    return make
