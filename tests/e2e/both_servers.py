"""A module-scoped ``server`` fixture run once per server: real etcd 3.5.1, then pyetcd.

Import it into a test module (``from both_servers import server``) to parametrize that module's
tests over both; pyetcd is ``python -m pyetcd`` with the same flags (tests/servers.py), plus the
importing module's ``SERVER_FLAGS`` (a list) if it has one.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from servers import PYETCD, Server, have_ref, ref_bin

SERVERS = {"etcd-3.5.1": lambda: [ref_bin("etcd")], "pyetcd": lambda: PYETCD}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request, tmp_path_factory) -> Iterator[Server]:
    if request.param == "etcd-3.5.1" and not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    srv = Server(SERVERS[request.param](), str(tmp_path_factory.mktemp(request.param) / "member.etcd"),
                 extra=list(getattr(request.module, "SERVER_FLAGS", [])))
    try:
        yield srv.start()
    finally:
        srv.stop()
