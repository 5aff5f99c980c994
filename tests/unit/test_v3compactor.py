"""Auto-compaction's schedule (etcd's v3compactor), on a clock the test drives."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.server.config import ConfigError, load_config
from pyetcd.server.v3compactor import PERIODIC, REVISION, AutoCompactor, parse_retention


class Stop(Exception):
    pass


def run(mode: str, retention: float, until: float, rev_per_second: float = 10, leader=lambda t: True,
        fail: dict[int, errors.EtcdError] | None = None) -> list[tuple[float, int]]:
    """(time, revision) of every compaction proposed before ``until`` seconds."""
    now = 0.0
    proposed: list[tuple[float, int]] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        now += seconds
        if now > until:
            raise Stop

    async def compact(rev: int) -> None:
        proposed.append((round(now, 6), rev))
        if fail and rev in fail:
            raise fail[rev]

    auto = AutoCompactor(mode, retention, lambda: 1 + int(round(now, 6) * rev_per_second), lambda: leader(now),
                         compact, sleep=sleep)
    with pytest.raises(Stop):
        asyncio.run(auto.run())
    return proposed


def test_periodic_compacts_every_period_to_the_revision_of_one_period_ago():
    # as etcd 3.5.1 with --auto-compaction-retention=4s: at 4 s to the revision at start, ...
    assert run(PERIODIC, 4, until=13) == [(4, 1), (8, 41), (12, 81)]


def test_a_long_period_compacts_every_hour_keeping_the_whole_period():
    hours = run(PERIODIC, 72 * 3600, until=75 * 3600, rev_per_second=1 / 3600)
    assert hours == [(72 * 3600, 1), (73 * 3600, 2), (74 * 3600, 3), (75 * 3600, 4)]


def test_revision_mode_compacts_every_five_minutes_to_current_minus_retention():
    assert run(REVISION, 100, until=900, rev_per_second=1) == [(300, 201), (600, 501), (900, 801)]


def test_only_the_leader_proposes_and_nothing_twice():
    assert run(PERIODIC, 4, until=13, leader=lambda t: t >= 10) == [(12, 81)]
    assert run(REVISION, 10**6, until=900, rev_per_second=1) == []  # nothing to compact yet
    assert run(PERIODIC, 4, until=13, rev_per_second=0) == [(4, 1)]  # no writes, no repeats


def test_a_failed_compaction_is_tried_again_unless_already_compacted():
    unavailable = errors.EtcdError(errors.UNAVAILABLE, "etcdserver: request timed out")
    assert run(REVISION, 100, until=900, rev_per_second=0.5, fail={51: unavailable}) == [(300, 51), (600, 201), (900, 351)]
    assert run(PERIODIC, 4, until=9, fail={1: errors.ErrCompacted}) == [(4, 1), (8, 41)]


@pytest.mark.parametrize("mode,text,want", [
    (PERIODIC, "1", 3600.0), (PERIODIC, "30m", 1800.0), (PERIODIC, "0", 0), (REVISION, "1000", 1000),
    (REVISION, "1h", 3600 * 10**9),  # etcd takes a duration's nanoseconds as revisions
])
def test_retention(mode, text, want):
    assert parse_retention(mode, text) == want


@pytest.mark.parametrize("flags,message", [
    (["--auto-compaction-retention=abc"], 'error parsing CompactionRetention: time: invalid duration "abc"'),
    (["--auto-compaction-mode=revision", "--auto-compaction-retention=-5"],
     'error parsing CompactionRetention: time: missing unit in duration "-5"'),
    (["--auto-compaction-mode=foo", "--auto-compaction-retention=1"], 'unknown auto-compaction-mode "foo"'),
])
def test_bad_flags_are_refused_with_etcds_messages(flags, message):
    with pytest.raises(ConfigError) as refused:
        load_config(flags, {})
    assert str(refused.value) == message
