"""etcdctl member list / add / remove / update / promote and move-leader."""
from __future__ import annotations

import re
import sys

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.cobra import Command
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, EXIT_ERROR, GROUP_HEADER, Context, Exit, apply_env

LIST_LONG = """When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner."""


# -- peer URL checks the Go client makes before sending (types.NewURLs, net/url.Parse) -------------
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def _url_parse_error(raw: str) -> str | None:
    """net/url.Parse's error for the cases peer URLs run into, or None."""
    def fail(why: str) -> str:
        return f'parse "{gofmt.go_quote_str(raw)}": {why}'

    if raw.startswith(":"):
        return fail("missing protocol scheme")
    if not _SCHEME.match(raw) and ":" in re.split(r"[/?#]", raw, maxsplit=1)[0]:
        return fail("first path segment in URL cannot contain colon")
    bad = re.search(r"%(?![0-9A-Fa-f]{2})(.{0,2})", raw)
    if bad:
        return fail(f'invalid URL escape "%{bad.group(1)}"')
    m = re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)", raw)
    if m:
        host = m.group(1).rsplit("@", 1)[-1]
        port = re.search(r"(:[^:\]]*)$", host)
        if port and not re.fullmatch(r":[0-9]*", port.group(1)):
            return fail(f'invalid port "{port.group(1)}" after host')
    return None


def _split_url(raw: str) -> tuple[str, str, str]:
    """(scheme, host, path) of a URL that parsed."""
    m = _SCHEME.match(raw)
    if not m:
        return "", "", raw
    scheme, rest = m.group(0)[:-1].lower(), raw[m.end():]
    if not rest.startswith("//"):
        return scheme, "", rest
    authority, slash, path = rest[2:].partition("/")
    authority = re.split(r"[?#]", authority, maxsplit=1)[0]
    return scheme, authority.rsplit("@", 1)[-1], slash + path


def _has_host_port(host: str) -> bool:
    """net.SplitHostPort succeeds."""
    if host.startswith("["):
        return bool(re.fullmatch(r"\[[^\[\]]*\]:[^:\[\]]*", host))
    return host.count(":") == 1 and "[" not in host and "]" not in host


def check_urls(urls: list[str]) -> None:
    """types.NewURLs: raise etcdctl's Error (exit 1) for the first bad URL."""
    for raw in urls:
        u = raw.strip()
        problem = _url_parse_error(u)
        if problem is None:
            scheme, host, path = _split_url(u)
            if scheme not in ("http", "https", "unix", "unixs"):
                problem = f"URL scheme must be http, https, unix, or unixs: {u}"
            elif not _has_host_port(host):
                problem = f'URL address does not have the form "host:port": {u}'
            elif path:
                problem = f"URL must not contain a path: {u}"
        if problem:
            raise Exit(EXIT_ERROR, problem)


def _member_id(args: list[str]) -> int:
    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "member ID is not provided")
    try:
        return gofmt.parse_uint(args[0], 16)
    except gofmt.GoError as exc:
        raise Exit(EXIT_BAD_ARGS, f"bad member ID arg ({exc}), expecting ID in Hex") from None


def _peer_urls(cmd: Command) -> list[str]:
    raw = cmd.flagset()["peer-urls"]
    if not raw:
        raise Exit(EXIT_BAD_ARGS, "member peer urls not provided")
    return raw.split(",")


def _cluster_call(ctx: Context, method: str, request):
    return ctx.call(method, request, ctx.flags["command-timeout"], service="cluster")


# -- commands ---------------------------------------------------------------------------------
def run_list(cmd: Command, _args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = Context(cmd)
    ctx.connect()
    resp = _cluster_call(ctx, "MemberList", rpc_pb2.MemberListRequest(linearizable=True))
    ctx.cluster_display().member_list(resp)


def run_add(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    if not args:
        raise Exit(EXIT_BAD_ARGS, "member name not provided")
    if len(args) > 1:
        hints = "".join(f", did you mean --peer-urls={a}" for a in args if a.lower().startswith("http"))
        raise Exit(EXIT_BAD_ARGS, "too many arguments" + hints)
    name = args[0]
    urls = _peer_urls(cmd)
    ctx = Context(cmd)
    ctx.connect()
    check_urls(urls)
    req = rpc_pb2.MemberAddRequest(peerURLs=urls, isLearner=ctx.flags["learner"])
    resp = _cluster_call(ctx, "MemberAdd", req)
    display = ctx.cluster_display()
    display.member_changed(resp, resp.member.ID, "added to")
    if display.fmt != "simple":
        return
    conf = [f"{name if m.ID == resp.member.ID else m.name}={u}" for m in resp.members for u in m.peerURLs]
    sys.stdout.write(f'\nETCD_NAME="{gofmt.go_quote_str(name)}"\n'
                     f'ETCD_INITIAL_CLUSTER="{gofmt.go_quote_str(",".join(conf))}"\n'
                     f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{gofmt.go_quote_str(",".join(urls))}"\n'
                     'ETCD_INITIAL_CLUSTER_STATE="existing"\n')


def _change_by_id(cmd: Command, args: list[str], method: str, verb: str) -> None:
    """`member remove` / `member promote`: one member ID, one Cluster call, one result line."""
    from pyetcd.proto.etcdserverpb import rpc_pb2

    member_id = _member_id(args)
    ctx = Context(cmd)
    ctx.connect()
    request = getattr(rpc_pb2, f"{method}Request")(ID=member_id)
    resp = _cluster_call(ctx, method, request)
    ctx.cluster_display().member_changed(resp, member_id, verb)


def run_remove(cmd: Command, args: list[str]) -> None:
    _change_by_id(cmd, args, "MemberRemove", "removed from")


def run_update(cmd: Command, args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    member_id = _member_id(args)
    urls = _peer_urls(cmd)
    ctx = Context(cmd)
    ctx.connect()
    check_urls(urls)
    resp = _cluster_call(ctx, "MemberUpdate", rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=urls))
    ctx.cluster_display().member_changed(resp, member_id, "updated in")


def run_promote(cmd: Command, args: list[str]) -> None:
    _change_by_id(cmd, args, "MemberPromote", "promoted in")


def run_move_leader(cmd: Command, args: list[str]) -> None:
    """Find the leader among the endpoints (Status of each, in order), then ask it to transfer."""
    import time

    from pyetcd.proto.etcdserverpb import rpc_pb2

    if len(args) != 1:
        raise Exit(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    try:
        target = gofmt.parse_uint(args[0], 16)
    except gofmt.GoError as exc:
        raise Exit(EXIT_BAD_ARGS, str(exc)) from None
    ctx = Context(cmd)
    client = ctx.connect()
    deadline = time.monotonic() + ctx.flags["command-timeout"]  # one context for the whole command
    leader_ep, leader_id = None, 0
    for ep in client.endpoints:
        apply_env(cmd)  # etcdctl reads its configuration again per endpoint (and dies on a conflicting ETCDCTL_*)
        status = ctx.call("Status", rpc_pb2.StatusRequest(), deadline - time.monotonic(),
                          service="maintenance", endpoint=ep)
        if status.header.member_id == status.leader:
            leader_ep, leader_id = ep, status.leader
            break
    if leader_ep is None:
        raise Exit(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(client.endpoints)}]")
    resp = ctx.call("MoveLeader", rpc_pb2.MoveLeaderRequest(targetID=target), deadline - time.monotonic(),
                    service="maintenance", endpoint=leader_ep)
    ctx.cluster_display().move_leader(leader_id, target, resp)


def new_member_command() -> Command:
    group = Command("member <subcommand>", "Membership related commands", header=GROUP_HEADER)
    add = Command("add <memberName> [options]", "Adds a member into the cluster", run=run_add)
    add.flags.add("peer-urls", "string", "", "comma separated peer URLs for the new member.")
    add.flags.add("learner", "bool", False, "indicates if the new member is raft learner")
    update = Command("update <memberID> [options]", "Updates a member in the cluster", run=run_update)
    update.flags.add("peer-urls", "string", "", "comma separated peer URLs for the updated member.")
    group.add(add, Command("remove <memberID>", "Removes a member from the cluster", run=run_remove), update,
              Command("list", "Lists all members in the cluster", LIST_LONG, run=run_list),
              Command("promote <memberID>", "Promotes a non-voting member in the cluster",
                      "Promotes a non-voting learner member to a voting one in the cluster.", run=run_promote))
    return group


def new_move_leader_command() -> Command:
    return Command("move-leader <transferee-member-id>", "Transfers leadership to another etcd cluster member.",
                   run=run_move_leader)
