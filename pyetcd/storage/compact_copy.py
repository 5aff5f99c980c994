"""A compact copy of a live backend, caught up with what the backend writes meanwhile.

Snapshots for followers, etcdutl's defrag and the online defrag's storage half (the server's
half is server/defrag.py). The copy rewrites a consistent read snapshot of the backend without
stopping its writer; for an online defrag the backend meanwhile records which (bucket, key)s
it writes (Backend.record_changes) and ``catch_up`` copies their committed values (or their
absence) into the copy. Each pass reads the backend after its batch
was committed, so a key written after a pass began is in the next pass's set: repeated passes
converge on the backend's state, and the last one, run while nothing writes, makes them equal.
"""
from __future__ import annotations

import os
import shutil

import lmdb

from pyetcd.storage import checkpoint
from pyetcd.storage.backend import DUPSORT_BUCKETS, Backend

Changes = set[tuple[lmdb._Database, bytes]]


class CompactCopy:
    def __init__(self, backend: Backend, directory: str) -> None:
        """Copy ``backend``'s committed state, compactly, into the new ``directory``. Blocking."""
        self.directory = directory
        self._names = backend.bucket_names()
        os.makedirs(directory)
        self.env = lmdb.open(directory, map_size=backend.env.info()["map_size"], subdir=True,
                             sync=False, metasync=False, readahead=False, max_dbs=16)
        self._dbs = {name: self.env.open_db(name.encode(), dupsort=name in DUPSORT_BUCKETS)
                     for name in self._names.values()}
        # Every record rewritten in order (appended: full pages). LMDB's own compacting copy
        # keeps each page as it is, and pages a compaction thinned out stay a quarter full.
        with backend.begin_read() as source, self.env.begin(write=True) as target:
            for handle, name in self._names.items():
                target.cursor(db=self._dbs[name]).putmulti(source.cursor(db=handle).iternext(), append=True)

    def catch_up(self, backend: Backend, changes: Changes) -> None:
        """Make the copy hold the backend's committed values of ``changes``. Blocking."""
        with backend.begin_read() as source, self.env.begin(write=True) as target:
            for handle, key in changes:
                name = self._names[handle]
                db = self._dbs[name]
                if name in DUPSORT_BUCKETS:
                    target.delete(key, db=db)  # every value of the key
                    cursor = source.cursor(db=handle)
                    if cursor.set_key(key):
                        target.cursor(db=db).putmulti([(key, value) for value in cursor.iternext_dup()])
                else:
                    value = source.get(key, db=handle)
                    if value is None:
                        target.delete(key, db=db)
                    else:
                        target.put(key, value, db=db)

    def sync(self) -> None:
        """Flush what the copy holds to the disk (blocking), so that the last one is short."""
        self.env.sync(True)

    def finish(self) -> str:
        """Close the copy and move its data file out, as ``<directory>.db`` (synced); returns it."""
        self.env.sync(True)
        self.env.close()
        path = self.directory + ".db"
        os.replace(os.path.join(self.directory, checkpoint.DATA_FILE), path)
        shutil.rmtree(self.directory)
        return path

    def discard(self) -> None:
        self.env.close()
        shutil.rmtree(self.directory, ignore_errors=True)
