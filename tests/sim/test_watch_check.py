"""The whole-member simulation's watch checks (membersim/watchcheck.py) on made-up histories,
and the virtual loop's order of timers due at one instant (watch streams and links rely on it)."""
from __future__ import annotations

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

from membersim.vloop import VirtualTimeLoop
from membersim.watchcheck import RefEvent, WatchReference, canonical, check_watches
from membersim.watchclient import Segment, Watch

KV = kv_pb2.KeyValue


def kv(key: bytes, rev: int, value: bytes = b"v", deleted: bool = False) -> KV:
    return KV(key=key, mod_revision=rev) if deleted else KV(key=key, value=value + b"%d" % rev, create_revision=2,
                                                            mod_revision=rev, version=rev - 1)


# revision 2: put a; 3: put a, put b (one txn); 4: delete a; 5: put b (compacted at 5 later)
HISTORY = [(2, b"a", False), (3, b"a", False), (3, b"b", False), (4, b"a", True), (5, b"b", False)]


def reference(compactions: set[int] = frozenset()) -> WatchReference:
    live, events = {}, []
    for rev, key, deleted in HISTORY:
        raw = canonical(kv(key, rev, deleted=deleted).SerializeToString())
        events.append(RefEvent(rev, key, deleted, raw, live.get(key)))
        live.pop(key, None) if deleted else live.__setitem__(key, raw)
    return WatchReference(events, set(compactions), 5)


def event(rev: int, key: bytes, deleted: bool = False, prev: KV | None = None) -> kv_pb2.Event:
    e = kv_pb2.Event(type=kv_pb2.Event.DELETE if deleted else kv_pb2.Event.PUT, kv=kv(key, rev, deleted=deleted))
    if prev is not None:
        e.prev_kv.CopyFrom(prev)
    return e


def response(*events: kv_pb2.Event, fragment: bool = False) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=events[-1].kv.mod_revision),
                                 events=events, fragment=fragment)


def watch(*segments: Segment, done: bool = True, prev_kv: bool = False) -> Watch:
    return Watch("w0/w1", b"a", b"c", prev_kv, (), False, list(segments), done)


def segment(start: int, *responses: rpc_pb2.WatchResponse, end: str = "canceled", compact_revision: int = 0,
            created_rev: int = 1) -> Segment:
    return Segment("w0.s1", "m1", start, created_rev=created_rev, watch_id=0, responses=list(responses), end=end,
                   cancel_asked=end == "canceled", compact_revision=compact_revision)


ALL = [response(event(2, b"a")), response(event(3, b"a"), event(3, b"b")), response(event(4, b"a", True)),
       response(event(5, b"b"))]


def invariants(w: Watch, ref: WatchReference | None = None) -> list[str]:
    return [f.invariant for f in check_watches([w], ref or reference())]


def test_a_whole_history_and_one_resumed_after_its_last_event_pass() -> None:
    assert invariants(watch(segment(2, *ALL))) == []
    assert invariants(watch(segment(2, *ALL[:2], end="broken"), segment(4, *ALL[2:]))) == []
    assert invariants(watch(segment(0, *ALL[1:], created_rev=2))) == []  # from now, created at 2


def test_a_missing_event_a_repeat_a_reordering_and_a_split_revision_are_found() -> None:
    assert invariants(watch(segment(2, ALL[0], ALL[1], ALL[3]))) == ["watch-gap"]
    assert invariants(watch(segment(2, *ALL[:2], end="broken"), segment(3, *ALL[1:]))) == ["watch-duplicate"]
    assert invariants(watch(segment(2, ALL[1], ALL[0], *ALL[2:]))) == ["watch-order"]
    split = [ALL[0], response(event(3, b"a")), response(event(3, b"b")), *ALL[2:]]
    assert invariants(watch(segment(2, *split))) == ["watch-atomic"]
    fragmented = [ALL[0], response(event(3, b"a"), fragment=True), response(event(3, b"b")), *ALL[2:]]
    assert invariants(watch(segment(2, *fragmented))) == []


def test_a_watch_open_at_the_end_must_have_the_last_change() -> None:
    assert invariants(watch(segment(2, *ALL[:3], end="open"), done=False)) == ["watch-stalled"]


def test_prev_kv_is_the_value_just_before_and_may_be_absent_only_below_a_compaction() -> None:
    before = kv(b"a", 2)
    right = [ALL[0], response(event(3, b"a", prev=before), event(3, b"b"))]
    assert invariants(watch(segment(2, *right), prev_kv=True)) == []
    wrong = [ALL[0], response(event(3, b"a", prev=kv(b"a", 3)), event(3, b"b"))]
    assert invariants(watch(segment(2, *wrong), prev_kv=True)) == ["watch-mismatch"]
    assert invariants(watch(segment(2, *ALL[:2]), prev_kv=True)) == ["watch-mismatch"]
    assert invariants(watch(segment(2, *ALL[:2]), prev_kv=True), reference({3})) == []


def test_compaction_cancels_only_a_watcher_below_it_and_may_drop_the_delete_at_it() -> None:
    assert invariants(watch(segment(2, end="compacted", compact_revision=4)), reference({4})) == []
    assert invariants(watch(segment(4, end="compacted", compact_revision=4)), reference({4})) == ["watch-compaction"]
    assert invariants(watch(segment(2, end="compacted", compact_revision=3)), reference({4})) == ["watch-compaction"]
    assert invariants(watch(segment(4, ALL[3], end="open"), done=False), reference({4})) == []


def test_an_event_outside_the_watched_keys_is_found() -> None:
    stray = response(event(5, b"b"), event(5, b"x"))
    assert invariants(watch(segment(2, *ALL[:3], stray))) == ["watch-mismatch"]


def test_timers_due_at_one_instant_run_in_the_order_they_were_set() -> None:
    loop = VirtualTimeLoop(lambda process, synced: 0.0)
    ran: list[int] = []
    for i in range(40):
        loop.call_at(1.0 if i % 3 else 0.5, ran.append, i)
    loop.call_at(2.0, loop.stop)
    loop.run_forever()
    loop.close()
    assert ran == [i for i in range(40) if i % 3 == 0] + [i for i in range(40) if i % 3]
