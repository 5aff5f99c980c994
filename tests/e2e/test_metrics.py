"""/metrics on real etcd 3.5.1 and pyetcd: the same metric names, and values that follow what the
member did (requests by gRPC code, WAL fsyncs, backend commits, leader, revision, sizes)."""
from __future__ import annotations

import re
import urllib.error
import urllib.request

import grpc
import pytest

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from pyetcd.client import Client
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import wait_for

NAMES = ["etcd_server_has_leader", "etcd_server_is_leader", "etcd_server_leader_changes_seen_total",
         "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total",
         "etcd_server_proposals_pending", "etcd_server_proposals_failed_total",
         "etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes",
         "etcd_debugging_mvcc_current_revision", "etcd_debugging_auth_revision", "etcd_server_quota_backend_bytes",
         "etcd_disk_wal_fsync_duration_seconds_count", "etcd_disk_backend_commit_duration_seconds_count",
         "etcd_cluster_version", "etcd_server_version", "etcd_server_id", "etcd_server_is_learner",
         "grpc_server_started_total", "grpc_server_handled_total"]


def scrape(url: str) -> tuple[str, dict[str, float]]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        ctype, text = r.headers["Content-Type"], r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return ctype, values


def test_metrics_follow_the_member(server):  # noqa: F811
    with Client([server.url]) as c:
        for i in range(5):
            c.put(f"metrics/{i}", "v")
        rev = c.get("metrics/0").header.revision
    with grpc.insecure_channel(server.endpoint) as ch:
        with pytest.raises(grpc.RpcError):
            rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"x", revision=10**6), timeout=10)

    def scraped():  # (the backend commits within its batch interval, 100 ms)
        ctype, values = scrape(server.url)
        return (ctype, values) if values.get("etcd_disk_backend_commit_duration_seconds_count", 0) > 0 else None
    ctype, values = wait_for(scraped, 30, "a backend commit to be counted")
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    names = {re.sub(r"\{.*", "", k) for k in values}
    assert set(NAMES) <= names, set(NAMES) - names
    assert values["etcd_server_has_leader"] == 1 and values["etcd_server_is_leader"] == 1
    assert values["etcd_server_leader_changes_seen_total"] == 1
    assert values["etcd_debugging_mvcc_current_revision"] >= rev
    assert values["etcd_server_proposals_applied_total"] >= 5
    assert values["etcd_disk_wal_fsync_duration_seconds_count"] >= 5
    assert values['etcd_cluster_version{cluster_version="3.5"}'] == 1
    assert values['etcd_server_version{server_version="3.5.1"}'] == 1
    ok = 'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}'
    assert values[ok] >= 5
    bad = ('grpc_server_handled_total{grpc_code="OutOfRange",grpc_method="Range",grpc_service="etcdserverpb.KV",'
           'grpc_type="unary"}')
    assert values[bad] >= 1


def test_listen_metrics_urls_serve_metrics_and_health_only(tmp_path):
    from both_servers import SERVERS
    from servers import Server, free_port, have_ref

    for kind in SERVERS:
        if kind == "etcd-3.5.1" and not have_ref():
            continue
        port = free_port()
        srv = Server(SERVERS[kind](), str(tmp_path / kind / "infra0.etcd"),
                     extra=["--listen-metrics-urls", f"http://127.0.0.1:{port}"])
        (tmp_path / kind).mkdir()
        srv.start()
        try:
            url = f"http://127.0.0.1:{port}"
            ctype, values = scrape(url)
            assert values["etcd_server_has_leader"] == 1, kind
            with urllib.request.urlopen(url + "/health", timeout=10) as r:
                assert (r.status, r.headers["Content-Type"], r.read()) == (
                    200, "text/plain; charset=utf-8", b'{"health":"true","reason":""}'), kind
            for path in ("/version", "/v3/kv/range"):
                with pytest.raises(urllib.error.HTTPError) as exc:
                    urllib.request.urlopen(url + path, timeout=10)
                assert exc.value.code == 404, (kind, path)
        finally:
            srv.stop()
