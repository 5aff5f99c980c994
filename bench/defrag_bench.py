"""Writes during a defrag: pyetcd's online defrag against real etcd 3.5.1's blocking one.

Each server gets the same database: ``--keys`` keys (Kubernetes-like names, 256-byte values)
of which 90 % are then deleted and compacted away. One client then puts one key at a time
(closed loop) before, during and after a Defragment sent on another connection; the figures
are the defrag's duration, the sizes, and of the puts that overlap it: p50, p99 and the longest
pause (the longest time between two acknowledged puts).

    .venv/bin/python bench/defrag_bench.py [--ref] [--keys 1000000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from pyetcd.client.aio import AsyncClient  # noqa: E402
from pyetcd.proto.etcdserverpb import rpc_pb2  # noqa: E402
from servers import PYETCD, Server, have_ref, ref_bin  # noqa: E402

VALUE = b"v" * 256
BATCH = 128  # puts per Txn (etcd's --max-txn-ops)


def key(i: int) -> bytes:
    kind = "junk" if i % 10 else "kept"
    return f"/registry/{kind}/ns{i % 100:02d}/pod-{i:08d}".encode()


async def load(client: AsyncClient, count: int) -> None:
    async def batch(start: int) -> None:
        ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key(i), value=VALUE))
               for i in range(start, min(start + BATCH, count))]
        await client.txn(rpc_pb2.TxnRequest(success=ops), timeout=120)

    starts = iter(range(0, count, BATCH))

    async def worker() -> None:
        for start in starts:
            await batch(start)
    await asyncio.gather(*(worker() for _ in range(16)))
    for ns in range(100):  # 90 % away: every junk key
        prefix = f"/registry/junk/ns{ns:02d}/".encode()
        await client.delete(prefix, prefix[:-1] + b"0", timeout=120)
    rev = (await client.get(b"x", serializable=True)).header.revision
    await client.compact(rev, physical=True, timeout=600)


async def measure(client: AsyncClient, defrag_client: AsyncClient) -> dict[str, float]:
    done: list[float] = []  # completion times of puts
    latencies: list[tuple[float, float]] = []  # (start, latency)
    stop = asyncio.Event()

    async def writer() -> None:
        i = 0
        while not stop.is_set():
            start = time.monotonic()
            await client.put(b"/registry/writer/key%d" % (i % 1000), VALUE, timeout=600)
            end = time.monotonic()
            latencies.append((start, end - start))
            done.append(end)
            i += 1
    task = asyncio.create_task(writer())
    await asyncio.sleep(2)
    before = await defrag_client.status(timeout=60)
    began = time.monotonic()
    await defrag_client.defragment(timeout=3600)
    ended = time.monotonic()
    after = await defrag_client.status(timeout=60)
    await asyncio.sleep(2)
    stop.set()
    await task
    overlapping = [lat for start, lat in latencies if start <= ended and start + lat >= began]
    during = sorted(overlapping) or [0.0]
    window = [began] + [t for t in done if began <= t <= ended] + [ended]
    window += [t for t in done if t > ended][:1]
    pause = max(b - a for a, b in zip(window, window[1:]))
    return {"defrag s": ended - began, "db MB before": before.dbSize / 1e6, "db MB after": after.dbSize / 1e6,
            "puts during": len(overlapping),
            "put p50 ms": 1000 * during[len(during) // 2], "put p99 ms": 1000 * during[int(len(during) * 0.99)],
            "longest pause ms": 1000 * pause}


async def run(label: str, cmd: list[str], keys: int, workdir: str) -> dict[str, float]:
    server = Server(cmd, os.path.join(workdir, f"{label}.etcd"), extra=["--quota-backend-bytes", str(8 << 30)])
    server.start()
    try:
        async with AsyncClient([server.endpoint]) as client, AsyncClient([server.endpoint]) as other:
            started = time.monotonic()
            await load(client, keys)
            print(f"{label}: loaded {keys} keys, 90 % deleted and compacted in {time.monotonic() - started:.0f} s",
                  flush=True)
            return await measure(client, other)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--ref", action="store_true", help="also real etcd 3.5.1 (ETCD_REF_DIR)")
    args = parser.parse_args()
    targets = [("pyetcd", PYETCD)]
    if args.ref and have_ref():
        targets.append(("etcd", [ref_bin("etcd")]))
    results = {}
    with tempfile.TemporaryDirectory(prefix="defrag-bench-") as workdir:
        for label, cmd in targets:
            results[label] = asyncio.run(run(label, cmd, args.keys, workdir))
    names = list(results)
    print(f"{'':20}" + "".join(f"{n:>14}" for n in names))
    for metric in results[names[0]]:
        print(f"{metric:20}" + "".join(f"{results[n][metric]:14.1f}" for n in names))


if __name__ == "__main__":
    main()
