"""Which keys a user may read or write: the union of its roles' permissions, as merged intervals
(etcd's range permission cache). A request is permitted only if one permission interval, after
merging overlapping and adjacent ones, holds all of its keys."""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

Interval = tuple[bytes, "bytes | None"]  # [start, end); end None: no upper bound


def interval(key: bytes, range_end: bytes) -> Interval:
    """The keys of a permission or a request: range_end "" is the key alone, "\\0" all from key."""
    if not range_end:
        return key, key + b"\0"
    if range_end == b"\0":
        return key, None
    if range_end <= key:  # an empty range: judged by its first key
        return key, key + b"\0"
    return key, range_end


class Coverage:
    def __init__(self, intervals: Iterable[Interval]) -> None:
        merged: list[list] = []
        for start, end in sorted(intervals, key=lambda iv: iv[0]):
            if merged and (merged[-1][1] is None or start <= merged[-1][1]):
                last = merged[-1]
                if last[1] is not None and (end is None or end > last[1]):
                    last[1] = end
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._merged = merged

    def covers(self, key: bytes, range_end: bytes) -> bool:
        start, end = interval(key, range_end)
        i = bisect_right(self._starts, start) - 1
        if i < 0:
            return False
        have = self._merged[i][1]
        return have is None or (end is not None and end <= have)
