"""Alarms and the backend quota (--quota-backend-bytes) on real etcd 3.5.1 and pyetcd: NOSPACE is
raised when a write would pass the quota, refuses what would grow the database while reads,
deletes and compactions go on, survives a restart, and is seen by every member."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

from both_servers import SERVERS
from servers import PYETCD, Server, cluster, have_ref, start_all, wait_for
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

NO_SPACE = (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
VALUE = b"x" * 30_000
GET = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)


def refused(call) -> tuple:
    with pytest.raises(grpc.RpcError) as e:
        call()
    return e.value.code(), e.value.details()


def health(server: Server) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(server.url + "/health", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:  # not listening yet
        return 0, None


@pytest.mark.parametrize("name", list(SERVERS))
def test_nospace_alarm_from_the_quota(name, tmp_path):
    if name == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    server = Server(SERVERS[name](), str(tmp_path / "member.etcd"), extra=["--quota-backend-bytes=300000"])
    try:
        server.start()
        with grpc.insecure_channel(server.endpoint) as ch:
            kv, lease, maint = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.MaintenanceStub(ch)
            for i in range(1000):  # (etcd sees its file grow only when its batch commits)
                try:
                    kv.Put(rpc_pb2.PutRequest(key=b"k%d" % i, value=VALUE), timeout=10)
                except grpc.RpcError as e:
                    assert (e.code(), e.details()) == NO_SPACE
                    break
            else:
                pytest.fail("the quota never refused a put")
            member_id = maint.Status(rpc_pb2.StatusRequest(), timeout=10).header.member_id
            alarms = maint.Alarm(GET, timeout=10).alarms
            assert [(a.memberID, a.alarm) for a in alarms] == [(member_id, rpc_pb2.NOSPACE)]
            assert list(maint.Status(rpc_pb2.StatusRequest(), timeout=10).errors) == [
                f"memberID:{member_id} alarm:NOSPACE "]
            assert health(server) == (503, {"health": "false", "reason": "ALARM NOSPACE"})

            # what would grow the database is refused; reads, deletes and compactions go on
            assert refused(lambda: kv.Put(rpc_pb2.PutRequest(key=b"small", value=b"v"), timeout=10)) == NO_SPACE
            assert refused(lambda: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=10)) == NO_SPACE
            put_op = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"t", value=b"v"))
            assert refused(lambda: kv.Txn(rpc_pb2.TxnRequest(failure=[put_op]), timeout=10)) == NO_SPACE
            delete_op = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"k1"))
            # past the quota every txn is refused, even one that would only delete
            assert refused(lambda: kv.Txn(rpc_pb2.TxnRequest(success=[delete_op]), timeout=10)) == NO_SPACE
            assert kv.Range(rpc_pb2.RangeRequest(key=b"k0"), timeout=10).kvs[0].value == VALUE
            deleted = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k", range_end=b"l"), timeout=10)
            assert deleted.deleted > 0
            kv.Compact(rpc_pb2.CompactionRequest(revision=deleted.header.revision, physical=True), timeout=30)

        server.stop()
        server.start(wait=False)  # the alarm is in the backend: a restart keeps it (and /health says 503)
        wait_for(lambda: health(server)[1] == {"health": "false", "reason": "ALARM NOSPACE"}, 30, "the restart")
        with grpc.insecure_channel(server.endpoint) as ch:
            kv, maint = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.MaintenanceStub(ch)
            assert [a.alarm for a in maint.Alarm(GET, timeout=10).alarms] == [rpc_pb2.NOSPACE]
            assert refused(lambda: kv.Put(rpc_pb2.PutRequest(key=b"small", value=b"v"), timeout=10)) == NO_SPACE
            disarmed = maint.Alarm(rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.DEACTIVATE, memberID=member_id,
                                                        alarm=rpc_pb2.NOSPACE), timeout=10)
            assert [(a.memberID, a.alarm) for a in disarmed.alarms] == [(member_id, rpc_pb2.NOSPACE)]
            if server.cmd == PYETCD:
                # pyetcd measures the space in use, which the compaction gave back (etcd: the file
                # size, which only a defrag shrinks)
                assert maint.Alarm(GET, timeout=10).alarms == []
                kv.Put(rpc_pb2.PutRequest(key=b"small", value=b"v"), timeout=10)
                assert health(server) == (200, {"health": "true", "reason": ""})
    finally:
        server.stop()


def test_an_alarm_is_replicated_to_every_member(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3)
    try:
        start_all(members)
        activate = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=7, alarm=rpc_pb2.CORRUPT)
        with grpc.insecure_channel(members[0].endpoint) as ch:
            rpc_pb2_grpc.MaintenanceStub(ch).Alarm(activate, timeout=10)
        for m in members:
            with grpc.insecure_channel(m.endpoint) as ch:
                maint, kv = rpc_pb2_grpc.MaintenanceStub(ch), rpc_pb2_grpc.KVStub(ch)
                wait_for(lambda: [(a.memberID, a.alarm) for a in maint.Alarm(GET, timeout=10).alarms]
                         == [(7, rpc_pb2.CORRUPT)], 10, "the alarm on every member")
                assert refused(lambda: kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"b"), timeout=10)) == (
                    grpc.StatusCode.DATA_LOSS, "etcdserver: corrupt cluster")
    finally:
        for m in members:
            m.stop()
