"""pyetcd.compat.etcd3 against python-etcd3 itself: one script of python-etcd3's documented
behaviours (tests/e2e/pypi_probes/etcd3_behaviours.py) runs with the real ``etcd3`` 0.12 (in its
own venv) and with the compatibility module, against real etcd 3.5.1 and pyetcd; every
observation must be the same."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from pypi_venvs import venv_python
from servers import Server

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pypi_probes", "etcd3_behaviours.py")


def run(python: str, mode: str, server: Server, prefix: str) -> dict:  # noqa: F811
    proc = subprocess.run([python, SCRIPT, mode, "127.0.0.1", str(server.client_port), prefix],
                          capture_output=True, text=True, timeout=180)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(json.dumps(json.loads(lines[-1])).replace(prefix, "P/"))


@pytest.fixture(scope="module")
def observed(server: Server) -> tuple[dict, dict]:  # noqa: F811
    return (run(venv_python("etcd3"), "real", server, "compat-real/"),
            run(sys.executable, "compat", server, "compat-ours/"))


def test_same_behaviour_as_python_etcd3(observed):
    real, ours = observed
    assert set(real) <= set(ours)
    assert {k: ours[k] for k in real} == real


def test_the_behaviours_are_python_etcd3s(observed):
    _, ours = observed
    assert ours["get"] == ["22", 2, "P/b"] and ours["get_missing"] == [None, None]
    assert ours["put_if_not_exists"] == [True, False, "x"] and ours["replace"] == [True, False, "z"]
    assert ours["txn_success"] == [True, ["ResponseOp", [["22", "P/b", 2]]]]
    assert ours["watch"] == [["PutEvent", "P/w", "w1"], ["DeleteEvent", "P/w", ""]]
    assert ours["watch_once_timeout"] == {"raised": "WatchTimedOut"}
    assert ours["watch_compacted"] == {"raised": "RevisionCompactedError"}
    assert ours["lock_key"] == "/locks/P/lock" and ours["lock_context"] is True


def test_a_held_lock_makes_others_wait(observed):
    _, ours = observed
    assert ours["lock_contended"] == [True, False, True, True, True, True]
