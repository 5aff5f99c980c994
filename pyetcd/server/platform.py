"""What a member takes from the world, in one object the whole-member simulation can replace.

A member's time is its asyncio loop's (``loop.time()``, ``call_later``, ``asyncio.sleep``) and its
blocking work runs through ``asyncio.to_thread`` (the loop's default executor): the simulation
runs members on a loop with a virtual clock and an executor of its own. Everything else the
member does to the outside goes through a Platform: the disk (``fs``), the peer network
(``transport`` and ``fetch_cluster``), calls to another member's client port (``call_member``),
randomness, the wall clock (member IDs of added members, as etcd derives them) and ``fatal``,
how a member that cannot go on safely stops.
"""
from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, NoReturn

from pyetcd.fileutil import OS, FileSystem
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.transport import PeerTransport, fetch_cluster

logger = logging.getLogger("pyetcd.server")


def exit_fatally(message: str, exc: BaseException | None = None) -> NoReturn:
    """Log one critical line and end the process at once (exit 2), as etcd panics."""
    logger.critical(message, exc_info=exc)
    logging.shutdown()
    os._exit(2)


async def _call_member(urls: list[str], service: str, method: str, request: Any, response_type: type,
                       *, timeout: float, token: str = "") -> Any:
    from pyetcd.client.forward import call_unary  # client-side gRPC, needed only when forwarding

    return await call_unary(urls, service, method, request, response_type, timeout=timeout, token=token)


@dataclass
class Platform:
    fs: FileSystem = OS
    rng: random.Random = field(default_factory=random.Random)
    wall_clock: Callable[[], float] = time.time
    # PeerTransport's constructor, or anything taking the same arguments and offering its methods
    transport: Callable[..., PeerTransport] = PeerTransport
    # (peer URLs, *, wanted=None): transport.join.fetch_cluster's signature
    fetch_cluster: Callable[..., Awaitable[tuple[int, list[rpc_pb2.Member]]]] = fetch_cluster
    # one unary gRPC call to another member: (client URLs, service, method, request, response type,
    # *, timeout, token: the caller's auth token, sent on)
    call_member: Callable[..., Awaitable[Any]] = _call_member
    fatal: Callable[[str, BaseException | None], NoReturn] = exit_fatally
