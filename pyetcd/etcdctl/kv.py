"""etcdctl put / get / del / compaction: flags, request building, running.

The ``new_*_command`` factories are also used by ``txn`` to parse its request lines.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, Context, Exit

Run = Callable[[Command, list[str]], None]

PUT_LONG = """
Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.
"""

SORT_TARGETS = {"": 0, "KEY": 0, "VERSION": 1, "CREATE": 2, "MODIFY": 3, "VALUE": 4}
SORT_ORDERS = {"": 0, "ASCEND": 1, "DESCEND": 2}


def _bytes(arg: str) -> bytes:
    return arg.encode("utf-8", "surrogateescape")


def read_stdin() -> bytes:
    """The rest of standard input, unbuffered (txn may have consumed the beginning)."""
    chunks = []
    while True:
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -- put ----------------------------------------------------------------------------------------
def new_put_command(run: Run, etcdctl_style: bool = True) -> Command:
    cmd = Command("put [options] <key> <value> (<value> can also be given from stdin)",
                  "Puts the given key into the store", PUT_LONG.strip("\n") if etcdctl_style else PUT_LONG,
                  run=run, etcdctl_style=etcdctl_style)
    cmd.flags.add("lease", "string", "0", "lease ID (in hexadecimal) to attach to the key")
    cmd.flags.add("prev-kv", "bool", False, "return the previous key-value pair before modification")
    cmd.flags.add("ignore-value", "bool", False, "updates the key using its current value")
    cmd.flags.add("ignore-lease", "bool", False, "updates the key using its current lease")
    return cmd


def put_request(cmd: Command, args: list[str]):
    from pyetcd.proto.etcdserverpb import rpc_pb2

    f = cmd.flagset()
    usage = "put command needs 1 argument and input from stdin or 2 arguments"
    if not args:
        raise Exit(EXIT_BAD_ARGS, usage)
    if f["ignore-value"] and len(args) > 1:
        raise Exit(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set")
    value = _bytes(args[1]) if len(args) > 1 else read_stdin()
    if not value and len(args) < 2 and not f["ignore-value"]:
        raise Exit(EXIT_BAD_ARGS, usage)
    try:
        lease = gofmt.parse_int(f["lease"], 16, 64)
    except gofmt.GoError as exc:
        raise Exit(EXIT_BAD_ARGS, f"bad lease ID ({exc}), expecting ID in Hex") from None
    return rpc_pb2.PutRequest(key=_bytes(args[0]), value=value, lease=lease, prev_kv=f["prev-kv"],
                              ignore_value=f["ignore-value"], ignore_lease=f["ignore-lease"])


# -- get ----------------------------------------------------------------------------------------
def new_get_command(run: Run, etcdctl_style: bool = True) -> Command:
    cmd = Command("get [options] <key> [range_end]", "Gets the key or a range of keys", run=run,
                  etcdctl_style=etcdctl_style)
    cmd.flags.add("consistency", "string", "l", "Linearizable(l) or Serializable(s)")
    cmd.flags.add("order", "string", "", "Order of results; ASCEND or DESCEND (ASCEND by default)")
    cmd.flags.add("sort-by", "string", "", "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION")
    cmd.flags.add("limit", "int64", 0, "Maximum number of results")
    cmd.flags.add("prefix", "bool", False, "Get keys with matching prefix")
    cmd.flags.add("from-key", "bool", False, "Get keys that are greater than or equal to the given key using byte compare")
    cmd.flags.add("rev", "int64", 0, "Specify the kv revision")
    cmd.flags.add("keys-only", "bool", False, "Get only the keys")
    cmd.flags.add("count-only", "bool", False, "Get only the count")
    cmd.flags.add("print-value-only", "bool", False, 'Only write values when using the "simple" output format')
    return cmd


def _range_end(key: bytes, explicit: list[str], prefix: bool, from_key: bool) -> tuple[bytes, bytes]:
    from pyetcd.client import prefix_end

    end = _bytes(explicit[0]) if explicit else b""
    if prefix:
        if not key:
            return b"\x00", b"\x00"
        return key, prefix_end(key)
    if from_key:
        return key or b"\x00", b"\x00"
    return key, end


def get_request(cmd: Command, args: list[str]):
    from pyetcd.proto.etcdserverpb import rpc_pb2

    f = cmd.flagset()
    if not args:
        raise Exit(EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end")
    if f["prefix"] and f["from-key"]:
        raise Exit(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
    if f["keys-only"] and f["count-only"]:
        raise Exit(EXIT_BAD_ARGS, "`--keys-only` and `--count-only` cannot be set at the same time, choose one")
    if f["consistency"] not in ("l", "s"):
        raise Exit(EXIT_BAD_FEATURE, f'unknown consistency flag "{gofmt.go_quote_str(f["consistency"])}"')
    if len(args) > 1 and (f["prefix"] or f["from-key"]):
        raise Exit(EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
    order = SORT_ORDERS.get(f["order"].upper())
    if order is None:
        raise Exit(EXIT_BAD_FEATURE, f"bad sort order {f['order']}")
    target = SORT_TARGETS.get(f["sort-by"].upper())
    if target is None:
        raise Exit(EXIT_BAD_FEATURE, f"bad sort target {f['sort-by']}")
    if target == 0 and order == 1:
        order = 0  # the server returns keys ascending anyway (clientv3.WithSort does this)
    key, end = _range_end(_bytes(args[0]), args[1:2], f["prefix"], f["from-key"])
    return rpc_pb2.RangeRequest(key=key, range_end=end, limit=f["limit"], revision=max(f["rev"], 0),
                                sort_order=order, sort_target=target, serializable=f["consistency"] == "s",
                                keys_only=f["keys-only"], count_only=f["count-only"])


# -- del ----------------------------------------------------------------------------------------
def new_del_command(run: Run, etcdctl_style: bool = True) -> Command:
    cmd = Command("del [options] <key> [range_end]", "Removes the specified key or range of keys [key, range_end)",
                  run=run, etcdctl_style=etcdctl_style)
    cmd.flags.add("prefix", "bool", False, "delete keys with matching prefix")
    cmd.flags.add("prev-kv", "bool", False, "return deleted key-value pairs")
    cmd.flags.add("from-key", "bool", False, "delete keys that are greater than or equal to the given key using byte compare")
    return cmd


def del_request(cmd: Command, args: list[str]):
    from pyetcd.proto.etcdserverpb import rpc_pb2

    f = cmd.flagset()
    if not args or len(args) > 2:
        raise Exit(EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end")
    if f["prefix"] and f["from-key"]:
        raise Exit(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
    if len(args) > 1 and (f["prefix"] or f["from-key"]):
        raise Exit(EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
    key, end = _range_end(_bytes(args[0]), args[1:2], f["prefix"], f["from-key"])
    return rpc_pb2.DeleteRangeRequest(key=key, range_end=end, prev_kv=f["prev-kv"])


# -- running them -----------------------------------------------------------------------------
def run_put(cmd: Command, args: list[str]) -> None:
    req = put_request(cmd, args)
    ctx = Context(cmd)
    timeout = ctx.flags["command-timeout"]  # read before the environment is applied, as etcdctl does
    ctx.connect()
    ctx.show("put", ctx.call("Put", req, timeout))


def run_get(cmd: Command, args: list[str]) -> None:
    req = get_request(cmd, args)
    ctx = Context(cmd)
    timeout = ctx.flags["command-timeout"]
    ctx.connect()
    resp = ctx.call("Range", req, timeout)
    if ctx.flags["count-only"] and ctx.display.fmt != "fields":
        raise Exit(EXIT_BAD_ARGS, "--count-only is only for `--write-out=fields`")
    if ctx.flags["print-value-only"]:
        if ctx.display.fmt != "simple":
            raise Exit(EXIT_BAD_ARGS, "print-value-only is only for `--write-out=simple`")
        ctx.display.value_only = True
    ctx.show("get", resp)


def run_del(cmd: Command, args: list[str]) -> None:
    req = del_request(cmd, args)
    ctx = Context(cmd)
    timeout = ctx.flags["command-timeout"]
    ctx.connect()
    ctx.show("del", ctx.call("DeleteRange", req, timeout))


def run_compaction(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "compaction command needs 1 argument")
    try:
        rev = gofmt.parse_int(args[0], 10, 64)
    except gofmt.GoError as exc:
        raise Exit(EXIT_ERROR, str(exc)) from None
    ctx = Context(cmd)
    ctx.connect()
    req = rpc_pb2.CompactionRequest(revision=rev, physical=ctx.flags["physical"])
    ctx.call("Compact", req, ctx.flags["command-timeout"])
    sys.stdout.write(f"compacted revision {rev}\n")


def new_compaction_command() -> Command:
    cmd = Command("compaction [options] <revision>", "Compacts the event history in etcd", run=run_compaction)
    cmd.flags.add("physical", "bool", False, "'true' to wait for compaction to physically remove all old revisions")
    return cmd
