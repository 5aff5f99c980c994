"""Every watch a client opened, checked against the reference's history (the agreed log's revisions).

A watch (watchclient.py) is served by one segment after another (a watcher on a stream; a
resume starts the next from the revision after the last event received). Taken together, from
the watch's first revision to the last one it can answer for — the last event received, or for
a watch still open at the end, the reference's last revision:

  watch-order          events out of revision order (or a revision's events out of their
                       order in its transaction), or one below the watch's start
  watch-duplicate      an event twice (in one segment or across a resume)
  watch-gap            a change of the watched keys missing (in a segment, or between two)
  watch-stalled        a watch open at the end without the reference's last changes of its
                       keys, though every member converged and it was read at full speed
  watch-mismatch       an event not as the reference has it: its kind, key-value or prev_kv
                       (given when asked, as it was just before; absent only when that revision
                       is compacted), or an event the reference does not have (filters included)
  watch-atomic         one revision's events split between responses (not `fragment`)
  watch-compaction     canceled as compacted though its next revision is not below the
                       compaction, or at a revision no compaction in the log names
  watch-canceled       canceled, refused at its creation, or told events after its cancel,
                       without its client asking

Allowed, as in etcd: a delete at exactly a compacted revision may be missing (compaction removes
the tombstones at its revision, and a watcher may catch up from there).
"""
from __future__ import annotations

from dataclasses import dataclass

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

from membersim.failure import Finding
from membersim.reference import Reference
from membersim.watchclient import Watch

KeyValue = kv_pb2.KeyValue
Create = rpc_pb2.WatchCreateRequest


@dataclass(frozen=True)
class RefEvent:
    rev: int
    key: bytes
    deleted: bool
    kv: bytes            # serialized KeyValue, deterministic
    prev: bytes | None   # the key's KeyValue just before, if it was live


class WatchReference:
    """The reference's changes as watch events, and the compactions in the log."""

    def __init__(self, events: list[RefEvent], compactions: set[int], rev: int) -> None:
        self.events = events
        self.compactions = compactions
        self.last_compaction = max(compactions, default=0)
        self.rev = rev

    @classmethod
    def of_reference(cls, ref: Reference) -> WatchReference:
        live: dict[bytes, bytes] = {}
        events = []
        with ref.applier.store.read() as view:
            for change in view.history(1):
                kv = canonical(change.kv)
                events.append(RefEvent(change.main, change.key, change.deleted, kv, live.get(change.key)))
                if change.deleted:
                    live.pop(change.key, None)
                else:
                    live[change.key] = kv
        compactions = {e.request.compaction.revision for e in ref.entries
                       if e.request is not None and not e.skipped and e.request.HasField("compaction")}
        return cls(events, compactions, ref.rev)

    def of(self, watch: Watch, first: int, last: int) -> list[RefEvent]:
        """What ``watch`` must be told of revisions first..last."""
        return [e for e in self.events if first <= e.rev <= last and _matches(watch, e)]

    def target(self, watch: Watch) -> int | None:
        """The last revision that changed what ``watch`` watches, from its start on (None: none)."""
        origin = watch.origin
        if origin is None:
            return None
        found = self.of(watch, origin, self.rev)
        return found[-1].rev if found else None


def check_watches(watches: list[Watch], ref: WatchReference) -> list[Finding]:
    findings: list[Finding] = []
    for watch in watches:
        findings += _check(watch, ref)
    return findings


def _check(watch: Watch, ref: WatchReference) -> list[Finding]:
    found: dict[str, str] = {}  # invariant -> the first detail (one of each per watch)

    def finding(invariant: str, detail: str) -> None:
        found.setdefault(invariant, detail)

    for seg in watch.segments:
        if seg.end == "refused" or (seg.end == "canceled" and not seg.cancel_asked):
            finding("watch-canceled", f"{seg.stream} on {seg.member} {seg.end}: {seg.reason!r}")
        if seg.late:
            finding("watch-canceled", f"{seg.stream} on {seg.member}: {seg.late} event responses after its cancel")
        if seg.end == "compacted":
            last = seg.responses[-1].events[-1].kv.mod_revision if seg.responses else None
            needed = max(seg.from_rev or 0, last + 1 if last is not None else 0)
            if seg.compact_revision <= needed or seg.compact_revision not in ref.compactions:
                finding("watch-compaction", f"{seg.stream} on {seg.member} from {seg.from_rev} canceled with "
                        f"compact_revision {seg.compact_revision} when it needed {needed} (compactions in the log: "
                        f"{sorted(ref.compactions)})")
    origin = watch.origin
    received = []  # (revision, key, event, segment index)
    for si, seg in enumerate(watch.segments):
        group, groups = 0, {}  # revision -> the response group it came in (fragments join a group)
        for resp in seg.responses:
            for e in resp.events:
                rev = e.kv.mod_revision
                if groups.setdefault(rev, group) != group:
                    finding("watch-atomic", f"{seg.stream} on {seg.member}: revision {rev} split between responses")
                received.append((rev, e.kv.key, e, si))
            group += not resp.fragment
    if origin is None:
        if received:
            finding("watch-order", f"events {[r for r, *_ in received[:5]]} before any `created`")
        return _findings(watch, found)

    seen: dict[tuple[int, bytes], object] = {}
    order: list[tuple[int, bytes]] = []
    highest = origin - 1
    for rev, key, event, si in received:
        if (rev, key) in seen:
            finding("watch-duplicate", f"revision {rev} key {key!r} again (segment {si}: {_segments(watch)})")
            continue
        if rev < highest or rev < origin:
            finding("watch-order", f"revision {rev} key {key!r} after {highest} (start {origin}; segment {si})")
        seen[(rev, key)] = event
        order.append((rev, key))
        highest = max(highest, rev)

    open_at_end = not watch.done
    last = ref.rev if open_at_end else (received[-1][0] if received else origin - 1)
    expected = ref.of(watch, origin, last)
    missing = [e for e in expected if (e.rev, e.key) not in seen and not (e.deleted and e.rev in ref.compactions)]
    if missing:
        tail = [e for e in missing if e.rev > highest]
        gap = [e for e in missing if e.rev <= highest]
        if gap:
            finding("watch-gap", f"missing {_revs(gap)} between {origin} and {highest} ({_segments(watch)})")
        if tail and open_at_end:
            finding("watch-stalled", f"has revisions up to {highest}; missing {_revs(tail)} of the log's "
                    f"{ref.rev} ({_segments(watch)})")
    wanted = {(e.rev, e.key): e for e in expected}
    extra = [k for k in order if k not in wanted]
    if extra:
        finding("watch-mismatch", f"events the reference does not have for it: {extra[:5]}")
    for k, e in wanted.items():
        event = seen.get(k)
        if event is not None:
            problem = _differs(watch, event, e, ref.last_compaction)
            if problem:
                finding("watch-mismatch", f"revision {e.rev} key {e.key!r}: {problem}")
    both = [k for k in order if k in wanted]
    if both != [(e.rev, e.key) for e in expected if (e.rev, e.key) in seen]:
        finding("watch-order", f"events in another order than the log's: {both[:8]}")
    return _findings(watch, found)


def _differs(watch: Watch, event, want: RefEvent, last_compaction: int) -> str | None:
    if (event.type == 1) != want.deleted:
        return f"type {event.type}, the log's {'DELETE' if want.deleted else 'PUT'}"
    if canonical(event.kv.SerializeToString()) != want.kv:
        return f"kv {_short(event.kv)} != {_short(KeyValue.FromString(want.kv))}"
    prev = canonical(event.prev_kv.SerializeToString()) if event.HasField("prev_kv") else None
    if not watch.prev_kv:
        return f"prev_kv {_short(event.prev_kv)} not asked for" if prev is not None else None
    if prev == want.prev or (prev is None and want.rev - 1 < last_compaction):
        return None
    return f"prev_kv {prev and _short(event.prev_kv)} != {want.prev and _short(KeyValue.FromString(want.prev))}"


def _matches(watch: Watch, e: RefEvent) -> bool:
    if e.deleted and Create.NODELETE in watch.filters or not e.deleted and Create.NOPUT in watch.filters:
        return False
    if not watch.range_end:
        return e.key == watch.key
    return watch.key <= e.key and (watch.range_end == b"\0" or e.key < watch.range_end)


def canonical(kv: bytes) -> bytes:
    return KeyValue.FromString(kv).SerializeToString(deterministic=True)


def _findings(watch: Watch, found: dict[str, str]) -> list[Finding]:
    what = f"{watch.id} [{watch.key!r}, {watch.range_end!r}) prev_kv={watch.prev_kv} filters={list(watch.filters)}"
    return [Finding(invariant, f"{what}: {detail}") for invariant, detail in found.items()]


def _segments(watch: Watch) -> str:
    return "; ".join(f"{s.stream}@{s.member} from {s.from_rev} ({s.start}) {s.end} "
                     f"{len(s.responses)} responses" for s in watch.segments)


def _revs(events: list[RefEvent]) -> str:
    return ", ".join(f"{e.rev}{'D' if e.deleted else ''}:{e.key.decode(errors='replace')}" for e in events[:8]) + \
        (f" (+{len(events) - 8})" if len(events) > 8 else "")


def _short(kv: KeyValue) -> str:
    return " ".join(str(kv).split())[:160]
