"""A small urfave/cli v1 style parser: Go flag syntax, flags moved ahead of arguments, v1 help layout."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable


class UsageError(Exception):
    """Bad flags: urfave/cli prints 'Incorrect Usage' and the command's help."""


@dataclass
class Flag:
    name: str  # "ttl" or "recursive, r": the first is the long name
    usage: str
    kind: str = "bool"  # bool, string, int or duration (a string shown unquoted)
    default: object = None
    env: str = ""

    @property
    def names(self) -> list[str]:
        return [n.strip() for n in self.name.split(",")]

    def help_name(self) -> str:
        # urfave/cli takes the usage's first `quoted` word as the value's placeholder
        placeholder = self.usage.split("`")[1] if "`" in self.usage else "value"
        suffix = "" if self.kind == "bool" else " " + placeholder
        return ", ".join(("-" if len(n) == 1 else "--") + n + suffix for n in self.names)

    def help_usage(self) -> str:
        text = self.usage.replace("`", "", 2)
        if self.kind == "int" or (self.kind in ("string", "duration") and self.default):
            default = f'"{self.default}"' if self.kind == "string" else self.default or 0
            text += f" (default: {default})"
        return text

    def zero(self) -> object:
        if self.env and os.environ.get(self.env):
            return os.environ[self.env]
        if self.default is not None:
            return self.default
        return {"bool": False, "string": "", "int": 0}[self.kind]


@dataclass
class Command:
    name: str
    usage: str
    args_usage: str = ""
    description: str = ""
    flags: list[Flag] = field(default_factory=list)
    action: Callable | None = None
    subcommands: list["Command"] = field(default_factory=list)


def _lookup(flags: list[Flag], name: str) -> Flag | None:
    return next((f for f in flags if name in f.names), None)


def _convert(flag: Flag, name: str, text: str) -> object:
    if flag.kind == "int":
        try:
            return int(text, 0)
        except ValueError:
            raise UsageError(f'invalid value "{text}" for flag -{name}: parse error') from None
    if flag.kind == "bool":
        if text.lower() not in ("1", "0", "t", "f", "true", "false"):
            raise UsageError(f'invalid boolean value "{text}" for -{name}: parse error')
        return text.lower() in ("1", "t", "true")
    return text


def parse(flags: list[Flag], args: list[str], interspersed: bool) -> tuple[dict[str, object], list[str]]:
    """Go's flag.Parse; with interspersed, flags after arguments count too (urfave/cli v1 reorders them)."""
    values = {f.names[0]: f.zero() for f in flags}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            if not interspersed:
                rest.extend(args[i:])
                break
            continue
        name, eq, text = arg.lstrip("-").partition("=")
        flag = _lookup(flags, name)
        if flag is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if flag.kind != "bool" and not eq:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            text = args[i]
            i += 1
        values[flag.names[0]] = _convert(flag, name, text) if (eq or flag.kind != "bool") else True
    return values, rest


def columns(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "".join(f"   {name:<{width}}  {text}\n" for name, text in rows)


def options_block(flags: list[Flag]) -> str:
    return columns([(f.help_name(), f.help_usage()) for f in flags])


def command_help(cmd: Command, parent: str = "") -> str:
    if cmd.subcommands:
        return (f"NAME:\n   etcdctl {cmd.name} - {cmd.usage}\n\nUSAGE:\n"
                f"   etcdctl {cmd.name} command [command options] [arguments...]\n\nCOMMANDS:\n"
                f"{columns([(c.name, c.usage) for c in cmd.subcommands])}\nOPTIONS:\n   --help, -h  show help\n   \n")
    name = f"{parent} {cmd.name}".strip()
    opts = " [command options]" if cmd.flags else ""
    text = f"NAME:\n   etcdctl {name} - {cmd.usage}\n\nUSAGE:\n   etcdctl {name}{opts} {cmd.args_usage}\n"
    if cmd.description:
        body = "\n".join(("   " + line) if line else "" for line in cmd.description.split("\n"))
        text += f"\nDESCRIPTION:\n{body}\n"
    if cmd.flags:
        text += "\nOPTIONS:\n" + options_block(cmd.flags) + "   \n"
    return text
