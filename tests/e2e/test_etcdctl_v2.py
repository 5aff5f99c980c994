"""pyetcd's `ETCDCTL_API=2 etcdctl` against real etcd 3.5.1 started with --enable-v2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from servers import Server, ref_bin, require_ref, wait_for


@pytest.fixture(scope="module")
def v2_etcd(tmp_path_factory) -> Iterator[Server]:
    require_ref()
    server = Server([ref_bin("etcd")], str(tmp_path_factory.mktemp("etcd-v2") / "infra0.etcd"),
                    extra=["--enable-v2"]).start()
    try:
        yield server
    finally:
        server.stop()


def ctl(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env.update(ETCDCTL_API="2", ETCDCTL_ENDPOINTS=server.url)
    return subprocess.run([sys.executable, "-m", "pyetcd.etcdctl", *args], input=stdin, capture_output=True,
                          text=True, timeout=30, env=env)


def test_set_get_and_errors(v2_etcd):
    assert ctl(v2_etcd, "set", "/t1/foo", "bar").stdout == "bar\n"
    assert ctl(v2_etcd, "get", "/t1/foo").stdout == "bar\n"
    r = ctl(v2_etcd, "get", "/t1/nosuch")
    assert (r.returncode, r.stdout) == (4, "")
    assert r.stderr.startswith("Error:  100: Key not found (/t1/nosuch) [")
    r = ctl(v2_etcd, "mk", "/t1/foo", "again")
    assert (r.returncode, r.stderr.split(" [")[0]) == (4, "Error:  105: Key already exists (/t1/foo)")
    r = ctl(v2_etcd, "set")
    assert (r.returncode, r.stderr) == (128, "Error:  key required\n")
    r = ctl(v2_etcd, "mk", "/t1/novalue")
    assert (r.returncode, r.stderr) == (128, "Error:  value required\n")
    assert ctl(v2_etcd, "mk", "/t1/piped", stdin="from-stdin\n").stdout == "from-stdin\n"


def test_output_formats(v2_etcd):
    ctl(v2_etcd, "set", "/t2/k", "v1")
    r = ctl(v2_etcd, "-o", "json", "set", "/t2/k", "v<2>")
    assert r.stdout.startswith('{"action":"set","node":{"key":"/t2/k","value":"v\\u003c2\\u003e","nodes":null,'
                               '"createdIndex":')
    assert ',"prevNode":{"key":"/t2/k","value":"v1","nodes":null,' in r.stdout
    lines = ctl(v2_etcd, "-o", "extended", "update", "/t2/k", "v3").stdout.split("\n")
    assert lines[0] == "Key: /t2/k" and lines[3] == "PrevNode.Value: v<2>" and lines[4] == "TTL: 0"
    assert lines[-3:] == ["", "v3", ""]


def test_directories_ls_rm(v2_etcd):
    assert ctl(v2_etcd, "mkdir", "/t3").stdout == ""
    for key in ("/t3/b", "/t3/a", "/t3/sub/c"):
        ctl(v2_etcd, "set", key, "x")
    assert ctl(v2_etcd, "ls", "/t3", "--sort").stdout == "/t3/a\n/t3/b\n/t3/sub\n"
    assert ctl(v2_etcd, "ls", "--sort", "-p", "-r", "/t3").stdout == "/t3/a\n/t3/b\n/t3/sub/\n/t3/sub/c\n"
    r = ctl(v2_etcd, "get", "/t3")
    assert (r.returncode, r.stderr) == (1, "/t3: is a directory\n")
    assert ctl(v2_etcd, "rmdir", "/t3").stderr.startswith("Error:  108: Directory not empty (/t3)")
    assert ctl(v2_etcd, "rm", "/t3/a").stdout == "PrevNode.Value: x\n"
    r = ctl(v2_etcd, "rm", "--recursive", "/t3")
    assert (r.returncode, r.stdout) == (0, "")
    assert ctl(v2_etcd, "ls", "/t3").returncode == 4


def test_flags_help_and_version(v2_etcd):
    r = ctl(v2_etcd, "set", "--ttl", "abc", "/t4", "v")
    assert r.returncode == 1
    assert r.stdout.startswith('Incorrect Usage: invalid value "abc" for flag -ttl: parse error\n\nNAME:\n'
                               '   etcdctl set - set the value of a key\n')
    assert r.stdout.endswith("   --swap-with-index value  previous index (default: 0)\n   \n")
    assert r.stderr == 'invalid value "abc" for flag -ttl: parse error\n'
    assert ctl(v2_etcd, "--version").stdout.endswith("\nAPI version: 2\n")
    r = ctl(v2_etcd, "frobnicate")
    assert (r.returncode, r.stderr) == (3, "No help topic for 'frobnicate'\n")


def test_member_list_and_cluster_health(v2_etcd):
    r = ctl(v2_etcd, "member", "list")
    assert r.stdout.endswith(f" clientURLs={v2_etcd.url} isLeader=true\n")
    r = ctl(v2_etcd, "cluster-health")
    assert r.stdout.endswith(f"is healthy: got healthy result from {v2_etcd.url}\ncluster is healthy\n")


def _modified_index(server: Server, key: str) -> int:
    return json.loads(ctl(server, "-o", "json", "get", key).stdout)["node"]["modifiedIndex"]


def test_watch_after_index(v2_etcd):
    ctl(v2_etcd, "set", "/t5/a", "one")
    ctl(v2_etcd, "set", "/t5/a", "two")
    first = _modified_index(v2_etcd, "/t5/a") - 1
    assert ctl(v2_etcd, "watch", "--after-index", str(first - 1), "/t5/a").stdout == "one\n"
    r = ctl(v2_etcd, "-o", "extended", "watch", "-r", "--after-index", str(first - 1), "/t5")
    assert r.stdout.startswith("[set] /t5/a\nKey: /t5/a\n") and r.stdout.endswith("\n\none\n")


def test_exec_watch_runs_the_command_with_the_change(v2_etcd, tmp_path):
    ctl(v2_etcd, "set", "/t6", "changed")
    index = _modified_index(v2_etcd, "/t6")
    out = tmp_path / "events"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env.update(ETCDCTL_API="2", ETCDCTL_ENDPOINTS=v2_etcd.url)
    script = f'echo "$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_MODIFIED_INDEX" >> {out}'
    proc = subprocess.Popen([sys.executable, "-m", "pyetcd.etcdctl", "exec-watch", "--after-index", str(index - 1),
                             "/t6", "--", "sh", "-c", script], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: out.exists() and out.read_text().endswith("\n"), 20, "exec-watch's command to run")
        assert out.read_text() == f"set /t6 changed {index}\n"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_help_layouts(v2_etcd):
    root = ctl(v2_etcd, "--help").stdout
    assert root.startswith("NAME:\n   etcdctl - A simple command line client for etcd.\n")
    assert "   --output simple, -o simple       output response in the given format (simple, `extended` or " \
           "`json`) (default: \"simple\")\n" in root
    assert "   --timeout value                  connection timeout per request (default: 2s)\n" in root
    assert ctl(v2_etcd, "member").stdout.startswith(
        "NAME:\n   etcdctl member - member add, remove and list subcommands\n\nUSAGE:\n"
        "   etcdctl member command [command options] [arguments...]\n\nCOMMANDS:\n   list    enumerate")
    r = ctl(v2_etcd, "member", "add", "only-name")
    assert (r.returncode, r.stderr) == (1, "Provide a name and a single member peerURL\n")
