"""etcdctl auth enable / disable / status.

enable and disable print their line whatever the output format; `auth enable` gives user root
the root role (creating the role) when the server refuses because root lacks it, then retries.
"""
from __future__ import annotations

from pyetcd.etcdctl.auth_common import show
from pyetcd.etcdctl.cobra import Command, out
from pyetcd.etcdctl.runtime import GROUP_HEADER, Context, Exit, connect_without_args

ROOT_LACKS_ROLE = "etcdserver: root user does not have root role"
ROLE_EXISTS = "etcdserver: role name already exists"


def new_auth_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS

    use, short = GROUPS["auth"]
    group = Command(use, short, header=GROUP_HEADER)
    group.add(Command("enable", "Enables authentication", run=run_enable),
              Command("disable", "Disables authentication", run=run_disable),
              Command("status", "Returns authentication status", run=run_status))
    return group


def _connect(cmd: Command, args: list[str]) -> Context:
    return connect_without_args(cmd, args, f"auth {cmd.name} command does not accept any arguments")


def _auth_call(ctx: Context, method: str, request):
    return ctx.call(method, request, ctx.flags["command-timeout"], service="auth")


def run_enable(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = _connect(cmd, args)
    try:
        _auth_call(ctx, "AuthEnable", rpc_pb2.AuthEnableRequest())
    except Exit as exc:
        if exc.message != ROOT_LACKS_ROLE:
            raise
        try:
            _auth_call(ctx, "RoleAdd", rpc_pb2.AuthRoleAddRequest(name="root"))
        except Exit as add_exc:
            if add_exc.message != ROLE_EXISTS:
                raise
        _auth_call(ctx, "UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        _auth_call(ctx, "AuthEnable", rpc_pb2.AuthEnableRequest())
    out("Authentication Enabled\n")


def run_disable(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = _connect(cmd, args)
    _auth_call(ctx, "AuthDisable", rpc_pb2.AuthDisableRequest())
    out("Authentication Disabled\n")


def run_status(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = _connect(cmd, args)
    resp = _auth_call(ctx, "AuthStatus", rpc_pb2.AuthStatusRequest())
    show(ctx, resp, b"Authentication Status: %s\nAuthRevision: %d\n" % (
        b"true" if resp.enabled else b"false", resp.authRevision), None)
