"""etcdctl with ETCDCTL_API=2: the v2 command set over etcd's HTTP JSON API."""
from __future__ import annotations

import sys

from pyetcd import ETCD_VERSION
from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.v2.cli import Command, Flag, UsageError, command_help, parse
from pyetcd.etcdctl.v2.client import ClusterError, EtcdError
from pyetcd.etcdctl.v2.cluster import cluster_commands
from pyetcd.etcdctl.v2.context import EXIT_SERVER_ERROR, GLOBAL_FLAGS, new_context
from pyetcd.etcdctl.v2.keys import key_commands

HELP = Flag("help, h", "show help")
VERSION = Flag("version, v", "print the version")


def _find(commands: list[Command], name: str) -> Command | None:
    return next((c for c in commands if c.name == name), None)


def _run(commands: list[Command], args: list[str]) -> None:
    global_flags, rest = parse(GLOBAL_FLAGS + [HELP, VERSION], args, interspersed=False)
    if global_flags["version"]:
        sys.stdout.write(f"etcdctl version: {ETCD_VERSION}\nAPI version: 2\n")
        return
    if not rest:
        raise g.Exit(g.EXIT_ERROR, "no command given")
    cmd = _find(commands, rest[0])
    args = rest[1:]
    while cmd is not None and cmd.subcommands and args:
        cmd, args = _find(cmd.subcommands, args[0]), args[1:]
    if cmd is None or cmd.action is None:
        sys.stderr.write(f"No help topic for '{rest[0]}'\n")
        raise g.Exit(g.EXIT_INVALID_INPUT, None)
    try:
        flags, args = parse(cmd.flags + [HELP], args, interspersed=True)
    except UsageError as exc:
        sys.stdout.write(f"Incorrect Usage: {exc}\n\n{command_help(cmd)}")
        sys.stderr.write(f"{exc}\n")
        raise g.Exit(g.EXIT_ERROR, None) from None
    if flags["help"]:
        sys.stdout.write(command_help(cmd))
        return
    cmd.action(new_context(global_flags), flags, args)


def main(args: list[str]) -> int:
    try:
        _run(key_commands() + cluster_commands(), args)
        code = 0
    except (EtcdError, ClusterError) as exc:
        sys.stderr.write(f"Error:  {exc}\n")
        code = EXIT_SERVER_ERROR
    except UsageError as exc:
        sys.stderr.write(f"Incorrect Usage. {exc}\n")
        code = g.EXIT_ERROR
    except g.Exit as exc:
        if exc.message is not None:
            sys.stderr.write(f"Error:  {exc.message}\n")
        code = exc.code
    except BrokenPipeError:
        code = g.EXIT_ERROR
    sys.stdout.flush()
    return code
