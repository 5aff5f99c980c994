"""pyetcd's etcdctl lock / make-mirror together with real etcdctl 3.5.1 on one real etcd 3.5.1.

A pyetcd `lock` and a real `lock` on the same name must exclude each other, whichever holds first;
`make-mirror` must leave the destination as real etcdctl's does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from servers import Server, etcdctl, ref_bin, require_ref, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY_ETCDCTL = [sys.executable, "-m", "pyetcd.etcdctl"]
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}, "PYTHONPATH": ROOT}


def real() -> list[str]:
    return [ref_bin("etcdctl")]


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    require_ref()
    servers = []
    try:
        for label in ("src", "dst"):
            servers.append(Server([ref_bin("etcd")], str(tmp_path_factory.mktemp(label) / "infra0.etcd")).start())
        yield servers
    finally:
        for s in servers:
            s.stop()


def _start(binary: list[str], endpoint: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*binary, f"--endpoints={endpoint}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _keys(endpoint: str, prefix: str) -> list[str]:
    out = etcdctl(real(), endpoint, "get", prefix, "--prefix", "--keys-only").stdout
    return [line for line in out.splitlines() if line]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.mark.parametrize("holder_is_real", [True, False], ids=["real-holds", "pyetcd-holds"])
def test_lock_excludes_across_implementations(two_servers, holder_is_real):
    ep = two_servers[0].endpoint
    name = f"mutex-{holder_is_real}"
    first, second = (real(), PY_ETCDCTL) if holder_is_real else (PY_ETCDCTL, real())
    holder = _start(first, ep, "lock", name)
    waiter = None
    try:
        held = holder.stdout.readline().strip()
        assert held.startswith(f"{name}/"), held
        waiter = _start(second, ep, "lock", name, "--", "sh", "-c", 'echo "got $ETCD_LOCK_KEY"')
        # the waiter queues behind the holder (its key appears) and must not run while the lock is held
        wait_for(lambda: len(_keys(ep, name + "/")) == 2, 20, "the waiter's key")
        assert waiter.poll() is None, waiter.communicate()
        _stop(holder)  # etcdctl gives the lock back on SIGTERM
        out, errout = waiter.communicate(timeout=20)
        assert waiter.returncode == 0, errout
        waiter_key = out.strip().removeprefix("got ")
        assert waiter_key.startswith(f"{name}/") and waiter_key != held
        assert _keys(ep, name + "/") == []
    finally:
        _stop(holder)
        if waiter is not None:
            _stop(waiter)


def _mirror_contents(endpoint: str, prefix: str) -> dict[str, str]:
    out = etcdctl(real(), endpoint, "get", prefix, "--prefix").stdout.splitlines()
    return {out[i][len(prefix):]: out[i + 1] for i in range(0, len(out) - 1, 2)}


def test_make_mirror_matches_real_etcdctl(two_servers):
    src, dst = (s.endpoint for s in two_servers)
    for k, v in (("m/a", "1"), ("m/b", "2"), ("other", "x")):
        assert etcdctl(real(), src, "put", k, v).returncode == 0
    mirrors = [_start(binary, src, "make-mirror", "--prefix", "m/", "--dest-prefix", dest, dst)
               for binary, dest in ((real(), "ref/"), (PY_ETCDCTL, "cand/"))]
    try:
        for side in ("ref/", "cand/"):
            wait_for(lambda: _mirror_contents(dst, side) == {"a": "1", "b": "2"}, 20, f"the {side} copy")
        for args in (("put", "m/c", "3"), ("del", "m/a"), ("put", "m/b", "22"), ("put", "outside", "y")):
            assert etcdctl(real(), src, *args).returncode == 0
        want = {"b": "22", "c": "3"}
        for side in ("ref/", "cand/"):
            wait_for(lambda: _mirror_contents(dst, side) == want, 20, f"the {side} updates")
    finally:
        for m in mirrors:
            _stop(m)
