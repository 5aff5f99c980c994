"""How a member comes up: from its data dir, as a founder of a new cluster, or joining one.

- A data dir with a WAL wins: the initial-cluster flags are ignored, the member and cluster IDs
  come from the WAL's metadata, Raft's log from the WAL, the state machine from the backend.
- ``--initial-cluster-state new``: every founder derives the same member and cluster IDs from
  the flags (as etcd does), writes the initial member list into the backend and starts Raft from
  a snapshot at index 1 holding that configuration.
- ``--initial-cluster-state existing``: the member was added with `member add`; it asks the other
  members for the cluster's ID and member list, finds itself by its peer URLs, and starts with
  an empty log: the leader sends it a snapshot.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pyetcd import errors
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft import MemoryStorage
from pyetcd.server.config import ConfigError, ServerConfig, cluster_id, member_id
from pyetcd.server.membership import MemberChange, Membership
from pyetcd.server.platform import Platform
from pyetcd.storage.backend import Backend
from pyetcd.wal import WAL

logger = logging.getLogger("pyetcd.server")

# The founders' configuration is the snapshot at this index and term.
BOOT_INDEX = 1
BOOT_TERM = 1


@dataclass
class Boot:
    member_id: int
    cluster_id: int
    wal: WAL
    storage: MemoryStorage
    applied: int
    # members to reach before the backend knows them (a joining member's view of the cluster)
    peers: list[rpc_pb2.Member] = field(default_factory=list)


def wal_metadata(local_id: int, cid: int) -> bytes:
    return local_id.to_bytes(8, "big") + cid.to_bytes(8, "big")


def check_peer_urls(urls) -> list[str]:
    """Peer URLs as etcd accepts them (scheme http/https, host and port), else ErrMemberBadURLs."""
    checked = []
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None or parts.path not in ("", "/"):
            raise errors.ErrMemberBadURLs
        checked.append(url)
    if not checked:
        raise errors.ErrMemberBadURLs
    return checked


def conf_state(membership: Membership) -> raft_pb2.ConfState:
    return raft_pb2.ConfState(voters=membership.voters(), learners=membership.learners())


async def bootstrap(cfg: ServerConfig, backend: Backend, membership: Membership, platform: Platform) -> Boot:
    if WAL.exists(cfg.wal_dir):
        return _restart(cfg, backend, membership)
    if cfg["initial-cluster-state"] == "new":
        return _found(cfg, backend, membership)
    return await _join(cfg, platform)


def _restart(cfg: ServerConfig, backend: Backend, membership: Membership) -> Boot:
    wal = WAL.open(cfg.wal_dir, logger=logger)
    metadata, hardstate, entries, marker = wal.read_all()
    local_id, cid = int.from_bytes(metadata[:8], "big"), int.from_bytes(metadata[8:16], "big")
    if local_id in membership.removed:
        wal.close()
        raise ConfigError("the member has been permanently removed from the cluster")
    storage = MemoryStorage()
    with backend.begin_read() as txn:
        applied = backend.consistent_index(txn)[0]
    if marker is not None:
        # Raft resumes at the applied index, so its configuration is the backend's member list.
        storage.apply_snapshot(raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(
            index=marker.index, term=marker.term, conf_state=conf_state(membership))))
    storage.set_hard_state(hardstate)
    storage.append(entries)
    return Boot(local_id, cid, wal, storage, applied)


def _found(cfg: ServerConfig, backend: Backend, membership: Membership) -> Boot:
    token = cfg["initial-cluster-token"]
    founders = cfg.initial_cluster()
    ids = {name: member_id(urls, token) for name, urls in founders.items()}
    advertised = sorted(cfg["initial-advertise-peer-urls"])
    if advertised != sorted(founders[cfg.name]):
        raise ConfigError(
            f"--initial-cluster has {cfg.name}={','.join(founders[cfg.name])} but missing from "
            f"--initial-advertise-peer-urls={','.join(cfg['initial-advertise-peer-urls'])}")
    local_id, cid = ids[cfg.name], cluster_id(list(ids.values()))
    with backend.begin_write() as txn:
        for name, urls in founders.items():
            membership.apply(txn, MemberChange(kind=MemberChange.ADD, member=rpc_pb2.Member(
                ID=ids[name], name=name, peerURLs=urls)))
        backend.set_consistent_index(txn, BOOT_INDEX, BOOT_TERM)
    backend.sync()
    wal = WAL.create(cfg.wal_dir, wal_metadata(local_id, cid))
    wal.save_snapshot(BOOT_INDEX, BOOT_TERM)
    hardstate = raft_pb2.HardState(term=BOOT_TERM, commit=BOOT_INDEX)
    wal.save(hardstate, [])
    storage = MemoryStorage()
    storage.apply_snapshot(raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(
        index=BOOT_INDEX, term=BOOT_TERM, conf_state=raft_pb2.ConfState(voters=sorted(ids.values())))))
    storage.set_hard_state(hardstate)
    return Boot(local_id, cid, wal, storage, BOOT_INDEX)


async def _join(cfg: ServerConfig, platform: Platform) -> Boot:
    others = [url for name, urls in cfg.initial_cluster().items() if name != cfg.name for url in urls]
    if not others:
        raise ConfigError("--initial-cluster-state existing needs the other members in --initial-cluster")
    cid, members = await platform.fetch_cluster(others)
    mine = set(cfg["initial-advertise-peer-urls"])
    local = next((m for m in members if mine & set(m.peerURLs)), None)
    if local is None:
        raise ConfigError(f"no member of cluster {cid:x} has the peer URLs "
                          f"{','.join(sorted(mine))}: add it first with `etcdctl member add`")
    wal = WAL.create(cfg.wal_dir, wal_metadata(local.ID, cid))
    return Boot(local.ID, cid, wal, MemoryStorage(), 0, peers=[m for m in members if m.ID != local.ID])
