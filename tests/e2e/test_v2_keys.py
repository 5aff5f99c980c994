"""The v2 keys API (--enable-v2) on real etcd 3.5.1 and on pyetcd: writes and their errors,
long-poll watches, TTL expiry, an index of its own, and a restart keeping the keys."""
from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import grpc

from both_servers import server  # noqa: F401 - the parametrized fixture
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from servers import Server, wait_for

SERVER_FLAGS = ["--enable-v2"]


def call(srv: Server, method: str, key: str, timeout: float = 10, **form: str) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one /v2/keys request; form values go in the body."""
    data = urllib.parse.urlencode(form).encode() if method in ("PUT", "POST") else None
    url = srv.url + "/v2/keys" + key
    if method in ("GET", "DELETE") and form:
        url += "?" + urllib.parse.urlencode(form)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def test_writes_reads_and_errors(server):
    status, body, headers = call(server, "PUT", "/t1/a", value="1")
    assert status == 201 and body["action"] == "set" and body["node"]["value"] == "1"
    index = body["node"]["modifiedIndex"]
    assert headers["X-Etcd-Index"] == str(index) and int(headers["X-Raft-Index"]) > 0
    status, body, _ = call(server, "PUT", "/t1/a", value="2", prevValue="1")
    assert (status, body["action"], body["prevNode"]["value"]) == (200, "compareAndSwap", "1")
    status, body, _ = call(server, "PUT", "/t1/a", value="3", prevIndex="1")
    assert status == 412 and body == {"errorCode": 101, "message": "Compare failed",
                                      "cause": f"[1 != {index + 1}]", "index": index + 1}
    status, body, _ = call(server, "DELETE", "/t1")
    assert (status, body["errorCode"]) == (403, 102)
    status, body, _ = call(server, "POST", "/t1/q", value="job")
    assert status == 201 and body["node"]["key"] == f"/t1/q/{index + 2:020d}"
    status, body, _ = call(server, "GET", "/t1", recursive="true", sorted="true")
    assert [n["key"] for n in body["node"]["nodes"]] == ["/t1/a", "/t1/q"]
    status, body, _ = call(server, "PUT", "/t1/a", value="x", ttl="abc")
    assert (status, body["errorCode"], body["index"]) == (400, 202, 0)
    status, body, _ = call(server, "DELETE", "/t1", recursive="true")
    assert (status, body["action"]) == (200, "delete")
    status, body, _ = call(server, "GET", "/t1/a")
    assert status == 404 and body["cause"] == "/t1"


def test_v2_index_is_separate_from_v3(server):
    before_index = call(server, "PUT", "/t2", value="v")[1]["node"]["modifiedIndex"]
    with grpc.insecure_channel(server.endpoint) as ch:
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"/t2", value=b"v3"), timeout=5)
    status, body, headers = call(server, "GET", "/t2")
    assert body["node"]["value"] == "v" and headers["X-Etcd-Index"] == str(before_index)


def test_wait_wakes_on_the_next_write(server):
    results = []
    watcher = threading.Thread(target=lambda: results.append(call(server, "GET", "/t3", wait="true")))
    watcher.start()
    # the watcher is registered once the store counts it
    wait_for(lambda: _store_stats(server)["watchers"] >= 1, 10, "the watcher")
    call(server, "PUT", "/t3", value="woke")
    watcher.join(10)
    status, body, _ = results[0]
    assert status == 200 and body["action"] == "set" and body["node"]["value"] == "woke"


def test_a_stream_watch_gets_every_event(server):
    conn = http.client.HTTPConnection(server.endpoint, timeout=10)
    try:
        conn.request("GET", "/v2/keys/t6?wait=true&stream=true&recursive=true")
        resp = conn.getresponse()  # (the headers come before any event)
        assert resp.status == 200
        call(server, "PUT", "/t6/a", value="1")
        call(server, "DELETE", "/t6/a")
        events = [json.loads(resp.readline()) for _ in range(2)]
        assert [(e["action"], e["node"]["key"]) for e in events] == [("set", "/t6/a"), ("delete", "/t6/a")]
    finally:
        conn.close()


def test_bodies_escape_as_go_does(server):
    call(server, "PUT", "/t7", value="<a&b> é")
    url = server.url + "/v2/keys/t7"
    with urllib.request.urlopen(url, timeout=10) as resp:
        raw = resp.read()
    assert raw.endswith(b"\n") and b'"value":"\\u003ca\\u0026b\\u003e \xc3\xa9"' in raw


def test_ttl_expires_and_is_watched(server):
    status, body, _ = call(server, "PUT", "/t4", value="v", ttl="1")
    assert status == 201 and body["node"]["ttl"] == 1 and body["node"]["expiration"].endswith("Z")
    since = body["node"]["modifiedIndex"] + 1
    status, body, _ = call(server, "GET", "/t4", wait="true", waitIndex=str(since), timeout=20)
    assert (status, body["action"], body["node"]["key"]) == (200, "expire", "/t4")
    assert call(server, "GET", "/t4")[0] == 404


def test_keys_survive_a_restart(server):
    index = call(server, "PUT", "/t5", value="kept")[1]["node"]["modifiedIndex"]
    server.stop()
    server.start()
    status, body, headers = call(server, "GET", "/t5")
    assert (status, body["node"]["value"], body["node"]["modifiedIndex"]) == (200, "kept", index)
    assert int(headers["X-Etcd-Index"]) >= index


def _store_stats(srv: Server) -> dict:
    with urllib.request.urlopen(srv.url + "/v2/stats/store", timeout=5) as resp:
        return json.loads(resp.read())
