"""Permission intervals: what a user's merged permissions cover (server/auth/rangeperm.py)."""
from pyetcd.server.auth.rangeperm import Coverage


def test_single_keys_ranges_and_open_ends():
    cov = Coverage([(b"a", b"a\0"), (b"c", b"e"), (b"x", None)])
    assert cov.covers(b"a", b"") and not cov.covers(b"a", b"b") and not cov.covers(b"b", b"")
    assert cov.covers(b"c", b"e") and cov.covers(b"d", b"") and not cov.covers(b"c", b"f")
    assert cov.covers(b"x", b"\0") and cov.covers(b"zzz", b"") and not cov.covers(b"w", b"\0")


def test_adjacent_and_overlapping_permissions_merge():
    cov = Coverage([(b"a", b"c"), (b"c", b"e"), (b"b", b"d"), (b"k", b"m"), (b"l", None)])
    assert cov.covers(b"a", b"e")       # [a,c) + [c,e): one interval
    assert not cov.covers(b"a", b"f")
    assert cov.covers(b"k", b"\0")      # [k,m) + [l,...): open ended from k
    assert not cov.covers(b"j", b"k")


def test_empty_ranges_are_judged_by_their_first_key():
    cov = Coverage([(b"b", b"b\0")])
    assert cov.covers(b"b", b"a") and not cov.covers(b"c", b"a")
    assert not Coverage([]).covers(b"a", b"")
