"""/v2/members and the other v2 endpoints on real etcd 3.5.1 and on pyetcd (--enable-v2)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from both_servers import server  # noqa: F401 - the parametrized fixture
from servers import Server, wait_for

SERVER_FLAGS = ["--enable-v2"]


def call(srv: Server, method: str, path: str, body: dict | str | None = None,
         content_type: str = "application/json") -> tuple[int, bytes, dict]:
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(srv.url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_list_and_leader(server):
    # (the member's client URLs are there once it has published them)
    status, body, headers = wait_for(lambda: (r := call(server, "GET", "/v2/members"))
                                     and json.loads(r[1])["members"][0]["clientURLs"] and r, 10, "publish")
    (member,) = json.loads(body)["members"]
    assert status == 200 and body.endswith(b"\n") and member["clientURLs"] == [server.url]
    assert member["peerURLs"] == [server.peer_url] and "X-Etcd-Cluster-Id" in headers
    status, body, _ = call(server, "GET", "/v2/members/leader")
    assert (status, json.loads(body)) == (200, member)
    assert call(server, "GET", "/v2/machines")[1] == server.url.encode()


def test_changes_and_their_errors(server):
    member_id = json.loads(call(server, "GET", "/v2/members")[1])["members"][0]["id"]
    cases = [
        (("POST", "/v2/members", "peerURLs=x", "application/x-www-form-urlencoded"),
         (415, b'{"message":"Bad Content-Type application/x-www-form-urlencoded, accept application/json"}')),
        (("POST", "/v2/members", {}), (400, b'{"message":"no valid URLs given"}')),
        (("POST", "/v2/members", {"peerURLs": ["bad"]}),
         (400, b'{"message":"URL scheme must be http, https, unix, or unixs: bad"}')),
        (("POST", "/v2/members", {"peerURLs": [server.peer_url]}), (409, b'{"message":"membership: peerURL exists"}')),
        (("DELETE", "/v2/members/zz"), (404, b'{"message":"No such member: zz"}')),
        # (an update of an unknown ID: etcd 3.5.1 answers 404 "No such member: 1234" or, now and
        # then, a 500 after seconds; not compared)
        (("PATCH", "/v2/members"), (405, b"Method Not Allowed\n")),
    ]
    for args, expected in cases:
        assert call(server, *args)[:2] == expected, args
    # (last: after it, etcd 3.5.1 answers the peerURL-exists case above with a 500)
    assert call(server, "PUT", f"/v2/members/{member_id}", {"peerURLs": [server.peer_url]})[:2] == (204, b"")


def test_stats(server):
    status, body, _ = call(server, "GET", "/v2/stats/store")
    assert status == 200 and {"setsSuccess", "watchers", "expireCount"} <= set(json.loads(body))
    status, body, _ = call(server, "GET", "/v2/stats/self")
    assert status == 200 and json.loads(body)["state"] == "StateLeader"
    status, body, _ = call(server, "GET", "/v2/stats/leader")
    assert (status, json.loads(body)["followers"]) == (200, {})
