"""Venvs of the PyPI etcd clients the e2e tests drive, one per client, under .cache/pypi-clients.

Each venv is named by its client and a hash of its pinned requirements, so it is created once
(pip, from PyPI) and reused until a pin changes. ``python tests/e2e/pypi_venvs.py`` creates them
all (the `make test` prerequisite); the tests create a missing one themselves.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, ".cache", "pypi-clients")

# python-etcd3's generated modules need protobuf < 4 (a venv of its own for that).
CLIENTS: dict[str, tuple[str, ...]] = {
    "etcd3": ("etcd3==0.12.0", "protobuf==3.20.3", "grpcio==1.85.3", "tenacity==9.2.1", "six==1.17.0"),
    "aetcd": ("aetcd==1.0.0", "protobuf==7.36.2", "grpcio==1.85.3", "typing_extensions==4.16.0"),
}
# Clients of the v3 JSON gateway (HTTP, no gRPC): tests/e2e/test_etcd3gw.py.
GATEWAY_CLIENTS: dict[str, tuple[str, ...]] = {
    "etcd3gw": ("etcd3gw==2.7.0", "requests==2.34.2", "futurist==3.5.0", "pbr==7.1.3", "debtcollector==3.1.0",
                "wrapt==2.5.2", "urllib3==2.8.0", "idna==3.20", "charset-normalizer==3.5.3",
                "certifi==2026.10.19.post1"),
}
_PINS = {**CLIENTS, **GATEWAY_CLIENTS}


def venv_dir(name: str) -> str:
    digest = hashlib.sha256("\n".join(_PINS[name]).encode()).hexdigest()[:12]
    return os.path.join(CACHE, f"{name}-{digest}")


def venv_python(name: str) -> str:
    """The Python of ``name``'s venv, created first if it is missing or was left half-made."""
    path = venv_dir(name)
    marker = os.path.join(path, ".installed")
    if not os.path.exists(marker):
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([os.path.join(path, "bin", "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *_PINS[name]], check=True)
        open(marker, "w").close()
    return os.path.join(path, "bin", "python")


if __name__ == "__main__":
    for client in _PINS:
        print(f"{client}: {venv_python(client)}")
