"""The v3 JSON gateway (``POST /v3/...``) on the client port, against real etcd 3.5.1 and pyetcd:
the same requests, the same answers (the member and cluster IDs aside)."""
from __future__ import annotations

import base64
import http.client
import json
import time

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from servers import Server

DEADLINE = 10.0


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _without_ids(doc):
    """The answer without its member and cluster IDs (they differ from server to server)."""
    if isinstance(doc, dict):
        return {k: _without_ids(v) for k, v in doc.items() if k not in ("cluster_id", "member_id")}
    if isinstance(doc, list):
        return [_without_ids(v) for v in doc]
    return doc


def call(srv: Server, path: str, body: str | dict = "{}", method: str = "POST",
         headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.client_port, timeout=DEADLINE)
    try:
        conn.request(method, path, body if isinstance(body, str) else json.dumps(body), headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post(srv: Server, path: str, body: str | dict = "{}") -> tuple[int, dict]:
    status, _, data = call(srv, path, body)
    return status, _without_ids(json.loads(data))


def rev(srv: Server) -> int:
    return int(post(srv, "/v3/kv/range", {"key": b64("none")})[1]["header"]["revision"])


class Stream:
    """A streaming gateway call: its status, then its ``{"result": ...}`` lines one by one."""

    def __init__(self, srv: Server, path: str, body: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", srv.client_port, timeout=DEADLINE)
        self.conn.request("POST", path, body)
        self.resp = self.conn.getresponse()

    def next(self) -> dict:
        line = self.resp.readline()       # a deadline: the socket's timeout
        assert line.endswith(b"\n"), line
        return _without_ids(json.loads(line))

    def close(self) -> None:
        self.conn.close()


def test_kv_put_range_delete(server):
    status, put = post(server, "/v3/kv/put", {"key": b64("kv/a"), "value": b64("1")})
    r = put["header"]["revision"]
    assert status == 200 and put == {"header": {"revision": r, "raft_term": put["header"]["raft_term"]}}
    _, again = post(server, "/v3/kv/put", {"key": b64("kv/a"), "value": b64("2"), "prev_kv": True})
    assert again["prev_kv"] == {"key": b64("kv/a"), "create_revision": r, "mod_revision": r, "version": "1",
                                "value": b64("1")}
    post(server, "/v3/kv/put", {"key": b64("kv/b"), "value": b64("3")})
    _, got = post(server, "/v3/kv/range", {"key": b64("kv/"), "range_end": b64("kv0"), "sort_order": "DESCEND",
                                           "sort_target": "KEY", "keys_only": True})
    assert [kv["key"] for kv in got["kvs"]] == [b64("kv/b"), b64("kv/a")] and got["count"] == "2"
    assert "value" not in got["kvs"][0]
    _, counted = post(server, "/v3/kv/range", {"key": b64("kv/"), "range_end": b64("kv0"), "count_only": True})
    assert "kvs" not in counted and counted["count"] == "2"
    _, deleted = post(server, "/v3/kv/deleterange", {"key": b64("kv/a"), "prev_kv": True})
    assert deleted["deleted"] == "1" and deleted["prev_kvs"][0]["value"] == b64("2")
    _, none = post(server, "/v3/kv/range", {"key": b64("kv/a")})
    assert set(none) == {"header"}


def test_txn(server):
    post(server, "/v3/kv/put", {"key": b64("txn/k"), "value": b64("v")})
    body = {"compare": [{"key": b64("txn/k"), "result": "EQUAL", "target": "VALUE", "value": b64("v")}],
            "success": [{"requestPut": {"key": b64("txn/k"), "value": b64("w")}}],
            "failure": [{"request_range": {"key": b64("txn/k")}}]}
    status, won = post(server, "/v3/kv/txn", body)
    assert status == 200 and won["succeeded"] is True
    assert set(won["responses"][0]) == {"response_put"}
    _, lost = post(server, "/v3/kv/txn", body)
    assert "succeeded" not in lost
    assert lost["responses"][0]["response_range"]["kvs"][0]["value"] == b64("w")


def test_compaction_and_errors(server):
    post(server, "/v3/kv/put", {"key": b64("c/k"), "value": b64("1")})
    before = rev(server)
    post(server, "/v3/kv/put", {"key": b64("c/k"), "value": b64("2")})
    assert post(server, "/v3/kv/compaction", {"revision": str(before)})[0] == 200
    msg = "etcdserver: mvcc: required revision has been compacted"
    assert post(server, "/v3/kv/range", {"key": b64("c/k"), "revision": before - 1}) == (
        400, {"error": msg, "code": 11, "message": msg})
    msg = "etcdserver: requested lease not found"
    assert post(server, "/v3/kv/put", {"key": b64("c/l"), "value": "", "lease": 999}) == (
        404, {"error": msg, "code": 5, "message": msg})


def test_bad_requests(server):
    def error(msg: str, code: int = 3) -> dict:
        return {"error": msg, "code": code, "message": msg}

    assert post(server, "/v3/kv/put", '{"key":"Zm9v"') == (400, error("unexpected EOF"))
    assert post(server, "/v3/kv/put", '{"key" 1}') == (400, error("invalid character '1' after object key"))
    assert post(server, "/v3/kv/put", '{"key":"YQ="}') == (400, error("illegal base64 data at input byte 3"))
    assert post(server, "/v3/kv/put", '{"key":"YQ==","lease":"abc"}') == (
        400, error("invalid character 'a' looking for beginning of value"))
    assert post(server, "/v3/kv/put", '{"key":"YQ==","lease":1.5}') == (
        400, error("json: cannot unmarshal number 1.5 into Go value of type int64"))
    assert post(server, "/v3/kv/range", '{"key":"YQ==","keys_only":"yes"}') == (
        400, error("json: cannot unmarshal string into Go value of type bool"))
    assert post(server, "/v3/kv/range", '[]') == (
        400, error("json: cannot unmarshal array into Go value of type map[string]json.RawMessage"))
    assert post(server, "/v3/kv/range", '{"key":"YQ==","sort_order":"SIDEWAYS"}') == (
        400, error('unknown value "\\"SIDEWAYS\\"" for enum etcdserverpb.RangeRequest.SortOrder'))
    assert post(server, "/v3/kv/put", {"value": b64("x")}) == (400, error("etcdserver: key is not provided"))
    # a quoted number is re-read from between its quotes; what follows the first value is ignored
    assert post(server, "/v3/kv/range", '{"key":"YQ==","limit":" 1"} trailing')[0] == 200
    status, headers, body = call(server, "/v3/kv/nosuch")
    assert (status, headers["content-type"], body) == (404, "text/plain; charset=utf-8", b"Not Found\n")
    status, headers, body = call(server, "/v3/kv/range", method="GET")
    assert (status, body) == (405, b"Method Not Allowed\n")
    assert headers["access-control-allow-origin"] == "*"
    status, headers, _ = call(server, "/v3", method="POST")
    assert (status, headers["location"]) == (301, "/v3/")
    assert post(server, "/v3beta/kv/range", {"key": b64("none")})[0] == 200


def test_leases(server):
    status, granted = post(server, "/v3/lease/grant", {"TTL": 300, "ID": 4242})
    assert status == 200 and (granted["ID"], granted["TTL"]) == ("4242", "300")
    msg = "etcdserver: lease already exists"
    assert post(server, "/v3/lease/grant", {"TTL": 60, "ID": "4242"}) == (400, {"error": msg, "code": 9, "message": msg})
    post(server, "/v3/kv/put", {"key": b64("leased"), "value": b64("v"), "lease": "4242"})
    _, ttl = post(server, "/v3/kv/lease/timetolive", {"ID": 4242, "keys": True})
    assert ttl["grantedTTL"] == "300" and ttl["keys"] == [b64("leased")] and 0 < int(ttl["TTL"]) <= 300
    _, leases = post(server, "/v3/lease/leases")
    assert {"ID": "4242"} in leases["leases"]
    ka = Stream(server, "/v3/lease/keepalive", '{"ID":4242} {"ID":"4343"}')
    try:
        assert ka.resp.status == 200 and ka.resp.getheader("Content-Type") == "application/json"
        first, second = ka.next(), ka.next()
        assert (first["result"]["ID"], first["result"]["TTL"]) == ("4242", "300")
        assert second["result"]["ID"] == "4343" and "TTL" not in second["result"]
        assert ka.resp.read() == b""      # the body's requests are done: so is the stream
    finally:
        ka.close()
    assert post(server, "/v3/lease/revoke", {"ID": 4242})[0] == 200
    msg = "etcdserver: requested lease not found"
    assert post(server, "/v3/kv/lease/revoke", {"ID": 4242}) == (404, {"error": msg, "code": 5, "message": msg})
    assert set(post(server, "/v3/kv/range", {"key": b64("leased")})[1]) == {"header"}


def test_watch_stream(server):
    post(server, "/v3/kv/put", {"key": b64("w/a"), "value": b64("0")})
    start = rev(server)
    body = json.dumps({"create_request": {"key": b64("w/"), "range_end": b64("w0"), "start_revision": start}})
    watch = Stream(server, "/v3/watch", body + json.dumps({"create_request": {"key": b64("w/other")}}))
    try:
        assert watch.resp.status == 200 and watch.resp.getheader("Transfer-Encoding") == "chunked"
        created = watch.next()["result"]
        assert created["created"] is True and "watch_id" not in created
        seen = []
        deadline = time.monotonic() + DEADLINE
        while len(seen) < 3 and time.monotonic() < deadline:
            result = watch.next()["result"]
            if result.get("created"):
                assert result["watch_id"] == "1"
                post(server, "/v3/kv/put", {"key": b64("w/a"), "value": b64("1")})
                post(server, "/v3/kv/deleterange", {"key": b64("w/a")})
            seen += [(e.get("type", "PUT"), e["kv"].get("value")) for e in result.get("events", [])]
        assert seen == [("PUT", b64("0")), ("PUT", b64("1")), ("DELETE", None)]
    finally:
        watch.close()
    status, _, body = call(server, "/v3/watch", '{"create_request":{"key":"YQ"')
    assert (status, json.loads(body)) == (500, {"error": "unexpected EOF", "code": 2, "message": "unexpected EOF"})


def test_cluster_and_maintenance(server):
    status, members = post(server, "/v3/cluster/member/list")
    assert status == 200 and len(members["members"]) == 1
    assert members["members"][0]["clientURLs"] == [server.url]
    _, st = post(server, "/v3/maintenance/status")
    assert st["version"] == "3.5.1" and "leader" in st and int(st["dbSize"]) > 0
    assert set(post(server, "/v3/maintenance/alarm", {"action": "GET"})[1]) == {"header"}
    _, auth = post(server, "/v3/auth/status")
    assert "enabled" not in auth
    status, headers, _ = call(server, "/v3/maintenance/status", "{}")
    assert headers["grpc-metadata-content-type"] == "application/grpc"


def test_auth_token_in_authorization_header(server):
    """The token /v3/auth/authenticate hands out is the Authorization header's value (last: it
    turns auth on, and off again)."""
    post(server, "/v3/auth/user/add", {"name": "root", "password": "pw"})
    post(server, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    assert post(server, "/v3/auth/enable")[0] == 200
    token = ""
    try:
        msg = "etcdserver: user name is empty"
        assert post(server, "/v3/kv/range", {"key": b64("a")}) == (400, {"error": msg, "code": 3, "message": msg})
        status, headers, body = call(server, "/v3/maintenance/snapshot")
        assert (status, body) == (500, b'{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty",'
                                       b'"http_status":"Internal Server Error"}}')
        token = post(server, "/v3/auth/authenticate", {"name": "root", "password": "pw"})[1]["token"]
        status, _, _ = call(server, "/v3/kv/range", json.dumps({"key": b64("a")}), headers={"Authorization": token})
        assert status == 200
    finally:
        status, _, _ = call(server, "/v3/auth/disable", headers={"Authorization": token})
    assert status == 200
