"""The v2 key commands: set, get, mk, mkdir, rm, rmdir, ls, setdir, update, updatedir."""
from __future__ import annotations

import sys

from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.v2.cli import Command, Flag
from pyetcd.etcdctl.v2.client import key_path
from pyetcd.etcdctl.v2.context import Context, bad_args
from pyetcd.etcdctl.v2.printer import print_response

TTL = Flag("ttl", "key time-to-live in seconds", "int")
QUORUM = Flag("quorum, q", "require quorum for get request")
SORT = Flag("sort", "returns result in sorted order")


def _key(args: list[str]) -> str:
    if not args:
        bad_args("key required")
    return args[0]


def _key_value(args: list[str]) -> tuple[str, str]:
    key = _key(args)
    if len(args) > 1:
        return key, args[1]
    value = "" if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not value:
        bad_args("value required")
    return key, value


def _put(ctx: Context, key: str, form: dict[str, str], ttl: int) -> None:
    if ttl:
        form["ttl"] = str(ttl)
    print_response(ctx.client.request("PUT", key_path(key), form=form), ctx.output)


def _dir_put(ctx: Context, key: str, form: dict[str, str], ttl: int) -> None:
    form["dir"] = "true"
    if ttl:
        form["ttl"] = str(ttl)
    answer = ctx.client.request("PUT", key_path(key), form=form)
    if ctx.output != "simple":
        print_response(answer, ctx.output)


def run_set(ctx: Context, flags: dict, args: list[str]) -> None:
    key, value = _key_value(args)
    form = {"value": value}
    if flags["swap-with-value"]:
        form["prevValue"] = flags["swap-with-value"]
    if flags["swap-with-index"]:
        form["prevIndex"] = str(flags["swap-with-index"])
    _put(ctx, key, form, flags["ttl"])


def run_mk(ctx: Context, flags: dict, args: list[str]) -> None:
    key, value = _key_value(args)
    if flags["in-order"]:
        form = {"value": value, **({"ttl": str(flags["ttl"])} if flags["ttl"] else {})}
        print_response(ctx.client.request("POST", key_path(key), form=form), ctx.output)
        return
    _put(ctx, key, {"value": value, "prevExist": "false"}, flags["ttl"])


def run_update(ctx: Context, flags: dict, args: list[str]) -> None:
    key, value = _key_value(args)
    _put(ctx, key, {"value": value, "prevExist": "true"}, flags["ttl"])


def run_mkdir(ctx: Context, flags: dict, args: list[str]) -> None:
    _dir_put(ctx, _key(args), {"prevExist": "false"}, flags["ttl"])


def run_setdir(ctx: Context, flags: dict, args: list[str]) -> None:
    _dir_put(ctx, _key(args), {}, flags["ttl"])


def run_updatedir(ctx: Context, flags: dict, args: list[str]) -> None:
    _dir_put(ctx, _key(args), {"prevExist": "true"}, flags["ttl"])


def _delete(ctx: Context, key: str, query: dict[str, str]) -> None:
    answer = ctx.client.request("DELETE", key_path(key), query=query)
    if not (answer.body.get("node") or {}).get("dir") or ctx.output != "simple":
        print_response(answer, ctx.output)


def run_rm(ctx: Context, flags: dict, args: list[str]) -> None:
    query = {}
    if flags["dir"]:
        query["dir"] = "true"
    if flags["recursive"]:
        query["recursive"] = "true"
    if flags["with-value"]:
        query["prevValue"] = flags["with-value"]
    if flags["with-index"]:
        query["prevIndex"] = str(flags["with-index"])
    _delete(ctx, _key(args), query)


def run_rmdir(ctx: Context, _flags: dict, args: list[str]) -> None:
    _delete(ctx, _key(args), {"dir": "true"})


def _read(ctx: Context, key: str, flags: dict, recursive: bool):
    query = {"quorum": _bool(flags["quorum"]), "recursive": _bool(recursive), "sorted": _bool(flags["sort"])}
    return ctx.client.request("GET", key_path(key), query=query)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def run_get(ctx: Context, flags: dict, args: list[str]) -> None:
    key = _key(args)
    answer = _read(ctx, key, flags, False)
    if (answer.body.get("node") or {}).get("dir"):
        sys.stderr.write(f"{answer.body['node']['key']}: is a directory\n")
        raise g.Exit(g.EXIT_ERROR, None)
    print_response(answer, ctx.output)


def run_ls(ctx: Context, flags: dict, args: list[str]) -> None:
    answer = _read(ctx, args[0] if args else "/", flags, flags["recursive"])
    if ctx.output != "simple":
        print_response(answer, ctx.output)
        return
    node = answer.body.get("node") or {}
    if not node.get("dir"):
        print(node.get("key", ""))
    _print_tree(node.get("nodes") or [], flags["p"])


def _print_tree(nodes: list[dict], slash: bool) -> None:
    for node in nodes:
        print(node["key"] + ("/" if slash and node.get("dir") else ""))
        _print_tree(node.get("nodes") or [], slash)


_SET_DESCRIPTION = """Set sets the value of a key.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ set -- <key> <value>"""


def key_commands() -> list[Command]:
    return [
        Command("get", "retrieve the value of a key", "<key>", flags=[SORT, QUORUM], action=run_get),
        Command("set", "set the value of a key", "<key> <value>", _SET_DESCRIPTION,
                [TTL, Flag("swap-with-value", "previous value", "string"),
                 Flag("swap-with-index", "previous index", "int")], run_set),
        Command("mk", "make a new key with a given value", "<key> <value>",
                flags=[Flag("in-order", "create in-order key under directory <key>"), TTL], action=run_mk),
        Command("rm", "remove a key or a directory", "<key>",
                flags=[Flag("dir", "removes the key if it is an empty directory or a key-value pair"),
                       Flag("recursive, r", "removes the key and all child keys(if it is a directory)"),
                       Flag("with-value", "previous value", "string"),
                       Flag("with-index", "previous index", "int")], action=run_rm),
        Command("mkdir", "make a new directory", "<key>", flags=[TTL], action=run_mkdir),
        Command("rmdir", "removes the key if it is an empty directory or a key-value pair", "<key>",
                action=run_rmdir),
        Command("ls", "retrieve a directory", "[key]",
                flags=[SORT, Flag("recursive, r", "returns all key names recursively for the given path"),
                       Flag("p", "append slash (/) to directories"), QUORUM], action=run_ls),
        Command("setdir", "create a new directory or update an existing directory TTL", "<key>", flags=[TTL],
                action=run_setdir),
        Command("update", "update an existing key with a given value", "<key> <value>", flags=[TTL],
                action=run_update),
        Command("updatedir", "update an existing directory", "<key> <value>", flags=[TTL], action=run_updatedir),
    ]
