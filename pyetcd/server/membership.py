"""The cluster's members: who they are, which are learners, which IDs were removed for good.

Kept in the backend's ``members`` bucket, changed only by applying a committed configuration
change (in the same LMDB transaction as the applied index), so every member agrees on it.
"""
from __future__ import annotations

import hashlib
import struct
from typing import Iterable

import lmdb

from pyetcd import errors
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.storage.backend import Backend

MemberChange = raft_internal_pb2.MemberChange
_ID = struct.Struct(">Q")
_MEMBER, _REMOVED = b"m", b"r"
# etcd 3.5 allows one learner at a time.
MAX_LEARNERS = 1


def new_member_id(peer_urls: Iterable[str], cluster_token: str, now: float | None = None) -> int:
    """A member ID as etcd derives it: SHA-1 of sorted peer URLs + token (+ time for added members)."""
    text = "".join(sorted(peer_urls)) + cluster_token
    if now is not None:
        text += str(int(now))
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


def added_member_id(peer_urls: Iterable[str], cluster_token: str, now: float) -> int:
    """The ID of a member added now (``now``: wall-clock seconds)."""
    return new_member_id(peer_urls, cluster_token, now)


class Membership:
    """The member list as applied so far (loaded from, and written to, the backend)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._db = backend.db("members")
        self.members: dict[int, rpc_pb2.Member] = {}
        self.removed: set[int] = set()
        with backend.begin_read() as txn:
            for key, value in txn.cursor(db=self._db):
                (member_id,) = _ID.unpack(key[1:])
                if key[:1] == _MEMBER:
                    self.members[member_id] = rpc_pb2.Member.FromString(value)
                else:
                    self.removed.add(member_id)

    # ---- queries ---------------------------------------------------------------------------

    def sorted_members(self) -> list[rpc_pb2.Member]:
        return [self.members[i] for i in sorted(self.members)]

    def voters(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if not m.isLearner)

    def learners(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if m.isLearner)

    def find_by_peer_urls(self, urls: Iterable[str]) -> rpc_pb2.Member | None:
        wanted = set(urls)
        return next((m for m in self.members.values() if wanted & set(m.peerURLs)), None)

    def _url_owner(self, urls: Iterable[str], exclude: int = 0) -> int | None:
        wanted = set(urls)
        return next((i for i, m in self.members.items() if i != exclude and wanted & set(m.peerURLs)), None)

    # ---- validation (before proposing, and again when applying) ----------------------------------

    def check(self, change: MemberChange) -> None:
        """Raise etcd's error if ``change`` cannot apply to the current member list."""
        member, kind = change.member, change.kind
        if member.ID in self.removed:
            raise errors.ErrMemberNotFound if kind != MemberChange.ADD else errors.ErrMemberExist
        if kind in (MemberChange.ADD, MemberChange.ADD_LEARNER):
            if member.ID in self.members:
                raise errors.ErrMemberExist
            if self._url_owner(member.peerURLs) is not None:
                raise errors.ErrPeerURLExist
            if kind == MemberChange.ADD_LEARNER and len(self.learners()) >= MAX_LEARNERS:
                raise errors.ErrTooManyLearners
        elif kind == MemberChange.PROMOTE:
            current = self.members.get(member.ID)
            if current is None:
                raise errors.ErrMemberNotFound
            if not current.isLearner:
                raise errors.ErrMemberNotLearner
        elif kind in (MemberChange.REMOVE, MemberChange.UPDATE, MemberChange.PUBLISH):
            if member.ID not in self.members:
                raise errors.ErrMemberNotFound
            if kind == MemberChange.UPDATE and self._url_owner(member.peerURLs, exclude=member.ID) is not None:
                raise errors.ErrPeerURLExist

    # ---- apply -----------------------------------------------------------------------------

    def apply(self, txn: lmdb.Transaction, change: MemberChange) -> None:
        """Apply a committed (and checked) change inside the apply batch's write transaction."""
        member, kind = change.member, change.kind
        if kind in (MemberChange.ADD, MemberChange.ADD_LEARNER):
            stored = rpc_pb2.Member()
            stored.CopyFrom(member)
            stored.isLearner = kind == MemberChange.ADD_LEARNER
        elif kind == MemberChange.REMOVE:
            del self.members[member.ID]
            txn.delete(_MEMBER + _ID.pack(member.ID), db=self._db)
            self.removed.add(member.ID)
            txn.put(_REMOVED + _ID.pack(member.ID), b"", db=self._db)
            return
        else:
            stored = rpc_pb2.Member()
            stored.CopyFrom(self.members[member.ID])
            if kind == MemberChange.PROMOTE:
                stored.isLearner = False
            elif kind == MemberChange.UPDATE:
                del stored.peerURLs[:]
                stored.peerURLs.extend(member.peerURLs)
            else:  # PUBLISH: a started member announces its name and client URLs
                stored.name = member.name
                del stored.clientURLs[:]
                stored.clientURLs.extend(member.clientURLs)
        self.members[member.ID] = stored
        txn.put(_MEMBER + _ID.pack(member.ID), stored.SerializeToString(), db=self._db)
