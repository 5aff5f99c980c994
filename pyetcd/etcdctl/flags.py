"""Command-line flags the way Go's spf13/pflag parses them (etcdctl's flag library).

Flags may come before or after positional arguments, ``--flag value``, ``--flag=value``,
bool flags ``--flag`` / ``--flag=false``, short flags (``-w json``, ``-wjson``, ``-w=json``),
``--`` ends flags. Errors carry pflag's exact texts.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any, Optional

from pyetcd.etcdctl import gofmt


class FlagError(Exception):
    """A parse error; str() is pflag's message."""


@dataclass
class Flag:
    name: str
    kind: str  # bool | string | int64 | duration | strings
    default: Any
    usage: str
    shorthand: str = ""
    value: Any = None
    changed: bool = False

    def __post_init__(self) -> None:
        self.value = list(self.default) if self.kind == "strings" else self.default

    @property
    def no_opt_default(self) -> str:
        return "true" if self.kind == "bool" else ""

    def set(self, raw: str) -> None:
        try:
            if self.kind == "bool":
                self.value = gofmt.parse_bool(raw)
            elif self.kind == "int64":
                self.value = gofmt.parse_int(raw, 0, 64)
            elif self.kind == "duration":
                self.value = gofmt.parse_duration(raw)
            elif self.kind == "strings":
                items = next(csv.reader([raw])) if raw else []
                self.value = (self.value if self.changed else []) + items
            else:
                self.value = raw
        except gofmt.GoError as err:
            shown = f"-{self.shorthand}, --{self.name}" if self.shorthand else f"--{self.name}"
            raise FlagError(f'invalid argument "{gofmt.go_quote_str(raw)}" for "{shown}" flag: {err}') from None
        self.changed = True

    def value_text(self) -> str:
        """pflag's Value.String(): false, simple, 5s, [a,b]."""
        if self.kind == "bool":
            return "true" if self.value else "false"
        if self.kind == "strings":
            return "[%s]" % ",".join(self.value)
        if self.kind == "duration":
            return _duration_text(self.value)
        return str(self.value)

    def default_text(self) -> str:
        """The value as etcdctl's usage shows it: [=false], ="simple", =2s, =[127.0.0.1:2379]."""
        if self.kind == "bool":
            return "[=%s]" % ("true" if self.default else "false")
        if self.kind == "string":
            return '="%s"' % self.default
        if self.kind == "strings":
            return "=[%s]" % ",".join(self.default)
        if self.kind == "duration":
            return "=" + _duration_text(self.default)
        return "=%s" % self.default


def _duration_text(seconds: float) -> str:
    """Go's time.Duration.String() (to the millisecond)."""
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:g}ms"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    text = f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{sign}{int(h)}h{int(m)}m{text}"
    return f"{sign}{int(m)}m{text}" if m else sign + text


@dataclass
class FlagSet:
    flags: dict[str, Flag] = field(default_factory=dict)
    dash_at: int = -1

    def add(self, name: str, kind: str, default: Any, usage: str, shorthand: str = "") -> Flag:
        flag = Flag(name, kind, default, usage, shorthand)
        self.flags[name] = flag
        return flag

    def by_short(self, c: str) -> Optional[Flag]:
        return next((f for f in self.flags.values() if f.shorthand == c), None)

    def sorted(self) -> list[Flag]:
        return [self.flags[k] for k in sorted(self.flags)]

    def __getitem__(self, name: str) -> Any:
        return self.flags[name].value

    def parse(self, args: list[str]) -> list[str]:
        """Set flags from args; return the positional arguments. ``dash_at`` is how many of them came
        before a ``--`` (-1 without one: pflag's ArgsLenAtDash)."""
        positional: list[str] = []
        args = list(args)
        self.dash_at = -1
        while args:
            s = args.pop(0)
            if len(s) < 2 or s[0] != "-":
                positional.append(s)
            elif s == "--":
                self.dash_at = len(positional)
                positional.extend(args)
                break
            elif s[1] == "-":
                self._parse_long(s, args)
            else:
                self._parse_short(s, args)
        return positional

    def _parse_long(self, s: str, args: list[str]) -> None:
        name = s[2:]
        if not name or name[0] in "-=":
            raise FlagError("bad flag syntax: " + s)
        name, eq, value = name.partition("=")
        flag = self.flags.get(name)
        if flag is None:
            raise FlagError("unknown flag: --" + name)
        if not eq:
            if flag.no_opt_default:
                value = flag.no_opt_default
            elif args:
                value = args.pop(0)
            else:
                raise FlagError("flag needs an argument: " + s)
        flag.set(value)

    def _parse_short(self, s: str, args: list[str]) -> None:
        shorts = s[1:]
        while shorts:
            c = shorts[0]
            flag = self.by_short(c)
            if flag is None:
                raise FlagError(f"unknown shorthand flag: '{c}' in -{shorts}")
            if len(shorts) > 2 and shorts[1] == "=":
                value, rest = shorts[2:], ""
            elif flag.no_opt_default:
                value, rest = flag.no_opt_default, shorts[1:]
            elif len(shorts) > 1:
                value, rest = shorts[1:], ""
            elif args:
                value, rest = args.pop(0), ""
            else:
                raise FlagError(f"flag needs an argument: '{c}' in -{shorts}")
            flag.set(value)
            shorts = rest

    def takes_value(self, token: str) -> bool:
        """For cobra's command lookup: does this flag token consume the next argument?"""
        if token.startswith("--"):
            flag = self.flags.get(token[2:])
            return "=" not in token and not (flag and flag.no_opt_default)
        flag = self.by_short(token[1:])
        return "=" not in token and len(token) == 2 and not (flag and flag.no_opt_default)


def etcdctl_usage_lines(flags: list[Flag]) -> str:
    """Flag lines of etcdctl's own usage template (cells separated by tabs, for tabwrite)."""
    lines = []
    for f in flags:
        head = f"  -{f.shorthand}, --{f.name}" if f.shorthand else f"      --{f.name}"
        lines.append(f"{head}{f.default_text()}\t{f.usage}")
    return "\n".join(lines)


_VARNAMES = {"string": "string", "int64": "int", "duration": "duration", "strings": "strings", "bool": ""}


def pflag_usages(flags: list[Flag]) -> str:
    """pflag's FlagUsages text (cobra's default usage template)."""
    rows = []
    for f in flags:
        line = f"  -{f.shorthand}, --{f.name}" if f.shorthand else f"      --{f.name}"
        if _VARNAMES[f.kind]:
            line += " " + _VARNAMES[f.kind]
        usage = f.usage
        if f.default not in ("", 0, False, None, []):
            usage += f' (default "{f.default}")' if f.kind == "string" else f" (default {f.default})"
        rows.append((line, usage))
    width = max(len(line) for line, _ in rows) + 1
    return "".join(f"{line}{' ' * (width - len(line) + 1)} {usage}\n" for line, usage in rows)

