"""Real etcd 3.5.1 members for e2e tests that compare against the reference (see tests/servers.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from servers import Server, ref_bin, require_ref


def _start_ref(tmp_path_factory, label: str) -> Server:
    return Server([ref_bin("etcd")], str(tmp_path_factory.mktemp(label) / "infra0.etcd")).start()


@pytest.fixture(scope="module")
def etcd_pair(tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    """Two independent real etcd 3.5.1 members: reference side and candidate side."""
    require_ref()
    started: list[Server] = []
    try:
        for side in ("ref", "cand"):
            started.append(_start_ref(tmp_path_factory, f"etcd-{side}"))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory) -> Iterator[Server]:
    """One real etcd 3.5.1 member."""
    require_ref()
    server = _start_ref(tmp_path_factory, "etcd")
    try:
        yield server
    finally:
        server.stop()
