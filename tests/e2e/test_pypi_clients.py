"""The Python clients people use, from PyPI, against real etcd 3.5.1 and pyetcd.

python-etcd3 (etcd3 0.12.0, protobuf < 4) and aetcd (asyncio) each run in a venv of their own
(tests/e2e/pypi_venvs.py, created once per pinned version under .cache/pypi-clients). A probe
script per client (tests/e2e/pypi_probes/) drives its watch, lease and KV calls against one
server and prints what it saw, one JSON section per feature; the tests below check each
section with the same assertions for both clients and both servers.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from pypi_venvs import CLIENTS, venv_python
from servers import Server

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypi_probes")


@pytest.fixture(scope="module", params=list(CLIENTS))
def client(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def observed(client: str, server: Server) -> dict:  # noqa: F811
    """One run of the client's probe against the server: {section: what it saw}."""
    prefix = f"e2e/{client}/"
    proc = subprocess.run([venv_python(client), os.path.join(PROBES, f"{client}_probe.py"), "127.0.0.1",
                           str(server.client_port), prefix], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"{client} probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return {"prefix": prefix, **json.loads(lines[-1])}


def section(observed: dict, name: str) -> dict:
    data = observed[name]
    assert "error" not in data, f"{name}: {data['error']}\n{data.get('trace', '')}"
    return data


def event(observed: dict, kind: str, key: str, value: str, rev: int) -> list:
    return [kind, observed["prefix"] + key, value, rev]


def test_kv(observed):
    s = section(observed, "kv")
    p = observed["prefix"]
    assert (s["get"], s["version"], s["missing"]) == ("1", 1, None)
    assert s["prefix"] == [p + "kv/a", p + "kv/b"]
    assert (s["deleted"], s["after_delete"], s["deleted_again"]) == (True, None, False)


def test_watch_key(observed):
    """Puts and the delete of the key, in order; a longer key that shares its start is not seen."""
    s = section(observed, "watch")
    r = s["revs"]
    assert r == list(range(r[0], r[0] + 4))
    assert s["events"] == [event(observed, "PUT", "w/key", "v1", r[0]), event(observed, "PUT", "w/key", "v2", r[2]),
                           event(observed, "DELETE", "w/key", "", r[3])]


def test_watch_prefix(observed):
    s = section(observed, "watch_prefix")
    r = s["revs"]
    assert s["events"] == [event(observed, "PUT", "wp/a", "1", r[0]), event(observed, "PUT", "wp/b", "2", r[2])]


def test_watch_start_revision(observed):
    """History from start_revision on (inclusive), then the live event."""
    s = section(observed, "watch_start_revision")
    r = s["revs"]
    assert s["events"] == [event(observed, "PUT", "h/k", f"x{i + 1}", r[i]) for i in (1, 2, 3)]


def test_watch_cancel(observed):
    """Two watchers on one key: the one cancelled after the first event gets no second one."""
    s = section(observed, "watch_callback_cancel")
    r = s["revs"]
    assert s["ids_differ"]
    assert s["kept"] == [event(observed, "PUT", "cb/k", "1", r[0]), event(observed, "PUT", "cb/k", "2", r[1])]
    assert s["cancelled"] == [event(observed, "PUT", "cb/k", "1", r[0])]


def test_lease(observed):
    """Grant, put with the lease, keep-alive, time-to-live with keys, revoke: the key goes with
    it (a watcher sees the delete), and the lease is gone (TTL -1, keep-alive answers TTL 0)."""
    s = section(observed, "lease")
    assert s["id"] > 0 and s["key_lease"] == s["id"]
    assert (s["grant_ttl"], s["granted_ttl"], s["refresh_ttl"], s["refresh_id"]) == (30, 30, [30], [s["id"]])
    assert 0 < s["remaining_ttl"] <= 30
    assert s["keys"] == [observed["prefix"] + "l/k"]
    assert s["revoke_events"] == [event(observed, "DELETE", "l/k", "", s["put_rev"] + 1)]
    assert (s["after_revoke_get"], s["after_revoke_ttl"], s["after_revoke_refresh_ttl"]) == (None, -1, [0])


def test_lease_expiry(observed):
    """A 2 s lease not kept alive expires: its key is deleted (not at once) and the lease is gone."""
    s = section(observed, "lease_expiry")
    assert s["grant_ttl"] == 2
    assert s["events"] == [event(observed, "DELETE", "exp/k", "", s["put_rev"] + 1)]
    assert 1.0 < s["seconds"] < 9.0
    assert (s["after_get"], s["after_ttl"]) == (None, -1)
