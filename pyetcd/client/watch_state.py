"""What the sync and asyncio watches share: the create request, and the cursor that makes a watch
resume after a reconnect from the last revision seen (no gap, no duplicate)."""
from __future__ import annotations

from typing import Iterable, Optional

from pyetcd.client._common import Bytes, to_bytes
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
CANCELED_BY_SERVER = "watch is canceled by the server"
# etcdctl's watch streams ask for a leader (clientv3.WithRequireLeader): a member cut off from the
# quorum cancels them instead of going silent.
REQUIRE_LEADER = ("hasleader", "true")
FILTERS = {"noput": rpc_pb2.WatchCreateRequest.NOPUT, "nodelete": rpc_pb2.WatchCreateRequest.NODELETE}


class WatchCanceled(EtcdError):
    """The server canceled the watch; ``response`` is its last WatchResponse."""

    def __init__(self, message: str, response: rpc_pb2.WatchResponse) -> None:
        super().__init__(1, message)  # gRPC CANCELED
        self.response = response


class WatchCompacted(WatchCanceled):
    """The revision the watch had to start at is compacted; ``compact_revision`` is the oldest kept."""

    def __init__(self, response: rpc_pb2.WatchResponse) -> None:
        super().__init__(COMPACTED, response)
        self.compact_revision = response.compact_revision


def is_progress_notify(resp: rpc_pb2.WatchResponse) -> bool:
    return (not resp.events and not resp.canceled and not resp.created and resp.compact_revision == 0
            and resp.header.revision != 0)


class WatchCursor:
    """One watch's request and position. ``accept`` turns each response into what the caller gets
    (None: nothing to deliver) and remembers the next revision to resume from."""

    def __init__(self, key: Bytes, range_end: Bytes = b"", start_revision: int = 0, prev_kv: bool = False,
                 filters: Iterable[str] = (), progress_notify: bool = False) -> None:
        self.key, self.range_end = to_bytes(key), to_bytes(range_end)
        self.prev_kv, self.progress_notify = prev_kv, progress_notify
        self.filters = [FILTERS[f] for f in filters]
        self.next_revision = start_revision  # 0: from "now", decided by the first created response

    def create_request(self) -> rpc_pb2.WatchRequest:
        return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=self.key, range_end=self.range_end, start_revision=self.next_revision, prev_kv=self.prev_kv,
            filters=self.filters, progress_notify=self.progress_notify))

    def accept(self, resp: rpc_pb2.WatchResponse) -> Optional[rpc_pb2.WatchResponse]:
        if resp.canceled:
            if resp.compact_revision:
                raise WatchCompacted(resp)
            raise WatchCanceled(resp.cancel_reason or CANCELED_BY_SERVER, resp)
        if resp.created:
            if self.next_revision <= 0:
                self.next_revision = resp.header.revision + 1
            return None
        if resp.events:
            # after a reconnect the server replays from next_revision: drop anything seen already
            fresh = [ev for ev in resp.events if ev.kv.mod_revision >= self.next_revision]
            if not fresh:
                return None
            self.next_revision = fresh[-1].kv.mod_revision + 1
            if len(fresh) != len(resp.events):
                resp = rpc_pb2.WatchResponse(header=resp.header, watch_id=resp.watch_id, events=fresh)
            return resp
        if is_progress_notify(resp):
            self.next_revision = max(self.next_revision, resp.header.revision + 1)
            return resp
        return None


def progress_request() -> rpc_pb2.WatchRequest:
    return rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())
