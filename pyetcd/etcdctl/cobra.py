"""A command tree that behaves like spf13/cobra 1.1 as etcdctl 3.5 uses it.

Command lookup skips flags the way cobra does, unknown commands get cobra's suggestions, flag
errors print the usage and the error, ``-h/--help`` and ``help <cmd>`` print the help.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.flags import Flag, FlagError, FlagSet, etcdctl_usage_lines, pflag_usages


class CommandError(Exception):
    """An error cobra returns from Execute; etcdctl's main prints it once more and exits 1."""


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # keep stdout and stderr in the order etcdctl writes them


def err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


@dataclass
class Command:
    use: str
    short: str = ""
    long: str = ""
    run: Optional[Callable[["Command", list[str]], None]] = None
    flags: FlagSet = field(default_factory=FlagSet)
    persistent: FlagSet = field(default_factory=FlagSet)
    children: list["Command"] = field(default_factory=list)
    parent: Optional["Command"] = None
    silence_errors: bool = False
    etcdctl_style: bool = True
    header: str = ""  # shown before COMMANDS by commands with subcommands (VERSION, API VERSION)
    args_len_at_dash: int = -1  # positional arguments before `--` when it ran (-1: none)

    def __post_init__(self) -> None:
        self.flags.add("help", "bool", False, f"help for {self.name}", "h")

    @property
    def name(self) -> str:
        return self.use.split(" ", 1)[0]

    def add(self, *cmds: "Command") -> None:
        for cmd in cmds:
            cmd.parent = self
            self.children.append(cmd)

    def path(self) -> str:
        return f"{self.parent.path()} {self.name}" if self.parent else self.name

    def use_line(self) -> str:
        line = f"{self.parent.path()} {self.use}" if self.parent else self.use
        return line if "[flags]" in line else line + " [flags]"

    def inherited(self) -> list[Flag]:
        found: dict[str, Flag] = {}
        node = self.parent
        while node:
            for f in node.persistent.flags.values():
                found.setdefault(f.name, f)
            node = node.parent
        return [found[k] for k in sorted(found)]

    def flagset(self) -> FlagSet:
        """Local, persistent and inherited flags together, as cobra merges them for parsing."""
        merged = FlagSet()
        for f in list(self.flags.flags.values()) + list(self.persistent.flags.values()) + self.inherited():
            merged.flags.setdefault(f.name, f)
        return merged

    def leaf_rows(self, prefix: str = "") -> list[tuple[str, str]]:
        """(path below this command, summary) of every runnable command under it, sorted."""
        rows = []
        for child in sorted(self.children, key=lambda c: c.name):
            path = f"{prefix}{child.name}"
            rows += child.leaf_rows(path + " ") if child.children else [(path, child.short)]
        return rows

    def lookup_flags(self) -> FlagSet:
        """The flags cobra knows while it looks up a command: -h/--help is added only later."""
        fs = FlagSet()
        fs.flags = {k: f for k, f in self.flagset().flags.items() if k != "help"}
        return fs

    def find_child(self, name: str) -> Optional["Command"]:
        return next((c for c in self.children if c.name == name), None)

    # -- help ------------------------------------------------------------------------------
    def usage_text(self, with_help_flag: bool = True) -> str:
        if not self.etcdctl_style:
            text = f"Usage:\n  {self.use_line()}\n\nFlags:\n"
            text += pflag_usages(sorted(self.flags.flags.values(), key=lambda f: f.name)).rstrip() + "\n"
            return text
        name = self.path().split(" ", 1)[1] if self.parent else self.name
        parts = [f"NAME:\n\t{name} - {self.short}\n\nUSAGE:\n\t{self.use_line()}\n"]
        if self.long:
            parts.append("\nDESCRIPTION:\n" + "\n".join("\t" + ln for ln in self.long.split("\n")) + "\n")
        if self.header:
            parts.append(self.header)
        rows = self.leaf_rows()
        if rows:
            parts.append("\nCOMMANDS:\n" + "\n".join(f"\t{p}\t{s}" for p, s in rows) + "\n")
        local = sorted(list(self.flags.flags.values()) + list(self.persistent.flags.values()), key=lambda f: f.name)
        if not with_help_flag:  # cobra adds -h/--help only to the command being executed
            local = [f for f in local if f.name != "help"]
        parts.append("\nOPTIONS:\n" + etcdctl_usage_lines(local) + "\n")
        inherited = self.inherited()
        if inherited:
            parts.append("\nGLOBAL OPTIONS:\n" + etcdctl_usage_lines(inherited) + "\n")
        return gofmt.tabwrite("".join(parts)) + "\n"

    def print_help(self) -> None:
        if self.etcdctl_style:
            out(self.usage_text())
        else:
            long = (self.long or self.short).rstrip()
            out((long + "\n\n" if long else "") + self.usage_text())

    def print_usage_after_error(self) -> None:
        if self.etcdctl_style:
            out(self.usage_text())  # etcdctl's usage function writes to stdout directly
            err("\n")
        else:
            err(self.usage_text() + "\n")


def _strip_flags(args: list[str], flags: FlagSet) -> list[str]:
    commands = []
    args = list(args)
    while args:
        s = args.pop(0)
        if s == "--":
            break
        if s.startswith("-") and (s.startswith("--") or len(s) == 2) and flags.takes_value(s):
            if len(args) <= 1:
                break
            args.pop(0)
        elif s and not s.startswith("-"):
            commands.append(s)
    return commands


def _levenshtein(a: str, b: str) -> int:
    a, b = a.lower(), b.lower()
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _suggestions(root: Command, typed: str) -> str:
    names = sorted(c.name for c in root.children if c.name != "help")
    hits = [n for n in names if _levenshtein(typed, n) <= 2 or n.lower().startswith(typed.lower())]
    return "\n\nDid you mean this?\n" + "".join(f"\t{n}\n" for n in hits) if hits else ""


def find(root: Command, args: list[str]) -> tuple[Command, list[str]]:
    """cobra's Find: the command named by args (flags skipped) and the args left for it."""
    cmd = root
    while True:
        words = _strip_flags(args, cmd.lookup_flags())
        nxt = cmd.find_child(words[0]) if words else None
        if nxt is None:
            break
        args = list(args)
        args.remove(words[0])
        cmd = nxt
    if cmd.children and cmd.parent is None:
        words = _strip_flags(args, cmd.lookup_flags())
        if words:
            raise _UnknownCommand(cmd, f'unknown command "{words[0]}" for "{cmd.path()}"' + _suggestions(cmd, words[0]))
    return cmd, args


class _UnknownCommand(Exception):
    def __init__(self, cmd: Command, message: str) -> None:
        super().__init__(message)
        self.cmd = cmd


def execute(root: Command, args: list[str]) -> None:
    """Run the command args name; raise CommandError as cobra's Execute would return it."""
    try:
        cmd, rest = find(root, args)
    except _UnknownCommand as exc:
        if not root.silence_errors:
            err(f"Error: {exc}\nRun '{exc.cmd.path()} --help' for usage.\n")
        raise CommandError(str(exc)) from None
    flags = cmd.flagset()
    try:
        positional = flags.parse(rest)
        cmd.args_len_at_dash = flags.dash_at
    except FlagError as exc:
        if not root.silence_errors:
            err(f"Error: {exc}\n")
        cmd.print_usage_after_error()
        raise CommandError(str(exc)) from None
    if flags["help"] or cmd.run is None:
        cmd.print_help()
        return
    cmd.run(cmd, positional)


def help_command(root: Command) -> Command:
    """cobra's `help [command]`."""
    def run(_cmd: Command, args: list[str]) -> None:
        try:
            target, _ = find(root, args)
        except _UnknownCommand:
            err("Unknown help topic [%s]\n" % " ".join(f"`{a}`" for a in args))
            out(root.usage_text(with_help_flag=False))
            return
        target.print_help()

    return Command("help [command]", "Help about any command", run=run)
