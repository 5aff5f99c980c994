"""The v2 watch commands: watch (print each change) and exec-watch (run a command on each change)."""
from __future__ import annotations

import os
import subprocess

from pyetcd.etcdctl.v2.cli import Command, Flag
from pyetcd.etcdctl.v2.client import Answer, key_path
from pyetcd.etcdctl.v2.context import Context, bad_args
from pyetcd.etcdctl.v2.printer import print_response

AFTER_INDEX = Flag("after-index", "watch after the given index", "int")


def _changes(ctx: Context, key: str, recursive: bool, after_index: int):
    """Each change to key (and its children), waiting on the server one change at a time."""
    wait_index = after_index + 1 if after_index else 0
    while True:
        query = {"wait": "true", "recursive": "true" if recursive else "false"}
        if wait_index:
            query["waitIndex"] = str(wait_index)
        answer = ctx.client.request("GET", key_path(key), query=query, wait=True)
        yield answer
        wait_index = answer.body["node"]["modifiedIndex"] + 1


def run_watch(ctx: Context, flags: dict, args: list[str]) -> None:
    if not args:
        bad_args("key required")
    for answer in _changes(ctx, args[0], flags["recursive"], flags["after-index"]):
        if flags["recursive"]:
            print(f"[{answer.body['action']}] {answer.body['node']['key']}")
        print_response(answer, ctx.output)
        if not flags["forever"]:
            return


def _watch_env(answer: Answer) -> dict[str, str]:
    node = answer.body["node"]
    return {"ETCD_WATCH_ACTION": answer.body["action"], "ETCD_WATCH_KEY": node["key"],
            "ETCD_WATCH_VALUE": node.get("value", ""), "ETCD_WATCH_MODIFIED_INDEX": str(node["modifiedIndex"])}


def run_exec_watch(ctx: Context, flags: dict, args: list[str]) -> None:
    if len(args) < 2:
        bad_args("key and command to exec required")
    key, argv = args[0], args[1:]
    for answer in _changes(ctx, key, flags["recursive"], flags["after-index"]):
        subprocess.run(argv, env={**os.environ, **_watch_env(answer)})


def watch_commands() -> list[Command]:
    return [
        Command("watch", "watch a key for changes", "<key>",
                flags=[Flag("forever, f", "forever watch a key until CTRL+C"), AFTER_INDEX,
                       Flag("recursive, r", "returns all values for key and child keys")], action=run_watch),
        Command("exec-watch", "watch a key for changes and exec an executable", "<key> <command> [args...]",
                flags=[AFTER_INDEX, Flag("recursive, r", "watch all values for key and child keys")],
                action=run_exec_watch),
    ]
