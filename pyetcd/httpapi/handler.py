"""Routes an HTTP/1.1 request on the client port to its endpoint (thin: no logic of its own)."""
from __future__ import annotations

import json

from pyetcd import ETCD_VERSION
from pyetcd.embed.serve import HttpRequest, HttpResponse
from pyetcd.server.etcdserver import EtcdServer

_JSON = [("Content-Type", "application/json")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
# The cluster version a 3.5 member reports once the cluster has decided it.
CLUSTER_VERSION = "3.5.0"
_GET_ONLY = frozenset({"/version", "/health"})      # etcd answers other methods 405 (/metrics takes any)


def make_handler(server: EtcdServer):
    async def handle(req: HttpRequest) -> HttpResponse:
        if req.method != "GET" and req.path in _GET_ONLY:
            return HttpResponse(405, [("Allow", "GET"), *_TEXT], b"Method Not Allowed\n")
        if req.path == "/version":
            body = {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION}
            return HttpResponse(200, _JSON, json.dumps(body, separators=(",", ":")).encode())
        if req.path == "/health":
            healthy, reason = server.health()
            body = json.dumps({"health": str(healthy).lower(), "reason": reason}, separators=(",", ":"))
            return HttpResponse(200 if healthy else 503, _JSON, body.encode())
        if req.path == "/metrics":
            return HttpResponse(200, _TEXT, metrics_text(server).encode())
        return HttpResponse(404, _TEXT, b"404 page not found\n")

    return handle


def metrics_text(server: EtcdServer) -> str:
    """A first few of etcd's Prometheus metrics, by etcd's names."""
    lines = [
        "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.",
        "# TYPE etcd_server_has_leader gauge",
        f"etcd_server_has_leader {int(bool(server.raft.lead))}",
        "# HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.",
        "# TYPE etcd_server_is_leader gauge",
        f"etcd_server_is_leader {int(server.is_leader)}",
        "# HELP etcd_debugging_mvcc_current_revision The current revision of store.",
        "# TYPE etcd_debugging_mvcc_current_revision gauge",
        f"etcd_debugging_mvcc_current_revision {server.store.rev}",
        "# HELP etcd_mvcc_db_total_size_in_bytes Total size of the underlying database physically allocated in bytes.",
        "# TYPE etcd_mvcc_db_total_size_in_bytes gauge",
        f"etcd_mvcc_db_total_size_in_bytes {server.backend.size()}",
    ]
    return "\n".join(lines) + "\n"
