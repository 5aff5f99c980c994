"""What etcdctl's auth, user and role commands share: the call to the Auth service and the output
of its responses in etcdctl's formats (simple, json, protobuf, fields where etcdctl has them;
table for none of them)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Sequence

from pyetcd.etcdctl.gofmt import go_quote
from pyetcd.etcdctl.printer import go_dumps, go_json, header_fields, write
from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, Context, Exit

PERM_NAMES = {0: "READ", 1: "WRITE", 2: "READWRITE"}
OPEN_END = b"\x00"


def call(cmd: Command, method: str, request) -> tuple[Context, Any]:
    """Connect as the global flags say and make one Auth call."""
    ctx = Context(cmd)
    ctx.connect()
    return ctx, ctx.call(method, request, ctx.flags["command-timeout"], service="auth")


def one_name(args: list[str], noun: str, what: str) -> str:
    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, f"{noun} {what} command requires {noun} name as its argument")
    return args[0]


def run_named(noun: str, method: str, field: str, text: bytes) -> Callable[[Command, list[str]], None]:
    """A command of one <noun> name: sends ``method``'s request with ``field`` = the name and
    prints ``text % name``."""
    def run(cmd: Command, args: list[str]) -> None:
        from pyetcd.proto.etcdserverpb import rpc_pb2

        name = one_name(args, noun, cmd.name)
        ctx, resp = call(cmd, method, getattr(rpc_pb2, f"Auth{method}Request")(**{field: name}))
        show(ctx, resp, text % name.encode())
    return run


def show(ctx: Context, resp, simple: bytes, fields: Optional[Sequence[str]] = ()) -> None:
    """Print ``resp``: ``simple`` text, json/protobuf of the message, or the header fields plus
    ``fields`` (None: etcdctl's fields printer does not have this response)."""
    fmt = ctx.display.fmt
    if fmt == "simple":
        data = simple
    elif fmt == "json":
        data = go_dumps(go_json(resp)).encode("utf-8", "surrogateescape") + b"\n"
    elif fmt == "protobuf":
        data = resp.SerializeToString()
    elif fmt == "fields" and fields is not None:
        data = "".join(line + "\n" for line in header_fields(resp.header) + list(fields)).encode(
            "utf-8", "surrogateescape")
    else:
        raise Exit(EXIT_BAD_FEATURE, f"{fmt} not supported as output format")
    write(data)
    sys.stdout.flush()


def range_text(key: bytes, range_end: bytes) -> bytes:
    """'[key, end)', or '[key, <open ended>' for a from-key range."""
    return b"[%s, <open ended>" % key if range_end == OPEN_END else b"[%s, %s)" % (key, range_end)


def _perm_line(perm) -> bytes:
    from pyetcd.client import prefix_end

    if not perm.range_end:
        return b"\t%s\n" % perm.key
    line = b"\t" + range_text(perm.key, perm.range_end)
    if perm.range_end != OPEN_END and perm.range_end == prefix_end(perm.key):
        line += b" (prefix %s)" % perm.key
    return line + b"\n"


def role_simple(name: str, resp) -> bytes:
    """`role get`'s simple text: the role's read and write permissions."""
    reads = [_perm_line(p) for p in resp.perm if p.permType in (0, 2)]
    writes = [_perm_line(p) for p in resp.perm if p.permType in (1, 2)]
    return b"Role %s\nKV Read:\n%sKV Write:\n%s" % (name.encode(), b"".join(reads), b"".join(writes))


def role_fields(resp) -> list[str]:
    lines = []
    for p in resp.perm:
        lines += [f'"PermType" :  {PERM_NAMES[p.permType]}', f'"Key" : {go_quote(p.key)}',
                  f'"RangeEnd" : {go_quote(p.range_end)}']
    return lines


def show_role(ctx: Context, name: str, resp) -> None:
    show(ctx, resp, role_simple(name, resp), role_fields(resp))


def names_simple(names: Sequence[str]) -> bytes:
    return "".join(n + "\n" for n in names).encode()
