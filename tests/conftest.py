import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import PYETCD, Server, have_ref, ref_bin  # noqa: E402


@pytest.fixture
def pyetcd_server(tmp_path):
    """A running single-member pyetcd; stopped by PID at the end of the test."""
    server = Server(PYETCD, str(tmp_path / "pyetcd.etcd"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def ref_etcd(tmp_path):
    """A running real etcd 3.5.1 (skips when the reference binaries are absent)."""
    if not have_ref():
        pytest.skip("real etcd 3.5.1 binaries not installed (make ref)")
    server = Server([ref_bin("etcd")], str(tmp_path / "ref.etcd"))
    try:
        yield server.start()
    finally:
        server.stop()
