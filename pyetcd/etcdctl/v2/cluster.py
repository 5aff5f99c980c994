"""The v2 cluster commands: member list and cluster-health."""
from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse

from pyetcd.etcdctl import runtime as g
from pyetcd.etcdctl.v2.cli import Command, Flag
from pyetcd.etcdctl.v2.client import APIError, ClusterError
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


def _usage(message: str) -> None:
    sys.stderr.write(message + "\n")
    raise g.Exit(g.EXIT_ERROR, None)


def run_member_add(ctx: Context, _flags: dict, args: list[str]) -> None:
    if len(args) != 2:
        _usage("Provide a name and a single member peerURL")
    name, peer_url = args
    try:
        added = ctx.client.request("POST", "/v2/members", document={"peerURLs": [peer_url]}).body
        members = _members(ctx)
    except (APIError, ClusterError) as exc:
        _usage(f"{exc}")
    print(f"Added member named {name} with ID {added['id']} to cluster\n")
    initial = [f"{name if m['id'] == added['id'] else m.get('name', '')}={u}" for m in members
               for u in m.get("peerURLs", [])]
    print(f'ETCD_NAME="{name}"\nETCD_INITIAL_CLUSTER="{",".join(initial)}"\nETCD_INITIAL_CLUSTER_STATE="existing"')


def run_member_remove(ctx: Context, _flags: dict, args: list[str]) -> None:
    if len(args) != 1:
        _usage("Provide a single member ID")
    try:
        ctx.client.request("DELETE", f"/v2/members/{args[0]}")
    except (APIError, ClusterError) as exc:
        _usage(f"Received an error trying to remove member {args[0]}: {exc}")
    print(f"Removed member {args[0]} from cluster")


def run_member_update(ctx: Context, _flags: dict, args: list[str]) -> None:
    if len(args) != 2:
        _usage("Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)")
    try:
        ctx.client.request("PUT", f"/v2/members/{args[0]}", document={"peerURLs": args[1].split(",")})
    except (APIError, ClusterError) as exc:
        _usage(f"{exc}")
    print(f"Updated member with ID {args[0]} in cluster")


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


def run_cluster_health(ctx: Context, flags: dict, _args: list[str]) -> None:
    while True:
        healthy = _check_health(ctx)
        if not flags["forever"]:
            break
        time.sleep(10)  # etcdctl's --forever re-checks every 10 seconds
    if not healthy:
        raise g.Exit(EXIT_CLUSTER_NOT_HEALTHY, None)


def _check_health(ctx: Context) -> bool:
    try:
        members = _members(ctx)
    except ClusterError:
        print("cluster may be unhealthy: failed to list members")
        return False
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
        return True
    print("cluster is degraded" if healthy else "cluster is unavailable")
    return False


def cluster_commands() -> list[Command]:
    member = Command("member", "member add, remove and list subcommands",
                     subcommands=[Command("list", "enumerate existing cluster members", " ", action=run_member_list),
                                  Command("add", "add a new member to the etcd cluster", "<name> <peerURL>",
                                          action=run_member_add),
                                  Command("remove", "remove an existing member from the etcd cluster", "<memberID>",
                                          action=run_member_remove),
                                  Command("update", "update an existing member in the etcd cluster",
                                          "<memberID> <peerURLs>", action=run_member_update)])
    return [member, Command("cluster-health", "check the health of the etcd cluster", " ",
                                    flags=[Flag("forever, f", "forever check the health every 10 second until CTRL+C")],
                                    action=run_cluster_health)]
