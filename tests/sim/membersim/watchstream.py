"""A Watch stream between a client and a member over the simulated network.

A gRPC bidirectional stream on one TCP connection: nothing on it is lost, duplicated or
reordered. The member's side runs in the member's process: a task iterates the member's
``WatchServer.Watch(requests, ctx)`` — the handler the gRPC layer calls — and puts each response
on the wire; the client's requests reach the handler's iterator the same way. Flow control is
HTTP/2's: at most ``window`` responses in flight or unread, so a client that reads slowly stops
the handler, whose own queue then fills (its watchers fall back to catching up from the store).

The stream ends for the client — after the responses already on their way — when the member's
process dies (a reset), when a message meets a cut link (the member's side is reset at once, the
client notices after a keepalive timeout), or when the handler raises (an etcd error, such as
"no leader", reaches the client as that error). ``close()`` is the client going away: the
handler is cancelled when that reaches the member.
"""
from __future__ import annotations

import asyncio
import collections
import random
from types import SimpleNamespace

from pyetcd import errors
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.v3rpc.watch import WatchServer

from membersim.network import BASE_DELAY, CallLost, Network, Unreachable, host_of
from membersim.process import Process

KEEPALIVE = 2.0  # seconds until a client notices its stream's connection is gone (gRPC keepalive)


class StreamClosed(ConnectionError):
    """The client closed the stream itself."""


class WatchStream:
    def __init__(self, network: Network, src: str, url: str, process: Process, rng: random.Random,
                 window: int) -> None:
        self.network = network
        self.src, self.dst = src, host_of(url)
        self.process = process
        self.rng = rng
        self.error: BaseException | None = None   # why it ended, for the client
        self._arrived: collections.deque[bytes] = collections.deque()
        self._wakeup = asyncio.Event()
        self._requests: asyncio.Queue[rpc_pb2.WatchRequest] = asyncio.Queue()
        self._window = asyncio.Semaphore(window)
        self._up_at = self._down_at = 0.0  # the last arrival each way (a stream is FIFO)
        self._handler: asyncio.Task | None = None

    @classmethod
    async def open(cls, network: Network, src: str, url: str, services: dict[object, WatchServer],
                   rng: random.Random, *, window: int, require_leader: bool) -> WatchStream:
        """Open a Watch call on the member serving ``url`` (``services``: each server's WatchServer,
        made on first use, as its gRPC layer holds one)."""
        port = network.client_ports.get(url)
        if port is None or not network.link_up(src, host_of(url)):
            raise Unreachable(f"{url}: connection refused")
        process, server = port
        await asyncio.sleep(rng.uniform(*BASE_DELAY))
        if not process.alive or not network.link_up(src, host_of(url)):
            raise CallLost(f"{host_of(url)}: connection reset")
        service = services.get(server)
        if service is None:
            service = services[server] = WatchServer(server)
        stream = cls(network, src, url, process, rng, window)
        ctx = SimpleNamespace(metadata={"hasleader": "true"} if require_leader else {})
        stream._handler = network.loop.create_task(stream._serve(service, ctx), context=process.context)
        stream._handler.add_done_callback(lambda t: t.cancelled() or t.exception())
        process.death().add_done_callback(lambda f: stream._down(stream._end, CallLost(f"{stream.dst}: reset")))
        return stream

    # ---- the client's side ---------------------------------------------------------------------

    async def recv(self) -> bytes:
        """The next response; raises why the stream ended once none is left."""
        while not self._arrived:
            if self.error is not None:
                raise self.error
            self._wakeup.clear()
            await self._wakeup.wait()
        self._up(self._window.release)  # the window update
        return self._arrived.popleft()

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        if self.error is not None:
            raise self.error
        self._up(self._requests.put_nowait, request)

    def close(self) -> None:
        if self.error is None:
            self._end(StreamClosed("closed by the client"))
            self._up(self._handler.cancel)

    def _up(self, arrive, *args) -> None:
        """Client to member."""
        if not self.network.link_up(self.src, self.dst):
            self._cut()
            return
        self._up_at = self._at(self._up_at)
        self.network.carry(self._up_at, arrive, *args)

    def _end(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            self._wakeup.set()

    def _arrive(self, payload: bytes) -> None:
        if self.error is None:
            self._arrived.append(payload)
            self._wakeup.set()

    # ---- the member's side (in its process) ------------------------------------------------------

    async def _serve(self, service: WatchServer, ctx: SimpleNamespace) -> None:
        responses = service.Watch(_Requests(self._requests), ctx)
        try:
            async for framed in responses:  # (gRPC-framed messages, several at a time)
                for payload in _unframe(framed):
                    await self._window.acquire()
                    self._down(self._arrive, payload)
        except errors.EtcdError as e:
            self._down(self._end, e)
        except Exception as e:  # noqa: BLE001 - a bug in the handler: the client sees the stream fail
            self.network.trace.error("watch handler", e)
            self._down(self._end, e)
        finally:
            await responses.aclose()

    def _down(self, arrive, *args) -> None:
        """Member to client."""
        if not self.network.link_up(self.dst, self.src):
            self._cut()
            return
        self._down_at = self._at(self._down_at)
        self.network.carry(self._down_at, arrive, *args)

    def _cut(self) -> None:
        """A message met a cut link: the sender's side is reset, the client notices later."""
        if self._handler is not None and not self._handler.done():
            self._handler.cancel()
        self.network.carry(self.network.loop.time() + KEEPALIVE, self._end,
                           CallLost(f"{self.dst}: keepalive timeout"))

    def _at(self, last: float) -> float:
        return max(self.network.loop.time() + self.rng.uniform(*BASE_DELAY), last)


def _unframe(framed: bytes) -> list[bytes]:
    """The messages of a handler's Framed reply (each: flag byte, 4-byte length, bytes)."""
    out, pos = [], 0
    while pos < len(framed):
        n = int.from_bytes(framed[pos + 1:pos + 5], "big")
        out.append(bytes(framed[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out


class _Requests:
    """The requests as the handler reads them (an iterator, not an async generator: a killed
    process's frozen one is closed with its task, where a generator would be left to the
    collector)."""

    def __init__(self, queue: asyncio.Queue[rpc_pb2.WatchRequest]) -> None:
        self._queue = queue

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> rpc_pb2.WatchRequest:
        return await self._queue.get()
