"""Routes an HTTP/1.1 request on the client port to its endpoint (thin: no logic of its own)."""
from __future__ import annotations

import json

from pyetcd import ETCD_VERSION
from pyetcd.embed.grpc import GrpcMethod
from pyetcd.embed.serve import HttpRequest, HttpResponse
from pyetcd.httpapi.gateway import is_gateway_path, make_gateway
from pyetcd.httpapi.v2http import V2Handler
from pyetcd.server.etcdserver import EtcdServer

_JSON = [("Content-Type", "application/json")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_METRICS = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]  # Prometheus' text format
# The cluster version a 3.5 member reports once the cluster has decided it.
CLUSTER_VERSION = "3.5.0"
_GET_ONLY = frozenset({"/version", "/health"})      # etcd answers other methods 405 (/metrics takes any)


METRICS_PATHS = frozenset({"/metrics", "/health"})  # what a --listen-metrics-urls listener serves


def make_handler(server: EtcdServer, only: frozenset[str] | None = None,
                 grpc_methods: dict[str, GrpcMethod] | None = None):
    """The client port's HTTP endpoints; ``only``: these paths alone (the rest 404);
    ``grpc_methods``: what the v3 JSON gateway dispatches to (none: no gateway)."""
    gateway = make_gateway(grpc_methods) if grpc_methods is not None else None
    v2 = V2Handler(server) if server.cfg["enable-v2"] else None

    async def handle(req: HttpRequest) -> HttpResponse:
        if only is not None and req.path not in only:
            return HttpResponse(404, _TEXT, b"404 page not found\n")
        if req.method != "GET" and req.path in _GET_ONLY:
            return HttpResponse(405, [("Allow", "GET"), *_TEXT], b"Method Not Allowed\n")
        if gateway is not None and is_gateway_path(req.path):
            return await gateway(req)
        if req.path == "/version":
            body = {"etcdserver": ETCD_VERSION, "etcdcluster": CLUSTER_VERSION}
            return HttpResponse(200, _JSON, json.dumps(body, separators=(",", ":")).encode())
        if req.path == "/health":
            healthy, reason = server.health()
            body = json.dumps({"health": str(healthy).lower(), "reason": reason}, separators=(",", ":"))
            return HttpResponse(200 if healthy else 503, _TEXT, body.encode())  # (etcd's content type)
        if req.path == "/metrics":
            return HttpResponse(200, _METRICS, server.metrics.text(server).encode())
        if v2 is not None and req.path.startswith("/v2/"):
            return await v2.handle(req)
        return HttpResponse(404, _TEXT, b"404 page not found\n")

    return handle
