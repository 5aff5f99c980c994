"""The member: bootstrap from the data dir, propose writes, apply committed entries, serve reads.

Data flows one way (DESIGN §2): a write request is checked, proposed to the replicated log,
made durable in the WAL, applied to MVCC in a batch, and its result resolves the caller's
future. Reads are served from the store; on a single member every acknowledged write is
already applied, so a local read is linearizable.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import Any

from pyetcd import ETCD_VERSION, errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.proto.raftpb import raft_pb2
from pyetcd.server import checks
from pyetcd.server.apply import Applier
from pyetcd.server.config import ServerConfig, cluster_id, member_id
from pyetcd.server.raft_node import LocalRaftNode
from pyetcd.storage.backend import Backend
from pyetcd.storage.mvcc import KVStore
from pyetcd.wal import WAL

logger = logging.getLogger("pyetcd.server")

InternalRequest = raft_internal_pb2.InternalRaftRequest


class EtcdServer:
    """One etcd member. Create, ``await start()``, serve, ``await stop()``."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        peers = cfg.initial_cluster()
        self.member_id = member_id(peers[cfg.name], cfg["initial-cluster-token"])
        self.cluster_id = cluster_id([member_id(urls, cfg["initial-cluster-token"]) for urls in peers.values()])
        self.max_request_bytes: int = cfg["max-request-bytes"]
        self.max_txn_ops: int = cfg["max-txn-ops"]
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future, InternalRequest]] = {}
        self.backend: Backend | None = None
        self.store: KVStore | None = None
        self.applier: Applier | None = None
        self.raft: LocalRaftNode | None = None
        self._wal: WAL | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        os.makedirs(os.path.dirname(cfg.backend_path), exist_ok=True)
        self.backend = Backend(cfg.backend_path)
        self.store = KVStore(self.backend)
        self.applier = Applier(self.store)
        if WAL.exists(cfg.wal_dir):
            self._wal = WAL.open(cfg.wal_dir, logger=logger)
            _, hardstate, entries, _ = self._wal.read_all()
            self._replay(entries)
            last_index = entries[-1].index if entries else hardstate.commit
        else:
            self._wal = WAL.create(cfg.wal_dir, self._wal_metadata())
            # A new member starts at term 1, as etcd's bootstrap does; its first election makes it 2.
            hardstate, last_index = raft_pb2.HardState(term=1), 0
        log(logger, logging.INFO, "starting local member",
            **{"local-member-id": f"{self.member_id:x}", "cluster-id": f"{self.cluster_id:x}"})
        self.raft = LocalRaftNode(self._wal, hardstate, last_index, self._apply_committed,
                                  fsync=not cfg["unsafe-no-fsync"])
        await self.raft.start(self.member_id)

    async def stop(self) -> None:
        if self.raft is not None:
            await self.raft.stop()
        for fut, _ in self._waiting.values():
            if not fut.done():
                fut.set_exception(errors.ErrStopped)
        if self._wal is not None:
            self._wal.close()
        if self.backend is not None:
            self.backend.sync()
            self.backend.close()

    def _wal_metadata(self) -> bytes:
        return self.member_id.to_bytes(8, "big") + self.cluster_id.to_bytes(8, "big")

    def _replay(self, entries: list[raft_pb2.Entry]) -> None:
        """Apply what the WAL holds beyond the store's applied index (apply skips the rest)."""
        if entries:
            self._apply_committed(entries)
            log(logger, logging.INFO, "replayed WAL", **{"last-index": entries[-1].index})

    # ---- apply -----------------------------------------------------------------------------

    def _apply_committed(self, entries: list[raft_pb2.Entry]) -> None:
        batch = []
        for entry in entries:
            if not entry.data:
                continue
            request = InternalRequest.FromString(entry.data)
            waiting = self._waiting.get(request.ID)
            batch.append((entry.index, entry.term, waiting[1] if waiting else request))
        if not batch:
            return
        results = self.applier.apply_batch(batch)
        for (_, term, request), result in zip(batch, results):
            waiting = self._waiting.pop(request.ID, None)
            if waiting is None or result is None or waiting[0].done():
                continue
            response, _events = result
            if isinstance(response, errors.EtcdError):
                waiting[0].set_exception(response)
            else:
                self._fill_header(response.header, term)
                waiting[0].set_result(response)

    # ---- helpers ---------------------------------------------------------------------------

    def _fill_header(self, header: rpc_pb2.ResponseHeader, term: int | None = None) -> None:
        header.cluster_id = self.cluster_id
        header.member_id = self.member_id
        header.raft_term = self.raft.term if term is None else term

    def header(self) -> rpc_pb2.ResponseHeader:
        header = rpc_pb2.ResponseHeader(revision=self.store.rev)
        self._fill_header(header)
        return header

    async def _propose(self, **request: Any) -> Any:
        internal = InternalRequest(ID=next(self._ids), **request)
        data = internal.SerializeToString()
        if len(data) > self.max_request_bytes:
            raise errors.ErrRequestTooLarge
        future = asyncio.get_running_loop().create_future()
        self._waiting[internal.ID] = (future, internal)
        self.raft.propose(data)
        return await future

    # ---- KV --------------------------------------------------------------------------------

    async def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        checks.check_range(req)
        resp = self.applier.range(req)
        self._fill_header(resp.header)
        return resp

    async def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        checks.check_put(req)
        return await self._propose(put=req)

    async def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        checks.check_delete_range(req)
        return await self._propose(delete_range=req)

    async def txn(self, req: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        checks.check_txn(req, self.max_txn_ops)
        return await self._propose(txn=req)

    async def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        return await self._propose(compaction=req)

    # ---- maintenance and cluster (what `endpoint health/status` and `member list` need) --------

    async def alarm(self, req: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        return rpc_pb2.AlarmResponse(header=self.header())

    async def status(self, req: rpc_pb2.StatusRequest) -> rpc_pb2.StatusResponse:
        return rpc_pb2.StatusResponse(
            header=self.header(), version=ETCD_VERSION, dbSize=self.backend.size(),
            dbSizeInUse=self.backend.size_in_use(), leader=self.member_id,
            raftIndex=self.raft.commit_index, raftTerm=self.raft.term,
            raftAppliedIndex=self.raft.commit_index)

    def members(self) -> list[rpc_pb2.Member]:
        cfg = self.cfg
        return [rpc_pb2.Member(ID=self.member_id, name=cfg.name, peerURLs=cfg.initial_cluster()[cfg.name],
                               clientURLs=cfg["advertise-client-urls"])]

    async def member_list(self, req: rpc_pb2.MemberListRequest) -> rpc_pb2.MemberListResponse:
        header = self.header()
        header.revision = 0
        return rpc_pb2.MemberListResponse(header=header, members=self.members())
