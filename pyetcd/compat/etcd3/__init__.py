"""python-etcd3's public API (PyPI ``etcd3`` 0.12) on top of pyetcd's client.

A python-etcd3 program changes one line, ``import etcd3`` -> ``import pyetcd.compat.etcd3 as
etcd3``, and runs on grpcio/protobuf of today, with pyetcd's client underneath (failover over
several endpoints is pyetcd's; watches resume after a reconnect). Locks keep python-etcd3's key
layout (``/locks/<name>``, a random value, a lease), so converted and unconverted programs share
them. Differences: errors python-etcd3 lets through as ``grpc.RpcError`` are
``pyetcd.errors.EtcdError`` here (with the same code and message).
"""
from __future__ import annotations

import functools
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Optional

from pyetcd import errors
from pyetcd.client import Client, WatchCompacted
from pyetcd.client import _common as c
from pyetcd.compat.etcd3 import events, exceptions, transactions
from pyetcd.compat.etcd3.transactions import Transactions, lease_id
from pyetcd.proto.etcdserverpb import rpc_pb2

__all__ = ["client", "Etcd3Client", "Lease", "Lock", "Member", "KVMetadata", "Status", "Alarm",
           "Transactions", "events", "exceptions", "transactions"]

_SORT_ORDER = {None: rpc_pb2.RangeRequest.NONE, "ascend": rpc_pb2.RangeRequest.ASCEND,
               "descend": rpc_pb2.RangeRequest.DESCEND}
_SORT_TARGET = {"key": rpc_pb2.RangeRequest.KEY, "version": rpc_pb2.RangeRequest.VERSION,
                "create": rpc_pb2.RangeRequest.CREATE, "mod": rpc_pb2.RangeRequest.MOD,
                "value": rpc_pb2.RangeRequest.VALUE}


def _translating(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except errors.EtcdError as e:
            raise exceptions.translated(e) from None
    return call


class KVMetadata:
    def __init__(self, kv: Any, header: rpc_pb2.ResponseHeader) -> None:
        self.key = kv.key
        self.create_revision, self.mod_revision = kv.create_revision, kv.mod_revision
        self.version, self.lease_id = kv.version, kv.lease
        self.response_header = header


class Status:
    def __init__(self, version: str, db_size: int, leader: Optional["Member"], raft_index: int,
                 raft_term: int) -> None:
        self.version, self.db_size, self.leader = version, db_size, leader
        self.raft_index, self.raft_term = raft_index, raft_term


class Alarm:
    def __init__(self, alarm_type: int, member_id: int) -> None:
        self.alarm_type, self.member_id = alarm_type, member_id


class Member:
    def __init__(self, id: int, name: str, peer_urls: list[str], client_urls: list[str],
                 etcd_client: "Etcd3Client") -> None:
        self.id, self.name, self.peer_urls, self.client_urls = id, name, peer_urls, client_urls
        self._etcd_client = etcd_client

    def __str__(self) -> str:
        return f"Member {self.id}: peer urls: {self.peer_urls}, client urls: {self.client_urls}"

    def remove(self) -> None:
        self._etcd_client.remove_member(self.id)

    def update(self, peer_urls: list[str]) -> None:
        self._etcd_client.update_member(self.id, peer_urls)

    @property
    def active_alarms(self) -> Iterator[Alarm]:
        return self._etcd_client.list_alarms(member_id=self.id)


class Lease:
    def __init__(self, lease_id: int, ttl: int, etcd_client: "Etcd3Client") -> None:
        self.id, self.ttl, self.etcd_client = lease_id, ttl, etcd_client

    def _info(self) -> rpc_pb2.LeaseTimeToLiveResponse:
        return self.etcd_client.get_lease_info(self.id)

    def revoke(self) -> None:
        self.etcd_client.revoke_lease(self.id)

    def refresh(self) -> list:
        return list(self.etcd_client.refresh_lease(self.id))

    @property
    def remaining_ttl(self) -> int:
        return self._info().TTL

    @property
    def granted_ttl(self) -> int:
        return self._info().grantedTTL

    @property
    def keys(self) -> list[bytes]:
        return list(self._info().keys)


class Lock:
    """python-etcd3's lock: key ``/locks/<name>`` held with a random value on a lease of ``ttl``."""

    lock_prefix = "/locks/"

    def __init__(self, name: str, ttl: int = 60, etcd_client: Optional["Etcd3Client"] = None) -> None:
        self.name, self.ttl, self.etcd_client = name, ttl, etcd_client
        self.key = self.lock_prefix + name
        self.lease: Optional[Lease] = None
        self.uuid = b""

    def acquire(self, timeout: Optional[float] = 10) -> bool:
        """Take the lock; wait for it at most ``timeout`` seconds (None: for ever)."""
        client = self._client()
        self.lease = client.lease(self.ttl)
        self.uuid = uuid.uuid1().bytes
        tx = client.transactions
        while True:
            success, _ = client.transaction(compare=[tx.create(self.key) == 0],
                                            success=[tx.put(self.key, self.uuid, lease=self.lease)],
                                            failure=[tx.get(self.key)])
            if success:
                return True
            try:
                client.watch_once(self.key, timeout=timeout, filters=["noput"])
            except exceptions.WatchTimedOut:
                return False

    def release(self) -> bool:
        client = self._client()
        success, _ = client.transaction(compare=[client.transactions.value(self.key) == self.uuid],
                                        success=[client.transactions.delete(self.key)], failure=[])
        return success

    def refresh(self) -> list:
        if self.lease is None:
            raise ValueError("No lease associated with this lock - have you acquired the lock yet?")
        return self.lease.refresh()

    def is_acquired(self) -> bool:
        value, _ = self._client().get(self.key)
        return value is not None and value == self.uuid

    def _client(self) -> "Etcd3Client":
        if self.etcd_client is None:
            raise ValueError("the lock has no client")
        return self.etcd_client

    def __enter__(self) -> "Lock":
        self.acquire(timeout=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Etcd3Client:
    def __init__(self, host: str = "localhost", port: int = 2379, ca_cert: Optional[str] = None,
                 cert_key: Optional[str] = None, cert_cert: Optional[str] = None, timeout: Optional[float] = None,
                 user: Optional[str] = None, password: Optional[str] = None,
                 grpc_options: Optional[list] = None) -> None:
        tls = None
        if ca_cert is not None or cert_cert is not None:
            tls = c.TLS(_read(ca_cert), _read(cert_cert), _read(cert_key))
        scheme = "https" if tls is not None else "http"
        self._client = Client([f"{scheme}://{host}:{port}"], timeout=timeout or c.DEFAULT_TIMEOUT,
                              user=user or "", password=password or "", tls=tls)
        self.timeout = timeout
        self.transactions = Transactions()
        self._watches: dict[int, Any] = {}
        self._next_watch_id = 0
        self._watch_lock = threading.Lock()

    def close(self) -> None:
        for watch in list(self._watches.values()):
            watch.cancel()
        self._client.close()

    def __enter__(self) -> "Etcd3Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- KV ----------------------------------------------------------------------------------

    def _range(self, key: c.Bytes, range_end: c.Bytes = b"", sort_order: Optional[str] = None,
               sort_target: str = "key", **opts: Any) -> Iterator[tuple[bytes, KVMetadata]]:
        resp = self._client.get(key, range_end, sort_order=_SORT_ORDER[sort_order],
                                sort_target=_SORT_TARGET[sort_target], **opts)
        return ((kv.value, KVMetadata(kv, resp.header)) for kv in resp.kvs)

    @_translating
    def get_response(self, key: c.Bytes, serializable: bool = False) -> rpc_pb2.RangeResponse:
        return self._client.get(key, serializable=serializable)

    @_translating
    def get(self, key: c.Bytes, serializable: bool = False) -> tuple[Optional[bytes], Optional[KVMetadata]]:
        for found in self._range(key, serializable=serializable):
            return found
        return None, None

    @_translating
    def get_prefix(self, key_prefix: c.Bytes, sort_order: Optional[str] = None, sort_target: str = "key",
                   keys_only: bool = False) -> Iterator[tuple[bytes, KVMetadata]]:
        return self._range(key_prefix, c.prefix_end(c.to_bytes(key_prefix)), sort_order, sort_target,
                           keys_only=keys_only)

    @_translating
    def get_range(self, range_start: c.Bytes, range_end: c.Bytes, sort_order: Optional[str] = None,
                  sort_target: str = "key", **kwargs: Any) -> Iterator[tuple[bytes, KVMetadata]]:
        return self._range(range_start, range_end, sort_order, sort_target, **kwargs)

    @_translating
    def get_all(self, sort_order: Optional[str] = None, sort_target: str = "key",
                keys_only: bool = False) -> Iterator[tuple[bytes, KVMetadata]]:
        return self._range(b"\0", b"\0", sort_order, sort_target, keys_only=keys_only)

    @_translating
    def put(self, key: c.Bytes, value: c.Bytes, lease: Any = None, prev_kv: bool = False) -> rpc_pb2.PutResponse:
        return self._client.put(key, value, lease=lease_id(lease), prev_kv=prev_kv)

    def put_if_not_exists(self, key: c.Bytes, value: c.Bytes, lease: Any = None) -> bool:
        tx = self.transactions
        success, _ = self.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, value, lease=lease)],
                                      failure=[])
        return success

    def replace(self, key: c.Bytes, initial_value: c.Bytes, new_value: c.Bytes) -> bool:
        tx = self.transactions
        success, _ = self.transaction(compare=[tx.value(key) == initial_value],
                                      success=[tx.put(key, new_value)], failure=[])
        return success

    @_translating
    def delete(self, key: c.Bytes, prev_kv: bool = False, return_response: bool = False) -> Any:
        resp = self._client.delete(key, prev_kv=prev_kv)
        return resp if return_response else resp.deleted >= 1

    @_translating
    def delete_prefix(self, prefix: c.Bytes) -> rpc_pb2.DeleteRangeResponse:
        return self._client.delete(prefix, c.prefix_end(c.to_bytes(prefix)))

    @_translating
    def transaction(self, compare: list, success: Optional[list] = None,
                    failure: Optional[list] = None) -> tuple[bool, list]:
        resp = self._client.txn(transactions.txn_request(compare, success or [], failure or []))
        out: list = []
        for r in resp.responses:
            kind = r.WhichOneof("response")
            if kind == "response_range":
                out.append([(kv.value, KVMetadata(kv, resp.header)) for kv in r.response_range.kvs])
            else:
                out.append(r)
        return resp.succeeded, out

    @_translating
    def compact(self, revision: int, physical: bool = False) -> None:
        self._client.compact(revision, physical=physical)

    # ---- watch ---------------------------------------------------------------------------------

    def _watch(self, key: c.Bytes, range_end: Optional[c.Bytes] = None, start_revision: Optional[int] = None,
               progress_notify: bool = False, filters: Optional[list] = None, prev_kv: bool = False) -> Any:
        names = [f if isinstance(f, str) else {0: "noput", 1: "nodelete"}[f] for f in filters or ()]
        return self._client.watch(key, range_end or b"", start_revision=start_revision or 0,
                                  progress_notify=progress_notify, filters=[n.lower() for n in names],
                                  prev_kv=prev_kv)

    def _responses(self, watch: Any) -> Iterator[Any]:
        try:
            for resp in watch:
                yield _WatchResponse(resp)
        except WatchCompacted as e:
            raise exceptions.RevisionCompactedError(e.compact_revision) from None
        except errors.EtcdError as e:
            raise exceptions.translated(e) from None

    def watch_response(self, key: c.Bytes, **kwargs: Any) -> tuple[Iterator[Any], Callable[[], None]]:
        watch = self._watch(key, **kwargs)
        return self._responses(watch), watch.cancel

    def watch_prefix_response(self, key_prefix: c.Bytes, **kwargs: Any) -> tuple[Iterator[Any], Callable[[], None]]:
        kwargs["range_end"] = c.prefix_end(c.to_bytes(key_prefix))
        return self.watch_response(key_prefix, **kwargs)

    def watch(self, key: c.Bytes, **kwargs: Any) -> tuple[Iterator[events.Event], Callable[[], None]]:
        responses, cancel = self.watch_response(key, **kwargs)
        return (event for resp in responses for event in resp.events), cancel

    def watch_prefix(self, key_prefix: c.Bytes, **kwargs: Any) -> tuple[Iterator[events.Event], Callable[[], None]]:
        kwargs["range_end"] = c.prefix_end(c.to_bytes(key_prefix))
        return self.watch(key_prefix, **kwargs)

    def watch_once(self, key: c.Bytes, timeout: Optional[float] = None, **kwargs: Any) -> events.Event:
        """The next event on ``key``; WatchTimedOut if none comes within ``timeout`` seconds."""
        got: queue.Queue = queue.Queue()

        def deliver(resp: Any) -> None:
            if isinstance(resp, Exception) or resp.events:
                got.put(resp)
        watch_id = self.add_watch_callback(key, deliver, **kwargs)
        try:
            item = got.get(timeout=timeout)
        except queue.Empty:
            raise exceptions.WatchTimedOut() from None
        finally:
            self.cancel_watch(watch_id)
        if isinstance(item, Exception):
            raise item
        return item.events[0]

    def watch_prefix_once(self, key_prefix: c.Bytes, timeout: Optional[float] = None, **kwargs: Any) -> events.Event:
        kwargs["range_end"] = c.prefix_end(c.to_bytes(key_prefix))
        return self.watch_once(key_prefix, timeout=timeout, **kwargs)

    def add_watch_callback(self, key: c.Bytes, callback: Callable[[Any], None], **kwargs: Any) -> int:
        """``callback(response)`` for every response (it has ``header`` and ``events``), or
        ``callback(exception)`` once if the watch fails; returns the ID for cancel_watch."""
        watch = self._watch(key, **kwargs)
        with self._watch_lock:
            watch_id = self._next_watch_id
            self._next_watch_id += 1
            self._watches[watch_id] = watch

        def run() -> None:
            try:
                for resp in self._responses(watch):
                    callback(resp)
            except Exception as e:  # noqa: BLE001 - python-etcd3 hands it to the callback
                callback(e)
        threading.Thread(target=run, name="etcd3-compat-watch", daemon=True).start()
        return watch_id

    def add_watch_prefix_callback(self, key_prefix: c.Bytes, callback: Callable[[Any], None], **kwargs: Any) -> int:
        kwargs["range_end"] = c.prefix_end(c.to_bytes(key_prefix))
        return self.add_watch_callback(key_prefix, callback, **kwargs)

    def cancel_watch(self, watch_id: int) -> None:
        with self._watch_lock:
            watch = self._watches.pop(watch_id, None)
        if watch is not None:
            watch.cancel()

    # ---- leases and locks ----------------------------------------------------------------------

    @_translating
    def lease(self, ttl: int, lease_id: Optional[int] = None) -> Lease:
        resp = self._client.lease_grant(ttl, lease_id or 0)
        return Lease(resp.ID, resp.TTL, self)

    @_translating
    def revoke_lease(self, lease_id: int) -> None:
        self._client.lease_revoke(lease_id)

    @_translating
    def refresh_lease(self, lease_id: int) -> Iterator[rpc_pb2.LeaseKeepAliveResponse]:
        """One renewal's response (TTL 0: the lease is gone), as python-etcd3's iterator gives."""
        try:
            resp = self._client.keep_alive_once(lease_id)
        except errors.ErrLeaseNotFound:
            resp = rpc_pb2.LeaseKeepAliveResponse(ID=lease_id, TTL=0)
        return iter([resp])

    @_translating
    def get_lease_info(self, lease_id: int) -> rpc_pb2.LeaseTimeToLiveResponse:
        return self._client.lease_time_to_live(lease_id, keys=True)

    def lock(self, name: str, ttl: int = 60) -> Lock:
        return Lock(name, ttl=ttl, etcd_client=self)

    # ---- cluster and maintenance ---------------------------------------------------------------

    def _member(self, m: rpc_pb2.Member) -> Member:
        return Member(m.ID, m.name, list(m.peerURLs), list(m.clientURLs), self)

    @property
    def members(self) -> Iterator[Member]:
        return (self._member(m) for m in self._client.member_list().members)

    @_translating
    def add_member(self, urls: list[str]) -> Member:
        return self._member(self._client.member_add(urls).member)

    @_translating
    def remove_member(self, member_id: int) -> None:
        self._client.member_remove(member_id)

    @_translating
    def update_member(self, member_id: int, peer_urls: list[str]) -> None:
        self._client.member_update(member_id, peer_urls)

    @_translating
    def status(self) -> Status:
        resp = self._client.status()
        leader = next((m for m in self.members if m.id == resp.leader), None)
        return Status(resp.version, resp.dbSize, leader, resp.raftIndex, resp.raftTerm)

    @_translating
    def defragment(self) -> rpc_pb2.DefragmentResponse:
        return self._client.defragment()

    @_translating
    def hash(self) -> int:
        return self._client.hash_kv().hash

    def _alarm(self, action: int, member_id: int, alarm: int) -> list[Alarm]:
        req = rpc_pb2.AlarmRequest(action=action, memberID=member_id, alarm=alarm)
        resp = self._client.call("maintenance", "Alarm", req)
        return [Alarm(a.alarm, a.memberID) for a in resp.alarms]

    @_translating
    def create_alarm(self, member_id: int = 0) -> list[Alarm]:
        return self._alarm(rpc_pb2.AlarmRequest.ACTIVATE, member_id, rpc_pb2.NOSPACE)

    @_translating
    def list_alarms(self, member_id: int = 0, alarm_type: str = "none") -> Iterator[Alarm]:
        alarms = self._alarm(rpc_pb2.AlarmRequest.GET, member_id, rpc_pb2.AlarmType.Value(alarm_type.upper()))
        return (a for a in alarms if not member_id or a.member_id == member_id)

    @_translating
    def disarm_alarm(self, member_id: int = 0) -> list[Alarm]:
        return self._alarm(rpc_pb2.AlarmRequest.DEACTIVATE, member_id, rpc_pb2.NOSPACE)

    @_translating
    def snapshot(self, file_obj: Any) -> None:
        for blob in self._client.snapshot():
            file_obj.write(blob)


class _WatchResponse:
    """What python-etcd3 hands a watch callback: the header and the events."""

    def __init__(self, resp: rpc_pb2.WatchResponse) -> None:
        self.header = resp.header
        self.events = [events.new_event(e) for e in resp.events]


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def client(host: str = "localhost", port: int = 2379, ca_cert: Optional[str] = None, cert_key: Optional[str] = None,
           cert_cert: Optional[str] = None, timeout: Optional[float] = None, user: Optional[str] = None,
           password: Optional[str] = None, grpc_options: Optional[list] = None) -> Etcd3Client:
    """python-etcd3's entry point: a client of one server."""
    return Etcd3Client(host=host, port=port, ca_cert=ca_cert, cert_key=cert_key, cert_cert=cert_cert,
                       timeout=timeout, user=user, password=password, grpc_options=grpc_options)
