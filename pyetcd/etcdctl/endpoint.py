"""etcdctl endpoint health / status / hashkv, each over --endpoints or (--cluster) the members' client URLs."""
from __future__ import annotations

import threading
import time

from pyetcd.etcdctl import gofmt
from pyetcd.etcdctl.cluster_display import EndpointResult, Health
from pyetcd.etcdctl.cobra import Command, err
from pyetcd.etcdctl.runtime import EXIT_ERROR, GROUP_HEADER, Context, Exit

STATUS_LONG = """When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors."""

ALARM_NAMES = {1: "NOSPACE", 2: "CORRUPT"}


def member_endpoints(ctx: Context) -> list[str]:
    """--endpoints, or with --cluster the client URLs of every member (MemberList, without auth)."""
    if not ctx.flags["cluster"]:
        return list(ctx.client.endpoints)
    from pyetcd.client import Client
    from pyetcd.errors import EtcdError
    from pyetcd.proto.etcdserverpb import rpc_pb2

    lister = Client(ctx.client.endpoints, dial_timeout=ctx.client.dial_timeout, tls=ctx.client.tls)
    try:
        resp = lister.call("cluster", "MemberList", rpc_pb2.MemberListRequest(linearizable=True),
                           ctx.flags["command-timeout"])
    except EtcdError as exc:
        ctx._warn(exc, lister)
        raise Exit(EXIT_ERROR, f"failed to fetch endpoints from etcd cluster member list: {exc.message}") from None
    finally:
        lister.close()
    return [url for m in resp.members for url in m.clientURLs]


def _check_health(ctx: Context, ep: str, timeout: float) -> Health:
    """A linearizable Get of "health" (permission denied counts as healthy), then no active alarm."""
    from pyetcd.client import Client
    from pyetcd.errors import ErrPermissionDenied, EtcdError
    from pyetcd.proto.etcdserverpb import rpc_pb2

    base = ctx.client
    client = Client([ep], dial_timeout=base.dial_timeout, user=base.user, password=base.password, tls=base.tls)
    deadline = time.monotonic() + timeout
    try:
        start = time.monotonic()
        error = ""
        try:
            client.call("kv", "Range", rpc_pb2.RangeRequest(key=b"health"), timeout)
        except EtcdError as exc:
            ctx._warn(exc, client)
            if exc.message != ErrPermissionDenied.message:
                error = exc.message
        health = Health(ep, not error, gofmt.duration_string(time.monotonic() - start), error)
        if health.health:
            try:
                alarms = client.call("maintenance", "Alarm", rpc_pb2.AlarmRequest(), deadline - time.monotonic()).alarms
            except EtcdError as exc:
                ctx._warn(exc, client)
                health.health, health.error = False, "Unable to fetch the alarm list"
            else:
                if alarms:
                    health.health = False
                    health.error = "Active Alarm(s): " + "".join(
                        ALARM_NAMES.get(a.alarm, "UNKNOWN") + " " for a in alarms)
        return health
    finally:
        client.close()


def run_health(cmd: Command, _args: list[str]) -> None:
    """Every endpoint checked at once, reported in the order the checks finish (as etcdctl does)."""
    ctx = Context(cmd)
    ctx.connect()
    timeout = ctx.flags["command-timeout"]
    results: list[Health] = []
    lock = threading.Lock()

    def check(ep: str) -> None:
        result = _check_health(ctx, ep, timeout)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=check, args=(ep,)) for ep in member_endpoints(ctx)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctx.cluster_display().endpoint_health(results)
    if any(h.error for h in results):
        raise Exit(EXIT_ERROR, "unhealthy cluster")


def _per_endpoint(ctx: Context, method: str, request, what: str) -> tuple[list[EndpointResult], Exit | None]:
    """One Maintenance call to each endpoint, each with its own command timeout; failures noted on stderr."""
    results, failure = [], None
    for ep in member_endpoints(ctx):
        try:
            resp = ctx.call(method, request, ctx.flags["command-timeout"], service="maintenance", endpoint=ep)
        except Exit as exc:
            err(f"Failed to get the {what} of endpoint {ep} ({exc.message})\n")
            failure = exc
            continue
        results.append(EndpointResult(ep, resp))
    return results, failure


def run_status(cmd: Command, _args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = Context(cmd)
    ctx.connect()
    results, failure = _per_endpoint(ctx, "Status", rpc_pb2.StatusRequest(), "status")
    ctx.cluster_display().endpoint_status(results)
    if failure is not None:
        raise Exit(EXIT_ERROR, None)


def run_hashkv(cmd: Command, _args: list[str]) -> None:
    from pyetcd.proto.etcdserverpb import rpc_pb2

    ctx = Context(cmd)
    ctx.connect()
    results, failure = _per_endpoint(ctx, "HashKV", rpc_pb2.HashKVRequest(revision=ctx.flags["rev"]), "hash")
    ctx.cluster_display().endpoint_hashkv(results)
    if failure is not None:
        raise Exit(EXIT_ERROR, failure.message)


def new_endpoint_command() -> Command:
    group = Command("endpoint <subcommand>", "Endpoint related commands", header=GROUP_HEADER)
    group.persistent.add("cluster", "bool", False, "use all endpoints from the cluster member list")
    hashkv = Command("hashkv", "Prints the KV history hash for each endpoint in --endpoints", run=run_hashkv)
    hashkv.flags.add("rev", "int64", 0, "maximum revision to hash (default: all revisions)")
    group.add(hashkv,
              Command("health", "Checks the healthiness of endpoints specified in `--endpoints` flag", run=run_health),
              Command("status", "Prints out the status of endpoints specified in `--endpoints` flag", STATUS_LONG,
                      run=run_status))
    return group
