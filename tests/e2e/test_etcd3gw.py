"""etcd3gw (PyPI's client of the v3 JSON gateway) against real etcd 3.5.1 and pyetcd: KV, a
lease with keep-alive, a prefix watch and the cluster calls, over HTTP alone (no gRPC)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from pypi_venvs import venv_python
from servers import Server

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypi_probes", "etcd3gw_probe.py")


@pytest.fixture(scope="module")
def observed(server: Server) -> dict:  # noqa: F811
    proc = subprocess.run([venv_python("etcd3gw"), PROBE, "127.0.0.1", str(server.client_port), "gw/"],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"etcd3gw probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def test_kv(observed):
    assert observed["api_path"] == "/v3/"
    assert observed["get"] == ["1"] and observed["prefix"] == ["gw/kv/a", "gw/kv/b"]
    assert (observed["deleted"], observed["after_delete"], observed["deleted_again"]) == (True, [], False)


def test_lease(observed):
    assert observed["lease_ttl_ok"] and observed["lease_refresh"] == 120
    assert observed["lease_keys"] == ["gw/leased"]
    assert observed["lease_revoked"] is True and observed["after_revoke"] == []


def test_watch(observed):
    assert observed["watch_last"] == [["PUT", "gw/w/x", "1"], ["DELETE", "gw/w/x", ""]]


def test_cluster(observed):
    assert (observed["members"], observed["status_version"]) == (1, "3.5.1")
