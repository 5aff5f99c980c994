"""`etcdutl`: offline tools on a data dir or snapshot file (etcdutl 3.5.1's commands).

Only `version` is built so far; `snapshot restore/status`, `defrag` and `backup` follow with the
maintenance work.
"""
from __future__ import annotations

import sys

from pyetcd import API_VERSION, ETCD_VERSION


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    if command == "version":
        sys.stdout.write(f"etcdutl version: {ETCD_VERSION}\nAPI version: {API_VERSION}\n")
        return
    if not command:
        sys.stdout.write("Usage:\n  etcdutl [command]\n\nAvailable Commands:\n  version     Prints the version of etcdutl\n")
        return
    message = f'Error: unknown command "{command}" for "etcdutl"'
    sys.stderr.write(f"{message}\nRun 'etcdutl --help' for usage.\n{message}\n")
    sys.exit(1)
