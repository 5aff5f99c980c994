"""etcdctl user add / delete / get / list / passwd / grant-role / revoke-role."""
from __future__ import annotations

from pyetcd.etcdctl.auth_common import call, names_simple, one_name, run_named, show, show_role
from pyetcd.etcdctl.cobra import Command, out
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, GROUP_HEADER, Exit, prompt_password, read_stdin_line


def new_user_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS

    use, short = GROUPS["user"]
    group = Command(use, short, header=GROUP_HEADER)
    add = Command("add <user name or user:password> [options]", "Adds a new user", run=run_add)
    add.flags.add("interactive", "bool", True, "Read password from stdin instead of interactive terminal")
    add.flags.add("new-user-password", "string", "", "Supply password from the command line flag")
    add.flags.add("no-password", "bool", False, "Create a user without password (CN based auth only)")
    get = Command("get <user name> [options]", "Gets detailed information of a user", run=run_get)
    get.flags.add("detail", "bool", False, "Show permissions of roles granted to the user")
    passwd = Command("passwd <user name> [options]", "Changes password of user", run=run_passwd)
    passwd.flags.add("interactive", "bool", True, "If true, read password from stdin instead of interactive terminal")
    group.add(add, Command("delete <user name>", "Deletes a user",
                                   run=run_named("user", "UserDelete", "name", b"User %s deleted\n")), get,
              Command("list", "Lists all users", run=run_list), passwd,
              Command("grant-role <user name> <role name>", "Grants a role to a user", run=run_grant_role),
              Command("revoke-role <user name> <role name>", "Revokes a role from a user", run=run_revoke_role))
    return group


def scan_word() -> str:
    """fmt.Scanf("%s") on stdin: the first word of the first line."""
    words = read_stdin_line().split("\n", 1)[0].split()
    return words[0] if words else ""


def read_new_password(cmd: Command, name: str) -> str:
    """The new password from stdin (--interactive=false) or typed twice at etcdctl's prompts."""
    if not cmd.flagset()["interactive"]:
        return scan_word()
    password = prompt_password(f"Password of {name}: ")
    if not password:
        raise Exit(EXIT_BAD_ARGS, "empty password")
    again = prompt_password(f"Type password of {name} again for confirmation: ")
    if password != again:
        raise Exit(EXIT_BAD_ARGS, "given passwords are different")
    return password


def _new_user(cmd: Command, arg: str) -> tuple[str, str]:
    """The name and password `user add` gets: none with --no-password, else from
    --new-user-password, from 'user:password', or read."""
    flags = cmd.flagset()
    if flags["no-password"]:
        return arg, ""
    if flags["new-user-password"]:
        return arg, flags["new-user-password"]
    if ":" in arg:
        name, _, password = arg.partition(":")
        if not name:
            raise Exit(EXIT_BAD_ARGS, "empty user name is not allowed")
        return name, password
    return arg, read_new_password(cmd, arg)


def run_add(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.authpb import auth_pb2
    from pyetcd.proto.etcdserverpb import rpc_pb2

    no_password = cmd.flagset()["no-password"]
    name, password = _new_user(cmd, one_name(args, "user", "add"))
    req = rpc_pb2.AuthUserAddRequest(name=name, password=password,
                                     options=auth_pb2.UserAddOptions(no_password=no_password))
    ctx, resp = call(cmd, "UserAdd", req)
    show(ctx, resp, b"User %s created\n" % name.encode())


def run_get(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    name = one_name(args, "user", "get")
    ctx, resp = call(cmd, "UserGet", rpc_pb2.AuthUserGetRequest(name=name))
    if not ctx.flags["detail"]:
        show(ctx, resp, ("User: %s\nRoles:%s\n" % (name, "".join(" " + r for r in resp.roles))).encode(), None)
        return
    out(f"User: {name}\n")
    for role in resp.roles:
        out("\n")
        role_resp = ctx.call("RoleGet", rpc_pb2.AuthRoleGetRequest(role=role), ctx.flags["command-timeout"],
                             service="auth")
        show_role(ctx, role, role_resp)


def run_list(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if args:
        raise Exit(EXIT_BAD_ARGS, "user list command requires no arguments")
    ctx, resp = call(cmd, "UserList", rpc_pb2.AuthUserListRequest())
    show(ctx, resp, names_simple(resp.users), None)


def run_passwd(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    name = one_name(args, "user", "passwd")
    password = read_new_password(cmd, name)
    ctx, resp = call(cmd, "UserChangePassword", rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password))
    show(ctx, resp, b"Password updated\n")


def _user_and_role(args: list[str], usage: str) -> tuple[str, str]:
    if len(args) != 2:
        raise Exit(EXIT_BAD_ARGS, f"{usage} requires user name and role name as its argument")
    return args[0], args[1]


def run_grant_role(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    user, role = _user_and_role(args, "user grant command")
    ctx, resp = call(cmd, "UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role))
    show(ctx, resp, b"Role %s is granted to user %s\n" % (role.encode(), user.encode()))


def run_revoke_role(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    user, role = _user_and_role(args, "user revoke-role")
    ctx, resp = call(cmd, "UserRevokeRole", rpc_pb2.AuthUserRevokeRoleRequest(name=user, role=role))
    show(ctx, resp, b"Role %s is revoked from user %s\n" % (role.encode(), user.encode()))
