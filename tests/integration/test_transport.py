"""PeerTransport: two and three members in one event loop, on loopback."""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import ssl
from collections import defaultdict

import pytest

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.transport import ClusterUnreachable, PeerTransport, Rejection, Status, TransportOptions, fetch_cluster
from servers import free_port

CLUSTER = 0xC1
FAST = TransportOptions(backoff_initial=0.01, backoff_max=0.05, dial_timeout=0.5, log_interval=0.2,
                        snapshot_chunk_bytes=64 << 10)


async def until(cond, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


# Overriding event_loop_policy is deprecated in favour of a conftest hook (pytest_asyncio_loop_factories)
# that this module does not own; move it there once the project has one.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding the \"event_loop_policy\" fixture is deprecated")


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request):
    """Every test on both loops: the member runs on uvloop, plain asyncio is the reference."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


class Member:
    """A transport plus what it received."""

    def __init__(self, member_id: int, cluster_id: int = CLUSTER, options: TransportOptions = FAST,
                 **kwargs) -> None:
        self.got: dict[int, list[bytes]] = defaultdict(list)
        self.unreachable: list[int] = []
        self.rejections: list[Rejection] = []
        self.snapshots: list[tuple[int, bytes, bytes]] = []
        kwargs.setdefault("on_snapshot", self._snapshot)
        self.t = PeerTransport(member_id, cluster_id, on_message=lambda f, d: self.got[f].append(d),
                               on_unreachable=self.unreachable.append, on_rejected=self.rejections.append,
                               options=options, rng=random.Random(member_id), **kwargs)

    async def _snapshot(self, sender: int, metadata: bytes, path: str) -> None:
        with open(path, "rb") as f:
            self.snapshots.append((sender, metadata, f.read()))

    async def start(self, url: str = "http://127.0.0.1:0") -> "Member":
        await self.t.start([url])
        return self

    @property
    def url(self) -> str:
        return self.t.listen_urls[0]


@pytest.fixture
async def members():
    started: list[Member] = []

    async def make(*ids: int, **kwargs) -> list[Member]:
        new = [await Member(i, **kwargs).start() for i in ids]
        started.extend(new)
        return new

    try:
        yield make
    finally:
        for m in started:
            await m.t.stop()


def connect(*ms: Member) -> None:
    for a in ms:
        for b in ms:
            if a is not b:
                a.t.add_peer(b.t.member_id, [b.url])


async def test_messages_arrive_in_order_per_peer(members):
    a, b, c = await members(1, 2, 3)
    connect(a, b, c)
    for i in range(2000):
        a.t.send(2, b"a%d" % i)
        a.t.send(3, b"a%d" % i)
        c.t.send_many([(2, b"c%d" % i), (1, b"c%d" % i)])
    expect = [b"a%d" % i for i in range(2000)]
    await until(lambda: len(b.got[1]) == 2000 and len(c.got[1]) == 2000 and len(b.got[3]) == 2000
                and len(a.got[3]) == 2000)
    assert b.got[1] == expect and c.got[1] == expect
    assert b.got[3] == [b"c%d" % i for i in range(2000)] == a.got[3]
    assert a.t.is_active(2) and a.t.is_active(3) and a.t.active_since(2) is not None
    stats = a.t.stats(2)
    assert stats.sent == 2000 and stats.sent_bytes == sum(4 + len(m) for m in expect) and stats.dropped == 0
    assert b.t.stats(1).received_bytes == stats.sent_bytes


async def test_large_and_empty_messages(members):
    a, b = await members(1, 2)
    connect(a, b)
    big = os.urandom(3 << 20)
    a.t.send(2, b"")
    a.t.send(2, big)
    a.t.send(2, b"x")
    await until(lambda: len(b.got[1]) == 3)
    assert b.got[1] == [b"", big, b"x"]


async def test_down_peer_is_retried_with_backoff_then_messages_flow(members):
    (a,) = await members(1)
    port = free_port()
    a.t.add_peer(2, ["http://127.0.0.1:1", f"http://127.0.0.1:{port}"])  # first URL never answers
    a.t.send(2, b"early")
    await until(lambda: len(a.unreachable) >= 3, what="repeated unreachable reports")
    assert set(a.unreachable) == {2} and not a.t.is_active(2)
    b = Member(2)
    await b.start(f"http://127.0.0.1:{port}")
    try:
        await until(lambda: a.t.is_active(2), what="reconnect")
        a.t.send(2, b"late")
        await until(lambda: b.got[1] == [b"early", b"late"])
        # the peer goes away: reported unreachable, and it comes back on the same port
        n = len(a.unreachable)
        await b.t.stop()
        await until(lambda: not a.t.is_active(2) and len(a.unreachable) > n)
        b = Member(2)
        await b.start(f"http://127.0.0.1:{port}")
        await until(lambda: a.t.is_active(2), what="reconnect after restart")
        a.t.send(2, b"again")
        await until(lambda: b.got[1] == [b"again"])
    finally:
        await b.t.stop()


async def test_queue_bound_holds_for_a_peer_that_never_comes_up(members, caplog):
    options = TransportOptions(queue_limit=100, queue_bytes=1 << 20, backoff_initial=0.01, backoff_max=0.05,
                               log_interval=60)
    (a,) = await members(1, options=options)
    a.t.add_peer(2, [f"http://127.0.0.1:{free_port()}"])
    with caplog.at_level(logging.WARNING, logger="pyetcd.transport"):
        for _ in range(10_000):
            a.t.send(2, b"m" * 100)
        for _ in range(10):
            a.t.send(2, b"M" * (200 << 10))
    stats = a.t.stats(2)
    assert stats.queued == 100 and stats.dropped == 10_000 - 100 + 10
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1  # at most once per log interval
    # the byte bound: big messages fill it before the count does
    a.t.remove_peer(2)
    a.t.add_peer(3, [f"http://127.0.0.1:{free_port()}"])
    for _ in range(10):
        a.t.send(3, b"M" * (200 << 10))
    assert a.t.stats(3).queued == 5 and a.t.stats(3).dropped == 5


async def test_slow_peer_costs_bounded_memory(members):
    """A peer that accepts the connection but never reads: the socket fills, then the queue."""
    options = TransportOptions(queue_limit=50, write_buffer_high=64 << 10, backoff_initial=0.01,
                               backoff_max=0.05, write_timeout=60)
    (a,) = await members(1, options=options)
    accepted = []

    async def handshake_then_stall(reader, writer):
        await reader.readexactly(32)
        writer.write(b"\x00\x00\x00")
        accepted.append(writer)

    server = await asyncio.start_server(handshake_then_stall, "127.0.0.1", 0)
    try:
        a.t.add_peer(2, [f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"])
        await until(lambda: a.t.is_active(2))
        payload = b"s" * (64 << 10)
        for _ in range(200):
            a.t.send(2, payload)
            await asyncio.sleep(0)
        await until(lambda: a.t.stats(2).dropped > 0, what="drops once the socket is full")
        assert a.t.stats(2).queued <= 50
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


async def test_cluster_id_mismatch_is_refused_on_both_sides(members, caplog):
    (a,) = await members(1)
    (b,) = await members(2, cluster_id=0xBAD)
    with caplog.at_level(logging.ERROR, logger="pyetcd.transport"):
        a.t.add_peer(2, [b.url])
        await until(lambda: a.rejections and b.rejections)
    mine, theirs = a.rejections[0], b.rejections[0]
    assert mine.status is Status.CLUSTER_MISMATCH and not mine.inbound and mine.peer_id == 2
    assert theirs.status is Status.CLUSTER_MISMATCH and theirs.inbound and theirs.peer_id == 1
    assert "cluster ID mismatch" in mine.message and "bad" in mine.message and "c1" in mine.message
    assert any("cluster ID mismatch" in str(getattr(r, "fields", {})) for r in caplog.records)
    a.t.send(2, b"never")
    assert not a.t.is_active(2) and not b.got


async def test_connection_meant_for_another_member_is_refused(members):
    a, b = await members(1, 2)
    a.t.add_peer(3, [b.url])  # 3's URL now belongs to member 2
    await until(lambda: a.rejections)
    assert a.rejections[0].status is Status.WRONG_MEMBER and "meant for member 3" in a.rejections[0].message
    assert b.rejections[0].status is Status.WRONG_MEMBER and b.rejections[0].inbound


async def test_removed_member_is_refused(members):
    a, b, c = await members(1, 2, 3)
    connect(a, b, c)
    await until(lambda: all(m.t.is_active(p) for m in (a, b, c) for p in {1, 2, 3} - {m.t.member_id}))
    a.t.remove_peer(3)
    b.t.remove_peer(3)
    await until(lambda: any(r.status is Status.MEMBER_REMOVED for r in c.rejections), what="refusal")
    assert "permanently removed" in c.rejections[0].message
    assert not c.t.is_active(1) and not c.t.is_active(2)
    a.t.send(3, b"gone")  # unknown peer: silently nothing
    c.t.send(1, b"from the removed")
    a.t.send(2, b"still")
    await until(lambda: b.got[1] == [b"still"])
    assert not a.got[3] and not c.got[1]
    assert a.t.peers() == [2]
    with pytest.raises(ValueError):
        a.t.add_peer(3, [c.url])


async def test_update_peer_moves_the_stream(members):
    a, b = await members(1, 2)
    a.t.add_peer(2, [f"http://127.0.0.1:{free_port()}"])
    await until(lambda: 2 in a.unreachable)
    a.t.update_peer(2, [b.url])
    await until(lambda: a.t.is_active(2))
    a.t.send(2, b"hello")
    await until(lambda: b.got[1] == [b"hello"])


async def test_snapshot_streams_in_chunks_while_messages_flow(members, tmp_path):
    a, b = await members(1, 2)
    connect(a, b)
    data = os.urandom(8 << 20)
    path = tmp_path / "snap"
    path.write_bytes(data)
    await until(lambda: a.t.is_active(2))

    sent = 0
    done = asyncio.Event()

    async def chatter():
        nonlocal sent
        while not done.is_set():
            a.t.send(2, b"%d" % sent)
            sent += 1
            await asyncio.sleep(0)

    chat = asyncio.create_task(chatter())
    try:
        assert await a.t.send_snapshot(2, b"meta", str(path))
    finally:
        done.set()
        await chat
    assert b.snapshots == [(1, b"meta", data)]
    # messages kept arriving while the snapshot was in flight
    await until(lambda: len(b.got[1]) == sent)
    assert b.got[1] == [b"%d" % i for i in range(sent)] and sent > 20

    async def chunks():
        for i in range(4):
            yield bytes([i]) * 1000

    assert await a.t.send_snapshot(2, b"m2", chunks())
    assert b.snapshots[1] == (1, b"m2", b"".join(bytes([i]) * 1000 for i in range(4)))
    assert not list(tmp_path.glob("snapshot-*"))


async def test_snapshot_failures_are_reported(members, tmp_path):
    async def refuse(sender, metadata, path):
        raise RuntimeError("not now")

    (a,) = await members(1)
    (b,) = await members(2, on_snapshot=refuse)
    (c,) = await members(3, on_snapshot=None)
    connect(a, b)
    connect(a, c)
    path = tmp_path / "snap"
    path.write_bytes(b"x" * 1000)
    assert not await a.t.send_snapshot(2, b"meta", str(path))
    assert not await a.t.send_snapshot(3, b"meta", str(path))
    assert not await a.t.send_snapshot(4, b"meta", str(path))  # unknown peer
    a.t.add_peer(5, [f"http://127.0.0.1:{free_port()}"])
    assert not await a.t.send_snapshot(5, b"meta", str(path))  # unreachable


async def test_tls(members, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    cert.configure_cert(client_ctx)
    ca.configure_trust(client_ctx)
    ms = [Member(i, ssl_server=server_ctx, ssl_client=client_ctx, cluster_info=cluster_info_of(1, 2))
          for i in (1, 2)]
    try:
        for m in ms:
            await m.start("https://127.0.0.1:0")
        a, b = ms
        assert a.url.startswith("https://")
        connect(a, b)
        a.t.send(2, b"secret")
        await until(lambda: b.got[1] == [b"secret"])
        path = tmp_path / "snap"
        path.write_bytes(b"s" * 300_000)
        assert await a.t.send_snapshot(2, b"meta", str(path))
        assert b.snapshots[0][2] == b"s" * 300_000
        assert await fetch_cluster([b.url], ssl_context=client_ctx) == (CLUSTER, cluster_info_members(1, 2))
    finally:
        for m in ms:
            await m.t.stop()
    with pytest.raises(ValueError):
        PeerTransport(1, CLUSTER, on_message=print).add_peer(2, ["https://127.0.0.1:1"])


async def test_garbage_connections_are_closed(members):
    (a,) = await members(1)
    host, port = a.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer[0] == Status.BAD_HANDSHAKE and b"not a pyetcd peer connection" in answer
    writer.close()


async def test_stop_leaves_nothing_running(tmp_path):
    before = asyncio.all_tasks()
    ms = [await Member(i).start() for i in (1, 2, 3)]
    connect(*ms)
    ms[0].t.add_peer(9, [f"http://127.0.0.1:{free_port()}"])  # one peer forever reconnecting
    await until(lambda: ms[0].t.is_active(2) and ms[1].t.is_active(1))
    for i in range(100):
        ms[0].t.send(2, b"%d" % i)

    async def endless():
        while True:
            yield b"x" * 65536
            await asyncio.sleep(0)

    snap = asyncio.create_task(ms[0].t.send_snapshot(2, b"meta", endless()))
    await until(lambda: any(t.get_name().startswith("snapshot-from") for t in asyncio.all_tasks()))
    for m in ms:
        await m.t.stop()
    assert await snap is False
    assert asyncio.all_tasks() - before == {asyncio.current_task()} - before
    assert not list(tmp_path.iterdir())


async def test_stalled_snapshot_transfers_time_out(members, tmp_path):
    """A receiver whose handler never finishes, and a sender that stops sending: both give up."""
    options = TransportOptions(snapshot_idle_timeout=0.3, backoff_initial=0.01, backoff_max=0.05)
    stuck = asyncio.Event()

    async def never(sender, metadata, path):
        await stuck.wait()

    (a,) = await members(1, options=options)
    (b,) = await members(2, options=TransportOptions(snapshot_idle_timeout=0.3, snapshot_dir=str(tmp_path)),
                         on_snapshot=never)
    connect(a, b)
    path = tmp_path / "snap"
    path.write_bytes(b"x" * 1000)
    assert not await a.t.send_snapshot(2, b"meta", str(path))  # verdict never came

    async def stalls():
        yield b"first"
        await asyncio.Event().wait()

    send = asyncio.create_task(a.t.send_snapshot(2, b"meta", stalls()))
    await until(lambda: len(list(tmp_path.glob("snapshot-*"))) == 2, what="second spool file")
    # the receiver gives up on the silent sender and removes its spool file
    await until(lambda: len(list(tmp_path.glob("snapshot-*"))) == 1, what="idle receiver to give up")
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send


def cluster_info_members(*ids: int) -> list[rpc_pb2.Member]:
    return [rpc_pb2.Member(ID=i, name=f"m{i}", peerURLs=[f"http://127.0.0.1:{9000 + i}"]) for i in ids]


def cluster_info_of(*ids: int, cluster_id: int = CLUSTER):
    answer = rpc_pb2.MemberListResponse(header=rpc_pb2.ResponseHeader(cluster_id=cluster_id),
                                        members=cluster_info_members(*ids)).SerializeToString()
    return lambda: answer


async def test_a_joining_member_learns_the_cluster_without_knowing_its_id(members):
    (silent,) = await members(1)  # no cluster_info: refuses the question
    a, b = await members(2, 3, cluster_info=cluster_info_of(1, 2, 3))
    connect(a, b)
    dead = f"http://127.0.0.1:{free_port()}"
    cid, got = await fetch_cluster([dead, silent.url, a.url], timeout=5)
    assert cid == CLUSTER and got == cluster_info_members(1, 2, 3)
    # the question is no peer's handshake: nobody is reported as rejected, streams go on
    assert not silent.rejections and not a.rejections
    a.t.send(3, b"still")
    await until(lambda: b.got[2] == [b"still"])


async def test_fetch_cluster_retries_a_member_that_cannot_answer_yet(members):
    answer = cluster_info_of(1)
    calls = []

    def not_ready_at_first() -> bytes:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("raft not started")
        return answer()

    (a,) = await members(1, cluster_info=not_ready_at_first)
    assert await fetch_cluster([a.url], timeout=5) == (CLUSTER, cluster_info_members(1))
    assert len(calls) == 3


async def test_fetch_cluster_asks_on_until_an_answer_is_wanted(members):
    """sim F12: a member that has not applied `member add` yet answers without the newcomer."""
    (behind,) = await members(1, cluster_info=cluster_info_of(1, 2))
    (ahead,) = await members(2, cluster_info=cluster_info_of(1, 2, 3))
    has_3 = lambda ms: any(m.ID == 3 for m in ms)  # noqa: E731
    assert await fetch_cluster([behind.url, ahead.url], timeout=5, wanted=has_3) == \
        (CLUSTER, cluster_info_members(1, 2, 3))
    # nobody has it: the last answer once the time is up, not an error
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await fetch_cluster([behind.url], timeout=0.5, wanted=has_3) == (CLUSTER, cluster_info_members(1, 2))
    assert loop.time() - started >= 0.5


async def test_fetch_cluster_gives_up_with_an_error_naming_every_url(members):
    (silent,) = await members(1)
    (no_id,) = await members(2, cluster_info=cluster_info_of(1, cluster_id=0))
    dead = f"http://127.0.0.1:{free_port()}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ClusterUnreachable) as info:
        await fetch_cluster([dead, silent.url, no_id.url], timeout=0.6)
    assert isinstance(info.value, ConnectionError)
    assert loop.time() - started < 0.6 + 1.0
    message = str(info.value)
    assert dead in message and silent.url in message and no_id.url in message
    assert "does not serve cluster information" in message and "names no cluster ID" in message
    with pytest.raises(ClusterUnreachable):
        await fetch_cluster([dead], timeout=0)
    with pytest.raises(ValueError):
        await fetch_cluster([])
    with pytest.raises(ValueError):
        await fetch_cluster(["ftp://127.0.0.1:1"])
    with pytest.raises(ValueError):
        await fetch_cluster(["https://127.0.0.1:1"])  # https needs a TLS context
