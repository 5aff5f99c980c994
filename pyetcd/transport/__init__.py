"""Peer messaging between the members of a cluster (etcd's rafthttp role); see transport.py."""
from pyetcd.transport.common import Rejection, TransportOptions
from pyetcd.transport.transport import PeerStats, PeerTransport
from pyetcd.transport.wire import Status

__all__ = ["PeerStats", "PeerTransport", "Rejection", "Status", "TransportOptions"]
