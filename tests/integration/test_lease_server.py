"""The member's lease methods in this process (a fast Raft: 10 ms ticks, so the minimum TTL is
1 s): renews that must commit a checkpoint reset first, and the renew of an expired lease."""
from __future__ import annotations

import asyncio

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.lessor import LeaseRecord, _lease_key

from test_member_seams import config, leader


def record(server, lease_id: int) -> LeaseRecord:
    server.backend.commit()
    with server.backend.begin_read() as txn:
        return LeaseRecord.FromString(txn.get(_lease_key(lease_id), db=server.backend.db("lease")))


async def keep_alive(server, lease_id: int) -> rpc_pb2.LeaseKeepAliveResponse:
    return await server.lease_keep_alive(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))


async def test_a_renew_answers_once_the_reset_of_its_checkpoint_is_committed(tmp_path):
    server = await leader(config(str(tmp_path / "m")))
    try:
        lease_id = (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=100))).ID
        checkpoint = rpc_pb2.LeaseCheckpoint(ID=lease_id, remaining_TTL=40)
        await server._propose(lease_checkpoint=rpc_pb2.LeaseCheckpointRequest(checkpoints=[checkpoint]))
        assert record(server, lease_id).RemainingTTL == 40
        applied = server.applied_index
        assert (await keep_alive(server, lease_id)).TTL == 100
        assert server.applied_index > applied  # the reset went through the log...
        assert record(server, lease_id).RemainingTTL == 0  # ...and is applied when the renew answers
        applied = server.applied_index
        assert (await keep_alive(server, lease_id)).TTL == 100
        assert server.applied_index == applied  # nothing to reset: no proposal
        # a checkpoint still in flight could record an older remaining TTL after the renew
        server.lessor.leases[lease_id].checkpoints_in_flight = 1
        await keep_alive(server, lease_id)
        assert server.applied_index > applied
    finally:
        await server.stop()


async def test_a_renew_of_an_expired_lease_waits_for_its_revoke(tmp_path):
    server = await leader(config(str(tmp_path / "m")))
    try:
        lease_id = (await server.lease_grant(rpc_pb2.LeaseGrantRequest(TTL=60))).ID
        await server.put(rpc_pb2.PutRequest(key=b"k", value=b"v", lease=lease_id))
        server.lessor.leases[lease_id].expiry = asyncio.get_running_loop().time()  # expired, not yet revoked
        resp = await keep_alive(server, lease_id)
        assert resp.TTL == 0  # not renewed: it was revoked meanwhile, its key with it
        assert lease_id not in server.lessor.leases
        assert server.applier.range(rpc_pb2.RangeRequest(key=b"k")).kvs == []
    finally:
        await server.stop()
