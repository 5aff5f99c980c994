"""pyetcd.client's watch, lease and concurrency API against real etcd 3.5.1 and pyetcd (sync and asyncio)."""
from __future__ import annotations

import asyncio
import threading

import pytest

from pyetcd.client import AsyncClient, Client
from pyetcd.client.concurrency import Election, Lock, Session
from pyetcd.client.watch_state import WatchCompacted
from pyetcd.errors import EtcdError
from both_servers import SERVERS, server  # noqa: F401 - the module-scoped fixture
from servers import Server, have_ref, wait_for

PUT, DELETE = 0, 1


@pytest.fixture
def client(server):
    with Client([server.endpoint], timeout=10) as c:
        yield c


@pytest.fixture(params=list(SERVERS))
def server_cmd(request) -> list[str]:
    """The command of a server a test starts (and restarts) itself."""
    if request.param == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    return SERVERS[request.param]()


def _events(watch, count: int) -> list:
    got = []
    for resp in watch:
        got += [(ev.type, ev.kv.key, ev.kv.value, ev.kv.mod_revision) for ev in resp.events]
        if len(got) >= count:
            break
    return got


def test_watch_history_prefix_prev_kv_filters(client):
    first = client.put("w/a", "1").header.revision
    client.put("w/b", "2")
    client.put("w/a", "3")
    last = client.delete("w/a").header.revision
    with client.watch("w/", prefix=True, start_revision=first, prev_kv=True) as w:
        resp = next(w)
        evs = list(resp.events)
        while len(evs) < 4:
            evs += next(w).events
        assert [(e.type, e.kv.key, e.kv.value) for e in evs] == [
            (PUT, b"w/a", b"1"), (PUT, b"w/b", b"2"), (PUT, b"w/a", b"3"), (DELETE, b"w/a", b"")]
        assert evs[2].prev_kv.value == b"1" and evs[3].prev_kv.value == b"3"
        assert w.next_revision == last + 1
    with client.watch("w/a", start_revision=first, filters=["noput"]) as w:
        assert [e[0:2] for e in _events(w, 1)] == [(DELETE, b"w/a")]


def test_watch_live_and_cancel_from_another_thread(client):
    w = client.watch("live")
    got: list = []
    done = threading.Event()

    def consume() -> None:
        for resp in w:
            got.extend(resp.events)
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    wait_for(lambda: w.next_revision > 0, 10, "the watch to be created")
    client.put("live", "x")
    wait_for(lambda: got, 10, "the live event")
    w.cancel()
    assert done.wait(10), "cancel() did not end the iteration"
    assert got[0].kv.value == b"x"


def test_watch_callback_and_progress(client):
    seen: list = []
    w = client.add_watch_callback("cb", seen.append)
    try:
        wait_for(lambda: w.next_revision > 0, 10, "the watch to be created")
        rev = client.put("cb", "v").header.revision
        wait_for(lambda: any(r.events for r in seen), 10, "the callback")
        assert seen[0].events[0].kv.mod_revision == rev
        w.request_progress()
        wait_for(lambda: any(not r.events and r.header.revision >= rev for r in seen), 10, "a progress notify")
    finally:
        w.cancel()


def test_watch_compacted_revision_raises(client):
    first = client.put("c", "1").header.revision
    rev = client.put("c", "2").header.revision
    client.compact(rev)
    with client.watch("c", start_revision=first) as w, pytest.raises(WatchCompacted) as info:
        next(w)
    assert info.value.compact_revision == rev
    assert info.value.message == "etcdserver: mvcc: required revision has been compacted"


def test_watch_resumes_after_restart_without_gap_or_duplicate(tmp_path, server_cmd):
    """Stop the member mid-watch (by PID), write after the restart on the same data dir and port:
    the iterator continues with every revision exactly once."""
    server = Server(server_cmd, str(tmp_path / "infra0.etcd")).start()
    try:
        with Client([server.endpoint], timeout=10) as c:
            start = c.put("r", "0").header.revision
            for i in range(1, 6):
                c.put("r", str(i))
            w = c.watch("r", start_revision=start)
            seen = _events(w, 3)
            server.stop()
            server.start()
            for i in range(6, 9):
                c.put("r", str(i))
            seen += _events(w, 9 - len(seen))
            w.cancel()
        assert [e[2] for e in seen] == [str(i).encode() for i in range(9)]
        assert [e[3] for e in seen] == list(range(start, start + 9))
    finally:
        server.stop()


def test_lease_grant_keep_alive_revoke(client):
    lease = client.lease_grant(2).ID
    client.put("leased", "v", lease=lease)
    assert lease in [l.ID for l in client.leases().leases]
    renewals: list = []
    with client.keep_alive(lease, renewals.append) as ka:
        # 4 renewals a TTL/3 apart outlast the 2 s TTL: the lease lives only through them
        wait_for(lambda: len(renewals) >= 4, 20, "keep-alive renewals")
        ttl = client.lease_time_to_live(lease, keys=True)
        assert ttl.TTL > 0 and list(ttl.keys) == [b"leased"]
    assert ka.done.is_set() and not ka.expired
    assert client.keep_alive_once(lease).TTL == 2
    client.lease_revoke(lease)
    assert client.lease_time_to_live(lease).TTL == -1
    assert client.get("leased").count == 0
    with pytest.raises(EtcdError) as info:
        client.keep_alive_once(lease)
    assert info.value.message == "etcdserver: requested lease not found"
    with client.keep_alive(lease) as gone:
        assert gone.wait(10) and gone.expired


def test_lock_is_exclusive_and_ordered(client):
    with Session(client, ttl=10) as s1, Session(client, ttl=10) as s2:
        first = Lock(s1, "job")
        first.acquire()
        assert first.key == b"job/%x" % s1.lease_id
        second = Lock(s2, "job")
        acquired = threading.Event()
        t = threading.Thread(target=lambda: (second.acquire(), acquired.set()), daemon=True)
        t.start()
        wait_for(lambda: client.get("job/", prefix_end(b"job/")).count == 2, 10, "the second waiter's key")
        assert not acquired.is_set()
        first.release()
        assert acquired.wait(10)
        second.release()


def prefix_end(p: bytes) -> bytes:
    from pyetcd.client import prefix_end as end

    return end(p)


def test_election_campaign_observe_resign(client):
    with Session(client, ttl=10) as s1, Session(client, ttl=10) as s2:
        e1, e2 = Election(s1, "el"), Election(s2, "el")
        e1.campaign("one")
        observed = e2.observe()
        assert next(observed).kvs[0].value == b"one"
        e1.proclaim("uno")
        assert next(observed).kvs[0].value == b"uno"
        won = threading.Event()
        threading.Thread(target=lambda: (e2.campaign("two"), won.set()), daemon=True).start()
        wait_for(lambda: client.get("el/", prefix_end(b"el/")).count == 2, 10, "the second candidate")
        assert not won.is_set() and e1.leader().kvs[0].value == b"uno"
        e1.resign()
        assert won.wait(10)
        assert next(observed).kvs[0].value == b"two"
        e2.resign()


def test_async_watch_lease_lock_election(server):
    from pyetcd.client.aio_concurrency import AsyncElection, AsyncLock, AsyncSession

    async def scenario() -> None:
        async with AsyncClient([server.endpoint], timeout=10) as c:
            first = (await c.put("aw", "1")).header.revision
            await c.put("aw", "2")
            got = []
            async with c.watch("aw", start_revision=first) as w:
                async for resp in w:
                    got += [ev.kv.value for ev in resp.events]
                    if len(got) >= 2:
                        w.cancel()
            assert got == [b"1", b"2"]
            seen: list = []
            cb = c.add_watch_callback("aw", seen.append)
            await asyncio.wait_for(_until(lambda: cb.next_revision > 0), 10)
            rev = (await c.put("aw", "3")).header.revision
            await asyncio.wait_for(_until(lambda: seen), 10)
            assert seen[0].events[0].kv.mod_revision == rev
            cb.cancel()

            lease = (await c.lease_grant(2)).ID
            renewals: list = []
            async with c.keep_alive(lease, renewals.append):
                await asyncio.wait_for(_until(lambda: len(renewals) >= 4), 20)
                assert (await c.lease_time_to_live(lease)).TTL > 0
            await c.lease_revoke(lease)
            with pytest.raises(EtcdError):
                await c.keep_alive_once(lease)

            async with AsyncSession(c, ttl=10) as s1, AsyncSession(c, ttl=10) as s2:
                async with AsyncLock(s1, "alock"):
                    waiter = asyncio.ensure_future(AsyncLock(s2, "alock").acquire())
                    await asyncio.wait_for(_until_async(lambda: _count(c, "alock/", 2)), 10)
                    assert not waiter.done()
                await asyncio.wait_for(waiter, 10)
                e1 = AsyncElection(s1, "ael")
                await e1.campaign("one")
                observed = AsyncElection(s2, "ael").observe()
                assert (await observed.__anext__()).kvs[0].value == b"one"
                await e1.resign()
                await observed.aclose()

    asyncio.run(scenario())


async def _until(cond) -> None:
    while not cond():
        await asyncio.sleep(0.02)


async def _until_async(cond) -> None:
    while not await cond():
        await asyncio.sleep(0.02)


async def _count(c, prefix: str, n: int) -> bool:
    return (await c.get(prefix, prefix_end(prefix.encode()))).count == n


def test_watch_moves_to_another_member_when_its_member_fails(tmp_path, server_cmd):
    """A 3-member real cluster: the member serving the watch is stopped; the watch goes on on another
    member from the next revision, with the writes made meanwhile, each once."""
    from servers import cluster, start_all

    members = cluster(server_cmd, str(tmp_path), 3)
    try:
        start_all(members)
        with Client([m.endpoint for m in members], timeout=10) as c:
            start = c.put("m", "0").header.revision
            c.put("m", "1")
            w = c.watch("m", start_revision=start)
            seen = _events(w, 2)
            members[0].stop()  # the watch's member (the client starts at the first endpoint)
            for i in range(2, 5):
                c.put("m", str(i))
            seen += _events(w, 5 - len(seen))
            w.cancel()
        assert [e[2] for e in seen] == [str(i).encode() for i in range(5)]
        assert [e[3] for e in seen] == list(range(start, start + 5))
    finally:
        for m in members:
            m.stop()


def test_async_watch_resumes_after_restart(tmp_path, server_cmd):
    server = Server(server_cmd, str(tmp_path / "infra0.etcd")).start()

    async def scenario() -> list:
        async with AsyncClient([server.endpoint], timeout=10) as c:
            start = (await c.put("ar", "0")).header.revision
            for i in range(1, 4):
                await c.put("ar", str(i))
            w = c.watch("ar", start_revision=start)
            seen = await _async_events(w, 2)
            server.stop()
            server.start()
            for i in range(4, 7):
                await c.put("ar", str(i))
            seen += await _async_events(w, 7 - len(seen))
            w.cancel()
            return [(v, r - start) for v, r in seen]

    try:
        assert asyncio.run(scenario()) == [(str(i).encode(), i) for i in range(7)]
    finally:
        server.stop()


async def _async_events(w, count: int) -> list:
    got: list = []
    async for resp in w:
        got += [(ev.kv.value, ev.kv.mod_revision) for ev in resp.events]
        if len(got) >= count:
            break
    return got
