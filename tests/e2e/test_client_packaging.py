"""The client installs alone: pyetcd's wheel in a fresh virtualenv brings only grpcio and protobuf,
and there the client and etcdctl work against a server while `etcd` says what it lacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

from servers import PYETCD, ROOT, Server

# what a client-only install may hold besides pyetcd itself (pip and setuptools come with the venv)
ALLOWED = {"grpcio", "protobuf", "typing-extensions", "typing_extensions", "pip", "setuptools", "pyetcd"}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_client_installs_with_grpcio_and_protobuf_only(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT])
    (wheel,) = wheels.iterdir()
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", str(wheel)])
    installed = {p["name"].lower() for p in json.loads(run([py, "-m", "pip", "list", "--format=json"]).stdout)}
    assert installed <= ALLOWED, installed - ALLOWED

    server = Server(PYETCD, str(tmp_path / "member.etcd")).start()
    try:
        script = ("from pyetcd.client import Client\n"
                  f"with Client(['{server.endpoint}']) as c:\n"
                  "    c.put('pkg', 'alone')\n"
                  "    print(c.get('pkg').kvs[0].value.decode())\n")
        assert run([py, "-c", script], cwd=str(tmp_path)).stdout == "alone\n"
        ctl = run([str(env_dir / "bin" / "etcdctl"), f"--endpoints={server.endpoint}", "get", "pkg"],
                  cwd=str(tmp_path))
        assert ctl.stdout == "pkg\nalone\n"
    finally:
        server.stop()

    etcd = subprocess.run([str(env_dir / "bin" / "etcd"), "--data-dir", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert etcd.returncode == 1 and "pip install 'pyetcd[server]'" in etcd.stderr, etcd.stderr
    assert not os.path.exists(tmp_path / "nope")
