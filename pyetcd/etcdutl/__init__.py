"""`etcdutl`: offline tools on a data dir or snapshot file (etcdutl 3.5.1's commands and texts).

Built: ``version``, ``snapshot status`` (``-w simple|table|json|fields``), ``snapshot restore``
(snapshot.py), ``defrag --data-dir`` (a compact copy swapped in as a snapshot install swaps).
``backup`` is not built yet.
"""
from __future__ import annotations

import json
import sys

from pyetcd import API_VERSION, ETCD_VERSION

EXIT_ERROR, EXIT_BAD_ARGS = 1, 128
_ROOT_HELP = """Usage:
  etcdutl [command]

Available Commands:
  defrag      Defragments the storage of the etcd
  help        Help about any command
  snapshot    Manages etcd node snapshots
  version     Prints the version of etcdutl

Flags:
  -h, --help               help for etcdutl
  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) (default "simple")

Use "etcdutl [command] --help" for more information about a command.
"""
_GLOBAL = """
Global Flags:
  -w, --write-out string   set the output format (fields, json, protobuf, simple, table) (default "simple")
"""
_SNAPSHOT_HELP = """Usage:
  etcdutl snapshot [command]

Available Commands:
  restore     Restores an etcd member snapshot to an etcd directory
  status      Gets backend snapshot status of a given file

Flags:
  -h, --help   help for snapshot
""" + _GLOBAL + """
Use "etcdutl snapshot [command] --help" for more information about a command.
"""
_RESTORE_USAGE = """Usage:
  etcdutl snapshot restore <filename> --data-dir {output dir} [options] [flags]

Flags:
      --data-dir string                      Path to the output data directory
  -h, --help                                 help for restore
      --initial-advertise-peer-urls string   List of this member's peer URLs to advertise to the rest of the cluster (default "http://localhost:2380")
      --initial-cluster string               Initial cluster configuration for restore bootstrap (default "default=http://localhost:2380")
      --initial-cluster-token string         Initial cluster token for the etcd cluster during restore bootstrap (default "etcd-cluster")
      --name string                          Human-readable name for this member (default "default")
      --skip-hash-check                      Ignore snapshot integrity hash value (required if copied from data directory)
      --wal-dir string                       Path to the WAL directory (use --data-dir if none given)
""" + _GLOBAL
_RESTORE_FLAGS = {"data-dir": "", "initial-advertise-peer-urls": "http://localhost:2380",
                  "initial-cluster": "default=http://localhost:2380", "initial-cluster-token": "etcd-cluster",
                  "name": "default", "wal-dir": "", "skip-hash-check": False, "write-out": "simple", "help": False}


class _Exit(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _parse(args: list[str], known: dict) -> tuple[dict, list[str]]:
    """pflag parsing (etcdctl's FlagSet), ``-w/--write-out`` and ``-h/--help`` global: (values, positional)."""
    from pyetcd.etcdctl.flags import FlagError, FlagSet

    flags = FlagSet()
    for name, default in known.items():
        flags.add(name, "bool" if isinstance(default, bool) else "string", default, "",
                  {"write-out": "w", "help": "h"}.get(name, ""))
    try:
        positional = flags.parse(args)
    except FlagError as e:
        raise _Exit(EXIT_ERROR, str(e)) from None
    return {name: flags[name] for name in known}, positional


def _data_dir_command(args: list[str], known: dict, short: str, usage: str) -> tuple[dict, list[str]] | None:
    """Flags of a command that needs --data-dir: None when it only printed its help."""
    flags, positional = _parse(args, known)
    if flags["help"]:
        sys.stdout.write(f"{short}\n\n{usage}")
        return None
    if not flags["data-dir"]:
        sys.stderr.write('Error: required flag(s) "data-dir" not set\n' + usage + "\n")
        raise _Exit(EXIT_ERROR, 'required flag(s) "data-dir" not set')
    return flags, positional


def _print_status(st, fmt: str) -> None:
    from pyetcd.etcdctl.gofmt import humanize_bytes

    if fmt == "json":
        out = json.dumps({"hash": st.hash, "revision": st.revision, "totalKey": st.total_key,
                          "totalSize": st.total_size}, separators=(",", ":")) + "\n"
    elif fmt == "fields":
        out = f'"Hash" : {st.hash}\n"Revision" : {st.revision}\n"Keys" : {st.total_key}\n"Size" : {st.total_size}\n'
    elif fmt == "table":
        row = [f"{st.hash:x}", str(st.revision), str(st.total_key), humanize_bytes(st.total_size)]
        heads = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"]
        widths = [max(len(h), len(v)) + 2 for h, v in zip(heads, row)]
        line = "+" + "+".join("-" * w for w in widths) + "+\n"
        head = "|" + "|".join(h.center(w) for h, w in zip(heads, widths)) + "|\n"
        body = "|" + "|".join(f" {row[0].ljust(w - 2)} " if i == 0 else f" {row[i].rjust(w - 2)} "
                              for i, w in enumerate(widths)) + "|\n"
        out = line + head + line + body + line
    elif fmt == "simple":
        out = f"{st.hash:x}, {st.revision}, {st.total_key}, {humanize_bytes(st.total_size)}\n"
    else:
        raise _Exit(EXIT_ERROR, f"unknown output format {fmt!r}")
    sys.stdout.write(out)


def _status(args: list[str]) -> None:
    from pyetcd.etcdutl.snapshot import SnapshotError, status

    flags, positional = _parse(args, {"write-out": "simple", "help": False})
    if len(positional) != 1:
        raise _Exit(EXIT_BAD_ARGS, "snapshot status requires exactly one argument")
    try:
        st = status(positional[0])
    except FileNotFoundError:
        raise _Exit(EXIT_ERROR, f"stat {positional[0]}: no such file or directory") from None
    except SnapshotError as e:
        raise _Exit(EXIT_ERROR, str(e)) from None
    _print_status(st, flags["write-out"])


def _log(caller: str, msg: str, level: str = "info", **fields: object) -> None:
    """A line as etcdutl's zap console logger writes it (to stderr)."""
    import time

    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    extra = ("\t" + json.dumps(fields, separators=(", ", ": "))) if fields else ""
    sys.stderr.write(f"{ts}\t{level}\t{caller}\t{msg}{extra}\n")


def _restore(args: list[str]) -> None:
    from pyetcd.etcdutl.snapshot import SnapshotError, restore
    from pyetcd.server.config import ConfigError, ServerConfig

    parsed = _data_dir_command(args, _RESTORE_FLAGS, "Restores an etcd member snapshot to an etcd directory",
                               _RESTORE_USAGE)
    if parsed is None:
        return
    flags, positional = parsed
    if len(positional) != 1:
        raise _Exit(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument")
    cfg = ServerConfig({"name": flags["name"], "data-dir": flags["data-dir"], "initial-cluster": flags["initial-cluster"],
                        "initial-cluster-token": flags["initial-cluster-token"],
                        "initial-advertise-peer-urls": flags["initial-advertise-peer-urls"].split(","),
                        **({"wal-dir": flags["wal-dir"]} if flags["wal-dir"] else {})})
    where = {"path": positional[0], "wal-dir": cfg.wal_dir, "data-dir": cfg.data_dir, "snap-dir": cfg.snap_dir}
    _log("snapshot/v3_snapshot.go", "restoring snapshot", **where)
    try:
        restore(positional[0], cfg, skip_hash_check=flags["skip-hash-check"])
    except FileNotFoundError:
        raise _Exit(EXIT_ERROR, f"open {positional[0]}: no such file or directory") from None
    except (SnapshotError, ConfigError) as e:
        raise _Exit(EXIT_ERROR, str(e)) from None
    _log("snapshot/v3_snapshot.go", "restored snapshot", **where)


_DEFRAG_USAGE = """Usage:
  etcdutl defrag [flags]

Flags:
      --data-dir string   Required. Defragments a data directory not in use by etcd.
  -h, --help              help for defrag
""" + _GLOBAL


def _defrag(args: list[str]) -> None:
    import os
    import time

    from pyetcd.fileutil import OS
    from pyetcd.server import snapshot
    from pyetcd.server.config import ServerConfig
    from pyetcd.storage.backend import Backend

    parsed = _data_dir_command(args, {"data-dir": "", "write-out": "simple", "help": False},
                               "Defragments the storage of the etcd", _DEFRAG_USAGE)
    if parsed is None:
        return
    flags, _ = parsed
    cfg = ServerConfig({"data-dir": flags["data-dir"]})
    path = cfg.backend_path
    if not os.path.isdir(path):
        _log("backend/backend.go", "failed to open database", level="panic", path=path,
             error=f"open {path}: no such file or directory")
        sys.exit(2)

    start = time.monotonic()
    backend = Backend(path, fs=OS)  # (first back to its checkpoint, if the machine went down)
    before = snapshot.db_sizes(backend)
    _log("backend/backend.go", "defragmenting", path=path, **before)
    try:
        copy, _ = snapshot.make_copy(backend, cfg.snap_dir, "defrag")
    finally:
        backend.close()
    snapshot.swap_in(OS, copy, path)  # as a snapshot install swaps: durable at every step
    backend = Backend(path, fs=OS)
    try:
        after = snapshot.db_sizes(backend)
    finally:
        backend.close()
    _log("backend/backend.go", "finished defragmenting directory", path=path,
         **snapshot.defrag_result(before, after), took=round(time.monotonic() - start, 9))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    try:
        if command == "version":
            sys.stdout.write(f"etcdutl version: {ETCD_VERSION}\nAPI version: {API_VERSION}\n")
        elif command in ("", "help", "-h", "--help"):
            sys.stdout.write(_ROOT_HELP)
        elif command == "defrag":
            _defrag(args[1:])
        elif command == "snapshot":
            sub = args[1] if len(args) > 1 else ""
            if sub == "status":
                _status(args[2:])
            elif sub == "restore":
                _restore(args[2:])
            else:
                sys.stdout.write(_SNAPSHOT_HELP)
        else:
            message = f'Error: unknown command "{command}" for "etcdutl"'
            sys.stderr.write(f"{message}\nRun 'etcdutl --help' for usage.\n{message}\n")
            sys.exit(EXIT_ERROR)
    except _Exit as e:
        if e.message:
            sys.stderr.write(f"Error: {e.message}\n")
        sys.exit(e.code)
