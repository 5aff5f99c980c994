"""The v2 store in a 3-member pyetcd cluster: replicated through Raft, the same expiry on every
member (the leader's SYNC), and carried by a snapshot to a member that fell behind."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from servers import PYETCD, Server, cluster, start_all, wait_for


@pytest.fixture
def three(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3, extra=["--enable-v2", "--snapshot-count", "20",
                                                        "--experimental-snapshot-catchup-entries", "10"])
    try:
        start_all(members)
        yield members
    finally:
        for m in members:
            m.stop()


def put(member: Server, key: str, **form: str) -> dict:
    req = urllib.request.Request(member.url + "/v2/keys" + key, method="PUT",
                                 data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def get(member: Server, key: str, **query: str) -> tuple[int, dict, str]:
    """(status, body, X-Etcd-Index)."""
    url = member.url + "/v2/keys" + key + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers["X-Etcd-Index"]
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers["X-Etcd-Index"]


def test_every_member_sees_the_writes_and_the_same_expiry(three):
    a, b, c = three
    node = put(a, "/shared", value="v")["node"]
    for m in three:
        status, body, _ = get(m, "/shared", quorum="true")
        assert (status, body["node"]) == (200, node)
    expiring = put(b, "/short", value="v", ttl="1")["node"]
    for m in three:
        status, body, _ = get(m, "/short", wait="true", waitIndex=str(expiring["modifiedIndex"] + 1))
        assert (status, body["action"]) == (200, "expire")
    # the expiry took one index, the same on every member
    indexes = {wait_for(lambda m=m: get(m, "/short")[0] == 404 and get(m, "/short")[2], 10, "expiry")
               for m in three}
    assert len(indexes) == 1


def _state(member: Server) -> str:
    with urllib.request.urlopen(member.url + "/v2/stats/self", timeout=5) as r:
        return json.load(r)["state"]


def test_a_member_restored_from_a_snapshot_has_the_v2_keys(three):
    # c is a follower: a write proposed while the cluster elects a new leader may time out
    c, a, b = sorted(three, key=lambda m: _state(m) == "StateLeader")
    c.kill()
    for i in range(40):  # past --snapshot-count and the catch-up entries: c needs a snapshot
        put(a, f"/many/{i:02d}", value=str(i))
    c.start()
    wait_for(lambda: "receiving database snapshot" in open(c.log_path).read(), 30, "a snapshot sent to c")
    status, body, _ = wait_for(lambda: (r := get(c, "/many", sorted="true")) and r[0] == 200
                               and len(r[1]["node"].get("nodes", [])) == 40 and r, 30, "c's v2 keys")
    assert [n["value"] for n in body["node"]["nodes"]] == [str(i) for i in range(40)]
    assert get(c, "/many/39")[1]["node"] == get(a, "/many/39")[1]["node"]
