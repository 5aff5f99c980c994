"""Differential test: the same KV requests into real etcd 3.5.1 and into pyetcd's Applier (with
the request checks the server runs first) must give the same responses and errors."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.server import checks
from pyetcd.server.apply import Applier
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore

grpc = pytest.importorskip("grpc")
from pyetcd.proto.etcdserverpb import rpc_pb2_grpc  # noqa: E402

from servers import REF_DIR, free_port  # noqa: E402
MAX_TXN_OPS = 128
P = rpc_pb2


class RefEtcd:
    """A real etcd 3.5.1 on loopback with a temp data dir."""

    def __init__(self) -> None:
        if not os.access(os.path.join(REF_DIR, "etcd"), os.X_OK):
            pytest.skip("real etcd binary not available")
        self.dir = tempfile.mkdtemp(prefix="refetcd-")
        client, peer = free_port(), free_port()
        self.proc = subprocess.Popen(
            [os.path.join(REF_DIR, "etcd"), "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", f"http://127.0.0.1:{client}",
             "--advertise-client-urls", f"http://127.0.0.1:{client}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.channel = grpc.insecure_channel(f"127.0.0.1:{client}")
            self.kv = rpc_pb2_grpc.KVStub(self.channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    self.kv.Range(P.RangeRequest(key=b"x"), timeout=1)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                    time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


_METHODS = {"range": "Range", "put": "Put", "delete_range": "DeleteRange", "txn": "Txn",
            "compaction": "Compact"}
_CHECKS = {"range": checks.check_range, "put": checks.check_put,
           "delete_range": checks.check_delete_range,
           "txn": lambda req: checks.check_txn(req, MAX_TXN_OPS)}


def _show(resp) -> str:
    if isinstance(resp, tuple):
        return f"error {resp}"
    resp.header.cluster_id = resp.header.member_id = resp.header.raft_term = 0
    return text_format.MessageToString(resp)


class Pair:
    """Real etcd and an Applier fed the same requests."""

    def __init__(self, ref: RefEtcd) -> None:
        self.ref = ref
        self.dir = tempfile.mkdtemp(prefix="applier-")
        self.backend = Backend(self.dir)
        self.applier = Applier(KVStore(self.backend))
        self.index = 0

    def close(self) -> None:
        self.backend.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ours(self, kind: str, req):
        try:
            if kind in _CHECKS:
                _CHECKS[kind](req)
            if kind == "range":
                return self.applier.range(req)
            self.index += 1
            item = raft_internal_pb2.InternalRaftRequest(ID=self.index, **{kind: req})
            [(resp, _events)] = self.applier.apply_batch([(self.index, 1, item)])
        except EtcdError as err:
            return err.code, err.message
        return (resp.code, resp.message) if isinstance(resp, EtcdError) else resp

    def theirs(self, kind: str, req):
        try:
            return getattr(self.ref.kv, _METHODS[kind])(req, timeout=10)
        except grpc.RpcError as err:
            return err.code().value[0], err.details()

    def check(self, kind: str, req) -> str:
        want, got = _show(self.theirs(kind, req)), _show(self.ours(kind, req))
        assert got == want, f"{kind} {req}"
        return got


@pytest.fixture(scope="module")
def pair():
    ref = RefEtcd()
    p = Pair(ref)
    try:
        yield p
    finally:
        p.close()
        ref.close()


def put(key, value=b"", **kw):
    return "put", P.PutRequest(key=key, value=value, **kw)


def rng(key, end=b"", **kw):
    return "range", P.RangeRequest(key=key, range_end=end, **kw)


def dele(key, end=b"", **kw):
    return "delete_range", P.DeleteRangeRequest(key=key, range_end=end, **kw)


def op(kind_req):
    kind, req = kind_req
    return P.RequestOp(**{f"request_{kind}": req})


def txn(compare=(), success=(), failure=()):
    return "txn", P.TxnRequest(compare=list(compare), success=[op(o) for o in success],
                               failure=[op(o) for o in failure])


def cmp(key, target, result, end=b"", **value):
    return P.Compare(key=key, target=getattr(P.Compare, target), result=getattr(P.Compare, result),
                     range_end=end, **value)


def run(pair, *steps) -> None:
    for kind, req in steps:
        pair.check(kind, req)


def test_put_and_range_options(pair):
    run(pair,
        put(b"s/a", b"1"), put(b"s/b", b"2"), put(b"s/c", b"0"), put(b"s/a", b"3", prev_kv=True),
        put(b"s/d", b"9"), put(b"s/b", b"2"), put(b"s/b", b"1"),
        put(b"s/a", ignore_value=True), put(b"s/nope", ignore_value=True),
        put(b"s/a", b"x", ignore_value=True), put(b"s/a", b"v", ignore_lease=True, prev_kv=True),
        put(b"s/a", b"v", lease=7), put(b"s/nope", lease=7, ignore_value=True),
        put(b"s/a", b"v", ignore_lease=True, lease=5), put(b"", b"v"),
        rng(b"s/", b"s0"), rng(b"s/a"), rng(b"s/zz"), rng(b"s/b", b"\0"), rng(b"\0", b"\0"),
        rng(b"s/", b"s0", limit=2), rng(b"s/", b"s0", limit=-1), rng(b"s/", b"s0", limit=10),
        rng(b"s/", b"s0", count_only=True), rng(b"s/", b"s0", keys_only=True, limit=1),
        rng(b"s/", b"s0", revision=3), rng(b"s/", b"s0", revision=1), rng(b"s/", b"s0", revision=99),
        rng(b"s/", b"s0", revision=-3), rng(b""), rng(b"z", b"a"))
    for target in ("KEY", "VERSION", "CREATE", "MOD", "VALUE"):
        for order in ("NONE", "ASCEND", "DESCEND"):
            for limit in (0, 2):
                run(pair, rng(b"s/", b"s0", sort_order=getattr(P.RangeRequest, order),
                              sort_target=getattr(P.RangeRequest, target), limit=limit))
    run(pair, rng(b"s/", b"s0", sort_order=7), rng(b"s/", b"s0", sort_order=-1, limit=1),
        rng(b"s/", b"s0", min_mod_revision=4), rng(b"s/", b"s0", max_mod_revision=4, limit=1),
        rng(b"s/", b"s0", min_create_revision=3, max_create_revision=4),
        rng(b"s/", b"s0", min_mod_revision=4, count_only=True),
        rng(b"s/", b"s0", min_mod_revision=5, limit=1, sort_order=P.RangeRequest.DESCEND))


def test_sort_ties_like_go(pair):
    # more than 40 keys with many ties exercises every branch of Go's unstable sort
    for i in range(57):
        pair.check(*put(b"t/%03d" % ((i * 37) % 57), b"%d" % (i % 4)))
    for i in range(0, 57, 3):
        pair.check(*put(b"t/%03d" % i, b"x"))
    for target in ("VERSION", "CREATE", "MOD", "VALUE"):
        for order in ("NONE", "ASCEND", "DESCEND"):
            for end, limit in ((b"t0", 0), (b"t0", 5), (b"t/013", 0), (b"t/008", 0)):
                run(pair, rng(b"t/", end, keys_only=True, limit=limit,
                              sort_order=getattr(P.RangeRequest, order),
                              sort_target=getattr(P.RangeRequest, target)))


def test_delete_range(pair):
    run(pair, put(b"d/a"), put(b"d/b"), put(b"d/c"), put(b"d/cc"),
        dele(b"d/zz"), dele(b"d/a", prev_kv=True), dele(b"d/a"), dele(b"d/b", b"d/cc", prev_kv=True),
        rng(b"d/", b"d0"), put(b"d/a", b"again"), rng(b"d/a"), dele(b"d/", b"\0"),
        dele(b"", b"x"), rng(b"d/", b"d0"))


def test_txn(pair):
    run(pair, put(b"x/k", b"v"), put(b"x/counter", b"1"), put(b"x/other", b"x"),
        txn([cmp(b"x/k", "VALUE", "EQUAL", value=b"v")], [put(b"x/k", b"w"), rng(b"x/k")],
            [rng(b"x/other")]),
        txn([cmp(b"x/k", "VALUE", "EQUAL", value=b"v")], [put(b"x/k", b"w")], [rng(b"x/other")]),
        txn([cmp(b"x/missing", "VALUE", "EQUAL", value=b"")], [], [rng(b"x/k")]),
        txn([cmp(b"x/missing", "VALUE", "NOT_EQUAL", value=b"a")], [rng(b"x/k")]),
        txn([cmp(b"x/missing", "VERSION", "EQUAL", version=0)], [put(b"x/missing")]),
        txn([cmp(b"x/missing2", "CREATE", "LESS", create_revision=1)], [rng(b"x/k")]),
        txn([cmp(b"x/", "MOD", "GREATER", b"x0", mod_revision=2)], [rng(b"x/", b"x0")]),
        txn([cmp(b"x/", "MOD", "GREATER", b"x0", mod_revision=3)], [rng(b"x/", b"x0")]),
        txn([cmp(b"x/", "LEASE", "EQUAL", b"\0", lease=0)], [dele(b"x/zzz")]),
        txn([cmp(b"x/k", "VERSION", "GREATER", version=1), cmp(b"x/k", "VALUE", "LESS", value=b"z")],
            [put(b"x/a", b"1", prev_kv=True), dele(b"x/other", prev_kv=True), rng(b"x/", b"x0"),
             rng(b"x/", b"x0", revision=3), rng(b"x/", b"x0", count_only=True)]),
        txn([], [put(b"x/n1"), txn([cmp(b"x/n1", "VERSION", "EQUAL", version=0)],
                                    [put(b"x/n2"), rng(b"x/n1")], [put(b"x/n3")])]),
        txn([], [txn([], [txn([], [rng(b"x/k")])])], [put(b"x/never")]),
        txn([cmp(b"x/k", "VALUE", 'EQUAL', value=b"w")], [put(b"x/z", lease=5)]),
        txn([], [put(b"x/k"), put(b"x/nothere", ignore_value=True)]),
        txn([], [put(b"x/k"), rng(b"x/k", revision=1000)]),
        txn([], [rng(b"x/k", revision=1000)]),
        txn([], [put(b"x/k"), put(b"x/k")]),
        txn([], [put(b"x/k"), dele(b"x/", b"x0")]),
        txn([], [put(b"x/k"), dele(b"x/", b"\0")]),
        txn([], [dele(b"x/a"), dele(b"x/", b"x0")]),
        txn([], [put(b"x/k"), txn([], [put(b"x/k")])]),
        txn([], [txn([], [put(b"x/q")], [put(b"x/q")]), txn([], [dele(b"x/q")])]),
        txn([], [txn([], [dele(b"x/q")]), txn([], [put(b"x/q")])]),
        txn([], [txn([], [put(b"x/p")], [put(b"x/q")]), txn([], [put(b"x/q")])]),
        txn([], [txn([], [put(b"x/q")]), put(b"x/q")]),
        txn([P.Compare(key=b"")], []), txn([], [put(b"")]), txn([], [rng(b"")]),
        txn([], [], [rng(b"x/", sort_order=9)]),
        ("txn", P.TxnRequest(success=[P.RequestOp()])),
        txn([], [put(b"op%d" % i) for i in range(129)]),
        txn([], [rng(b"x/k")], [txn([], [rng(b"x/k")] * 120)]),
        txn([cmp(b"x/k", "VALUE", "EQUAL", value=b"")] * 8, [txn([], [rng(b"x/k")] * 121)]),
        txn([P.Compare(key=b"x/k", result=9, version=0)], [rng(b"x/k")]),
        txn([P.Compare(key=b"x/k", target=9)], [rng(b"x/k")]),
        rng(b"x/", b"x0"))


def test_compaction(pair):
    run(pair, ("compaction", P.CompactionRequest(revision=0)),
        put(b"c/k", b"1"), put(b"c/k", b"2"), put(b"c/g", b"1"), dele(b"c/g"), put(b"c/k", b"3"))
    rev = pair.ours(*rng(b"c/k")).header.revision
    run(pair, ("compaction", P.CompactionRequest(revision=rev + 5)),
        ("compaction", P.CompactionRequest(revision=rev - 1)),
        rng(b"c/", b"c0", revision=rev - 2), rng(b"c/", b"c0", revision=rev - 1),
        rng(b"c/", b"c0", revision=rev), rng(b"c/", b"c0"),
        ("compaction", P.CompactionRequest(revision=rev - 1)),
        ("compaction", P.CompactionRequest(revision=rev - 3)),
        txn([], [rng(b"c/k", revision=rev - 2)]), txn([], [rng(b"c/k", revision=rev - 1)]),
        txn([], [put(b"c/x"), rng(b"c/k", revision=rev - 1)]),
        ("compaction", P.CompactionRequest(revision=rev)), rng(b"c/", b"c0", revision=rev),
        put(b"c/g", b"back"), rng(b"c/", b"c0"))


def test_long_keys(pair):
    base = b"L/" + b"k" * 600
    run(pair, put(b"L/" + b"k" * 508), put(base), put(base + b"a"), put(base + b"b" * 3000),
        put(b"L/" + b"k" * 509 + b"z"), put(base + b"a", b"2", prev_kv=True),
        rng(b"L/", b"L0", keys_only=True), rng(base, b"\0", limit=2, keys_only=True),
        rng(base + b"a"), rng(base + b"a", revision=3), rng(b"L/" + b"k" * 509, base + b"b"),
        txn([cmp(base, "VERSION", "EQUAL", base + b"z", version=1)], [dele(base + b"a", prev_kv=True)]),
        dele(b"L/" + b"k" * 509, b"L0", prev_kv=True), rng(b"L/", b"L0", keys_only=True))

# ---- generated sequences -------------------------------------------------------------------

KEYS = st.sampled_from([b"a", b"b", b"ba", b"c", b"\x00", b"a\x00"])
ENDS = st.sampled_from([b"", b"", b"b", b"c", b"d", b"\x00", b"a"])


def _range_req(draw_rev):
    return st.builds(
        P.RangeRequest, key=KEYS, range_end=ENDS, limit=st.integers(-1, 3), revision=draw_rev,
        sort_order=st.integers(0, 2), sort_target=st.integers(0, 4), keys_only=st.booleans(),
        count_only=st.booleans(), min_mod_revision=st.sampled_from([0, 0, 3, 6]),
        max_create_revision=st.sampled_from([0, 0, 4]))


REVS = st.integers(-1, 14)
PUTS = st.builds(P.PutRequest, key=KEYS, value=st.sampled_from([b"", b"x", b"y"]),
                 prev_kv=st.booleans(), ignore_value=st.booleans(), ignore_lease=st.booleans(),
                 lease=st.sampled_from([0, 0, 0, 42]))
DELETES = st.builds(P.DeleteRangeRequest, key=KEYS, range_end=ENDS, prev_kv=st.booleans())
COMPARES = st.builds(P.Compare, key=KEYS, range_end=ENDS, target=st.integers(0, 4),
                     result=st.integers(0, 3), version=st.integers(0, 3))
COMPARE_VALUES = st.builds(P.Compare, key=KEYS, target=st.just(P.Compare.VALUE),
                           result=st.integers(0, 3), value=st.sampled_from([b"", b"x", b"y"]))


def _ops(children):
    return st.one_of(
        st.builds(P.RequestOp, request_range=_range_req(REVS)),
        st.builds(P.RequestOp, request_put=PUTS),
        st.builds(P.RequestOp, request_delete_range=DELETES),
        children)


TXNS = st.recursive(
    st.builds(P.TxnRequest),
    lambda inner: st.builds(
        P.TxnRequest, compare=st.lists(st.one_of(COMPARES, COMPARE_VALUES), max_size=2),
        success=st.lists(_ops(st.builds(P.RequestOp, request_txn=inner)), max_size=3),
        failure=st.lists(_ops(st.builds(P.RequestOp, request_txn=inner)), max_size=3)),
    max_leaves=6)
STEPS = st.one_of(
    st.tuples(st.just("put"), PUTS), st.tuples(st.just("put"), PUTS),
    st.tuples(st.just("delete_range"), DELETES),
    st.tuples(st.just("range"), _range_req(REVS)),
    st.tuples(st.just("txn"), TXNS), st.tuples(st.just("txn"), TXNS),
    st.tuples(st.just("compaction"), st.builds(P.CompactionRequest, revision=REVS)))


@settings(max_examples=int(os.environ.get("PYETCD_DIFF_EXAMPLES", "15")), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(steps=st.lists(STEPS, min_size=5, max_size=40))
def test_generated_sequences(steps):
    ref = RefEtcd()
    pair = Pair(ref)
    try:
        for kind, req in steps:
            pair.check(kind, req)
    finally:
        pair.close()
        ref.close()
