"""Drives etcd3gw (the grpc-gateway client) against one server: ``etcd3gw_probe.py HOST PORT PREFIX``.

Prints one JSON object: what the client saw of KV, leases, watch and the cluster calls. Runs in
etcd3gw's own venv (tests/e2e/pypi_venvs.py); a watch waits for its events with a deadline.
"""
import json
import queue
import sys
import threading

from etcd3gw.client import Etcd3Client

DEADLINE = 10.0


def main() -> None:
    host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = Etcd3Client(host=host, port=port, timeout=DEADLINE)
    out = {"api_path": c.api_path}
    c.put(prefix + "kv/a", "1")
    c.put(prefix + "kv/b", "2")
    out["get"] = [v.decode() for v in c.get(prefix + "kv/a")]
    out["prefix"] = sorted(meta["key"].decode() for _, meta in c.get_prefix(prefix + "kv/"))
    out["deleted"] = c.delete(prefix + "kv/a")
    out["after_delete"] = c.get(prefix + "kv/a")
    out["deleted_again"] = c.delete(prefix + "kv/a")

    lease = c.lease(ttl=120)
    c.put(prefix + "leased", "v", lease=lease)
    out["lease_ttl_ok"] = 0 < lease.ttl() <= 120
    out["lease_refresh"] = lease.refresh()
    out["lease_keys"] = [k.decode() for k in lease.keys()]
    out["lease_revoked"] = lease.revoke()
    out["after_revoke"] = c.get(prefix + "leased")

    events, cancel = c.watch_prefix(prefix + "w/")
    seen: "queue.Queue" = queue.Queue()

    def drain() -> None:
        for e in events:
            seen.put((e.get("type", "PUT"), e["kv"]["key"].decode(), e["kv"].get("value", b"").decode()))

    threading.Thread(target=drain, daemon=True).start()
    got = []
    # the watch is created asynchronously: put until the first event arrives, then once more
    while not got:
        c.put(prefix + "w/x", "1")
        try:
            got.append(seen.get(timeout=0.5))
        except queue.Empty:
            continue
    c.delete(prefix + "w/x")
    while got[-1][0] != "DELETE":
        got.append(seen.get(timeout=DEADLINE))
    cancel()
    out["watch_last"] = got[-2:]
    out["members"] = len(c.members())
    out["status_version"] = c.status()["version"]
    print(json.dumps(out))


main()
