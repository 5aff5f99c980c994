"""The v2 cluster commands: member list and cluster-health."""
from __future__ import annotations

import http.client
import json
import urllib.parse

from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.v2.cli import Command
from pyetcd.etcdctl.v2.client import ClusterError
from pyetcd.etcdctl.v2.context import EXIT_CLUSTER_NOT_HEALTHY, Context


def _members(ctx: Context) -> list[dict]:
    return ctx.client.request("GET", "/v2/members").body.get("members", [])


def run_member_list(ctx: Context, _flags: dict, _args: list[str]) -> None:
    members = _members(ctx)
    leader = ctx.client.request("GET", "/v2/members/leader").body.get("id", "")
    for m in members:
        if not m.get("name"):
            print(f"{m['id']}[unstarted]: peerURLs={','.join(m.get('peerURLs', []))}")
            continue
        print(f"{m['id']}: name={m['name']} peerURLs={','.join(m.get('peerURLs', []))} "
              f"clientURLs={','.join(m.get('clientURLs', []))} isLeader={str(m['id'] == leader).lower()}")


def _healthy(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read()).get("health") == "true"
    except (OSError, ValueError):
        return False
    finally:
        conn.close()


def run_cluster_health(ctx: Context, _flags: dict, _args: list[str]) -> None:
    try:
        members = _members(ctx)
    except ClusterError:
        print("cluster may be unhealthy: failed to list members")
        raise g.Exit(EXIT_CLUSTER_NOT_HEALTHY, None) from None
    healthy = 0
    for m in members:
        urls = m.get("clientURLs", [])
        for url in urls:
            if _healthy(url, ctx.client.timeout):
                print(f"member {m['id']} is healthy: got healthy result from {url}")
                healthy += 1
                break
            print(f"member {m['id']} is unhealthy: got unhealthy result from {url}")
        if not urls:
            print(f"member {m['id']} is unreachable: no available published client urls")
    if healthy == len(members):
        print("cluster is healthy")
        return
    print("cluster is degraded" if healthy else "cluster is unavailable")
    raise g.Exit(EXIT_CLUSTER_NOT_HEALTHY, None)


def cluster_commands() -> list[Command]:
    member = Command("member", "member add, remove and list subcommands",
                     subcommands=[Command("list", "enumerate existing cluster members", action=run_member_list)])
    return [member, Command("cluster-health", "check the health of the etcd cluster", action=run_cluster_health)]
