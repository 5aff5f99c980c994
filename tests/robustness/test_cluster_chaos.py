"""Robustness: a 3-member cluster under writers and readers while members are SIGKILLed,
SIGSTOPped and restarted. Run with `make robustness` (not part of `make test`).

Checked on the recorded history:
- every acknowledged write is there afterwards, at its acknowledged revision, on every member;
- revisions are a gapless sequence (each put creates one key, so each revision is one put);
- real-time order: a write acknowledged before another started has a smaller revision, and a
  linearizable read that started after a write was acknowledged sees that write's revision;
- once the members have applied the same index, their HashKV is equal at every revision (of a
  sample spread over the whole history): the same history on every member, not only the same
  final keys.
A write that failed with UNAVAILABLE (timeout, no leader) is indeterminate, as in etcd: it may
or may not have been committed; it is never counted as acknowledged.

PYETCD_CHAOS_SECONDS sets the duration (default 60).
"""
from __future__ import annotations

import bisect
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import grpc

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import PYETCD, Server, cluster, start_all, wait_for

DURATION = float(os.environ.get("PYETCD_CHAOS_SECONDS", "60"))
WRITERS = 4
READERS = 2


@dataclass
class History:
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: list[tuple[float, float, bytes, int]] = field(default_factory=list)   # start, end, key, rev
    reads: list[tuple[float, float, int]] = field(default_factory=list)           # start, end, rev
    failures: int = 0


def client_loop(members: list[Server], history: History, stop: threading.Event, writer: int | None) -> None:
    rng = random.Random(writer if writer is not None else -1)
    stubs = [rpc_pb2_grpc.KVStub(grpc.insecure_channel(m.endpoint)) for m in members]
    seq = 0
    while not stop.is_set():
        stub = rng.choice(stubs)
        start = time.monotonic()
        try:
            if writer is not None:
                key = f"w{writer}/{seq:07d}".encode()
                seq += 1
                rev = stub.Put(rpc_pb2.PutRequest(key=key, value=key), timeout=10).header.revision
                entry = ("writes", (start, time.monotonic(), key, rev))
            else:
                rev = stub.Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x", count_only=True),
                                 timeout=10).header.revision
                entry = ("reads", (start, time.monotonic(), rev))
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
            with history.lock:
                history.failures += 1
            time.sleep(0.05)
            continue
        with history.lock:
            getattr(history, entry[0]).append(entry[1])


def chaos(members: list[Server], stop: threading.Event, rng: random.Random) -> None:
    while not stop.is_set():
        victim = rng.choice(members)
        if rng.random() < 0.6:
            victim.kill()
            stop.wait(rng.uniform(0.2, 2.0))
            victim.start(wait=False)
        else:
            victim.proc.send_signal(signal.SIGSTOP)
            stop.wait(rng.uniform(0.2, 2.0))
            victim.proc.send_signal(signal.SIGCONT)
        stop.wait(rng.uniform(0.5, 2.0))


def check_real_time_order(history: History) -> None:
    writes = sorted(history.writes, key=lambda w: w[1])  # by acknowledgement time
    ends = [w[1] for w in writes]
    best = []  # best[i]: the highest revision acknowledged by writes[0..i]
    for w in writes:
        best.append(max(best[-1], w[3]) if best else w[3])
    for start, _end, *rest in history.writes + history.reads:
        rev = rest[-1]
        i = bisect.bisect_left(ends, start) - 1  # writes acknowledged before this operation started
        if i >= 0:
            assert best[i] <= rev if len(rest) == 1 else best[i] < rev, \
                f"operation started at {start} saw revision {rev}, older than acknowledged revision {best[i]}"


def check_same_history(members: list[Server]) -> int:
    """Wait until every member applied the same index, then compare HashKV along the history;
    returns how many revisions were compared."""
    def statuses():
        out = []
        for m in members:
            with grpc.insecure_channel(m.endpoint) as ch:
                out.append(rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=10))
        return out
    wait_for(lambda: len({s.raftAppliedIndex for s in statuses()}) == 1, 60, "members to apply the same index")
    current = statuses()[0].header.revision
    revisions = sorted({1 + (current - 1) * i // 40 for i in range(41)})
    for rev in revisions:
        hashes = set()
        for m in members:
            with grpc.insecure_channel(m.endpoint) as ch:
                hashes.add(rpc_pb2_grpc.MaintenanceStub(ch).HashKV(rpc_pb2.HashKVRequest(revision=rev), timeout=30).hash)
        assert len(hashes) == 1, f"members' HashKV differ at revision {rev}"
    return len(revisions)


def test_cluster_under_chaos(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3, extra=["--snapshot-count", "500",
                                                        "--experimental-snapshot-catchup-entries", "100"])
    history, stop = History(), threading.Event()
    rng = random.Random()
    try:
        start_all(members)
        threads = [threading.Thread(target=client_loop, args=(members, history, stop, i)) for i in range(WRITERS)]
        threads += [threading.Thread(target=client_loop, args=(members, history, stop, None)) for _ in range(READERS)]
        threads.append(threading.Thread(target=chaos, args=(members, stop, rng)))
        for t in threads:
            t.start()
        time.sleep(DURATION)  # the run's length, not a wait for a condition
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for m in members:
            if m.proc.poll() is not None:
                m.start(wait=False)
        for m in members:
            m.wait_ready(60)
        stored = []
        for m in members:
            with grpc.insecure_channel(m.endpoint) as ch:
                resp = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"w", range_end=b"x"), timeout=30)
            stored.append({kv.key: kv.mod_revision for kv in resp.kvs})
        assert stored[0] == stored[1] == stored[2], "members disagree"
        for _s, _e, key, rev in history.writes:
            assert stored[0].get(key) == rev, f"acknowledged {key!r}@{rev} lost"
        revs = sorted(stored[0].values())
        assert revs == list(range(revs[0], revs[0] + len(revs))), "gap in the revision history"
        check_real_time_order(history)
        compared = check_same_history(members)
        assert len(history.writes) > 100
        print(f"\n{len(history.writes)} writes and {len(history.reads)} reads acknowledged, "
              f"{history.failures} failed (indeterminate); HashKV equal at {compared} revisions")
    finally:
        stop.set()
        for m in members:
            if m.proc and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGCONT)
            m.stop()
