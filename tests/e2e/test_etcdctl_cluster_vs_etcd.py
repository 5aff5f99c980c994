"""pyetcd's etcdctl cluster commands against real etcdctl 3.5.1, each on its own real 3-member etcd 3.5.1.

member list/add/remove/update/promote, move-leader, endpoint health/status/hashkv (with --cluster)
and failover across --endpoints: stdout, stderr and exit codes must be identical once what
differs by nature is masked (cluster and member ids, ports, raft terms and indexes, db sizes,
durations; client JSON log lines are dropped).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from servers import free_port, ref_bin, require_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY_ETCDCTL = os.path.join(ROOT, ".venv", "bin", "etcdctl")

# Run in order on both sides; state carries over. Leaders differ by side, so anything naming the
# leader is cut away or reduced to "some member id" in the snippet.
CASES = [
    "$ETCDCTL member list | sort -t, -k3",
    "$ETCDCTL member list -w table | sort -t'|' -k4",
    "$ETCDCTL member list -w fields | grep -v '^\"\\(MemberID\\|ID\\|PeerURL\\)\"' | sort",
    "$ETCDCTL member list -w json | grep -o '\"name\":\"[a-z0-9]*\"' | sort",
    "$ETCDCTL member list -w json --hex | grep -o '\"name\":\"[a-z0-9]*\",\"peerURLs\"' | sort",
    "$ETCDCTL member list -w protobuf | wc -c | awk '{print ($1 > 200)}'",
    "ETCDCTL_ENDPOINTS=$URL2 $ETCDCTL member list --hex | sort -t, -k3",
    "$ETCDCTL endpoint health --cluster 2>&1 | sort",
    "$ETCDCTL endpoint health -w json | grep -o '\"health\":[a-z]*' | sort",
    "$ETCDCTL endpoint health -w fields | grep -v Took | sort",
    "$ETCDCTL endpoint health -w table | sed -n 2p | tr -s ' '",
    "$ETCDCTL endpoint health -w protobuf",
    "$ETCDCTL endpoint status | cut -d, -f1,2,3,6",
    "$ETCDCTL endpoint status --cluster | sort | cut -d, -f1,2,3,6,10",
    "$ETCDCTL endpoint status -w table | head -3",
    "$ETCDCTL endpoint status -w fields | grep -v 'Leader\\|MemberID\\|RaftTerm\\|Index\\|DBSize' | sort | uniq -c",
    "$ETCDCTL endpoint status -w json | grep -o '\"Endpoint\":\"[^\"]*\",\"Status\":{\"header\":{\"cluster_id\":[0-9]*'",
    "$ETCDCTL endpoint status -w protobuf",
    "$ETCDCTL put k1 v1 && $ETCDCTL put k2 v2 >/dev/null",
    "$ETCDCTL endpoint hashkv",
    "$ETCDCTL endpoint hashkv --cluster -w table | sort",
    "$ETCDCTL endpoint hashkv --rev=2 -w json",
    "$ETCDCTL endpoint hashkv -w fields | grep -v MemberID",
    "$ETCDCTL endpoint hashkv --rev=100",
    "$ETCDCTL endpoint status extra --hex | cut -d, -f1,3",
    # membership errors the client or the server finds
    "$ETCDCTL member add",
    "$ETCDCTL member add x http://127.0.0.1:1",
    "$ETCDCTL member add x",
    "$ETCDCTL member add x --peer-urls=127.0.0.1:1",
    "$ETCDCTL member add x --peer-urls=foo,http://127.0.0.1:x",
    "$ETCDCTL member add x --peer-urls=http://127.0.0.1:1/p",
    "$ETCDCTL member add x --peer-urls=http://127.0.0.1",
    "$ETCDCTL member add x --peer-urls=$PEER_URL0",
    "$ETCDCTL member remove",
    "$ETCDCTL member remove xyz",
    "$ETCDCTL member remove 1ffffffffffffffff",
    "$ETCDCTL member remove 12",
    "$ETCDCTL member promote 12 -w json",
    "$ETCDCTL member update 12",
    "$ETCDCTL member update 12 --peer-urls=http://127.0.0.1:9",
    "$ETCDCTL member promote $(ETCDCTL_ENDPOINTS=$URL0 $ETCDCTL endpoint status | cut -d, -f2)",
    # a learner: added (once reconfiguration is allowed), refused promotion, updated, removed
    "for i in $(seq 100); do $ETCDCTL member add infra9 --peer-urls=http://127.0.0.1:1 --learner > $DATA/add 2>/dev/null"
    " && break; sleep 0.2; done; head -n 1 $DATA/add; sed 1d $DATA/add | tr , '\\n' | sed 's/^ETCD_INITIAL_CLUSTER=.//; s/\\(:[0-9<>A-Z]*\\)\"$/\\1/' | sort",
    "$ETCDCTL member list | grep unstarted",
    "$ETCDCTL member promote $(cut -d' ' -f2 $DATA/add | head -n 1)",
    "$ETCDCTL member add infra10 --peer-urls=http://127.0.0.1:2 --learner",
    "$ETCDCTL member update $(cut -d' ' -f2 $DATA/add | head -n 1) --peer-urls=http://127.0.0.1:3",
    "$ETCDCTL member update $(cut -d' ' -f2 $DATA/add | head -n 1) --peer-urls=http://127.0.0.1:4 -w fields",
    "$ETCDCTL member list -w table | grep unstarted",
    "$ETCDCTL member remove $(cut -d' ' -f2 $DATA/add | head -n 1) -w table",
    "$ETCDCTL member remove $(cut -d' ' -f2 $DATA/add | head -n 1)",
    "$ETCDCTL member list | sort -t, -k3",
    # move-leader: to a follower, to the leader itself, to a stranger, with no leader among the endpoints
    "T=$($ETCDCTL endpoint status | grep -m1 ', false, false, ' | cut -d' ' -f2 | tr -d ,);"
    " $ETCDCTL move-leader $T | sed 's/[0-9a-f]\\{10,16\\}/ID/g'",
    "T=$($ETCDCTL endpoint status | grep -m1 ', true, false, ' | cut -d' ' -f2 | tr -d ,);"
    " $ETCDCTL move-leader $T -w json",
    "$ETCDCTL move-leader 12",
    "$ETCDCTL move-leader zz",
    "$ETCDCTL move-leader",
    "$ETCDCTL move-leader 12 -w fields",
    "F=$($ETCDCTL endpoint status | grep -m1 ', false, false, ' | cut -d' ' -f1 | tr -d ,);"
    " ETCDCTL_ENDPOINTS=$F $ETCDCTL move-leader 12 | sed 's/:[0-9]*]/:P]/'",
    # failover across endpoints; a dead endpoint only
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT0 put fo ok",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT1 get fo --print-value-only",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1 --command-timeout=1s member list",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT0 --command-timeout=1s endpoint health"
    " 2>&1 | sort",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT0 --command-timeout=1s endpoint status"
    " | cut -d, -f1,2",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT0 --command-timeout=1s endpoint hashkv",
    "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1 --command-timeout=1s endpoint status --cluster",
]


@dataclass
class Cluster:
    procs: list = field(default_factory=list)
    client_ports: list = field(default_factory=list)
    peer_ports: list = field(default_factory=list)
    data: str = ""
    ids: dict = field(default_factory=dict)  # member id -> name
    cluster_id: int = 0

    def env(self, etcdctl: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env.update(ETCDCTL=etcdctl, DATA=self.data,
                   ETCDCTL_ENDPOINTS=",".join(f"http://127.0.0.1:{p}" for p in self.client_ports))
        for i, (c, p) in enumerate(zip(self.client_ports, self.peer_ports)):
            env.update({f"URL{i}": f"http://127.0.0.1:{c}", f"ENDPOINT{i}": f"127.0.0.1:{c}",
                        f"PEER_URL{i}": f"http://127.0.0.1:{p}"})
        return env

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _start_cluster(data: str, token: str) -> Cluster:
    c = Cluster(data=data)
    c.client_ports = sorted(free_port() for _ in range(3))
    c.peer_ports = [free_port() for _ in range(3)]
    initial = ",".join(f"infra{i}=http://127.0.0.1:{p}" for i, p in enumerate(c.peer_ports))
    for i in range(3):
        client, peer = f"http://127.0.0.1:{c.client_ports[i]}", f"http://127.0.0.1:{c.peer_ports[i]}"
        log = open(os.path.join(data, f"infra{i}.log"), "wb")
        c.procs.append(subprocess.Popen(
            [ref_bin("etcd"), "--name", f"infra{i}", "--data-dir", os.path.join(data, f"infra{i}.etcd"),
             "--listen-client-urls", client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", initial,
             "--initial-cluster-token", token, "--initial-cluster-state", "new"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
        log.close()
    return c


def _await_ready(c: Cluster, timeout: float = 30.0) -> None:
    from pyetcd.client import Client
    from pyetcd.errors import EtcdError
    from pyetcd.proto.etcdserverpb import rpc_pb2

    deadline = time.monotonic() + timeout
    for port in c.client_ports:
        client = Client([f"127.0.0.1:{port}"], dial_timeout=0.5)
        try:
            while True:
                try:
                    client.get("health", timeout=1.0)
                    resp = client.call("cluster", "MemberList", rpc_pb2.MemberListRequest(), 1.0)
                    break
                except EtcdError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"etcd member on {port} not ready")
                    time.sleep(0.1)
        finally:
            client.close()
    c.ids = {m.ID: m.name for m in resp.members}
    c.cluster_id = resp.header.cluster_id


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    require_ref()
    started = []
    try:
        for side in ("ref", "cand"):
            started.append(_start_cluster(str(tmp_path_factory.mktemp(f"cluster-{side}")), f"tok-{side}"))
        for c in started:
            _await_ready(c)
        yield started
    finally:
        for c in started:
            c.stop()


def _mask(text: str, c: Cluster, added: dict) -> str:
    for i, (cp, pp) in enumerate(zip(c.client_ports, c.peer_ports)):
        text = text.replace(f":{cp}", f":<CPORT{i}>").replace(f":{pp}", f":<PPORT{i}>")
    text = text.replace(c.data, "<DATA>")
    for ident, name in list(c.ids.items()) + [(c.cluster_id, "CLUSTER")]:
        text = re.sub(rf"\b({ident:x}|{ident})\b", f"<{name}>", text)
    # ids of members added by the test, numbered by first appearance
    for m in re.finditer(r"Member +([0-9a-f]+) added", text):
        added.setdefault(int(m.group(1), 16), f"ID#{len(added)}")
    for ident, name in added.items():
        text = re.sub(rf"\b({ident:x}|{ident})\b", f"<{name}>", text)
    text = re.sub(r"(Member|cluster) +<", r"\1 <", text)  # %16x pads ids of either length
    # table cells are padded to the widest value, and ids differ in length from run to run
    text = "".join(re.sub(r"\| +", "| ", re.sub(r" +\|", " |", line)) if line.startswith("|")
                   else re.sub(r"-+", "-", line) if line.startswith("+") else line
                   for line in text.splitlines(True))
    text = re.sub(r"took = \S+", "took = <D>", text)
    text = re.sub(r'"ts":"[^"]*"|"ts":[0-9.]+', '"ts":<TS>', text)
    return "".join(line for line in text.splitlines(True) if not line.startswith('{"level"'))


def _run(snippet: str, c: Cluster, etcdctl: str, added: dict) -> tuple[str, str, int]:
    p = subprocess.run(["bash", "-c", snippet], env=c.env(etcdctl), cwd=c.data, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    return _mask(out, c, added), _mask(err, c, added), p.returncode


def test_cluster_commands_match_real_etcdctl(clusters):
    ref, cand = clusters
    ref_added: dict = {}
    cand_added: dict = {}
    failures = []
    for snippet in CASES:
        want = _run(snippet, ref, ref_bin("etcdctl"), ref_added)
        got = _run(snippet, cand, PY_ETCDCTL, cand_added)
        if want != got:
            failures.append(f"$ {snippet}\n--- real etcdctl\n{want}\n--- pyetcd etcdctl\n{got}")
    assert not failures, "\n\n".join(failures)
