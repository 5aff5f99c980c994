"""etcdctl make-mirror (3.5.1): copy the keys under --prefix to a destination cluster, then keep
replaying the source's changes there (one destination txn per source revision). Prints the number
of keys mirrored so far every 30 seconds."""
from __future__ import annotations

import sys
import threading

from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_ERROR, Context, Exit, tls_from_flags

REPORT_INTERVAL = 30.0
BATCH = 1000


def new_mirror_command() -> Command:
    cmd = Command("make-mirror [options] <destination>", "Makes a mirror at the destination etcd cluster",
                  run=run_mirror)
    f = cmd.flags
    f.add("prefix", "string", "", "Key-value prefix to mirror")
    f.add("dest-prefix", "string", "", "destination prefix to mirror a prefix to a different prefix in the destination cluster")
    f.add("no-dest-prefix", "bool", False, "mirror key-values to the root of the destination cluster")
    f.add("dest-cert", "string", "", "Identify secure client using this TLS certificate file for the destination cluster")
    f.add("dest-key", "string", "", "Identify secure client using this TLS key file")
    f.add("dest-cacert", "string", "", "Verify certificates of TLS enabled secure servers using this CA bundle")
    f.add("dest-insecure-transport", "bool", True, "Disable transport security for client connections")
    f.add("dest-user", "string", "",
          "Destination username[:password] for authentication (prompt if password is not supplied)")
    f.add("dest-password", "string", "",
          "Destination password for authentication (if this option is used, --user option shouldn't include password)")
    return cmd


def key_mapper(prefix: bytes, dest_prefix: bytes, no_dest_prefix: bool):
    """How a source key is named in the destination."""
    if no_dest_prefix:
        return lambda key: key[len(prefix):]
    if dest_prefix:
        return lambda key: dest_prefix + key[len(prefix):]
    return lambda key: key


def _dest_client(ctx: Context, dest: str):
    from pyetcd.client import Client

    f = ctx.flags
    tls = tls_from_flags(f, "dest-")
    user, password = f["dest-user"], f["dest-password"]
    if user and not password:
        user, _, password = user.partition(":")
    return Client([dest], dial_timeout=f["dial-timeout"] or 2.0, user=user, password=password, tls=tls)


def run_mirror(cmd: Command, args: list[str]) -> None:
    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "make-mirror takes one destination argument")
    ctx = Context(cmd)
    f = ctx.flags
    if f["dest-prefix"] and f["no-dest-prefix"]:
        raise Exit(EXIT_BAD_ARGS, "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one")
    ctx.connect()
    prefix = f["prefix"].encode("utf-8", "surrogateescape")
    dest = _dest_client(ctx, args[0])
    total = [0]
    _report(total)
    try:
        mirror(ctx.client, dest, prefix, key_mapper(prefix, f["dest-prefix"].encode("utf-8", "surrogateescape"),
                                                    f["no-dest-prefix"]), total)
    except Exception as exc:
        from pyetcd.errors import EtcdError

        if not isinstance(exc, EtcdError):
            raise
        raise Exit(EXIT_ERROR, exc.message) from None


def _report(total: list[int]) -> None:
    def loop() -> None:
        while not stop.wait(REPORT_INTERVAL):
            sys.stdout.write(f"{total[0]}\n")
            sys.stdout.flush()

    stop = threading.Event()
    threading.Thread(target=loop, daemon=True).start()


def mirror(source, dest, prefix: bytes, mapped, total: list[int]) -> None:
    """Copy, then follow the source forever (a compacted history ends it with the compaction error)."""
    from pyetcd.client import prefix_end
    from pyetcd.proto.etcdserverpb import rpc_pb2
    from pyetcd.proto.mvccpb import kv_pb2

    key, end = (prefix, prefix_end(prefix)) if prefix else (b"\x00", b"\x00")
    revision, start = 0, key
    while True:
        resp = source.get(start, end, revision=revision, limit=BATCH)
        revision = revision or resp.header.revision
        for kv in resp.kvs:
            dest.put(mapped(kv.key), kv.value)
            total[0] += 1
        if not resp.more:
            break
        start = resp.kvs[-1].key + b"\x00"
    with source.watch(key, end, start_revision=revision + 1) as watch:
        for wresp in watch:
            ops, last = [], 0
            for ev in wresp.events:
                if last and ev.kv.mod_revision > last:
                    dest.txn(success=ops)
                    ops = []
                last = ev.kv.mod_revision
                if ev.type == kv_pb2.Event.PUT:
                    ops.append(rpc_pb2.PutRequest(key=mapped(ev.kv.key), value=ev.kv.value))
                else:
                    ops.append(rpc_pb2.DeleteRangeRequest(key=mapped(ev.kv.key)))
                total[0] += 1
            if ops:
                dest.txn(success=ops)
