"""etcdctl lease grant / revoke / timetolive / list / keep-alive, with their output formats.

etcdctl's lease responses embed the response header, so json shows its fields flattened and
protobuf marshals only the header; revoke has no protobuf form.
"""
from __future__ import annotations

import base64
import sys

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.cobra import Command, out
from pyetcd.etcdctl.printer import go_dumps, go_json, header_fields, write
from pyetcd.etcdctl.runtime import (EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_BAD_FEATURE, EXIT_ERROR, Context,
                                    Exit)


def new_lease_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS
    from pyetcd.etcdctl.runtime import GROUP_HEADER

    use, short = GROUPS["lease"]
    group = Command(use, short, header=GROUP_HEADER)
    timetolive = Command("timetolive <leaseID> [options]", "Get lease information", run=run_timetolive)
    timetolive.flags.add("keys", "bool", False, "Get keys attached to this lease")
    keep_alive = Command("keep-alive [options] <leaseID>", "Keeps leases alive (renew)", run=run_keep_alive)
    keep_alive.flags.add("once", "bool", False,
                         "Resets the keep-alive time to its original value and cobrautl.Exits immediately")
    group.add(Command("grant <ttl>", "Creates leases", run=run_grant),
              Command("revoke <leaseID>", "Revokes leases", run=run_revoke), timetolive,
              Command("list", "List all active leases", run=run_list), keep_alive)
    return group


def lease_id(arg: str) -> int:
    try:
        return gofmt.parse_int(arg, 16, 64)
    except gofmt.GoError as exc:
        raise Exit(EXIT_BAD_ARGS, f"bad lease ID arg ({exc}), expecting ID in Hex") from None


def _flat(resp, **fields) -> bytes:
    """json of a clientv3 lease response: the embedded header's fields, then its own."""
    return go_dumps({**go_json(resp.header), **fields}).encode() + b"\n"


def _fields(resp, *lines: str) -> bytes:
    return "".join(line + "\n" for line in header_fields(resp.header) + list(lines)).encode("utf-8", "surrogateescape")


def _show(ctx: Context, resp, simple: bytes, json_doc: bytes, fields: bytes) -> None:
    fmt = ctx.display.fmt
    if fmt == "table":
        raise Exit(EXIT_BAD_FEATURE, "table not supported as output format")
    write({"simple": simple, "json": json_doc, "fields": fields,
           "protobuf": resp.header.SerializeToString()}[fmt])
    sys.stdout.flush()


def _call(ctx: Context, method: str, request, failure: str = "%s"):
    try:
        return ctx.call(method, request, ctx.flags["command-timeout"], service="lease")
    except Exit as exc:
        raise Exit(exc.code, failure % exc.message) from None


def run_grant(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl = gofmt.parse_int(args[0], 10, 64)
    except gofmt.GoError as exc:
        raise Exit(EXIT_BAD_ARGS, f"bad TTL ({exc})") from None
    ctx = Context(cmd)
    ctx.connect()
    resp = _call(ctx, "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl), "failed to grant lease (%s)")
    _show(ctx, resp, b"lease %016x granted with TTL(%ds)\n" % (resp.ID, resp.TTL),
          _flat(resp, ID=resp.ID, TTL=resp.TTL, Error=resp.error), _fields(resp, f'"ID" : {resp.ID}', f'"TTL" : {resp.TTL}'))


def run_revoke(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lid = lease_id(args[0])
    ctx = Context(cmd)
    ctx.connect()
    resp = _call(ctx, "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lid), "failed to revoke lease (%s)")
    if ctx.display.fmt == "protobuf":
        h = resp.header
        text = "".join(f"{name}:{getattr(h, name)} " for name in ("cluster_id", "member_id", "revision", "raft_term")
                       if getattr(h, name))
        raise Exit(EXIT_BAD_FEATURE, f"marshal unsupported for type clientv3.LeaseRevokeResponse ({{{text} {{}} [] 0}})")
    _show(ctx, resp, b"lease %016x revoked\n" % lid, go_dumps(go_json(resp)).encode() + b"\n", _fields(resp))


def run_timetolive(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    lid = lease_id(args[0])
    ctx = Context(cmd)
    ctx.connect()
    with_keys = ctx.flags["keys"]
    resp = _call(ctx, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=with_keys))
    if resp.TTL == -1:
        simple = b"lease %016x already expired\n" % resp.ID
    else:
        simple = b"lease %016x granted with TTL(%ds), remaining(%ds)" % (resp.ID, resp.grantedTTL, resp.TTL)
        if with_keys:
            simple += b", attached keys([" + b" ".join(resp.keys) + b"])"
        simple += b"\n"
    h = resp.header
    doc = {"cluster_id": h.cluster_id, "member_id": h.member_id, "revision": h.revision, "raft_term": h.raft_term,
           "id": resp.ID, "ttl": resp.TTL, "granted-ttl": resp.grantedTTL,
           "keys": [base64.b64encode(k).decode() for k in resp.keys] or None}
    lines = [f'"ID" : {resp.ID}', f'"TTL" : {resp.TTL}', f'"GrantedTTL" : {resp.grantedTTL}']
    lines += [f'"Key" : {gofmt.go_quote(k)}' for k in resp.keys]
    _show(ctx, resp, simple, go_dumps(doc).encode() + b"\n", _fields(resp, *lines))


def run_list(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = Context(cmd)
    ctx.connect()
    resp = _call(ctx, "LeaseLeases", rpc_pb2.LeaseLeasesRequest())
    ids = [lease.ID for lease in resp.leases]
    simple = b"found %d leases\n" % len(ids) + b"".join(b"%016x\n" % i for i in ids)
    _show(ctx, resp, simple, _flat(resp, leases=[{"id": i} for i in ids]), _fields(resp, *(f'"ID" : {i}' for i in ids)))


def _show_keep_alive(ctx: Context, resp) -> None:
    _show(ctx, resp, b"lease %016x keepalived with TTL(%d)\n" % (resp.ID, resp.TTL), _flat(resp, ID=resp.ID, TTL=resp.TTL),
          _fields(resp, f'"ID" : {resp.ID}', f'"TTL" : {resp.TTL}'))


def run_keep_alive(cmd: Command, args: list[str]) -> None:
    from pyetcd.errors import EtcdError

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lid = lease_id(args[0])
    ctx = Context(cmd)
    ctx.connect()
    if ctx.flags["once"]:
        try:
            resp = ctx.client.keep_alive_once(lid, timeout=ctx.flags["command-timeout"])
        except EtcdError as exc:
            raise Exit(EXIT_BAD_CONNECTION, exc.message) from None
        _show_keep_alive(ctx, resp)
        return
    def on_response(resp) -> None:
        if resp.TTL > 0:
            _show_keep_alive(ctx, resp)

    ka = ctx.client.keep_alive(lid, on_response)
    ka.wait()
    if ka.error is not None:
        raise Exit(EXIT_ERROR, ka.error.message)
    out("lease %016x expired or revoked.\n" % lid)
