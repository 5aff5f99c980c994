"""etcdctl txn: compares, success and failure requests read from stdin (optionally with prompts).

Input: three sections ended by a blank line. Compares look like ``value("k") = "v"``,
``version("k") > "3"``, ``create/mod/lease("k") < "5"``; requests are ``put``/``get``/``del``
command lines with their flags.
"""
from __future__ import annotations

import os
import re
import sys

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.cobra import Command, CommandError, execute
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_INVALID_INPUT, Context, Exit

# Go's RE2 \s is ASCII whitespace without \v.
_ARG = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\'"\t\n\f\r ][^\t\n\f\r ]*')
_RESULTS = {"=": 0, ">": 1, "<": 2, "!=": 3}
_TARGETS = {"ver": "version", "version": "version", "c": "create_revision", "create": "create_revision",
            "m": "mod_revision", "mod": "mod_revision", "val": "value", "value": "value", "lease": "lease"}


class GoPanic(Exception):
    """etcdctl 3.5.1 panics here; we print the panic line and exit 2 like a Go panic."""


class LineReader:
    """bufio.Reader over fd 0: reads 4 KiB at a time, so later raw reads of stdin see the rest."""

    def __init__(self) -> None:
        self.buf = b""
        self.eof = False

    def read_line(self) -> str:
        while b"\n" not in self.buf and not self.eof:
            chunk = os.read(sys.stdin.fileno(), 4096)
            self.eof = not chunk
            self.buf += chunk
        if b"\n" not in self.buf:
            raise Exit(EXIT_INVALID_INPUT, "EOF")
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "surrogateescape")


class _Scan:
    """fmt.Sscanf(s, `%q) %s %q`): how far it gets and what it stored."""

    def __init__(self, s: str) -> None:
        self.s, self.i, self.got = s, 0, []

    def _skip(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r":
            self.i += 1

    def quoted(self) -> str:
        self._skip()
        s, start = self.s, self.i
        if start >= len(s) or s[start] not in '"`':
            raise ValueError
        q = s[start]
        j = start + 1
        while True:
            if j >= len(s):
                raise ValueError
            if q == '"' and s[j] == "\\":
                j += 2
                continue
            if s[j] == q:
                break
            j += 1
        self.i = j + 1
        return s[start + 1:j] if q == "`" else gofmt.go_unquote(s[start:j + 1])

    def word(self) -> str:
        self._skip()
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in " \t\r\n":
            self.i += 1
        if self.i == start:
            raise ValueError
        return self.s[start:self.i]

    def literal(self, c: str) -> None:
        if self.s[self.i:self.i + 1] != c:
            raise ValueError
        self.i += 1

    def run(self) -> list[str]:
        steps = [self.quoted, lambda: self.literal(")"), self._skip, self.word, self._skip, self.quoted]
        try:
            for step in steps:
                value = step()
                if value is not None:
                    self.got.append(value)
        except (ValueError, gofmt.GoError):
            pass
        return self.got


def parse_compare(line: str):
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if "(" not in line:
        raise Exit(EXIT_INVALID_INPUT, f"malformed comparison: {line}")
    target, rest = line.split("(", 1)
    got = _Scan(rest).run()
    if len(got) != 3:
        key, op, val = (got + ["", "", ""])[:3]
        raise Exit(EXIT_INVALID_INPUT, f"malformed comparison: {line}; got {target}"
                                       f"({gofmt.go_quote(key.encode())}) {op} {gofmt.go_quote(val.encode())}")
    key, op, val = got
    field = _TARGETS.get(target)
    if field is None:
        raise Exit(EXIT_INVALID_INPUT, f"malformed comparison: {line} (unknown target {target})")
    if field == "value":
        return rpc_pb2.Compare(result=_result(op), target=rpc_pb2.Compare.VALUE, key=key.encode(), value=val.encode())
    try:
        number = gofmt.parse_int(val, 10, 64)
    except gofmt.GoError:
        raise Exit(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}") from None
    result = _result(op)
    if field == "lease":
        raise GoPanic("bad value")
    target_enum = {"version": rpc_pb2.Compare.VERSION, "create_revision": rpc_pb2.Compare.CREATE,
                   "mod_revision": rpc_pb2.Compare.MOD}[field]
    return rpc_pb2.Compare(result=result, target=target_enum, key=key.encode(), **{field: number})


def _result(op: str) -> int:
    if op not in _RESULTS:
        raise GoPanic("Unknown result op")
    return _RESULTS[op]


def argify(line: str) -> list[str]:
    args = _ARG.findall(line)
    out = []
    for a in args:
        if a.startswith("'"):
            hi = len(args) - 1  # etcdctl 3.5 slices with the number of args, not the arg's length
            if hi < 1 or hi > len(a):
                raise GoPanic(f"runtime error: slice bounds out of range [1:{hi}]" if hi < 1 else
                              f"runtime error: slice bounds out of range [:{hi}] with length {len(a)}")
            a = a[1:hi]
        elif a.startswith('"'):
            try:
                a = gofmt.go_unquote(a)
            except gofmt.GoError as exc:
                raise Exit(EXIT_INVALID_INPUT, str(exc)) from None
        out.append(a)
    return out


def parse_request(line: str):
    from pyetcd.client import request_op
    from pyetcd.etcdctl import kv

    args = argify(line)
    if len(args) < 2:
        raise Exit(EXIT_INVALID_INPUT, f"invalid txn compare request: {line}")
    ops = []
    root = Command("", silence_errors=True, etcdctl_style=False)
    root.add(kv.new_put_command(lambda c, a: ops.append(kv.put_request(c, a)), etcdctl_style=False),
             kv.new_get_command(lambda c, a: ops.append(kv.get_request(c, a)), etcdctl_style=False),
             kv.new_del_command(lambda c, a: ops.append(kv.del_request(c, a)), etcdctl_style=False))
    try:
        execute(root, args)
    except CommandError:
        ops.clear()
    if not ops:
        raise Exit(EXIT_INVALID_INPUT, f"invalid txn request: {line}")
    return request_op(ops[0])


def _read_section(reader: LineReader, parse) -> list:
    items = []
    while True:
        line = reader.read_line().strip()
        if not line:
            return items
        items.append(parse(line))


def run_txn(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if args:
        raise Exit(EXIT_BAD_ARGS, "txn command does not accept argument")
    reader = LineReader()
    ctx = Context(cmd)
    ctx.connect()
    interactive = ctx.flags["interactive"]

    def prompt(text: str) -> None:
        if interactive:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    prompt("compares:")
    compares = _read_section(reader, parse_compare)
    prompt("success requests (get, put, del):")
    success = _read_section(reader, parse_request)
    prompt("failure requests (get, put, del):")
    failure = _read_section(reader, parse_request)
    req = rpc_pb2.TxnRequest(compare=compares, success=success, failure=failure)
    resp = ctx.call("Txn", req, timeout=10 ** 9)  # etcdctl's txn has no deadline
    ctx.show("txn", resp)


def new_txn_command() -> Command:
    cmd = Command("txn [options]", "Txn processes all the requests in one transaction", run=run_txn)
    cmd.flags.add("interactive", "bool", False, "Input transaction in interactive mode", "i")
    return cmd
