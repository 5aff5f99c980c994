"""Watchers of the MVCC store: who is told about which change (etcd's watchableStore).

A watcher wants every change of a key or a key range from its ``next_rev`` on, in revision
order, each revision's changes together, none twice. It is in one of two groups:

- *synced*: it has been sent everything up to the store's revision; each applied batch of
  changes goes to it straight from ``notify`` (one response a batch).
- *unsynced*: it is behind (it started from an older revision, its stream's buffer was full when
  changes came, or the member installed a database from the leader). ``_sync_loop`` catches it
  up from the store's revision log (bucket ``key``: no second copy of the events), a bounded run
  of revisions at a time, for every behind watcher whose stream has room, and moves it back to
  synced once it has reached the store's revision. One starting below the compacted revision is
  told so and dropped.

etcd has a third group, *victims* (synced watchers whose channel was full, with the events they
could not take kept in memory); here such a watcher simply falls back to unsynced: the events it
missed are in the store. Everything runs on the member's event loop: a sync step reads the store
and moves watchers without awaiting in between, so no applied batch can slip past it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from pyetcd.storage.mvcc import Change, KVStore, ReadTxn

# Per sync step: at most this many watchers, and this many changes (rounded up to a whole revision).
MAX_WATCHERS_PER_SYNC = 512
MAX_CHANGES_PER_SYNC = 1000

_DELETE_TYPE = b"\x08\x01"  # mvccpb.Event.type = DELETE


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_event(change: Change, prev: bytes | None = None) -> bytes:
    """A serialized mvccpb.Event built from the stored KeyValue bytes (nothing re-encoded)."""
    kv = change.kv
    out = (_DELETE_TYPE if change.deleted else b"") + b"\x12" + varint(len(kv)) + kv
    if prev is not None:
        out += b"\x1a" + varint(len(prev)) + prev
    return out


class EventBatch:
    """Events for one or many watchers alike: (main revision, serialized mvccpb.Event), in
    revision order. ``encoded`` is the sink's to keep its encoding in, done once for them all."""

    __slots__ = ("events", "encoded")

    def __init__(self, events: list[tuple[int, bytes]]) -> None:
        self.events = events
        self.encoded: object = None


class Sink(Protocol):
    """Where a watcher's responses go (a gRPC watch stream)."""

    def has_room(self) -> bool: ...

    def send_events(self, watcher: "Watcher", batch: EventBatch, revision: int) -> None: ...

    def send_compacted(self, watcher: "Watcher", compact_revision: int) -> None: ...


class Watcher:
    __slots__ = ("id", "key", "end", "next_rev", "no_put", "no_delete", "prev_kv", "sink", "synced", "kind")

    def __init__(self, watch_id: int, key: bytes, end: bytes | None, next_rev: int, sink: Sink, *,
                 no_put: bool = False, no_delete: bool = False, prev_kv: bool = False) -> None:
        self.id = watch_id
        self.key = key
        self.end = end          # None: the one key; b"": no upper bound; else [key, end)
        self.next_rev = next_rev  # the first revision it has not been sent
        self.no_put = no_put
        self.no_delete = no_delete
        self.prev_kv = prev_kv
        self.sink = sink
        self.synced = False
        # watchers of one kind are sent the same events: matched and encoded once for them all
        self.kind = (key, end, no_put, no_delete, prev_kv)

    def wants(self, change: Change) -> bool:
        return not (self.no_delete if change.deleted else self.no_put)


_Kind = tuple  # Watcher.kind


class WatcherGroup:
    """Watchers by kind, found by key: single-key kinds in a dict, range kinds scanned. (Dicts as
    ordered sets: the order of deliveries must not depend on memory addresses, for the simulation.)"""

    def __init__(self) -> None:
        self.singles: dict[bytes, dict[_Kind, dict[Watcher, None]]] = {}
        self.ranges: dict[_Kind, dict[Watcher, None]] = {}
        self.count = 0

    def add(self, w: Watcher) -> None:
        kinds = self.ranges if w.end is not None else self.singles.setdefault(w.key, {})
        kinds.setdefault(w.kind, {})[w] = None
        self.count += 1

    def remove(self, w: Watcher) -> bool:
        kinds = self.ranges if w.end is not None else self.singles.get(w.key)
        same = kinds.get(w.kind) if kinds else None
        if same is None or w not in same:
            return False
        del same[w]
        if not same:
            del kinds[w.kind]
            if w.end is None and not kinds:
                del self.singles[w.key]
        self.count -= 1
        return True

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        for same in self.ranges.values():
            yield from same
        for kinds in self.singles.values():
            for same in kinds.values():
                yield from same

    def matching(self, key: bytes) -> Iterable[tuple[_Kind, dict[Watcher, None]]]:
        """(kind, its watchers) of every kind watching ``key``."""
        single = self.singles.get(key)
        if single:
            yield from single.items()
        for kind, same in self.ranges.items():
            if kind[0] <= key and (not kind[1] or key < kind[1]):
                yield kind, same


class WatchableStore:
    """The synced and unsynced watchers of one member's store (``store()``: the current KVStore,
    which a database install replaces)."""

    def __init__(self, store: Callable[[], KVStore]) -> None:
        self._store = store
        self.synced = WatcherGroup()
        self.unsynced: dict[Watcher, None] = {}
        self._work = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sync_loop(), name="watch-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def watch(self, watcher: Watcher) -> None:
        """Start ``watcher``: from ``next_rev`` (past the store's revision: only later changes)."""
        if watcher.next_rev > self._store().rev:
            watcher.synced = True
            self.synced.add(watcher)
        else:
            self._behind(watcher)

    def cancel(self, watcher: Watcher) -> bool:
        """Stop ``watcher``; False if it was not watching (already canceled or compacted)."""
        if watcher in self.unsynced:
            del self.unsynced[watcher]
            return True
        return self.synced.remove(watcher)

    def wake(self) -> None:
        """A sink has room again: behind watchers may go on."""
        if self.unsynced:
            self._work.set()

    def restore(self, old_rev: int) -> None:
        """The store, at revision ``old_rev``, was replaced by a newer one (a database from the
        leader): every watcher catches up from the new one, past what it has seen of the old."""
        for w in list(self.synced):
            self.synced.remove(w)
            w.next_rev = max(w.next_rev, old_rev + 1)
            self._behind(w)

    def _behind(self, w: Watcher) -> None:
        w.synced = False
        self.unsynced[w] = None
        self._work.set()

    # ---- delivery ---------------------------------------------------------------------------

    def notify(self, changes: list[Change]) -> None:
        """Changes just applied (in revision order, the store now at the last one's revision)."""
        if not self.synced.count or not changes:
            return
        with self._store().read() as view:
            self._deliver(view, self.synced, changes, changes[-1].main, moving_on=self._fall_behind)

    def _fall_behind(self, w: Watcher, first_rev: int) -> None:
        self.synced.remove(w)
        w.next_rev = first_rev
        self._behind(w)

    def _deliver(self, view: ReadTxn, group: WatcherGroup, changes: list[Change], upto: int,
                 moving_on: Callable[[Watcher, int], None] | None) -> None:
        """Send each watcher of ``group`` its part of ``changes`` (which end the revision ``upto``);
        a watcher whose sink is full is handed to ``moving_on`` (with its first revision not sent)
        or, if None (a sync step), left where it is while the others move on to ``upto`` + 1."""
        plain: dict[int, bytes] = {}  # id(change) -> its event, encoded once for every watcher
        with_prev: dict[int, bytes] = {}
        batches: dict[_Kind, list[tuple[int, bytes]]] = {}
        watchers: dict[_Kind, dict[Watcher, None]] = {}
        for change in changes:
            main, deleted = change.main, change.deleted
            for kind, same in group.matching(change.key):
                if kind[3] if deleted else kind[2]:  # (no_delete, no_put)
                    continue
                prev_kv = kind[4]
                cache = with_prev if prev_kv else plain
                event = cache.get(id(change))
                if event is None:
                    event = cache[id(change)] = encode_event(change, view.previous(change) if prev_kv else None)
                batch = batches.get(kind)
                if batch is None:
                    batches[kind] = [(main, event)]
                    watchers[kind] = same
                else:
                    batch.append((main, event))
        blocked: set[Watcher] = set()
        for kind, events in batches.items():
            shared = EventBatch(events)
            for w in list(watchers[kind]):  # (moving_on changes the group)
                batch = shared
                if w.next_rev > events[0][0]:  # (a later start, or caught up further)
                    mine = [e for e in events if e[0] >= w.next_rev]
                    if not mine:
                        continue
                    batch = EventBatch(mine)
                if w.sink.has_room():
                    w.sink.send_events(w, batch, upto)
                    w.next_rev = upto + 1
                elif moving_on is not None:
                    moving_on(w, batch.events[0][0])
                else:
                    blocked.add(w)
        if moving_on is not None:
            return
        for w in group:
            if w not in blocked:
                w.next_rev = max(w.next_rev, upto + 1)

    # ---- catching up ------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            while self._sync_step():
                await asyncio.sleep(0)  # let the member apply and answer between steps

    def _sync_step(self) -> bool:
        """Catch some behind watchers up by one run of the revision log; True if more work waits."""
        ready = [w for w in self.unsynced if w.sink.has_room()]
        if not ready:
            return False
        ready = ready[:MAX_WATCHERS_PER_SYNC]
        with self._store().read() as view:
            current, compacted = view.rev, view.compact_rev
            group = WatcherGroup()
            for w in ready:
                if w.next_rev < compacted:  # (etcd: a start below the compacted revision)
                    del self.unsynced[w]
                    w.sink.send_compacted(w, compacted)
                elif w.next_rev > current or w.next_rev < 0:
                    # (a negative start sees no history in etcd: its revision bytes sort last)
                    w.next_rev = max(w.next_rev, current + 1)
                    self._synced(w)
                else:
                    group.add(w)
            if len(group):
                changes = view.history(min(w.next_rev for w in group), current, limit=MAX_CHANGES_PER_SYNC)
                cut = len(changes) >= MAX_CHANGES_PER_SYNC and changes[-1].main < current
                self._deliver(view, group, changes, changes[-1].main if cut else current, moving_on=None)
                for w in list(group):
                    if w.next_rev > current:
                        self._synced(w)
        return any(w.sink.has_room() for w in self.unsynced)

    def _synced(self, w: Watcher) -> None:
        self.unsynced.pop(w, None)
        w.synced = True
        self.synced.add(w)
