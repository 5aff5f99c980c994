"""The Watch service: one bidirectional stream carries many watchers (etcd's serverWatchStream).

Requests (create, cancel, progress) are read by a task of the stream's own; responses go out in
the order they were made through one queue, so a watcher's `created` always precedes its
events. Event responses are built from the stored bytes (header + watch_id + events, see
watchable_store.encode_event): nothing is decoded or encoded again per watcher. The queue holds
at most BUFFER event responses (BUFFER_BYTES): a watcher whose stream is that far behind is moved to the
unsynced group and catches up from the store once the client reads again (etcd's victims).
"""
from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from pyetcd import errors
from pyetcd.embed.grpc import Framed, frame_message
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.storage.watchable_store import EventBatch, Watcher, WatchableStore, varint

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

BUFFER = 128  # event responses queued per stream (etcd's chanBufLen)
BUFFER_BYTES = 2 << 20  # and their bytes
WRITE_BYTES = 256 << 10  # responses joined into one write (the transport's queue is about as long)
NO_LEADER_CHECKS = 3  # a stream that requires a leader ends after this many election timeouts without one
DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
PERMISSION_DENIED = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"  # (as etcd words it)
_NOPUT, _NODELETE = rpc_pb2.WatchCreateRequest.NOPUT, rpc_pb2.WatchCreateRequest.NODELETE
WatchResponse = rpc_pb2.WatchResponse


class WatchServer:
    """What every watch stream of a member shares: the store's watchers, response headers,
    and the check that ends streams requiring a leader when there is none."""

    def __init__(self, server: EtcdServer) -> None:
        self.server = server
        self._header: tuple[int, int, bytes] = (-1, -1, b"")
        self._need_leader: set[WatchStream] = set()
        self._monitor: asyncio.Task | None = None

    @property
    def hub(self) -> WatchableStore:
        return self.server.watchable

    def header(self, revision: int) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader(revision=revision)
        self.server._fill_header(header)
        return header

    def header_field(self, revision: int) -> bytes:
        """WatchResponse field 1 (the header at ``revision``), serialized; kept for the next call."""
        term = self.server.raft.term
        rev, cached_term, raw = self._header
        if rev != revision or cached_term != term:
            header = self.header(revision).SerializeToString()
            raw = b"\x0a" + varint(len(header)) + header
            self._header = (revision, term, raw)
        return raw

    async def Watch(self, requests: AsyncIterator[rpc_pb2.WatchRequest], ctx) -> AsyncIterator[Framed]:
        need_leader = ctx.metadata.get("hasleader") == "true"
        if need_leader and not self.server.raft.lead:
            raise errors.ErrNoLeader
        stream = WatchStream(self)
        if need_leader:
            self._need_leader.add(stream)
            if self._monitor is None or self._monitor.done():
                self._monitor = asyncio.get_running_loop().create_task(self._monitor_leader(), name="watch-leader-check")
        try:
            async for payload in stream.run(requests):
                yield payload
        finally:
            self._need_leader.discard(stream)

    async def _monitor_leader(self) -> None:
        server, missed = self.server, 0
        interval = server.election_ticks * server.tick_seconds
        while self._need_leader:
            await asyncio.sleep(interval)
            missed = 0 if server.raft.lead else missed + 1
            if missed >= NO_LEADER_CHECKS:
                for stream in list(self._need_leader):
                    stream.fail(errors.ErrNoLeader)
                missed = 0


class WatchStream:
    """One client's Watch call: its watchers and its queue of responses."""

    def __init__(self, service: WatchServer) -> None:
        self.service = service
        self.server = service.server
        self.watchers: dict[int, Watcher] = {}
        self.fragment: set[int] = set()  # watch IDs that accept fragmented responses
        self.progress: dict[int, bool] = {}  # progress_notify watch ID -> nothing sent since the last tick
        self._next_id = 0
        self._out: collections.deque[tuple[bytes, bool]] = collections.deque()  # (payload, is events)
        self._queued_events = 0
        self._queued_bytes = 0
        self._wakeup: asyncio.Future | None = None
        self._error: type[errors.EtcdError] | None = None

    # ---- the hub's Sink ------------------------------------------------------------------------

    def has_room(self) -> bool:
        return self._queued_events < BUFFER and self._queued_bytes < BUFFER_BYTES

    def send_events(self, w: Watcher, batch: EventBatch, revision: int) -> None:
        """One response, or several split between revisions once one passes --max-request-bytes
        (clients refuse messages past their limit: grpc's default is 4 MiB); a revision bigger
        than that is fragmented if the watcher asked for it."""
        parts = batch.encoded
        if parts is None:
            parts = batch.encoded = _split(batch.events, self.server.max_request_bytes)
        watch_id = b"\x10" + varint(w.id) if w.id else b""
        last = len(parts) - 1
        for i, (rev, fields, body) in enumerate(parts):
            head = self.service.header_field(revision if i == last else rev) + watch_id
            if w.id in self.fragment and len(fields) > 1 and len(head) + len(body) >= self.server.max_request_bytes:
                for part in _fragments(head, fields, self.server.max_request_bytes):
                    self._push(part, True)
            else:
                self._push(head + body, True)
        if w.id in self.progress:
            self.progress[w.id] = False

    def send_compacted(self, w: Watcher, compact_revision: int) -> None:
        self._forget(w.id)
        self._respond(WatchResponse(header=self.service.header(0), watch_id=w.id, canceled=True,
                                    compact_revision=compact_revision))

    # ---- the stream ----------------------------------------------------------------------------

    async def run(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> AsyncIterator[Framed]:
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read(requests), name="watch-requests")
        ticker = None
        interval = self.server.watch_progress_interval
        if interval > 0:
            ticker = loop.create_task(self._progress_ticks(interval), name="watch-progress")
        try:
            while True:
                while self._out:
                    yield self._take(WRITE_BYTES)
                if self._error is not None:
                    raise self._error
                self._wakeup = loop.create_future()
                try:
                    await self._wakeup
                finally:
                    self._wakeup = None
        finally:
            reader.cancel()
            if ticker is not None:
                ticker.cancel()
            for w in self.watchers.values():
                self.service.hub.cancel(w)
            self.watchers.clear()

    def _take(self, most: int) -> Framed:
        """Queued responses, framed, about ``most`` bytes of them (at least one)."""
        out, taken, events = [], 0, 0
        queue = self._out
        while queue and (not out or taken < most):
            payload, is_events = queue.popleft()
            out.append(frame_message(payload))
            taken += len(payload)
            if is_events:
                events += 1
                self._queued_bytes -= len(payload)
        if events:
            self._queued_events -= events
            self.service.hub.wake()
        return Framed(b"".join(out))

    def fail(self, error: type[errors.EtcdError]) -> None:
        """End the stream with ``error`` once what is queued has gone out."""
        self._error = error
        self._wake()

    async def _read(self, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        try:
            async for req in requests:
                kind = req.WhichOneof("request_union")
                if kind == "create_request":
                    self._create(req.create_request)
                elif kind == "cancel_request":
                    self._cancel(req.cancel_request.watch_id)
                elif kind == "progress_request":
                    self._respond(WatchResponse(header=self.service.header(self.server.store.rev), watch_id=-1))
        except errors.EtcdError as e:
            self.fail(e)
        # (a client that closes its side keeps its watchers, as in etcd)

    def _create(self, req: rpc_pb2.WatchCreateRequest) -> None:
        hub, rev = self.service.hub, self.server.store.rev
        if not self._permitted(req):
            self._respond(WatchResponse(header=self.service.header(rev), watch_id=req.watch_id, created=True,
                                        canceled=True, cancel_reason=PERMISSION_DENIED))
            return
        watch_id = req.watch_id
        if watch_id == 0:  # etcd's AutoWatchID
            while self._next_id in self.watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self.watchers:
            self._respond(WatchResponse(header=self.service.header(rev), watch_id=-1, created=True, canceled=True,
                                        cancel_reason=DUPLICATE_ID))
            return
        end = req.range_end
        w = Watcher(watch_id, req.key, None if not end else b"" if end == b"\0" else end,
                    req.start_revision or rev + 1, self, no_put=_NOPUT in req.filters,
                    no_delete=_NODELETE in req.filters, prev_kv=req.prev_kv)
        self.watchers[watch_id] = w
        if req.fragment:
            self.fragment.add(watch_id)
        if req.progress_notify:
            self.progress[watch_id] = True
        self._respond(WatchResponse(header=self.service.header(rev), watch_id=watch_id, created=True))
        hub.watch(w)

    def _permitted(self, req: rpc_pb2.WatchCreateRequest) -> bool:
        try:
            self.server.check_range_permitted(req.key, req.range_end)
        except errors.EtcdError:  # (an invalid token too)
            return False
        return True

    def _cancel(self, watch_id: int) -> None:
        w = self.watchers.get(watch_id)
        if w is None:
            return  # (etcd answers nothing)
        self.service.hub.cancel(w)
        self._forget(watch_id)
        self._respond(WatchResponse(header=self.service.header(self.server.store.rev), watch_id=watch_id,
                                    canceled=True))

    def _forget(self, watch_id: int) -> None:
        self.watchers.pop(watch_id, None)
        self.fragment.discard(watch_id)
        self.progress.pop(watch_id, None)

    async def _progress_ticks(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for watch_id, idle in list(self.progress.items()):
                w = self.watchers.get(watch_id)
                if idle and w is not None and w.synced:
                    self._respond(WatchResponse(header=self.service.header(self.server.store.rev),
                                                watch_id=watch_id))
                self.progress[watch_id] = True

    def _respond(self, resp: WatchResponse) -> None:
        self._push(resp.SerializeToString(), False)

    def _push(self, payload: bytes, is_events: bool) -> None:
        self._out.append((payload, is_events))
        if is_events:
            self._queued_events += 1
            self._queued_bytes += len(payload)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


def _split(events: list[tuple[int, bytes]], limit: int) -> list[tuple[int, list[bytes], bytes]]:
    """Events as WatchResponse fields, in runs of whole revisions of about ``limit`` bytes at
    most: (last revision, fields, their bytes joined) per run."""
    runs: list[tuple[int, list[bytes], bytes]] = []
    fields: list[bytes] = []
    size = last = 0
    for main, event in events:
        field = b"\x5a" + varint(len(event)) + event
        if fields and main != last and size + len(field) > limit:
            runs.append((last, fields, b"".join(fields)))
            fields, size = [], 0
        fields.append(field)
        size += len(field)
        last = main
    runs.append((last, fields, b"".join(fields)))
    return runs


def _fragments(head: bytes, fields: list[bytes], limit: int) -> list[bytes]:
    """Split one watcher's events into responses under ``limit`` bytes where possible (each holds
    at least one event); all but the last say `fragment` (etcd's sendFragments)."""
    parts: list[list[bytes]] = [[]]
    size = len(head) + 2
    for field in fields:
        if parts[-1] and size + len(field) >= limit:
            parts.append([])
            size = len(head) + 2
        parts[-1].append(field)
        size += len(field)
    out = [head + b"\x38\x01" + b"".join(p) for p in parts[:-1]]
    out.append(head + b"".join(parts[-1]))
    return out
