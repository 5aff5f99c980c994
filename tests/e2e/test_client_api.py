"""The client's Cluster and Maintenance APIs, snapshots to a file and paginated ranges, sync and
asyncio, against real etcd 3.5.1 and pyetcd: the same answers from both."""
from __future__ import annotations

import hashlib

import pytest

from both_servers import server  # noqa: F401 - the fixture
from pyetcd import ETCD_VERSION, errors
from pyetcd.client import AsyncClient, Client
from servers import free_port


def test_members_status_alarms_hash(server):  # noqa: F811
    with Client([server.url]) as c:
        members = c.member_list().members
        assert len(members) == 1 and members[0].clientURLs == [server.url]
        status = c.status()
        assert status.version == ETCD_VERSION and status.leader == members[0].ID and status.dbSize > 0
        assert not status.isLearner and list(status.errors) == []
        assert list(c.alarm_list().alarms) == []
        c.put("h/a", "1")
        first = c.hash_kv()
        assert first.hash == c.hash_kv().hash and first.header.revision >= 2
        c.put("h/a", "2")
        assert c.hash_kv().hash != first.hash
        assert c.hash_kv(first.header.revision).hash == first.hash

        # a learner that never starts: listed, not promotable, removed
        added = c.member_add([f"http://127.0.0.1:{free_port()}"], is_learner=True)
        assert added.member.isLearner and len(added.members) == 2
        with pytest.raises(errors.ErrLearnerNotReady):
            c.member_promote(added.member.ID)
        assert len(c.member_remove(added.member.ID).members) == 1
        with pytest.raises(errors.ErrMemberNotFound):
            c.member_remove(added.member.ID)


def test_snapshot_save_and_pages(server, tmp_path):  # noqa: F811
    with Client([server.url]) as c:
        for i in range(25):
            c.put(f"page/{i:02d}", str(i))
        c.put("pagf", "outside the prefix")
        pages = list(c.get_pages("page/", prefix=True, page_size=10))
        assert [len(p.kvs) for p in pages] == [10, 10, 5] and [p.more for p in pages] == [True, True, False]
        assert [kv.key for p in pages for kv in p.kvs] == [b"page/%02d" % i for i in range(25)]
        c.put("page/00", "a change after the first page")
        later = list(c.get_pages("page/", prefix=True, page_size=10))
        assert len({p.header.revision for p in later}) == 1

        path = str(tmp_path / "snap.db")
        size = c.snapshot_save(path)
        data = open(path, "rb").read()
        assert len(data) == size and hashlib.sha256(data[:-32]).digest() == data[-32:]
        assert not (tmp_path / "snap.db.part").exists()


async def test_async_twins(server, tmp_path):  # noqa: F811
    async with AsyncClient([server.url]) as c:
        assert len((await c.member_list()).members) == 1
        assert (await c.status()).version == ETCD_VERSION
        assert (await c.hash_kv()).hash == (await c.hash_kv()).hash
        for i in range(5):
            await c.put(f"apage/{i}", "v")
        pages = [p async for p in c.get_pages("apage/", prefix=True, page_size=2)]
        assert [len(p.kvs) for p in pages] == [2, 2, 1]
        path = str(tmp_path / "asnap.db")
        size = await c.snapshot_save(path)
        data = open(path, "rb").read()
        assert len(data) == size and hashlib.sha256(data[:-32]).digest() == data[-32:]
