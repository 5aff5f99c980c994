"""The etcdctl command tree and main(): runs one command, maps errors to etcdctl's exit codes."""
from __future__ import annotations

import os
import sys

from pyetcd import API_VERSION, ETCD_VERSION
from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.cobra import Command, CommandError, err, execute, help_command
from pyetcd.etcdctl.command_list import COMMANDS, GROUPS


def _version(_cmd: Command, _args: list[str]) -> None:
    sys.stdout.write(f"etcdctl version: {ETCD_VERSION}\nAPI version: {API_VERSION}\n")


def _not_built(cmd: Command, _args: list[str]) -> None:
    raise g.Exit(g.EXIT_ERROR, f"`etcdctl {cmd.path().split(' ', 1)[1]}` is not implemented by pyetcd yet")


def build_root() -> Command:
    from pyetcd.etcdctl import (auth, endpoint, kv, lease, lock, maintenance, member, mirror, role, snapshot, txn, user,
                                watch)

    root = Command("etcdctl", "A simple command line client for etcd3.", header=g.ROOT_HEADER)
    g.add_global_flags(root.persistent)
    root.add(kv.new_put_command(kv.run_put), kv.new_get_command(kv.run_get), kv.new_del_command(kv.run_del),
             kv.new_compaction_command(), txn.new_txn_command(), member.new_member_command(),
             member.new_move_leader_command(), endpoint.new_endpoint_command(), watch.new_watch_command(),
             lease.new_lease_command(), lock.new_lock_command(), lock.new_elect_command(),
             mirror.new_mirror_command(), auth.new_auth_command(), user.new_user_command(), role.new_role_command(),
             maintenance.new_alarm_command(), maintenance.new_defrag_command(), snapshot.new_snapshot_command(),
             Command("version", "Prints the version of etcdctl", run=_version), help_command(root))
    # Commands etcdctl 3.5.1 has that pyetcd does not build yet: known, so lookup and help behave.
    for path, short in COMMANDS:
        words = path.split(" ")
        parent = root
        for i, word in enumerate(words):
            child = parent.find_child(word)
            if child is None:
                if i == len(words) - 1:
                    child = Command(word, short, run=_not_built)
                else:
                    use, group_short = GROUPS[word]
                    child = Command(use, group_short, header=g.GROUP_HEADER)
                parent.add(child)
            parent = child
    return root


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    api = os.environ.get("ETCDCTL_API", "")
    if api == "2":
        from pyetcd.etcdctl import v2

        return v2.main(args)
    if api not in ("", "3"):
        err(f"unsupported API version: {api}\n")
        return g.EXIT_ERROR
    try:
        execute(build_root(), args)
        code = 0
    except CommandError as exc:
        err(f"Error: {exc}\n")
        code = g.EXIT_ERROR
    except g.Exit as exc:
        if exc.message is not None:
            err(f"Error: {exc.message}\n")
        code = exc.code
    except BrokenPipeError:
        code = g.EXIT_ERROR
    except Exception as exc:  # a Go panic in etcdctl 3.5.1 (txn input it cannot handle)
        from pyetcd.etcdctl.txn import GoPanic

        if not isinstance(exc, GoPanic):
            raise
        err(f"panic: {exc}\n\ngoroutine 1 [running]:\n")
        code = 2
    sys.stdout.flush()
    return code
