"""Client processes of the watch/lease benchmark (bench/watch_lease_bench.py).

Each worker runs in its own process, single-threaded, its streams multiplexed with ``selectors``
(streams are bench/h2_grpc.py connections: one gRPC stream each), and talks to the parent over
a Pipe:
  watchers: open the watchers, send ("ready", created, errors), check events until every
            watcher saw the run's last put (value END) or the deadline, send ("done",
            WatchResult), wait for "close".
  leases:   grant leases (grpcio), send ("ready", ids granted, errors), wait for "go", send
            keep-alives for all of them ``rounds`` times over its streams, read every answer,
            send ("done", KeepAliveResult).
Times are time.monotonic(), one clock for every process on Linux.
"""
from __future__ import annotations

import selectors
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Callable

import grpc

from h2_grpc import Stream, StreamError
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

WATCH_PATH = "/etcdserverpb.Watch/Watch"
KEEPALIVE_PATH = "/etcdserverpb.Lease/LeaseKeepAlive"
END = b"end"  # the value of a fan-out run's last put


def pump(streams: list, handle: Callable[[object, list[bytes]], None], until: Callable[[], bool],
         deadline: float, errors: list[str]) -> None:
    """Reads every stream (objects with a ``.stream``) and hands each one's messages to ``handle``
    until ``until()`` holds, the deadline passes, or no stream is left open."""
    sel = selectors.DefaultSelector()
    for s in streams:
        sel.register(s.stream.sock, selectors.EVENT_READ, s)
        if s.stream.inbox:  # read while it was sending: select would not tell
            handle(s, s.stream.receive())
    try:
        while not until() and sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append("deadline passed")
                return
            for key, _ in sel.select(left):
                try:
                    messages = key.data.stream.receive()
                except (StreamError, OSError) as e:
                    errors.append(str(e))
                    sel.unregister(key.fileobj)
                    continue
                handle(key.data, messages)
    finally:
        sel.close()


@dataclass
class WatchResult:
    watchers: int = 0
    complete: int = 0  # watchers that got exactly the expected revisions, in order
    events: int = 0  # every event delivered, to any watcher
    errors: list[str] = field(default_factory=list)
    last_event: float = 0.0
    cpu_seconds: float = 0.0  # this process, from "ready" to "done"


class _Watchers:
    """One Watch stream carrying ``count`` watchers on ``key`` (every other one a prefix watch),
    all from ``start_rev``. The run's last put carries END: each watcher must see exactly the
    revisions start_rev .. start_rev+puts-1, the last one END, and nothing else before it."""

    def __init__(self, endpoint: str, key: bytes, count: int, start_rev: int, puts: int) -> None:
        self.stream = Stream(endpoint, WATCH_PATH)
        self.count = count
        self.start_rev = start_rev
        self.end_rev = start_rev + puts  # the revision after END's
        self.next_rev: dict[int, int] = {}  # watch id -> revision its next event must carry
        self.finished = 0  # watchers that saw END
        prefix_end = key[:-1] + bytes([key[-1] + 1])
        self.stream.send([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=key, start_revision=start_rev, range_end=prefix_end if i % 2 else b"")).SerializeToString()
            for i in range(count)])

    def complete(self) -> int:
        return sum(1 for r in self.next_rev.values() if r == self.end_rev)


def _on_watch(res: WatchResult) -> Callable[[_Watchers, list[bytes]], None]:
    parse = rpc_pb2.WatchResponse.FromString

    def fail(message: str) -> None:
        if len(res.errors) < 10:
            res.errors.append(message)

    def handle(w: _Watchers, messages: list[bytes]) -> None:
        next_rev, end_rev = w.next_rev, w.end_rev
        for raw in messages:
            resp = parse(raw)
            wid = resp.watch_id
            if resp.created:
                next_rev[wid] = w.start_rev
            if resp.canceled:
                fail(f"watch {wid} canceled: {resp.cancel_reason}")
            for ev in resp.events:
                res.events += 1
                rev = ev.kv.mod_revision
                if ev.kv.value == END:
                    w.finished += 1
                if rev != next_rev.get(wid) or rev >= end_rev or ev.type != ev.PUT:
                    fail(f"watch {wid}: an event at revision {rev} (type {ev.type}), expected revision {next_rev.get(wid)}")
                    next_rev[wid] = -1  # never complete from now on
                else:
                    next_rev[wid] = rev + 1
            if resp.events:
                res.last_event = time.monotonic()
    return handle


def watchers(conn: Connection, endpoint: str, key: bytes, streams: int, per_stream: int,
             start_rev: int, puts: int, timeout: float) -> None:
    res = WatchResult(watchers=streams * per_stream)
    opened = [_Watchers(endpoint, key, per_stream, start_rev, puts) for _ in range(streams)]
    handle = _on_watch(res)
    pump(opened, handle, lambda: all(len(w.next_rev) == w.count for w in opened) or bool(res.errors),
         time.monotonic() + timeout, res.errors)
    conn.send(("ready", sum(len(w.next_rev) for w in opened), res.errors))
    cpu0 = time.process_time()
    if puts and not res.errors:
        pump(opened, handle, lambda: all(w.finished == w.count for w in opened), time.monotonic() + timeout,
             res.errors)
    res.cpu_seconds = time.process_time() - cpu0
    res.complete = sum(w.complete() for w in opened)
    conn.send(("done", res))
    conn.recv()  # "close"
    for w in opened:
        w.stream.close()


@dataclass
class KeepAliveResult:
    answered: int = 0  # answers for a lease of ours with a TTL > 0
    errors: list[str] = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0
    cpu_seconds: float = 0.0


def grant(endpoint: str, count: int, ttl: int, window: int = 256) -> tuple[list[int], list[str]]:
    """``count`` LeaseGrants through grpcio, ``window`` in flight at a time."""
    ids: list[int] = []
    errors: list[str] = []
    with grpc.insecure_channel(endpoint) as ch:
        stub = rpc_pb2_grpc.LeaseStub(ch)
        for base in range(0, count, window):
            futures = [stub.LeaseGrant.future(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=60)
                       for _ in range(min(window, count - base))]
            for f in futures:
                try:
                    resp = f.result()
                except grpc.RpcError as e:
                    errors.append(f"LeaseGrant: {e.code().name} {e.details()}")
                    continue
                if resp.error or resp.TTL <= 0:
                    errors.append(f"LeaseGrant: TTL {resp.TTL} error {resp.error!r}")
                else:
                    ids.append(resp.ID)
            if errors:
                break
    return ids, errors


class _KeepAlives:
    def __init__(self, endpoint: str, ids: list[int]) -> None:
        self.stream = Stream(endpoint, KEEPALIVE_PATH)
        self.ids = set(ids)
        self.want = 0


def leases(conn: Connection, endpoint: str, count: int, ttl: int, streams: int, rounds: int,
           timeout: float) -> None:
    ids, errors = grant(endpoint, count, ttl)
    conn.send(("ready", len(ids), errors))
    if conn.recv() != "go":
        return
    res = KeepAliveResult(start=time.monotonic())
    cpu0 = time.process_time()
    opened = [_KeepAlives(endpoint, ids[i::streams]) for i in range(streams)]
    parse = rpc_pb2.LeaseKeepAliveResponse.FromString

    def handle(k: _KeepAlives, messages: list[bytes]) -> None:
        for raw in messages:
            resp = parse(raw)
            k.want -= 1
            if resp.ID in k.ids and resp.TTL > 0:
                res.answered += 1
            elif len(res.errors) < 5:
                res.errors.append(f"keep-alive answer for lease {resp.ID:x} with TTL {resp.TTL}")
        res.end = time.monotonic()

    try:
        for k in opened:  # everything in flight at once; the answers are read below
            requests = [rpc_pb2.LeaseKeepAliveRequest(ID=i).SerializeToString() for i in k.ids]
            k.want = len(requests) * rounds
            k.stream.send(requests * rounds)
        pump(opened, handle, lambda: all(k.want <= 0 for k in opened), time.monotonic() + timeout, res.errors)
    except (StreamError, OSError) as e:
        res.errors.append(str(e))
    res.cpu_seconds = time.process_time() - cpu0
    for k in opened:
        k.stream.close()
    conn.send(("done", res))
