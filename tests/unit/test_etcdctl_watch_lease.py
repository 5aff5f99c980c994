"""etcdctl watch argument rules and output formats, and the watch cursor's resume rules (no server)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyetcd.client.watch_state import WatchCanceled, WatchCompacted, WatchCursor
from pyetcd.etcdctl.printer import Printer
from pyetcd.etcdctl.runtime import Exit
from pyetcd.etcdctl.watch import parse_watch_args, render
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

HEADER = rpc_pb2.ResponseHeader(cluster_id=7645627488625940841, member_id=7509432086053280417, revision=6,
                                raft_term=2)


def _resp(*events) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(header=HEADER, events=list(events))


def _put(key: bytes, value: bytes, rev: int, create: int = 0, version: int = 1, prev=None) -> kv_pb2.Event:
    kv = kv_pb2.KeyValue(key=key, value=value, create_revision=create or rev, mod_revision=rev, version=version)
    return kv_pb2.Event(type=kv_pb2.Event.PUT, kv=kv, prev_kv=prev)


@pytest.mark.parametrize("args,dash,prefix,want", [
    (["foo"], -1, False, (b"foo", [], [])),
    (["a", "z"], -1, False, (b"a", ["z"], [])),
    (["a", "b", "c"], -1, False, (b"a", ["b"], [])),  # etcdctl ignores what follows the range end
    (["foo", "sh", "-c", "x"], 1, False, (b"foo", [], ["sh", "-c", "x"])),
])
def test_watch_args(args, dash, prefix, want):
    assert parse_watch_args(args, dash, prefix) == want


@pytest.mark.parametrize("args,dash,prefix,message", [
    ([], -1, False, "bad number of arguments"),
    (["foo"], 1, False, "bad number of arguments (found separator --, but no commands)"),
    (["echo"], 0, False, "bad number of arguments"),
    (["a", "b"], -1, True, "`range_end` and `--prefix` are mutually exclusive"),
])
def test_watch_arg_errors(args, dash, prefix, message):
    with pytest.raises(Exit) as info:
        parse_watch_args(args, dash, prefix)
    assert (info.value.code, info.value.message) == (128, message)


@pytest.mark.parametrize("args,dash,prefix,env,want", [
    ([], -1, False, ("w1", ""), (b"w1", [], [])),
    (["sh"], 0, False, ("w1", "w2"), (b"w1", ["w2"], ["sh"])),
    (["w1"], -1, False, ("w1", ""), "bad number of arguments (found conflicting environment key)"),
    (["w1"], -1, False, ("", "w2"), 'ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END="w2"'),
    ([], -1, True, ("w1", "w2"), "`range_end` and `--prefix` are mutually exclusive"),
])
def test_watch_key_from_environment(args, dash, prefix, env, want):
    """ETCDCTL_WATCH_KEY / ETCDCTL_WATCH_RANGE_END as etcdctl 3.5.1 takes them."""
    if isinstance(want, tuple):
        assert parse_watch_args(args, dash, prefix, *env) == want
        return
    with pytest.raises(Exit) as info:
        parse_watch_args(args, dash, prefix, *env)
    assert (info.value.code, info.value.message) == (128, want)


def _render(fmt: str, resp, is_hex: bool = False) -> bytes:
    return render(SimpleNamespace(display=Printer(fmt, is_hex)), resp)


def test_watch_output_formats_match_etcdctl():
    resp = _resp(_put(b"bar", b"y", 6))
    # as real etcdctl 3.5.1 prints `watch bar --rev=1 -w json` / `-w fields`
    assert _render("json", resp) == (
        b'{"Header":{"cluster_id":7645627488625940841,"member_id":7509432086053280417,"revision":6,"raft_term":2},'
        b'"Events":[{"kv":{"key":"YmFy","create_revision":6,"mod_revision":6,"version":1,"value":"eQ=="}}],'
        b'"CompactRevision":0,"Canceled":false,"Created":false}\n')
    assert _render("fields", resp).decode().splitlines()[4:] == [
        '"Type" : PUT', '"Key" : "bar"', '"CreateRevision" : 6', '"ModRevision" : 6', '"Version" : 1',
        '"Value" : "y"', '"Lease" : 0']
    assert _render("simple", resp) == b"PUT\nbar\ny\n"
    assert _render("simple", resp, is_hex=True) == b"PUT\n\\x62\\x61\\x72\n\\x79\n"
    assert rpc_pb2.WatchResponse.FromString(_render("protobuf", resp)).events[0].kv.key == b"bar"
    with pytest.raises(Exit) as info:
        _render("table", resp)
    assert info.value.code == 4


def test_watch_simple_prints_prev_kv_before_kv():
    first = kv_pb2.KeyValue(key=b"foo", value=b"1", create_revision=2, mod_revision=2, version=1)
    deleted = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"foo", mod_revision=4),
                           prev_kv=kv_pb2.KeyValue(key=b"foo", value=b"2", create_revision=2, mod_revision=3))
    resp = _resp(_put(b"foo", b"2", 3, create=2, version=2, prev=first), deleted)
    assert _render("simple", resp) == b"PUT\nfoo\n1\nfoo\n2\nDELETE\nfoo\n2\nfoo\n\n"
    assert b'"type":1' in _render("json", resp)


def test_cursor_resumes_after_the_last_delivered_revision():
    cur = WatchCursor(b"k")
    assert cur.accept(rpc_pb2.WatchResponse(header=HEADER, created=True)) is None
    assert cur.next_revision == 7 and cur.create_request().create_request.start_revision == 7
    assert cur.accept(_resp(_put(b"k", b"a", 7), _put(b"k", b"b", 8))).events[1].kv.value == b"b"
    assert cur.next_revision == 9
    # after a reconnect the replay may overlap: what was delivered is not delivered again
    again = cur.accept(_resp(_put(b"k", b"b", 8), _put(b"k", b"c", 9)))
    assert [ev.kv.value for ev in again.events] == [b"c"]
    assert cur.accept(_resp(_put(b"k", b"c", 9))) is None
    progress = rpc_pb2.WatchResponse(header=rpc_pb2.ResponseHeader(revision=20))
    assert cur.accept(progress) is progress and cur.next_revision == 21


def test_cursor_cancel_errors():
    cur = WatchCursor(b"k", start_revision=2)
    with pytest.raises(WatchCompacted) as info:
        cur.accept(rpc_pb2.WatchResponse(header=HEADER, canceled=True, compact_revision=6))
    assert info.value.compact_revision == 6
    assert info.value.message == "etcdserver: mvcc: required revision has been compacted"
    with pytest.raises(WatchCanceled) as info:
        cur.accept(rpc_pb2.WatchResponse(header=HEADER, canceled=True, cancel_reason="etcdserver: permission denied"))
    assert info.value.message == "etcdserver: permission denied"
