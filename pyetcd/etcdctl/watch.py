"""etcdctl watch: one watch from the arguments, or interactive `watch ...` lines from stdin; an
optional command run per event with ETCD_WATCH_* variables."""
from __future__ import annotations

import os
import shlex
import sys
import threading

from pyetcd.etcdctl import execcmd, gofmt
from pyetcd.etcdctl.cobra import Command, err, out
from pyetcd.etcdctl.flags import FlagError
from pyetcd.etcdctl.printer import go_dumps, go_json, header_fields, write
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_INTERRUPTED, EXIT_INVALID_INPUT, Context, Exit

EVENT_TYPES = {0: "PUT", 1: "DELETE"}
_print_lock = threading.Lock()  # interactive watches print from several threads


def new_watch_command() -> Command:
    cmd = Command("watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
                  "Watches events stream on keys or prefixes", run=run_watch)
    cmd.flags.add("interactive", "bool", False, "Interactive mode", "i")
    cmd.flags.add("prefix", "bool", False, "Watch on a prefix if prefix is set")
    cmd.flags.add("rev", "int64", 0, "Revision to start watching")
    cmd.flags.add("prev-kv", "bool", False, "get the previous key-value pair before the event happens")
    cmd.flags.add("progress-notify", "bool", False, "get periodic watch progress notification from server")
    return cmd


def parse_watch_args(args: list[str], dash_at: int, prefix: bool, env_key: str = "",
                     env_range: str = "") -> tuple[bytes, list[str], list[str]]:
    """(key, [range_end], command) from the positional arguments (or ETCDCTL_WATCH_KEY and
    ETCDCTL_WATCH_RANGE_END), with etcdctl's errors."""
    if env_range and not env_key:
        raise Exit(EXIT_BAD_ARGS, f'ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END="{gofmt.go_quote_str(env_range)}"')
    watch_args, exec_args = (args[:dash_at], args[dash_at:]) if dash_at >= 0 else (args, [])
    if dash_at >= 0 and not exec_args:
        raise Exit(EXIT_BAD_ARGS, "bad number of arguments (found separator --, but no commands)")
    if env_key:
        if watch_args:
            raise Exit(EXIT_BAD_ARGS, "bad number of arguments (found conflicting environment key)")
        watch_args = [env_key] + ([env_range] if env_range else [])
    if not watch_args:
        raise Exit(EXIT_BAD_ARGS, "bad number of arguments")
    if prefix and len(watch_args) > 1:
        raise Exit(EXIT_BAD_ARGS, "`range_end` and `--prefix` are mutually exclusive")
    return watch_args[0].encode("utf-8", "surrogateescape"), watch_args[1:2], exec_args


def open_watch(ctx: Context, key: bytes, range_end: list[str]):
    from pyetcd.etcdctl.kv import _range_end

    f = ctx.flags
    key, end = _range_end(key, range_end, f["prefix"], False)
    return ctx.client.watch(key, end, start_revision=f["rev"], prev_kv=f["prev-kv"],
                            progress_notify=f["progress-notify"])


# -- output -------------------------------------------------------------------------------------
def render(ctx: Context, resp) -> bytes:
    """A watch response in the output format (etcdctl prints the whole response at once)."""
    fmt, display = ctx.display.fmt, ctx.display
    if fmt == "table":
        raise Exit(EXIT_BAD_FEATURE, "table not supported as output format")
    if fmt == "simple":
        parts = []
        for ev in resp.events:
            parts.append(EVENT_TYPES.get(ev.type, str(ev.type)).encode() + b"\n")
            if ev.HasField("prev_kv"):
                parts.append(display.simple_kv(ev.prev_kv))
            parts.append(display.simple_kv(ev.kv))
        return b"".join(parts)
    if fmt == "json":
        doc = {"Header": go_json(resp.header), "Events": [go_json(ev) for ev in resp.events] or None,
               "CompactRevision": resp.compact_revision, "Canceled": resp.canceled, "Created": False}
        return go_dumps(doc).encode("utf-8", "surrogateescape") + b"\n"
    if fmt == "fields":
        lines = header_fields(resp.header)
        for ev in resp.events:
            lines.append(f'"Type" : {EVENT_TYPES.get(ev.type, ev.type)}')
            if ev.HasField("prev_kv"):
                lines += display.fields_kv("Prev", ev.prev_kv)
            lines += display.fields_kv("", ev.kv)
        return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    from pyetcd.proto.etcdserverpb import rpc_pb2

    return rpc_pb2.WatchResponse(header=resp.header, events=resp.events, compact_revision=resp.compact_revision,
                                 canceled=resp.canceled).SerializeToString()


def _show(ctx: Context, resp) -> None:
    data = render(ctx, resp)
    with _print_lock:
        write(data)
        sys.stdout.flush()


def _run_per_event(resp, exec_args: list[str]) -> None:
    for ev in resp.events:
        env = {"ETCD_WATCH_REVISION": str(resp.header.revision),
               "ETCD_WATCH_EVENT_TYPE": '"%s"' % EVENT_TYPES.get(ev.type, ev.type),
               "ETCD_WATCH_KEY": gofmt.go_quote(ev.kv.key), "ETCD_WATCH_VALUE": gofmt.go_quote(ev.kv.value)}
        error, _ = execcmd.run(exec_args, env)
        if error is not None:
            quoted = "[%s]" % " ".join(f'"{gofmt.go_quote_str(a)}"' for a in exec_args)
            err(f"command {quoted} error ({error})\n")
            os._exit(1)


def print_watch(ctx: Context, watch, exec_args: list[str]) -> None:
    """Print every response (running the command per event) until the server cancels the watch."""
    from pyetcd.client.watch_state import WatchCanceled, is_progress_notify

    try:
        for resp in watch:
            if is_progress_notify(resp):
                with _print_lock:
                    out(f"progress notify: {resp.header.revision}\n")
            _show(ctx, resp)
            if exec_args:
                _run_per_event(resp, exec_args)
    except WatchCanceled as exc:
        err(f"watch was canceled ({exc.message})\n")
        _show(ctx, exc.response)


WATCH_ENV = ("ETCDCTL_WATCH_KEY", "ETCDCTL_WATCH_RANGE_END")


def _connect(ctx: Context) -> None:
    """etcdctl's watch reads the WATCH_ENV variables itself: no "unrecognized environment variable"
    warning for them, and the commands it runs still see them."""
    kept = {name: os.environ.pop(name) for name in WATCH_ENV if name in os.environ}
    try:
        ctx.connect()
    finally:
        os.environ.update(kept)


def run_watch(cmd: Command, args: list[str]) -> None:
    ctx = Context(cmd)
    if ctx.flags["interactive"]:
        _connect(ctx)
        _interactive(ctx, cmd)
    env_key, env_range = (os.environ.get(name, "") for name in WATCH_ENV)
    key, range_end, exec_args = parse_watch_args(args, cmd.args_len_at_dash, ctx.flags["prefix"], env_key, env_range)
    _connect(ctx)
    print_watch(ctx, open_watch(ctx, key, range_end), exec_args)
    raise Exit(EXIT_INTERRUPTED, "watch is canceled by the server")


def _interactive(ctx: Context, cmd: Command) -> None:
    """Each stdin line `watch [options] <key> ...` starts a watch; the flags carry over between lines
    (etcdctl parses every line into the same flag set)."""
    while True:
        line = sys.stdin.readline()
        if not line:
            raise Exit(EXIT_INVALID_INPUT, "error reading watch request line: EOF")
        line = line.rstrip("\n")
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if len(words) < 2:
            err(f"Invalid command {line} (command type or key is not provided)\n")
            continue
        if words[0] != "watch":
            err(f"Invalid command {line} (only support watch)\n")
            continue
        flags = cmd.flagset()
        try:
            positional = flags.parse(words[1:])
        except FlagError as exc:
            raise Exit(EXIT_BAD_ARGS, str(exc)) from None
        key, range_end, exec_args = parse_watch_args(positional, flags.dash_at, ctx.flags["prefix"])
        watch = open_watch(ctx, key, range_end)
        threading.Thread(target=_background, args=(ctx, watch, exec_args), daemon=True).start()


def _background(ctx: Context, watch, exec_args: list[str]) -> None:
    try:
        print_watch(ctx, watch, exec_args)
    except Exit as exc:  # no main thread to return to: exit as etcdctl would
        if exc.message is not None:
            err(f"Error: {exc.message}\n")
        os._exit(exc.code)
