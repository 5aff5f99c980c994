"""pyetcd's etcdctl against real etcdctl 3.5.1: the same commands, each against its own real etcd.

stdout, stderr and exit codes must be identical once what differs by nature is masked (cluster and
member ids, raft term, ports, time stamps and Go pointers in client log lines).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from servers import ref_bin

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = {
    "kv": [
        "$ETCDCTL put foo bar",
        "$ETCDCTL get foo",
        "$ETCDCTL get foo -w json",
        "$ETCDCTL get foo -w fields",
        "$ETCDCTL get foo -w protobuf | $PBTAIL",
        "$ETCDCTL put foo bar2 --prev-kv -w protobuf | $PBTAIL",
        "$ETCDCTL put foo bar3 --prev-kv",
        "$ETCDCTL put foo bar4 --prev-kv -w fields",
        "$ETCDCTL put foo bar5 --prev-kv -w json",
        "$ETCDCTL put foo -w table bar6",
        "for k in a1 a2 a3 b1 b2 c1; do $ETCDCTL put $k v-$k >/dev/null; done",
        "$ETCDCTL get a --prefix --keys-only",
        "$ETCDCTL get a --prefix --print-value-only",
        "$ETCDCTL get a1 b2 -w json",
        "$ETCDCTL get b --from-key --limit 2 -w fields",
        "$ETCDCTL get '' --prefix --count-only -w fields",
        "$ETCDCTL get '' --from-key --sort-by=modify --order=descend --keys-only",
        "$ETCDCTL get '' --prefix --sort-by=VALUE --order=ASCEND --limit=3",
        "$ETCDCTL get foo --rev=2 --consistency=s",
        "$ETCDCTL get foo --rev 3 -w json",
        "$ETCDCTL put $'bin\\x01' $'\\xff\\xfe\\n' && $ETCDCTL get $'bin\\x01' --hex && $ETCDCTL get $'bin\\x01' -w fields",
        "$ETCDCTL get $'bin\\x01' --hex --print-value-only -w simple",
        "$ETCDCTL put uni 'héllo ☃' && $ETCDCTL get uni -w fields",
        "$ETCDCTL del b --prefix --prev-kv",
        "$ETCDCTL del a1 a3 --prev-kv -w fields",
        "$ETCDCTL del c1 --from-key -w json",
        "$ETCDCTL del nosuch -w protobuf | $PBTAIL",
        "$ETCDCTL compaction 3",
        "$ETCDCTL compaction --physical=true 4 -w fields",
        "$ETCDCTL get foo --rev=2",
        "$ETCDCTL get foo --rev=1000",
        "$ETCDCTL compaction 2",
    ],
    "input errors": [
        "$ETCDCTL",
        "$ETCDCTL --help",
        "$ETCDCTL help put",
        "$ETCDCTL help nosuch",
        "$ETCDCTL del -h",
        "$ETCDCTL txn --help",
        "$ETCDCTL compaction --help",
        "$ETCDCTL version --help",
        "$ETCDCTL version",
        "$ETCDCTL version extra -w json",
        "$ETCDCTL nosuch",
        "$ETCDCTL a",
        "$ETCDCTL gett foo",
        "$ETCDCTL --nosuch get a",
        "$ETCDCTL get",
        "$ETCDCTL get a --nosuch",
        "$ETCDCTL get a -z",
        "$ETCDCTL get a --limit",
        "$ETCDCTL get a -w",
        "$ETCDCTL get a --limit=x",
        "$ETCDCTL get a --limit=0x10",
        "$ETCDCTL get a --hex=maybe",
        "$ETCDCTL get a ---x",
        "$ETCDCTL get a --command-timeout=abc",
        "$ETCDCTL get a --dial-timeout=5",
        "$ETCDCTL get a --dial-timeout=5x",
        "$ETCDCTL get a -w nope",
        "$ETCDCTL get a -w table",
        "$ETCDCTL get a -w json --print-value-only",
        "$ETCDCTL get a --count-only",
        "$ETCDCTL get a --count-only --keys-only",
        "$ETCDCTL get a --prefix --from-key",
        "$ETCDCTL get a b --from-key",
        "$ETCDCTL get a --sort-by=x",
        "$ETCDCTL get a --order=x",
        "$ETCDCTL get a --consistency=x",
        "$ETCDCTL get ''",
        "$ETCDCTL put",
        "$ETCDCTL put k",
        "$ETCDCTL put k v --ignore-value",
        "$ETCDCTL put k --ignore-value",
        "$ETCDCTL put k v --lease=xyz",
        "$ETCDCTL put k v --lease=ab",
        "$ETCDCTL put -- k -v",
        "$ETCDCTL del",
        "$ETCDCTL del a b c",
        "$ETCDCTL del a --prefix --from-key",
        "$ETCDCTL compaction",
        "$ETCDCTL compaction x",
        "$ETCDCTL compaction 1 2",
        "$ETCDCTL compaction 1 -w nope",
        "$ETCDCTL txn arg",
        "$ETCDCTL txn -w nope </dev/null",
        "$ETCDCTL lease",
        "$ETCDCTL help member",
        "$ETCDCTL auth --help",
    ],
    "txn": [
        "$ETCDCTL put k v >/dev/null",
        "printf 'value(\"k\") = \"v\"\\n\\nput k v2\\nget k\\n\\nget k\\n\\n' | $ETCDCTL txn",
        "printf 'value(\"k\") = \"v\"\\n\\nput k v2\\n\\nget k --prefix --keys-only\\n\\n' | $ETCDCTL txn -w json",
        "printf 'ver(\"k\") > \"1\"\\nmod(\"k\") != \"0\"\\nc(\"k\") < \"100\"\\n\\ndel k --prev-kv\\n\\n\\n' | $ETCDCTL txn -w fields",
        "printf '\\nput t/1 a\\nput t/2 b\\n\\n\\n' | $ETCDCTL txn -w protobuf | $PBTAIL",
        "printf '\\nget t/ --prefix\\n\\n\\n' | $ETCDCTL txn --hex",
        "printf '  value(\"t/1\")   =  \"a\"  \\n\\nget t/1 --count-only\\n\\n\\n' | $ETCDCTL txn -w json",
        "printf 'value(\"k\") = \"v\"\\n\\n\\n\\n' | $ETCDCTL txn -i",
        "printf 'value(\"k\") = \"v\"\\n\\nput k v2\\n' | $ETCDCTL txn",
        "printf '\\nput \"a b\" \"c\\\\x64\"\\nput \\'q\\' x\\n\\n\\n' | $ETCDCTL txn && $ETCDCTL get 'a b' && $ETCDCTL get q",
        "printf 'value(k) = \"v\"\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf 'value(\"k\")\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf 'value(\"k\") = v\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf 'value \"k\" = \"v\"\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf 'version(\"k\") = \"x\"\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf 'nope(\"k\") = \"1\"\\n\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nget\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nlist k\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nget k -w json\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nput k v --bad\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\ndel k --what\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nput k\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nput d 1\\nput d 2\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\nget k --prefix --from-key\\n\\n\\n' | $ETCDCTL txn",
        "printf '\\n\\n\\n' | $ETCDCTL txn -w table",
    ],
    "environment": [
        "ETCDCTL_WRITE_OUT=json $ETCDCTL get foo",
        "ETCDCTL_HEX=true $ETCDCTL get foo",
        "ETCDCTL_WRITE_OUT=fields $ETCDCTL get foo -w simple",
        "ETCDCTL_WRITE_OUT=nope $ETCDCTL put x y",
        "ETCDCTL_COMMAND_TIMEOUT=bad $ETCDCTL get foo",
        "ETCDCTL_LIMIT=1 $ETCDCTL get foo 2>&1 | sed -e 's/\"ts\":[0-9.]*/TS/'",
        "ETCDCTL_ENDPOINTS= $ETCDCTL version",
        "$ETCDCTL --endpoints=$URL get foo 2>&1 | sed -e 's/\"ts\":[0-9.]*/TS/'",
        "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=$URL get foo",
        "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints $ENDPOINT -w json put e v",
        "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1,$ENDPOINT get foo --print-value-only",
        "env -u ETCDCTL_ENDPOINTS $ETCDCTL --endpoints=127.0.0.1:1 --command-timeout=1s get foo 2>&1 | tail -1",
        "ETCDCTL_API=4 $ETCDCTL get foo",
        "ETCDCTL_API=3 $ETCDCTL get foo",
        "$ETCDCTL --debug get foo 2>&1 | grep ^ETCDCTL_",
        "$ETCDCTL --user=root get foo",
        "echo pw | $ETCDCTL --user=root get foo",
        "$ETCDCTL --user=root:pw --write-out=fields get foo",
        "$ETCDCTL --cacert=/nonexistent get foo",
    ],
}


# protobuf output without the response header (whose ids differ between the two clusters), in hex
PBTAIL = f"{sys.executable} -c 'import sys; d = sys.stdin.buffer.read(); print(d[2 + d[1]:].hex())'"


def _pyctl(tmp_path) -> str:
    path = tmp_path / "pyctl"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m pyetcd.etcdctl "$@"\n')
    path.chmod(0o755)
    return str(path)


def _run(ctl: str, server, snippet: str) -> tuple[str, str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL")}
    env.update(ETCDCTL=ctl, PBTAIL=PBTAIL, ETCDCTL_ENDPOINTS=server.url, URL=server.url, ENDPOINT=server.endpoint)
    proc = subprocess.run(["bash", "-c", snippet], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=30)
    return _normalize(proc.stdout, server), _normalize(proc.stderr, server), proc.returncode


_MASKS = [
    (re.compile(r'"(cluster_id|member_id|raft_term)":\d+'), r'"\1":<N>'),
    (re.compile(r'"(ClusterID|MemberID|RaftTerm)" : [1-9]\d*'), r'"\1" : <N>'),
    (re.compile(r'"ts":("[^"]*"|[0-9.e+]+)'), '"ts":<TS>'),
    (re.compile(r"etcd-endpoints://0x[0-9a-f]+/"), "etcd-endpoints://<PTR>/"),
]


def _normalize(data: bytes, server) -> str:
    text = data.decode("utf-8", "backslashreplace").replace(str(server.client_port), "<PORT>")
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


@pytest.mark.parametrize("group", list(CASES))
def test_etcdctl_matches_real(group, etcd_pair, tmp_path):
    ref, cand = etcd_pair
    pyctl = _pyctl(tmp_path)
    diffs = []
    for snippet in CASES[group]:
        want = _run(ref_bin("etcdctl"), ref, snippet)
        got = _run(pyctl, cand, snippet)
        if want != got:
            diffs.append(f"$ {snippet}\n  etcdctl: {want!r}\n  pyetcd:  {got!r}")
    assert not diffs, "\n".join(diffs)
