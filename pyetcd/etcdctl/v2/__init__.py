"""etcdctl with ETCDCTL_API=2: the v2 command set over etcd's HTTP JSON API."""
from __future__ import annotations

import sys

from pyetcd import ETCD_VERSION
from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.v2.cli import Command, Flag, UsageError, columns, command_help, options_block, parse
from pyetcd.etcdctl.v2.client import ClusterError, EtcdError
from pyetcd.etcdctl.v2.cluster import cluster_commands
from pyetcd.etcdctl.v2.context import EXIT_SERVER_ERROR, GLOBAL_FLAGS, new_context
from pyetcd.etcdctl.v2.keys import key_commands
from pyetcd.etcdctl.v2.watch import watch_commands

HELP = Flag("help, h", "show help")
VERSION = Flag("version, v", "print the version")


# etcdctl 3.5.1's v2 commands in its help order; pyetcd does not build backup, user, role and auth yet.
_ORDER = ("backup", "cluster-health", "mk", "mkdir", "rm", "rmdir", "get", "ls", "set", "setdir", "update",
          "updatedir", "watch", "exec-watch", "member", "user", "role", "auth")
_NOT_BUILT = [Command("backup", "--data-dir=... --backup-dir={output}"),
              Command("user", "user add, grant and revoke subcommands"),
              Command("role", "role add, grant and revoke subcommands"), Command("auth", "overall auth controls")]


def _not_built(ctx, _flags: dict, _args: list[str]) -> None:
    raise g.Exit(g.EXIT_ERROR, "this v2 command is not implemented by pyetcd yet")


def commands() -> list[Command]:
    built = key_commands() + watch_commands() + cluster_commands()
    for cmd in _NOT_BUILT:
        cmd.action = _not_built
    return sorted(built + _NOT_BUILT, key=lambda c: _ORDER.index(c.name))


def root_help(cmds: list[Command]) -> str:
    names = [(c.name, c.usage) for c in cmds] + [("help, h", "Shows a list of commands or help for one command")]
    listing = columns(names)
    return (f"NAME:\n   etcdctl - A simple command line client for etcd.\n\nUSAGE:\n"
            f"   etcdctl [global options] command [command options] [arguments...]\n\nVERSION:\n   {ETCD_VERSION}\n\n"
            f"COMMANDS:\n{listing}\nGLOBAL OPTIONS:\n{options_block(GLOBAL_FLAGS + [HELP, VERSION])}")


def _find(commands: list[Command], name: str) -> Command | None:
    return next((c for c in commands if c.name == name), None)


def _run(commands: list[Command], args: list[str]) -> None:
    try:
        global_flags, rest = parse(GLOBAL_FLAGS + [HELP, VERSION], args, interspersed=False)
    except UsageError as exc:
        sys.stdout.write(f"Incorrect Usage. {exc}\n\n{root_help(commands)}")
        sys.stderr.write(f"{exc}\n")
        raise g.Exit(g.EXIT_ERROR, None) from None
    if global_flags["version"]:
        sys.stdout.write(f"etcdctl version: {ETCD_VERSION}\nAPI version: 2\n")
        return
    if global_flags["help"] or not rest or rest[0] in ("help", "h") and len(rest) == 1:
        sys.stdout.write(root_help(commands))
        return
    if rest[0] in ("help", "h"):
        cmd = _find(commands, rest[1])
        if cmd is not None and cmd.subcommands:  # urfave/cli shows a group's help as a plain command's here
            sys.stdout.write(command_help(Command(cmd.name, cmd.usage, "[arguments...]")))
            return
        rest = [rest[1], "--help"]
    cmd = _find(commands, rest[0])
    args = rest[1:]
    parent = ""
    while cmd is not None and cmd.subcommands and args and args[0] not in ("--help", "-h"):
        parent = cmd.name
        cmd, args = _find(cmd.subcommands, args[0]), args[1:]
    if cmd is not None and cmd.subcommands:
        sys.stdout.write(command_help(cmd))
        return
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
        sys.stdout.write(command_help(cmd, parent))
        return
    cmd.action(new_context(global_flags), flags, args)


def main(args: list[str]) -> int:
    try:
        _run(commands(), args)
        code = 0
    except (EtcdError, ClusterError) as exc:
        sys.stderr.write(f"Error:  {exc}\n")
        code = EXIT_SERVER_ERROR
    except g.Exit as exc:
        if exc.message is not None:
            sys.stderr.write(f"Error:  {exc.message}\n")
        code = exc.code
    except BrokenPipeError:
        code = g.EXIT_ERROR
    sys.stdout.flush()
    return code
