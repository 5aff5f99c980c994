"""etcdctl snapshot save: a member's database into a file, as etcdctl 3.5.1 writes it.

The stream goes to ``<file>.part`` (created 0600), is fsynced and renamed over ``<file>``; the
file is the database followed by its SHA-256, exactly the bytes the member sent. One endpoint
only: a snapshot is one member's. (``snapshot status`` and ``restore`` are etcdutl's work on
the database format, which is pyetcd's own.)
"""
from __future__ import annotations

import os
import time

from pyetcd.client.maintenance import SnapshotFile
from pyetcd.etcdctl.cobra import Command, err, out
from pyetcd.etcdctl.gofmt import humanize_bytes
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_INTERRUPTED, GROUP_HEADER, Context, Exit, zap_line


def new_snapshot_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS

    use, short = GROUPS["snapshot"]
    group = Command(use, short, header=GROUP_HEADER)
    group.add(Command("save <filename>", "Stores an etcd node backend snapshot to a given file", run=run_save))
    return group


def _log(caller: str, msg: str, logger: str = "", **fields: object) -> None:
    err(zap_line("info", caller, msg, False, logger, **fields))


def _since(start: float) -> str:
    """go-humanize's Time for a moment just past: 'now', '1 second ago', 'N seconds ago', ..."""
    seconds = int(time.monotonic() - start)
    if seconds < 1:
        return "now"
    if seconds < 60:
        return "1 second ago" if seconds == 1 else f"{seconds} seconds ago"
    minutes = seconds // 60
    return "1 minute ago" if minutes == 1 else f"{minutes} minutes ago"


def run_save(cmd: Command, args: list[str]) -> None:
    from pyetcd.errors import EtcdError

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "snapshot save expects one argument")
    ctx = Context(cmd)
    endpoints = ctx.flags["endpoints"]
    if len(endpoints) != 1:
        raise Exit(EXIT_INTERRUPTED, f"snapshot must be requested to one selected node, not multiple "
                                     f"[{' '.join(endpoints)}]")
    path = args[0]
    try:
        f = SnapshotFile(path)
    except OSError as e:
        part = path + ".part"
        raise Exit(EXIT_INTERRUPTED, f"could not open {part} (open {part}: {os.strerror(e.errno).lower()})") from None
    start = time.monotonic()
    with f:  # the .part file is removed unless it is renamed into place
        _log("snapshot/v3_snapshot.go:68", "created temporary db file", path=f.part)
        try:
            ctx.connect()
            blobs = ctx.client.snapshot()
            _log("v3/maintenance.go:211", "opened snapshot stream; downloading", "client")
            _log("snapshot/v3_snapshot.go:76", "fetching snapshot", endpoint=endpoints[0])
            for blob in blobs:
                f.add(blob)
            _log("v3/maintenance.go:219", "completed snapshot read; closing", "client")
            f.close()
        except EtcdError as e:
            raise Exit(EXIT_INTERRUPTED, e.message) from None
        _log("snapshot/v3_snapshot.go:91", "fetched snapshot", endpoint=endpoints[0], size=humanize_bytes(f.size),
             took=_since(start))
        f.commit()
    _log("snapshot/v3_snapshot.go:100", "saved", path=path)
    out(f"Snapshot saved at {path}\n")
