"""Watch fan-out, watcher memory and lease keep-alive throughput: real etcd 3.5.1 and pyetcd in one run.

Every round starts a fresh server per target (its own data dir, free 127.0.0.1 ports; stopped by
PID) and runs, on one target at a time, in alternating order from round to round:
  watch memory  --memory-watchers watchers open on --watch-streams streams: RSS growth per watcher
  watch fan-out --watchers watchers on --watch-streams streams (half key, half prefix watches on
                the key written), 1 writer doing --puts sequential Puts and a last one that ends
                the run: events delivered per second (all watchers), put latency p50/p99 while
                they watch
  keep-alive    --leases leases granted, then --keepalive-rounds keep-alives for each over
                --lease-streams LeaseKeepAlive streams: keep-alives answered per second
A result counts only if it checks out: every watcher created and given every revision written,
in order, and nothing else up to the last; every keep-alive answered with a TTL for one of our leases. Otherwise
the cell says INVALID and the first reason is printed. Watchers and leases are spread over
--client-procs processes; their CPU use is printed so a client-bound figure shows as one.

    PYTHONPATH=. .venv/bin/python bench/watch_lease_bench.py [--rounds 3] [--only etcd|pyetcd]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shlex
import statistics
import sys
import tempfile
import time
from typing import Callable

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "tests")]

import wl_clients  # noqa: E402
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc  # noqa: E402
from servers import PYETCD, Server, have_ref, ref_bin  # noqa: E402

WATCH_KEY = b"bench/w/k"
Result = dict[str, float]


class Invalid(Exception):
    """A measurement that did not check out (the reason is the message)."""


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            pass
    return total


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class Workers:
    """Client processes, each running one ``wl_clients`` function over a Pipe to us."""

    def __init__(self, target: Callable, args_per_proc: list[tuple]) -> None:
        ctx = mp.get_context("spawn")  # the parent holds grpc channels: no fork
        self.conns, self.procs = [], []
        for args in args_per_proc:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=target, args=(child, *args), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def recv_all(self, timeout: float) -> list[tuple]:
        deadline = time.monotonic() + timeout
        out = []
        for c in self.conns:
            try:
                if not c.poll(max(0.0, deadline - time.monotonic())):
                    raise Invalid(f"a client process did not answer within {timeout:.0f}s")
                out.append(c.recv())
            except EOFError:
                raise Invalid("a client process died (its traceback is above)") from None
        return out

    def send_all(self, message: str) -> None:
        for c in self.conns:
            c.send(message)

    def stop(self) -> None:
        for c in self.conns:
            try:
                c.send("close")
            except OSError:
                pass
        for p in self.procs:
            p.join(15)
            if p.is_alive():
                p.kill()
                p.join()


def writer_put(stub, value: bytes = b"x" * 16) -> int:
    return stub.Put(rpc_pb2.PutRequest(key=WATCH_KEY, value=value), timeout=10).header.revision


def open_watchers(server: Server, total: int, puts: int, start_rev: int, args) -> Workers:
    """``total`` watchers on --watch-streams streams, spread over --client-procs processes."""
    streams = split(args.watch_streams, min(args.client_procs, args.watch_streams))
    per_stream = total // args.watch_streams
    if per_stream * args.watch_streams != total:
        raise SystemExit(f"{total} watchers do not divide into {args.watch_streams} streams")
    workers = Workers(wl_clients.watchers, [(server.endpoint, WATCH_KEY, n, per_stream, start_rev, puts,
                                             args.timeout) for n in streams])
    try:
        ready = workers.recv_all(args.timeout + 30)
        created = sum(r[1] for r in ready)
        if created != total:
            errors = [e for r in ready for e in r[2]]
            raise Invalid(f"{created} of {total} watchers created" + (f": {errors[0]}" if errors else ""))
    except Invalid:
        workers.stop()
        raise
    return workers


def workers_results(workers: Workers, timeout: float) -> list[wl_clients.WatchResult]:
    return [r[1] for r in workers.recv_all(timeout)]


def watch_memory(server: Server, stub, args) -> Result:
    start_rev = writer_put(stub) + 1
    before = rss_bytes(server.proc.pid)
    workers = open_watchers(server, args.memory_watchers, 0, start_rev, args)
    try:
        workers_results(workers, 30)
        after = rss_bytes(server.proc.pid)
    finally:
        workers.stop()
    return {"rss_mib_with_watchers": after / 2**20, "bytes_per_watcher": (after - before) / args.memory_watchers}


def watch_fanout(server: Server, stub, args) -> Result:
    """--puts timed puts, then one with wl_clients.END that tells the watchers the run is over."""
    start_rev = writer_put(stub) + 1
    writes = args.puts + 1
    workers = open_watchers(server, args.watchers, writes, start_rev, args)
    try:
        latencies = []
        t0 = time.monotonic()
        for i in range(writes):
            t = time.perf_counter()
            rev = writer_put(stub, wl_clients.END if i == args.puts else b"x" * 16)
            latencies.append(time.perf_counter() - t)
            if rev != start_rev + i:
                raise Invalid(f"put {i} got revision {rev}, expected {start_rev + i}: another writer?")
        results = workers_results(workers, args.timeout + 30)
    finally:
        workers.stop()
    complete = sum(r.complete for r in results)
    events = sum(r.events for r in results)
    want = args.watchers * writes
    errors = [e for r in results for e in r.errors]
    if complete != args.watchers or events != want or errors:
        raise Invalid(f"{complete} of {args.watchers} watchers got all {writes} events; {events} events "
                      f"delivered, expected {want}" + (f"; first error: {errors[0]}" if errors else ""))
    elapsed = max(r.last_event for r in results) - t0
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"events_per_s": want / elapsed, "put_p50_ms": q[49] * 1000, "put_p99_ms": q[98] * 1000,
            "watch_client_cpu": max(r.cpu_seconds for r in results) / elapsed}


def keep_alive(server: Server, stub, args) -> Result:
    procs = min(args.client_procs, args.lease_streams)
    workers = Workers(wl_clients.leases, [(server.endpoint, n, args.lease_ttl, s, args.keepalive_rounds, args.timeout)
                                          for n, s in zip(split(args.leases, procs), split(args.lease_streams, procs))])
    try:
        ready = workers.recv_all(args.timeout + 60)
        granted = sum(r[1] for r in ready)
        errors = [e for r in ready for e in r[2]]
        if errors or granted != args.leases:
            raise Invalid(f"{granted} of {args.leases} leases granted" + (f": {errors[0]}" if errors else ""))
        workers.send_all("go")
        results: list[wl_clients.KeepAliveResult] = [r[1] for r in workers.recv_all(args.timeout + 60)]
    finally:
        workers.stop()
    for r in results:
        if r.errors:
            raise Invalid(r.errors[0])
    want = args.leases * args.keepalive_rounds
    answered = sum(r.answered for r in results)
    if answered != want:
        raise Invalid(f"{answered} of {want} keep-alives answered")
    elapsed = max(r.end for r in results) - min(r.start for r in results)
    return {"keepalives_per_s": want / elapsed,
            "lease_client_cpu": max(r.cpu_seconds for r in results) / elapsed}


SCENARIOS = {"watch-memory": watch_memory, "watch-fanout": watch_fanout, "keep-alive": keep_alive}
# (row label, result key, format, scenario); lower is better for latency and memory.
ROWS = [
    ("watch fan-out events/s", "events_per_s", "{:,.0f}", "watch-fanout"),
    ("put p50 ms (watched)", "put_p50_ms", "{:.2f}", "watch-fanout"),
    ("put p99 ms (watched)", "put_p99_ms", "{:.2f}", "watch-fanout"),
    ("RSS MiB, N watchers", "rss_mib_with_watchers", "{:.1f}", "watch-memory"),
    ("bytes per watcher", "bytes_per_watcher", "{:,.0f}", "watch-memory"),
    ("keep-alives/s", "keepalives_per_s", "{:,.0f}", "keep-alive"),
    ("client CPU, fan-out", "watch_client_cpu", "{:.0%}", "watch-fanout"),
    ("client CPU, keep-alive", "lease_client_cpu", "{:.0%}", "keep-alive"),
]


def run_target(cmd: list[str], workdir: str, label: str, args) -> tuple[Result, dict[str, str]]:
    """One fresh server: every scenario on it; returns the figures and each failed scenario's reason."""
    server = Server(cmd, tempfile.mkdtemp(prefix=f"{label}-", dir=workdir) + "/member.etcd")
    figures: Result = {}
    invalid: dict[str, str] = {}
    try:
        server.start(timeout=args.timeout)
        ch = grpc.insecure_channel(server.endpoint)
        stub = rpc_pb2_grpc.KVStub(ch)
        for name in args.scenarios:
            try:
                figures.update(SCENARIOS[name](server, stub, args))
            except (Invalid, grpc.RpcError) as e:
                invalid[name] = str(e) if isinstance(e, Invalid) else f"{e.code().name}: {e.details()}"
        ch.close()
    finally:
        server.stop()
    return figures, invalid


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def report(targets: list[str], rounds: list[dict[str, tuple[Result, dict[str, str]]]], args) -> None:
    print(f"\nwatch/lease bench: {len(rounds)} rounds; {args.watchers} watchers on {args.watch_streams} "
          f"streams, {args.puts} puts; {args.memory_watchers} watchers for memory; {args.leases} leases x "
          f"{args.keepalive_rounds} keep-alives on {args.lease_streams} streams; client processes: "
          f"{min(args.client_procs, args.watch_streams)} for watchers, {min(args.client_procs, args.lease_streams)} "
          f"for leases (bench/h2_grpc.py streams; machine: {os.cpu_count()} cores)")
    ratio = len(targets) == 2
    print(f"{'':<24}" + "".join(f"{t:>14}" for t in targets) + (f"{targets[1] + '/' + targets[0]:>16}" if ratio else ""))
    reasons: list[str] = []
    for label, key, fmt, scenario in ROWS:
        if scenario not in args.scenarios:
            continue
        cells, per_target = [], {}
        for t in targets:
            vals = [r[t][0][key] for r in rounds if key in r[t][0]]
            bad = [r[t][1][scenario] for r in rounds if scenario in r[t][1]]
            per_target[t] = vals if not bad else None
            cells.append("INVALID" if bad else fmt.format(median(vals)) if vals else "-")
            if bad and f"{scenario} [{t}]: {bad[0]}" not in reasons:
                reasons.append(f"{scenario} [{t}]: {bad[0]}")
        line = f"{label:<24}" + "".join(f"{c:>14}" for c in cells)
        if ratio and "client CPU" not in label:
            a, b = per_target[targets[0]], per_target[targets[1]]
            ok = a and b and len(a) == len(b)
            line += f"{median([y / x for x, y in zip(a, b)]):>16.2f}" if ok else f"{'-':>16}"
        print(line)
    print("(ratios: median of the per-round ratios; client CPU: the busiest client process's CPU time "
          "over the run's wall time, near 100% means the client was the bottleneck)")
    for r in reasons:
        print("  INVALID " + r)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["etcd", "pyetcd"], help="measure one target only")
    ap.add_argument("--candidate-cmd", default=shlex.join(PYETCD), help="the pyetcd server command")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated: " + ",".join(SCENARIOS))
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--watch-streams", type=int, default=10)
    ap.add_argument("--puts", type=int, default=200)
    ap.add_argument("--memory-watchers", type=int, default=10000)
    ap.add_argument("--leases", type=int, default=10000)
    ap.add_argument("--lease-ttl", type=int, default=600)
    ap.add_argument("--lease-streams", type=int, default=4)
    ap.add_argument("--keepalive-rounds", type=int, default=3)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0, help="for one step of a scenario (s)")
    args = ap.parse_args(argv)
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    if unknown := set(args.scenarios) - set(SCENARIOS):
        raise SystemExit(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    commands = {}
    if args.only != "pyetcd":
        if not have_ref():
            raise SystemExit("real etcd 3.5.1 not found: set ETCD_REF_DIR or run `make ref`")
        commands["etcd"] = [ref_bin("etcd")]
    if args.only != "etcd":
        commands["pyetcd"] = shlex.split(args.candidate_cmd)
    targets = list(commands)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="watch-lease-bench-") as workdir:
        for i in range(args.rounds):
            order = targets if i % 2 == 0 else targets[::-1]
            this: dict[str, tuple[Result, dict[str, str]]] = {}
            for t in order:
                this[t] = run_target(commands[t], workdir, t, args)
                print(f"round {i + 1} {t}: " + ", ".join(f"{k} {v:,.2f}" for k, v in this[t][0].items())
                      + "".join(f"; {k} INVALID: {v}" for k, v in this[t][1].items()), flush=True)
            rounds.append(this)
    report(targets, rounds, args)


if __name__ == "__main__":
    main()
