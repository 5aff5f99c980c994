"""etcdctl lock and elect, on pyetcd.client.concurrency (etcd's Go concurrency key layout).

As etcdctl 3.5.1: `lock` gives its key back when interrupted (SIGINT/SIGTERM) but leaves the
session's lease to expire; `elect` leaves both (its key goes with the lease).
"""
from __future__ import annotations

import os
import signal
import sys

from pyetcd.etcdctl import execcmd
from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_ERROR, Context, Exit


CANCELED = "context canceled"


class Interrupted(BaseException):
    """SIGINT/SIGTERM while waiting for or holding a lock."""


def new_lock_command() -> Command:
    cmd = Command("lock <lockname> [exec-command arg1 arg2 ...]", "Acquires a named lock", run=run_lock)
    cmd.flags.add("ttl", "int64", 10, "timeout for session")
    return cmd


def new_elect_command() -> Command:
    cmd = Command("elect <election-name> [proposal]", "Observes and participates in leader election", run=run_elect)
    cmd.flags.add("listen", "bool", False, "observation mode", "l")
    return cmd


def _interrupt(_signum, _frame) -> None:
    raise Interrupted()


def _on_interrupt() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)


def _quit() -> None:
    """End at once after an interrupt (the keep-alive thread must not keep the process up)."""
    sys.stdout.flush()
    os._exit(0)


def _wait_session_end(session) -> None:
    """Block until the session's lease is lost (then etcdctl fails with 'session expired')."""
    session.keep_alive.wait()
    raise Exit(EXIT_ERROR, "session expired")


def run_lock(cmd: Command, args: list[str]) -> None:
    from pyetcd.client.concurrency import Lock, Session
    from pyetcd.errors import EtcdError

    if not args:
        raise Exit(EXIT_BAD_ARGS, "lock takes a lock name argument and an optional command to execute")
    ctx = Context(cmd)
    ctx.connect()
    session = Session(ctx.client, ttl=ctx.flags["ttl"])
    lock = Lock(session, args[0].encode("utf-8", "surrogateescape"))
    _on_interrupt()
    try:
        lock.acquire()  # gives its key back if interrupted
    except Interrupted:
        raise Exit(EXIT_ERROR, CANCELED) from None
    try:
        if len(args) > 1:
            env = {"ETCD_LOCK_KEY": lock.key.decode("utf-8", "surrogateescape"),
                   "ETCD_LOCK_REV": str(lock.header.revision)}
            error, code = execcmd.run(args[1:], env)
            lock.release()
            session.close()
            if error is not None:
                raise Exit(code if code > 0 else EXIT_ERROR, error)
            return
        ctx.show("get", ctx.call("Range", _get_key(lock.key), ctx.flags["command-timeout"]))
        sys.stdout.flush()
        _wait_session_end(session)
    except Interrupted:
        try:
            lock.release()
        except EtcdError:
            pass
        _quit()


def _get_key(key: bytes):
    from pyetcd.proto.etcdserverpb import rpc_pb2

    return rpc_pb2.RangeRequest(key=key)


def run_elect(cmd: Command, args: list[str]) -> None:
    from pyetcd.client.concurrency import Election, Session

    if not args or len(args) > 2:
        raise Exit(EXIT_BAD_ARGS, "elect takes one election name argument and an optional proposal argument")
    listen = cmd.flagset()["listen"]
    if listen and len(args) == 2:
        raise Exit(EXIT_BAD_ARGS, "proposal given but -l is set")
    if not listen and len(args) == 1:
        raise Exit(EXIT_BAD_ARGS, "no proposal argument but -l not set")
    ctx = Context(cmd)
    ctx.connect()
    session = Session(ctx.client)
    election = Election(session, args[0].encode("utf-8", "surrogateescape"))
    _on_interrupt()
    try:
        if listen:
            for resp in election.observe():
                ctx.show("get", resp)
                sys.stdout.flush()
            return
        try:
            election.campaign(args[1].encode("utf-8", "surrogateescape"))  # resigns if interrupted
        except Interrupted:
            raise Exit(EXIT_ERROR, CANCELED) from None
        ctx.show("get", next(election.observe()))
        sys.stdout.flush()
        _wait_session_end(session)
    except Interrupted:
        _quit()  # a leader keeps its key until the session's lease expires
