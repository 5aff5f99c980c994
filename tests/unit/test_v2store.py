"""pyetcd/v2store without a server: the tree's writes, expiry at a given time, persistence,
and the watcher hub's history."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd.v2store import errors
from pyetcd.v2store.errors import V2Error
from pyetcd.v2store.node import NS, render
from pyetcd.v2store.store import Store
from pyetcd.v2store.watch import HISTORY, WatcherHub


def test_writes_take_indexes_and_failures_do_not():
    s = Store()
    assert s.set("/a/b", False, "1", 0).node == {"key": "/a/b", "value": "1", "modifiedIndex": 1, "createdIndex": 1}
    with pytest.raises(V2Error) as err:
        s.create("/a/b", False, "2", 0)
    assert (err.value.code, err.value.cause, err.value.index, err.value.status) == (errors.NODE_EXIST, "/a/b", 1, 412)
    with pytest.raises(V2Error) as err:
        s.set("/a/b/c", False, "x", 0)
    assert (err.value.code, err.value.cause) == (errors.NOT_DIR, "/a/b")
    assert s.update("/a/b", "2", 0).prev["value"] == "1"
    assert s.index == 2 and s.stats.counts["createFail"] == 1 and s.stats.counts["setsFail"] == 1


def test_expire_removes_what_is_due_at_the_given_time():
    s = Store()
    s.set("/soon", False, "v", 10 * NS)
    s.set("/later", False, "v", 20 * NS)
    assert s.expire(9 * NS) == [] and s.has_ttls()
    events = s.expire(10 * NS)
    assert [(e.action, e.key, e.index) for e in events] == [("expire", "/soon", 3)]
    assert render(s.get("/later").node, 15 * NS)["ttl"] == 5


def test_the_tree_survives_its_record():
    s = Store()
    s.set("/d/f", False, "v", 7 * NS)
    s.create("/q", False, "job", 0, unique=True)
    back = Store.from_blob(s.to_blob())
    assert back.index == s.index
    assert back.get("/", recursive=True, sort=True).node == s.get("/", recursive=True, sort=True).node


def test_history_keeps_the_last_events_only():
    async def run():
        s, hub = Store(), WatcherHub()
        for i in range(HISTORY + 5):
            event = s.set("/k", False, str(i), 0)
            hub.record(event.index, event)
        with pytest.raises(V2Error) as err:
            hub.watch("/k", False, 5, s.index)
        assert err.value.code == errors.EVENT_INDEX_CLEARED and err.value.cause.endswith("[6/5]")
        assert hub.watch("/k", False, 6, s.index).node["value"] == "5"
        pending = hub.watch("/", True, 0, s.index)
        event = s.set("/other/x", False, "new", 0)
        hub.record(event.index, event)
        assert (await asyncio.wait_for(pending, 1)).key == "/other/x"
    asyncio.run(run())
