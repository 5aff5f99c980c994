"""Seeded watch clients: streams on any member, watchers created and canceled on them over time.

A client keeps one or two Watch streams (watchstream.py) open on members it picks as the KV
clients do (followers and leaders alike, learners too), some requiring a leader, some read slowly
(so the member's queue for the stream fills and its watchers catch up from the store). On them
it creates watchers — a key, a range, a prefix, everything from a key — from a start revision
(0: from now; a past one; sometimes one that is compacted; sometimes a future one), with
prev_kv, filters or fragment now and then, and cancels some. Each is a Watch, a client's
interest over time; its Segments are the watchers that served it. When a stream ends (its member
died, a link was cut, no leader, or the client closed it to move), every watch on it resumes on
some member from the revision after the last event it received (clientv3's rule), until
``finish()``: then every watch still wanted is resumed and read until it has everything the
agreed log holds for it (or a deadline passes), and the streams close. watchcheck.py judges.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.v3rpc.watch import WatchServer

from membersim.cluster import Cluster
from membersim.member import SimMember
from membersim.watchstream import WatchStream
from membersim.workload import KEYS, PREFIX, PREFIX_END

WatchResponse = rpc_pb2.WatchResponse
Create = rpc_pb2.WatchCreateRequest
WINDOW = 16          # responses in flight per stream (HTTP/2's window, in small messages)
MAX_WATCHERS = 4     # per stream
STEP = 0.25          # mean pause between a client's actions, seconds
FINISH_POLL = 0.1


@dataclass
class Segment:
    """One watcher on one stream: the stretch of a watch one member served."""
    stream: str
    member: str
    start: int                       # the start_revision asked for (0: from now)
    created_rev: int | None = None   # the header revision of its `created` response
    watch_id: int | None = None
    responses: list[WatchResponse] = field(default_factory=list)  # those with events, in order
    end: str = "open"                # open, canceled, compacted, refused, broken
    cancel_asked: bool = False
    compact_revision: int = 0
    reason: str = ""
    late: int = 0                    # event responses after its cancel

    @property
    def from_rev(self) -> int | None:
        """The first revision it answers for (None: from now, and `created` never came)."""
        if self.start:
            return self.start
        return None if self.created_rev is None else self.created_rev + 1


@dataclass
class Watch:
    id: str
    key: bytes
    range_end: bytes
    prev_kv: bool
    filters: tuple[int, ...]
    fragment: bool
    segments: list[Segment] = field(default_factory=list)
    done: bool = False               # canceled by its client, or compacted: no more segments

    def events(self) -> Iterator[tuple[int, int, rpc_pb2.WatchResponse]]:
        """(segment index, response index, response) of every response with events."""
        for si, seg in enumerate(self.segments):
            for ri, resp in enumerate(seg.responses):
                yield si, ri, resp

    @property
    def origin(self) -> int | None:
        """The first revision the whole watch answers for (None: nothing was ever created)."""
        return next((s.from_rev for s in self.segments if s.from_rev is not None), None)

    @property
    def last_rev(self) -> int | None:
        last = None
        for seg in self.segments:
            if seg.responses:
                last = seg.responses[-1].events[-1].kv.mod_revision
        return last

    def resume_from(self) -> int:
        last = self.last_rev
        return last + 1 if last is not None else self.origin or 0

    def create_request(self, start: int) -> rpc_pb2.WatchRequest:
        return rpc_pb2.WatchRequest(create_request=Create(
            key=self.key, range_end=self.range_end, start_revision=start, prev_kv=self.prev_kv,
            filters=self.filters, fragment=self.fragment))


class ClientStream:
    """A client's view of one of its streams: who waits for `created`, which ID is whose."""

    def __init__(self, name: str, member: SimMember, stream: WatchStream, slow: float) -> None:
        self.name = name
        self.member = member
        self.stream = stream
        self.slow = slow                      # mean seconds per response read (0: at once)
        self.pending: collections.deque[tuple[Watch, Segment]] = collections.deque()
        self.by_id: dict[int, tuple[Watch, Segment]] = {}
        self.alive = True
        self.reader: asyncio.Task | None = None
        self.pause: asyncio.Future | None = None  # the reader's pause between two reads, if slow

    def hurry(self) -> None:
        """Read at full speed from now on (a pause under way ends at once)."""
        self.slow = 0.0
        if self.pause is not None:
            _resolve(self.pause)

    def open_segments(self) -> list[tuple[Watch, Segment]]:
        return [(w, s) for w, s in itertools.chain(self.pending, self.by_id.values()) if s.end == "open"]


class WatchClient:
    def __init__(self, name: str, cluster: Cluster, watches: list[Watch], rng: random.Random,
                 services: dict[object, WatchServer], revision_hint: Callable[[], tuple[int, int]]) -> None:
        """``revision_hint()``: (a recent revision, a compacted one), as the KV clients saw them."""
        self.name = name
        self.cluster = cluster
        self.watches = watches
        self.rng = rng
        self.services = services
        self.revision_hint = revision_hint
        self.streams: list[ClientStream] = []
        self.orphans: list[Watch] = []        # watches whose stream ended: to resume
        self.mine: list[Watch] = []
        self._serial = itertools.count(1)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.cluster.world.loop

    async def run(self, until: float) -> None:
        rng = self.rng
        while self.loop.time() < until:
            await self._resume_orphans()
            r = rng.random()
            live = [s for s in self.streams if s.alive]
            if not live or (len(live) < 2 and r < 0.1):
                await self._open()
            elif r < 0.55:
                stream = rng.choice(live)
                if len(stream.open_segments()) < MAX_WATCHERS:
                    self._create(stream, self._new_watch(), self._start())
            elif r < 0.7:
                self._cancel(rng.choice(live))
            elif r < 0.75:
                rng.choice(live).stream.close()  # its watches move to another stream
            elif r < 0.85:
                stream = rng.choice(live)
                stream.slow = 0.0 if stream.slow else self._slowness()
            await asyncio.sleep(rng.expovariate(1 / STEP))

    async def finish(self, members: list[SimMember], target: Callable[[Watch], int | None], timeout: float) -> None:
        """Resume every watch still wanted (on ``members``), read at full speed until each has its
        ``target`` revision (None: nothing to wait for) or ``timeout`` passed; close the streams."""
        deadline = self.loop.time() + timeout
        for stream in self.streams:
            stream.hurry()
            if stream.member not in members:
                stream.stream.close()  # (its watches move to a member that converged)
        while self.loop.time() < deadline:
            await self._resume_orphans(members)
            if not self.orphans and all(w.done or _reached(w, target(w)) for w in self.mine):
                break
            await asyncio.sleep(FINISH_POLL)
        for stream in self.streams:
            stream.stream.close()
        readers = [s.reader for s in self.streams if s.reader is not None]
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    # ---- streams --------------------------------------------------------------------------------

    def _member(self, members: list[SimMember] | None = None) -> SimMember:
        if members:
            return self.rng.choice(members)
        members = self.cluster.live()
        up = [m for m in members if m.serving]
        return self.rng.choice(up if up and self.rng.random() < 0.9 else members)

    async def _open(self, members: list[SimMember] | None = None) -> ClientStream | None:
        rng = self.rng
        member = self._member(members)
        name = f"{self.name}.s{next(self._serial)}"
        slow = self._slowness() if members is None and rng.random() < 0.3 else 0.0
        require_leader = rng.random() < 0.5
        try:
            stream = await WatchStream.open(self.cluster.world.network, self.name, member.client_url, self.services,
                                            rng, window=WINDOW, require_leader=require_leader)
        except Exception as e:  # noqa: BLE001 - not now: the next step tries again
            self.cluster.world.trace(f"watch stream to {member.name} not opened: {e!r}", self.name)
            return None
        cs = ClientStream(name, member, stream, slow)
        self.cluster.world.trace(f"watch stream {name} on {member.name} slow={slow:.2f} "
                                 f"require_leader={require_leader}", self.name)
        self.streams.append(cs)
        cs.reader = self.loop.create_task(self._read(cs))
        return cs

    def _slowness(self) -> float:
        """Mean seconds per response read: a reader a bit slow, or one that has all but stopped."""
        return self.rng.uniform(0.05, 0.3) if self.rng.random() < 0.5 else self.rng.uniform(0.5, 2.0)

    async def _resume_orphans(self, members: list[SimMember] | None = None) -> None:
        if not self.orphans:
            return
        stream = next((s for s in self.streams if s.alive and len(s.open_segments()) < MAX_WATCHERS
                       and (members is None or s.member in members)), None) or await self._open(members)
        if stream is None:
            return
        while self.orphans and len(stream.open_segments()) < MAX_WATCHERS:
            watch = self.orphans.pop(0)
            self._create(stream, watch, watch.resume_from())

    def _new_watch(self) -> Watch:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            key, end = rng.choice(KEYS), b""
        elif r < 0.65:
            key, end = PREFIX, PREFIX_END
        elif r < 0.8:
            a, b = sorted(rng.sample(range(len(KEYS) + 1), 2))
            key, end = KEYS[a], (KEYS + [PREFIX_END])[b]
        elif r < 0.9:
            key, end = rng.choice(KEYS), b"\0"
        else:
            key, end = b"\0", b"\0"
        filters = rng.choice([(), (), (), (), (), (), (), (), (Create.NOPUT,), (Create.NODELETE,)])
        watch = Watch(f"{self.name}/w{len(self.watches) + 1}", key, end, rng.random() < 0.4, filters,
                      rng.random() < 0.1)
        self.watches.append(watch)
        self.mine.append(watch)
        return watch

    def _start(self) -> int:
        rng = self.rng
        recent, compacted = self.revision_hint()
        r = rng.random()
        if r < 0.35:
            return 0
        if r < 0.5 and compacted > 1:
            return rng.randint(1, compacted)            # (below the compacted revision, or at it)
        if r < 0.85:
            return rng.randint(max(1, compacted), max(1, compacted, recent))
        return recent + rng.randint(1, 10)              # one not there yet

    def _create(self, cs: ClientStream, watch: Watch, start: int) -> None:
        seg = Segment(cs.name, cs.member.name, start)
        watch.segments.append(seg)
        cs.pending.append((watch, seg))
        self._send(cs, watch.create_request(start))

    def _cancel(self, cs: ClientStream) -> None:
        created = [(w, s) for w, s in cs.by_id.values() if s.end == "open" and not s.cancel_asked]
        if not created:
            return
        watch, seg = self.rng.choice(created)
        watch.done = seg.cancel_asked = True
        self._send(cs, rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=seg.watch_id)))

    def _send(self, cs: ClientStream, request: rpc_pb2.WatchRequest) -> None:
        try:
            cs.stream.send(request)
        except Exception:  # noqa: BLE001 - the stream ended: its reader hands its watches on
            pass

    async def _read(self, cs: ClientStream) -> None:
        try:
            while True:
                payload = await cs.stream.recv()
                self._take(cs, WatchResponse.FromString(payload))
                if cs.slow:
                    pause = cs.pause = self.loop.create_future()
                    timer = self.loop.call_later(self.rng.expovariate(1 / cs.slow), _resolve, pause)
                    try:
                        await pause
                    finally:
                        timer.cancel()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the stream ended, for whatever reason
            self._ended(cs, e)

    def _take(self, cs: ClientStream, resp: WatchResponse) -> None:
        if resp.created:
            watch, seg = cs.pending.popleft()
            seg.created_rev, seg.watch_id = resp.header.revision, resp.watch_id
            if resp.canceled:
                seg.end, seg.reason = "refused", resp.cancel_reason
                watch.done = True
            else:
                cs.by_id[resp.watch_id] = (watch, seg)
            return
        found = cs.by_id.get(resp.watch_id)
        if found is None:
            return  # a progress response
        watch, seg = found
        if seg.end != "open":
            seg.late += bool(resp.events)
            return
        if resp.events:
            seg.responses.append(resp)
        if resp.canceled:
            seg.end, seg.compact_revision, seg.reason = "canceled", resp.compact_revision, resp.cancel_reason
            if resp.compact_revision:
                seg.end = "compacted"
                watch.done = True

    def _ended(self, cs: ClientStream, error: BaseException) -> None:
        cs.alive = False
        self.cluster.world.trace(f"watch stream {cs.name} ended: {error!r}", self.name)
        for watch, seg in cs.open_segments():
            seg.end, seg.reason = "broken", repr(error)
            if not watch.done:
                self.orphans.append(watch)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _reached(watch: Watch, target: int | None) -> bool:
    return target is None or (watch.last_rev or 0) >= target
