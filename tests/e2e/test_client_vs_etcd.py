"""pyetcd.client (sync and asyncio) against real etcd 3.5.1: KV calls, errors, endpoint failover."""
from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.client import AsyncClient, Client, prefix_end, put_request, range_request
from pyetcd.proto.etcdserverpb import rpc_pb2
from servers import free_port


def test_sync_kv(etcd_server):
    with Client([etcd_server.url]) as c:
        assert c.put("cl/a", "1").header.revision > 0
        assert c.put(b"cl/a", b"2", prev_kv=True).prev_kv.value == b"1"
        c.put("cl/b", "3")
        resp = c.get("cl/", prefix_end(b"cl/"))
        assert [kv.value for kv in resp.kvs] == [b"2", b"3"] and resp.count == 2
        assert c.get("cl/", prefix_end(b"cl/"), count_only=True).count == 2
        cmp = rpc_pb2.Compare(key=b"cl/a", target=rpc_pb2.Compare.VALUE, value=b"2")
        txn = c.txn(compare=[cmp], success=[put_request("cl/c", "4")], failure=[range_request("cl/a")])
        assert txn.succeeded and txn.responses[0].HasField("response_put")
        assert c.delete("cl/", prefix_end(b"cl/"), prev_kv=True).deleted == 3
        rev = c.put("cl/d", "5").header.revision
        c.compact(rev, physical=True)
        with pytest.raises(errors.EtcdError) as exc:
            c.get("cl/d", revision=rev - 1)
        assert exc.value == errors.ErrCompacted
        assert c.kv is not None and c.maintenance is not None


def test_sync_errors_and_failover(etcd_server):
    dead = f"127.0.0.1:{free_port()}"
    with Client([dead, etcd_server.endpoint], timeout=5) as c:
        with pytest.raises(errors.EtcdError) as exc:
            c.put("", "x")
        assert exc.value == errors.ErrEmptyKey
        assert c.get("nothing").count == 0
    with Client([dead], timeout=0.5) as c:
        with pytest.raises(errors.EtcdDeadlineExceeded) as exc:
            c.get("k")
        assert isinstance(exc.value, errors.EtcdConnectionFailed)
        assert exc.value.message == "context deadline exceeded"


async def test_async_kv_and_failover(etcd_server):
    async with AsyncClient([f"http://127.0.0.1:{free_port()}", etcd_server.url]) as c:
        await c.put("acl/a", "1")
        assert (await c.get("acl/a")).kvs[0].value == b"1"
        assert (await c.delete("acl/a")).deleted == 1
        with pytest.raises(errors.EtcdError) as exc:
            await c.get("acl/a", revision=10 ** 9)
        assert exc.value == errors.ErrFutureRev
