"""etcdctl role add / delete / get / list / grant-permission / revoke-permission."""
from __future__ import annotations

from pyetcd.etcdctl.auth_common import OPEN_END, call, names_simple, one_name, range_text, run_named, show, show_role
from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, GROUP_HEADER, Exit

PERM_TYPES = {"READ": 0, "WRITE": 1, "READWRITE": 2}


def new_role_command() -> Command:
    from pyetcd.etcdctl.command_list import GROUPS

    use, short = GROUPS["role"]
    group = Command(use, short, header=GROUP_HEADER)
    grant = Command("grant-permission [options] <role name> <permission type> <key> [endkey]",
                    "Grants a key to a role", run=run_grant)
    grant.flags.add("prefix", "bool", False, "grant a prefix permission")
    grant.flags.add("from-key", "bool", False,
                    "grant a permission of keys that are greater than or equal to the given key using byte compare")
    revoke = Command("revoke-permission <role name> <key> [endkey]", "Revokes a key from a role", run=run_revoke)
    revoke.flags.add("prefix", "bool", False, "revoke a prefix permission")
    revoke.flags.add("from-key", "bool", False,
                     "revoke a permission of keys that are greater than or equal to the given key using byte compare")
    group.add(Command("add <role name>", "Adds a new role", run=run_named("role", "RoleAdd", "name", b"Role %s created\n")),
              Command("delete <role name>", "Deletes a role",
                      run=run_named("role", "RoleDelete", "role", b"Role %s deleted\n")),
              Command("get <role name>", "Gets detailed information of a role", run=run_get),
              Command("list", "Lists all roles", run=run_list), grant, revoke)
    return group


def perm_range(cmd: Command, args: list[str]) -> tuple[bytes, bytes]:
    """The key and range end a grant/revoke covers: [key, endkey), key's prefix, from key on
    (range end "\\x00"), or the key alone. The empty key stands for "\\x00", the lowest key."""
    flags = cmd.flagset()
    prefix, from_key = flags["prefix"], flags["from-key"]
    key = args[0].encode("utf-8", "surrogateescape")
    if len(args) > 1:
        if prefix:
            raise Exit(EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag")
        if from_key:
            raise Exit(EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag")
        return key or OPEN_END, args[1].encode("utf-8", "surrogateescape")
    if prefix and from_key:
        raise Exit(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive")
    if not key:
        return OPEN_END, OPEN_END if prefix or from_key else b""
    if prefix:
        from pyetcd.client import prefix_end

        return key, prefix_end(key)
    return key, OPEN_END if from_key else b""


def run_get(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    name = one_name(args, "role", "get")
    ctx, resp = call(cmd, "RoleGet", rpc_pb2.AuthRoleGetRequest(role=name))
    show_role(ctx, name, resp)


def run_list(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if args:
        raise Exit(EXIT_BAD_ARGS, "role list command requires no arguments")
    ctx, resp = call(cmd, "RoleList", rpc_pb2.AuthRoleListRequest())
    show(ctx, resp, names_simple(resp.roles), ['"Roles" :' + "".join(f' "{r}"' for r in resp.roles)])


def run_grant(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.authpb import auth_pb2
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) < 3:
        raise Exit(EXIT_BAD_ARGS, "role grant command requires role name, permission type, and key [endkey] as its argument")
    perm_type = PERM_TYPES.get(args[1].upper())
    if perm_type is None:
        raise Exit(EXIT_BAD_ARGS, f"invalid permission type: {args[1]}")
    key, range_end = perm_range(cmd, args[2:])
    perm = auth_pb2.Permission(permType=perm_type, key=key, range_end=range_end)
    ctx, resp = call(cmd, "RoleGrantPermission", rpc_pb2.AuthRoleGrantPermissionRequest(name=args[0], perm=perm))
    show(ctx, resp, b"Role %s updated\n" % args[0].encode())


def run_revoke(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) < 2:
        raise Exit(EXIT_BAD_ARGS, "role revoke-permission command requires role name and key [endkey] as its argument")
    key, range_end = perm_range(cmd, args[1:])
    ctx, resp = call(cmd, "RoleRevokePermission",
                      rpc_pb2.AuthRoleRevokePermissionRequest(role=args[0], key=key, range_end=range_end))
    what = b"range " + range_text(key, range_end) if range_end else b"key " + key
    show(ctx, resp, b"Permission of %s is revoked from role %s\n" % (what, args[0].encode()))
