"""aetcd (from PyPI) logging in as a user, against real etcd 3.5.1 and pyetcd with auth on: the same
allowed calls, the same refusals, on both servers. (python-etcd3 0.12 cannot log in over a plain
channel with today's grpcio, against either server: "Established channel does not have a
sufficient security level to transfer call credential".)"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Iterator

import pytest

from auth_users import setup_users
from both_servers import SERVERS
from pypi_venvs import venv_python
from servers import Server, require_ref

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypi_probes")


@pytest.fixture(scope="module", params=list(SERVERS))
def authed(request, tmp_path_factory) -> Iterator[Server]:
    if request.param == "etcd-3.5.1":
        require_ref()
    server = Server(SERVERS[request.param](), str(tmp_path_factory.mktemp("pypi-auth") / "infra0.etcd")).start()
    try:
        setup_users(server.url)
        yield server
    finally:
        server.stop()


def probe(client: str, server: Server) -> dict:
    proc = subprocess.run([venv_python(client), os.path.join(PROBES, f"{client}_auth_probe.py"), "127.0.0.1",
                           str(server.client_port)], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"{client} probe failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def test_aetcd_as_a_user(authed):
    seen = probe("aetcd", authed)
    assert seen["put"] == {"ok": True} and seen["get"] == {"ok": "1"}
    assert seen["prefix"]["ok"][0] == "foo/a" and seen["lease"] == {"ok": 60}
    for denied in ("put_denied", "get_denied"):
        assert "permission denied" in seen[denied]["text"], seen[denied]
    assert "authentication failed" in seen["wrong_password"]["text"], seen["wrong_password"]
