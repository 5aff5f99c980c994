"""Request IDs: unique across the members of a cluster and across a member's restarts.

Every member sees every request ID (they travel in the log), and ReadIndex rounds use them as
contexts: an answer meant for a round of an earlier run, or of another member, must never be
taken for one of ours. An ID is the member ID's low 16 bits, a 16-bit incarnation and a 32-bit
counter (etcd's idutil puts wall-clock milliseconds where the incarnation is; a clock that
steps back would reuse IDs). The incarnation is counted up and made durable in the member's
directory before the first ID of a run is handed out, and again if the counter wraps.
"""
from __future__ import annotations

import os

from pyetcd.fileutil import FileSystem, write_file_durably

FILE_NAME = "incarnation"
_COUNTER_BITS = 32
_INCARNATION_BITS = 16


class RequestIDs:
    def __init__(self, member_id: int, fs: FileSystem, member_dir: str) -> None:
        self._fs = fs
        self._path = os.path.join(member_dir, FILE_NAME)
        self._prefix = (member_id & 0xFFFF) << (_INCARNATION_BITS + _COUNTER_BITS)
        self._incarnation = int(fs.read_file(self._path)) if fs.exists(self._path) else 0
        self._next = 1
        self._new_incarnation()

    def _new_incarnation(self) -> None:
        self._incarnation += 1
        write_file_durably(self._fs, self._path, b"%d" % self._incarnation)
        self._next = 1

    def next(self) -> int:
        if self._next >> _COUNTER_BITS:  # the counter wrapped
            self._new_incarnation()
        value = self._next
        self._next += 1
        incarnation = self._incarnation & ((1 << _INCARNATION_BITS) - 1)
        return self._prefix | (incarnation << _COUNTER_BITS) | value
