"""Model test: random puts, deletes, txns and compactions through the Applier, checked after
every step against a tiny in-memory model of etcd's MVCC store (key -> list of changes), at
every readable revision and over random ranges. Keys include ones past LMDB's 511-byte key
limit, which take the index's long-key path."""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd import errors
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2 as P
from pyetcd.server.apply import Applier
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore

LONG = b"k" * 511
KEYS = [b"a", b"ab", b"b", b"k" * 510, b"k" * 510 + b"z", LONG, LONG + b"a", LONG + b"b" * 300,
        b"k" * 600, b"l"]
BOUNDS = KEYS + [b"", b"\0", b"aa", LONG + b"a\0", b"k" * 520]


@dataclass
class Model:
    rev: int = 1
    compact: int = -1
    history: dict[bytes, list[tuple[int, tuple | None]]] = field(default_factory=dict)

    def live(self, key: bytes, at: int) -> tuple | None:
        found = None
        for rev, kv in self.history.get(key, []):
            if rev <= at:
                found = kv
        return found

    def keys_in(self, start: bytes, end: bytes | None, at: int) -> list[bytes]:
        if end is None:
            chosen = [start]
        else:
            chosen = [k for k in self.history if k >= start and (end == b"" or k < end)]
        return sorted(k for k in chosen if self.live(k, at) is not None)

    def write(self, puts: list[tuple[bytes, bytes]], deletes: list[tuple[bytes, bytes | None]]) -> None:
        new = self.rev + 1
        changed = False
        for start, end in deletes:
            for k in self.keys_in(start, end, self.rev):
                self.history[k].append((new, None))
                changed = True
        for key, value in puts:
            prev = self.live(key, self.rev)
            kv = (prev[0] if prev else new, new, prev[2] + 1 if prev else 1, value)
            self.history.setdefault(key, []).append((new, kv))
            changed = True
        if changed:
            self.rev = new

    def range(self, start: bytes, end: bytes | None, at: int) -> list[tuple]:
        if at > self.rev:
            raise errors.ErrFutureRev
        at = at if at > 0 else self.rev
        if at < self.compact:
            raise errors.ErrCompacted
        return [(k, *self.live(k, at)) for k in self.keys_in(start, end, at)]


def _end(raw: bytes) -> bytes | None:
    return None if raw == b"" else (b"" if raw == b"\0" else raw)


class Driver:
    def __init__(self, path: str) -> None:
        self.path = path
        self.backend = Backend(path)
        self.applier = Applier(KVStore(self.backend))
        self.index = 0

    def reopen(self) -> None:
        self.backend.close()
        self.backend = Backend(self.path)
        self.applier = Applier(KVStore(self.backend))

    def apply(self, **request) -> object:
        self.index += 1
        item = raft_internal_pb2.InternalRaftRequest(ID=self.index, **request)
        [(resp, _)] = self.applier.apply_batch([(self.index, 1, item)])
        return resp

    def range(self, start: bytes, end: bytes, at: int) -> list[tuple] | EtcdError:
        try:
            resp = self.applier.range(P.RangeRequest(key=start, range_end=end, revision=at))
        except EtcdError as err:
            return err
        assert resp.count == len(resp.kvs)
        return [(kv.key, kv.create_revision, kv.mod_revision, kv.version, kv.value) for kv in resp.kvs]


def _model_range(model: Model, start: bytes, end: bytes, at: int) -> list[tuple] | EtcdError:
    try:
        return model.range(start, _end(end), at)
    except EtcdError as err:
        return err


KEY = st.sampled_from(KEYS)
BOUND = st.sampled_from(BOUNDS)
VALUE = st.sampled_from([b"", b"x", b"y" * 700])
OPS = st.one_of(
    st.tuples(st.just("put"), KEY, VALUE),
    st.tuples(st.just("delete"), KEY, BOUND),
    st.tuples(st.just("txn"), st.lists(st.tuples(KEY, VALUE), max_size=3,
                                       unique_by=lambda kv: kv[0])),
    st.tuples(st.just("compact"), st.integers(-1, 40)),
    st.tuples(st.just("range"), KEY, BOUND, st.integers(-1, 40)),
    st.tuples(st.just("reopen")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=30))
def test_store_matches_model(tmp_path_factory, ops):
    driver, model = Driver(str(tmp_path_factory.mktemp("db"))), Model()
    try:
        for op in ops:
            kind = op[0]
            if kind == "put":
                resp = driver.apply(put=P.PutRequest(key=op[1], value=op[2]))
                model.write([(op[1], op[2])], [])
                assert resp.header.revision == model.rev
            elif kind == "delete":
                resp = driver.apply(delete_range=P.DeleteRangeRequest(key=op[1], range_end=op[2]))
                before = model.rev
                model.write([], [(op[1], _end(op[2]))])
                assert resp.header.revision == model.rev
                assert resp.deleted == (len(model.range(op[1], _end(op[2]), before))
                                        if model.rev != before else 0)
            elif kind == "txn":
                ops_ = [P.RequestOp(request_put=P.PutRequest(key=k, value=v)) for k, v in op[1]]
                resp = driver.apply(txn=P.TxnRequest(success=ops_))
                model.write(op[1], [])
                assert resp.header.revision == model.rev
            elif kind == "compact":
                resp = driver.apply(compaction=P.CompactionRequest(revision=op[1]))
                if op[1] <= model.compact:
                    assert resp == errors.ErrCompacted
                elif op[1] > model.rev:
                    assert resp == errors.ErrFutureRev
                else:
                    model.compact = op[1]
                    assert resp.header.revision == model.rev
            elif kind == "range":
                assert driver.range(op[1], op[2], op[3]) == _model_range(model, *op[1:])
            else:
                driver.reopen()
            for at in range(max(model.compact, 1), model.rev + 1):
                assert driver.range(b"\0", b"\0", at) == _model_range(model, b"\0", b"\0", at)
    finally:
        driver.backend.close()
