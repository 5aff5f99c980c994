"""How a member comes up: from its data dir, as a founder of a new cluster, or joining one.

- A data dir with a WAL wins: the initial-cluster flags are ignored, the member and cluster IDs
  come from the WAL's metadata, Raft's log from the WAL, the state machine from the backend.
  A snapshot install the restart interrupted is finished first (snapshot.finish_install), the
  backend comes back at its checkpoint after a power loss (storage/checkpoint.py), and Raft's
  invariant applied <= committed <= last index is checked: a member whose backend and WAL do
  not fit together refuses to start with a message saying why.
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
from pyetcd.fileutil import FileSystem, makedirs_durably
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.raft import MemoryStorage
from pyetcd.server.config import ConfigError, ServerConfig, cluster_id, member_id
from pyetcd.server import snapshot
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
    backend: Backend
    # members to reach before the backend knows them (a joining member's view of the cluster)
    peers: list[rpc_pb2.Member] = field(default_factory=list)


def wal_metadata(local_id: int, cid: int, peers: list[rpc_pb2.Member] = ()) -> bytes:
    """The WAL's metadata: member and cluster IDs, and for a member that joined an existing
    cluster the members it learnt then (until its first snapshot they are all it knows)."""
    joined = rpc_pb2.MemberListResponse(members=peers).SerializeToString() if peers else b""
    return local_id.to_bytes(8, "big") + cid.to_bytes(8, "big") + joined


def parse_wal_metadata(metadata: bytes) -> tuple[int, int, list[rpc_pb2.Member]]:
    peers = list(rpc_pb2.MemberListResponse.FromString(metadata[16:]).members) if len(metadata) > 16 else []
    return int.from_bytes(metadata[:8], "big"), int.from_bytes(metadata[8:16], "big"), peers


class _NeverStarted(Exception):
    """A founder's WAL without its boot snapshot: the first start died before it was written."""


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


async def bootstrap(cfg: ServerConfig, platform: Platform) -> Boot:
    fs = platform.fs
    # (every level down from the data dir: a first start that died may have left one unsynced)
    makedirs_durably(fs, cfg.snap_dir, up_to=cfg.data_dir)
    again = False
    if WAL.exists(cfg.wal_dir, fs=fs):
        try:
            return _restart(cfg, fs)
        except _NeverStarted:
            log(logger, logging.WARNING, "the member's first start did not finish: starting it again")
            fs.rmtree(cfg.wal_dir)
            again = True
    # Without a WAL the member never started: a backend left from an interrupted first start
    # holds nothing that counts.
    if fs.exists(cfg.backend_path):
        fs.rmtree(cfg.backend_path)
    backend = Backend(cfg.backend_path, fs=fs)
    try:
        if cfg["initial-cluster-state"] == "new":
            boot = _found(cfg, backend, fs)
            if again:  # the others may have gone on without it: learn who is there now
                boot.peers = await _current_members(cfg, boot.cluster_id, boot.member_id, platform)
            return boot
        return await _join(cfg, backend, platform)
    except BaseException:
        backend.close()
        raise


def _restart(cfg: ServerConfig, fs: FileSystem) -> Boot:
    wal = WAL.open(cfg.wal_dir, logger=logger, fs=fs)
    try:
        return _resume(cfg, fs, wal)
    except BaseException:
        wal.close()
        raise


def _resume(cfg: ServerConfig, fs: FileSystem, wal: WAL) -> Boot:
    metadata, hardstate, entries, marker = wal.read_all()
    local_id, cid, joined = parse_wal_metadata(metadata)
    if marker is None and not joined:
        raise _NeverStarted  # (a founder writes its boot snapshot before it does anything else)
    snap_index, snap_term = (marker.index, marker.term) if marker is not None else (0, 0)
    if snapshot.finish_install(fs, cfg.snap_dir, cfg.backend_path, snap_index, snap_term):
        log(logger, logging.INFO, "finished installing the snapshot received before the restart",
            **{"snapshot-index": snap_index})
    backend = Backend(cfg.backend_path, fs=fs)
    try:
        if backend.restored is not None:
            log(logger, logging.WARNING, "the machine went down since the backend's last checkpoint: "
                "restored the backend to it", **{"applied-index": backend.restored.consistent_index})
        membership = Membership(backend)
        if local_id in membership.removed:
            raise ConfigError("the member has been permanently removed from the cluster")
        with backend.begin_read() as txn:
            applied = backend.consistent_index(txn)[0]
        last = entries[-1].index if entries else snap_index
        # Raft's invariant applied <= committed <= last index, checked before Raft sees it.
        if applied < snap_index:
            raise ConfigError(f"the backend's applied index {applied} is behind the WAL's snapshot at "
                              f"index {snap_index} and the snapshot's database is missing")
        if applied > last:
            raise ConfigError(f"the backend's applied index {applied} is beyond the WAL's last index {last}")
        if hardstate.commit > last:
            raise ConfigError(f"the WAL's commit index {hardstate.commit} is beyond its last index {last}")
        storage = MemoryStorage()
        if marker is not None:
            # Raft resumes at the applied index: its configuration is the backend's member list.
            storage.apply_snapshot(raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(
                index=snap_index, term=snap_term, conf_state=conf_state(membership))))
        # What was applied was committed, even if the commit-only hard state saying so was not
        # synced before a power loss.
        storage.set_hard_state(raft_pb2.HardState(term=hardstate.term, vote=hardstate.vote,
                                                  commit=max(hardstate.commit, applied)))
        storage.append(entries)
    except BaseException:
        backend.close()
        raise
    # A member that joined knows the others from its WAL until its first snapshot brings them.
    return Boot(local_id, cid, wal, storage, backend, peers=[] if membership.members else joined)
def _found(cfg: ServerConfig, backend: Backend, fs: FileSystem) -> Boot:
    """A founder's first start: the member list of --initial-cluster in the backend (which may
    hold a restored snapshot's data, etcdutl snapshot restore), a WAL starting at the boot
    snapshot."""
    token = cfg["initial-cluster-token"]
    founders = cfg.initial_cluster()
    ids = {name: member_id(urls, token) for name, urls in founders.items()}
    advertised = sorted(cfg["initial-advertise-peer-urls"])
    if advertised != sorted(founders[cfg.name]):
        raise ConfigError(
            f"--initial-cluster has {cfg.name}={','.join(founders[cfg.name])} but missing from "
            f"--initial-advertise-peer-urls={','.join(cfg['initial-advertise-peer-urls'])}")
    local_id, cid = ids[cfg.name], cluster_id(list(ids.values()))
    membership = Membership(backend)
    txn = backend.write_txn()
    for name, urls in founders.items():
        membership.apply(txn, MemberChange(kind=MemberChange.ADD, member=rpc_pb2.Member(
            ID=ids[name], name=name, peerURLs=urls)))
    backend.set_consistent_index(txn, BOOT_INDEX, BOOT_TERM)
    backend.checkpoint()
    wal = WAL.create(cfg.wal_dir, wal_metadata(local_id, cid), fs=fs)
    # The hard state first: a WAL with the boot marker is a member that started (sim F9: one
    # whose first start died between the two came back at term 0, below its log's term).
    hardstate = raft_pb2.HardState(term=BOOT_TERM, commit=BOOT_INDEX)
    wal.save(hardstate, [])
    wal.save_snapshot(BOOT_INDEX, BOOT_TERM)
    storage = MemoryStorage()
    storage.apply_snapshot(raft_pb2.Snapshot(metadata=raft_pb2.SnapshotMetadata(
        index=BOOT_INDEX, term=BOOT_TERM, conf_state=raft_pb2.ConfState(voters=sorted(ids.values())))))
    storage.set_hard_state(hardstate)
    return Boot(local_id, cid, wal, storage, backend)


def found_cluster(cfg: ServerConfig, backend: Backend, fs: FileSystem) -> None:
    """What ``etcdutl snapshot restore`` makes of a data dir whose backend holds the snapshot's
    data: a founder of a new cluster, which the member then starts from (as if restarted)."""
    boot = _found(cfg, backend, fs)
    boot.wal.close()


async def _current_members(cfg: ServerConfig, cid: int, local_id: int, platform: Platform
                           ) -> list[rpc_pb2.Member]:
    """The cluster's members as a founder's peers tell them, if any of them answers (sim F11: a
    founder starting again later knew only the founders and could not answer a newer leader)."""
    others = [url for name, urls in cfg.initial_cluster().items() if name != cfg.name for url in urls]
    try:
        answered, members = await platform.fetch_cluster(others)
    except (ConnectionError, OSError, ValueError):
        return []
    return [m for m in members if m.ID != local_id] if answered == cid else []


async def _join(cfg: ServerConfig, backend: Backend, platform: Platform) -> Boot:
    others = [url for name, urls in cfg.initial_cluster().items() if name != cfg.name for url in urls]
    if not others:
        raise ConfigError("--initial-cluster-state existing needs the other members in --initial-cluster")
    mine = set(cfg["initial-advertise-peer-urls"])

    def find_me(members: list[rpc_pb2.Member]) -> rpc_pb2.Member | None:
        return next((m for m in members if mine & set(m.peerURLs)), None)

    # a peer that has not applied `member add` yet answers without us: ask the others (sim F12)
    cid, members = await platform.fetch_cluster(others, wanted=lambda members: find_me(members) is not None)
    local = find_me(members)
    if local is None:
        raise ConfigError(f"no member of cluster {cid:x} has the peer URLs "
                          f"{','.join(sorted(mine))}: add it first with `etcdctl member add`")
    peers = [m for m in members if m.ID != local.ID]
    wal = WAL.create(cfg.wal_dir, wal_metadata(local.ID, cid, peers), fs=platform.fs)
    return Boot(local.ID, cid, wal, MemoryStorage(), backend, peers=peers)
