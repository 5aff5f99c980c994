"""PeerTransport across processes: a member in a child process is SIGKILLed and restarted."""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict

from pyetcd.transport import PeerTransport, TransportOptions
from servers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = 0xC1
FAST = TransportOptions(backoff_initial=0.01, backoff_max=0.1, dial_timeout=0.5)

# A member that echoes every message back to its sender, prefixed with its pid.
ECHO = textwrap.dedent("""
    import asyncio, os, sys, uvloop
    from pyetcd.transport import PeerTransport, TransportOptions

    async def main():
        port, peer_url = int(sys.argv[1]), sys.argv[2]
        t = PeerTransport(2, 0xC1, on_message=lambda f, d: t.send(f, b"%d:" % os.getpid() + d),
                          options=TransportOptions(backoff_initial=0.01, backoff_max=0.1))
        await t.start([f"http://127.0.0.1:{port}"])
        t.add_peer(1, [peer_url])
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())
""")


async def until(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def spawn_echo(port: int, peer_url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", ECHO, str(port), peer_url], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": ROOT})
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line == b"ready\n", line
    return proc


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


async def test_peer_process_killed_and_restarted():
    got: dict[int, list[bytes]] = defaultdict(list)
    unreachable: list[int] = []
    a = PeerTransport(1, CLUSTER, on_message=lambda f, d: got[f].append(d), on_unreachable=unreachable.append,
                      options=FAST, rng=random.Random(1))
    procs = []
    try:
        await a.start(["http://127.0.0.1:0"])
        port = free_port()
        procs.append(await spawn_echo(port, a.listen_urls[0]))
        a.add_peer(2, [f"http://127.0.0.1:{port}"])
        for i in range(1000):
            a.send(2, b"%d" % i)
        await until(lambda: len(got[2]) == 1000, what="echoes")
        pid = procs[0].pid
        assert got[2] == [b"%d:%d" % (pid, i) for i in range(1000)]

        kill(procs[0])
        await until(lambda: not a.is_active(2) and 2 in unreachable, what="unreachable after SIGKILL")
        procs.append(await spawn_echo(port, a.listen_urls[0]))
        await until(lambda: a.is_active(2), what="reconnect to the restarted member")
        got[2].clear()
        a.send(2, b"back")
        await until(lambda: got[2] == [b"%d:back" % procs[1].pid], what="echo from the restarted member")
    finally:
        for proc in procs:
            kill(proc)
        await a.stop()
