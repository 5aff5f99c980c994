"""SnapshotFile: what etcd's tools write (database + SHA-256), checked before it takes the name."""
from __future__ import annotations

import hashlib
import os

import pytest

from pyetcd import errors
from pyetcd.client.maintenance import SnapshotFile


def save(path: str, blobs: list[bytes]) -> int:
    with SnapshotFile(path) as f:
        for blob in blobs:
            f.add(blob)
        f.close()
        f.commit()
    return f.size


def test_a_whole_stream_is_saved_with_its_checksum(tmp_path):
    db = os.urandom(70_000)
    path = str(tmp_path / "s.db")
    assert save(path, [db[:32768], db[32768:65536], db[65536:], hashlib.sha256(db).digest()]) == len(db) + 32
    assert open(path, "rb").read() == db + hashlib.sha256(db).digest()
    assert os.stat(path).st_mode & 0o777 == 0o600 and os.listdir(tmp_path) == ["s.db"]


@pytest.mark.parametrize("blobs", [[b"db", b"not a checksum"], [b"db"], [], [b"db", hashlib.sha256(b"other").digest()]])
def test_a_bad_or_cut_stream_leaves_nothing(tmp_path, blobs):
    with pytest.raises(errors.EtcdError) as exc:
        save(str(tmp_path / "s.db"), blobs)
    assert exc.value.code == errors.DATA_LOSS and os.listdir(tmp_path) == []
