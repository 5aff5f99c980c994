"""bench/watch_lease_bench.py at a small scale, on both servers: every scenario gives its figures,
and its checks turn a watcher that saw a revision not written, or missed one, or a keep-alive
answered for no lease of ours, into INVALID instead of a figure."""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
from typing import Iterator

import grpc
import pytest

from both_servers import server  # noqa: F401 - the fixture, parametrized over both servers
from servers import ROOT, Server

sys.path.insert(0, os.path.join(ROOT, "bench"))
import watch_lease_bench as bench  # noqa: E402
import wl_clients  # noqa: E402
from pyetcd.proto.etcdserverpb import rpc_pb2_grpc  # noqa: E402

ARGS = ["--watchers", "20", "--watch-streams", "4", "--puts", "10", "--memory-watchers", "200",
        "--leases", "60", "--lease-streams", "3", "--keepalive-rounds", "2", "--timeout", "4"]


@pytest.fixture(scope="module")
def kv(server: Server) -> Iterator:  # noqa: F811
    with grpc.insecure_channel(server.endpoint) as ch:
        yield rpc_pb2_grpc.KVStub(ch)


def test_fanout(server, kv):  # noqa: F811
    figures = bench.watch_fanout(server, kv, bench.parse_args(ARGS))
    assert figures["events_per_s"] > 0 and 0 < figures["put_p50_ms"] <= figures["put_p99_ms"]


def test_memory(server, kv):  # noqa: F811
    figures = bench.watch_memory(server, kv, bench.parse_args(ARGS))
    assert figures["rss_mib_with_watchers"] > 1


def test_keep_alive(server, kv):  # noqa: F811
    assert bench.keep_alive(server, kv, bench.parse_args(ARGS))["keepalives_per_s"] > 0


@pytest.mark.parametrize("shift, reason", [
    (-1, "0 of 20 watchers got all 11 events; 240 events delivered, expected 220; first error: "
         "watch .*: an event at revision"),
    (1, "0 of 20 watchers got all 11 events; 200 events delivered, expected 220$"),
])
def test_fanout_checks(server, kv, monkeypatch, shift, reason):  # noqa: F811
    """Watchers started one revision early see the put before the run; one late miss its first put."""
    real = bench.open_watchers
    monkeypatch.setattr(bench, "open_watchers",
                        lambda srv, total, puts, start_rev, args: real(srv, total, puts, start_rev + shift, args))
    with pytest.raises(bench.Invalid, match=reason):
        bench.watch_fanout(server, kv, bench.parse_args(ARGS))


def test_keep_alive_checks(server, monkeypatch):  # noqa: F811
    """A keep-alive for a lease that was never granted is answered with TTL 0: an error, not a count."""
    real = wl_clients.grant

    def grant_and_one_more(*args):
        ids, errors = real(*args)
        return ids + [0x3039], errors

    monkeypatch.setattr(wl_clients, "grant", grant_and_one_more)
    parent, child = mp.Pipe()
    worker = threading.Thread(target=wl_clients.leases, args=(child, server.endpoint, 5, 60, 2, 1, 4.0), daemon=True)
    worker.start()
    try:
        assert parent.poll(30) and parent.recv()[:2] == ("ready", 6)
        parent.send("go")
        assert parent.poll(30)
        tag, result = parent.recv()
    finally:
        parent.send("close")  # lets a worker still waiting for "go" end
        worker.join(10)
    assert (tag, result.answered) == ("done", 5)
    assert result.errors == ["keep-alive answer for lease 3039 with TTL 0"]
