"""Peer messaging between the members of a cluster (etcd's rafthttp role).

Messages are opaque bytes (serialized Raft messages) addressed to a member id (uint64). The
protocol on the wire is ours (wire.py): one TCP connection per direction and per peer, TLS when
the URL is https, a handshake that names sender, cluster and intended receiver, then
length-prefixed frames; snapshots on connections of their own.

    t = PeerTransport(member_id, cluster_id, on_message=..., on_snapshot=..., on_unreachable=...,
                      on_rejected=..., ssl_server=None, ssl_client=None,
                      options=TransportOptions(), rng=random.Random(seed), logger=None)
    await t.start(["http://127.0.0.1:2380"])   # t.listen_urls: the bound URLs (port 0 resolved)
    t.add_peer(2, ["http://10.0.0.2:2380"])     # also update_peer(id, urls), remove_peer(id)
    t.send(2, data); t.send_many([(2, a), (3, b)])   # never block, never raise
    ok = await t.send_snapshot(2, metadata, "/path/or/async/iterable/of/chunks")
    t.is_active(2); t.active_since(2); t.stats(2); t.peers()
    await t.stop()

    # a member joining with --initial-cluster-state existing, before it knows any IDs:
    cluster_id, members = await fetch_cluster(["http://10.0.0.2:2380"], ssl_context=None, timeout=5.0)
    # answered by members whose PeerTransport got cluster_info=...; ClusterUnreachable if none did

Call everything from the event loop the transport was started on. See transport.py for the
callbacks' contract and common.TransportOptions for the knobs.
"""
from pyetcd.transport.common import Rejection, TransportOptions
from pyetcd.transport.join import ClusterUnreachable, fetch_cluster
from pyetcd.transport.transport import PeerStats, PeerTransport
from pyetcd.transport.wire import Status

__all__ = ["ClusterUnreachable", "PeerStats", "PeerTransport", "Rejection", "Status", "TransportOptions",
           "fetch_cluster"]
