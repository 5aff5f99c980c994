"""Loopback figures for two transports in one process: ``python -m pyetcd.transport.bench``.

throughput: member 1 sends N messages of SIZE bytes to member 2 in batches (B sends per loop
iteration) and the clock stops when the last one is delivered.
round trip: member 2 echoes every message back; member 1 sends a batch and waits for all of it.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from pyetcd.transport.transport import PeerTransport

CLUSTER = 0xBE7C


async def _pair(echo: bool) -> tuple[PeerTransport, PeerTransport, dict]:
    state = {"got": 0, "waiter": None, "want": 0}

    def on_one(sender: int, data: bytes) -> None:
        state["got"] += 1
        if state["got"] >= state["want"] and state["waiter"] is not None and not state["waiter"].done():
            state["waiter"].set_result(None)

    a = PeerTransport(1, CLUSTER, on_message=on_one)
    b: PeerTransport
    if echo:
        b = PeerTransport(2, CLUSTER, on_message=lambda sender, data: b.send(sender, data))
    else:
        b = PeerTransport(2, CLUSTER, on_message=on_one)
    await a.start(["http://127.0.0.1:0"])
    await b.start(["http://127.0.0.1:0"])
    a.add_peer(2, b.listen_urls)
    b.add_peer(1, a.listen_urls)
    while not (a.is_active(2) and b.is_active(1)):
        await asyncio.sleep(0.001)
    return a, b, state


async def throughput(total: int, batch: int, size: int) -> float:
    a, b, state = await _pair(echo=False)
    try:
        payload = b"x" * size
        state["want"] = total
        state["waiter"] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        sent = 0
        while sent < total:
            for _ in range(batch):
                a.send(2, payload)
            sent += batch
            await asyncio.sleep(0)
        await state["waiter"]
        return total / (time.perf_counter() - start)
    finally:
        await a.stop()
        await b.stop()


async def round_trip(rounds: int, batch: int, size: int) -> tuple[float, float]:
    """Median and 99th percentile, in microseconds, of send-a-batch-until-all-echoed."""
    a, b, state = await _pair(echo=True)
    try:
        payload = b"x" * size
        loop = asyncio.get_running_loop()
        samples = []
        for _ in range(rounds):
            state["got"], state["want"] = 0, batch
            state["waiter"] = loop.create_future()
            start = time.perf_counter()
            a.send_many([(2, payload)] * batch)
            await state["waiter"]
            samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.99)]
    finally:
        await a.stop()
        await b.stop()


async def main(args: argparse.Namespace) -> None:
    for batch in (1, 100):
        rate = await throughput(args.messages, batch, args.size)
        med, p99 = await round_trip(args.rounds, batch, args.size)
        print(f"batch {batch:>3}: {rate:>9,.0f} msg/s one way; round trip median {med:,.0f} us, p99 {p99:,.0f} us")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(main(args))
    else:
        asyncio.run(main(args))


if __name__ == "__main__":
    run()
