"""The Platform (pyetcd.server.platform) a simulated member runs with.

Everything a member takes from the world, simulated: its FileSystem, its peer transport, the
joining member's question to the cluster (``fetch_cluster``), a call to another member's client
port (``call_member``, a follower forwarding to its leader), a seeded rng, a virtual wall clock
and ``fatal``. The network calls mirror the real ones' outcomes: fetch_cluster retries every URL
until its timeout and then raises ClusterUnreachable; call_member tries each URL, turns a
timeout into DEADLINE_EXCEEDED and, when no URL answered, raises ErrNoLeader.
"""
from __future__ import annotations

import asyncio
import random
import re
from typing import Any, Callable, NoReturn

from pyetcd import errors
from pyetcd.fileutil import FileSystem
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.platform import Platform
from pyetcd.transport.join import Answer, Wanted, ask_in_turn

from membersim.network import CallLost, Network, Unreachable, host_of
from membersim.process import Process
from membersim.transport import transport_factory

# The virtual wall clock starts here (2026-01-01), so member IDs derived from it look usual.
EPOCH = 1767225600.0
FETCH_ATTEMPT_TIMEOUT = 1.0
DEADLINE_EXCEEDED = 4


def member_platform(network: Network, process: Process, fs: FileSystem, host: str, temp_dir: str,
                    rng: random.Random, fatal: Callable[[str, BaseException | None], NoReturn]) -> Platform:
    loop = network.loop

    async def fetch(urls: list[str], *, wanted: Wanted | None = None) -> Answer:
        return await fetch_cluster(network, host, urls, wanted=wanted)

    async def call(urls: list[str], service: str, method: str, request: Any, response_type: type, *,
                   timeout: float, token: str = "") -> Any:  # (the simulation runs without auth)
        return await call_member(network, host, urls, method, request, response_type, timeout)

    return Platform(fs=fs, rng=rng, wall_clock=lambda: EPOCH + loop.time(),
                    transport=transport_factory(network, process, fs, temp_dir),
                    fetch_cluster=fetch, call_member=call, fatal=fatal)


async def fetch_cluster(network: Network, host: str, urls: list[str], timeout: float = 5.0,
                        wanted: Wanted | None = None) -> Answer:
    """pyetcd.transport.fetch_cluster's rounds, each question asked over the simulated network."""
    async def ask(url: str, left: float) -> Answer:
        transport = network.listeners.get(url)
        if transport is None or not network.link_up(host, host_of(url)):
            raise Unreachable("connection refused")
        info = await network.remote(host, host_of(url), transport.process, _answer(transport),
                                    min(FETCH_ATTEMPT_TIMEOUT, left))
        answer = rpc_pb2.MemberListResponse.FromString(info)
        if not answer.header.cluster_id:
            raise ValueError("the answer names no cluster ID")
        return answer.header.cluster_id, list(answer.members)
    return await ask_in_turn(urls, ask, timeout=timeout, wanted=wanted,
                             failures=(Unreachable, CallLost, RuntimeError, ValueError))


def _answer(transport) -> Callable:
    async def answer() -> bytes:
        if transport.cluster_info is None:
            raise RuntimeError("this member does not serve cluster information")
        return transport.cluster_info()
    return answer


async def call_member(network: Network, host: str, urls: list[str], method: str, request: Any,
                      response_type: type, timeout: float) -> Any:
    handler = _snake_case(method)
    for url in urls:
        sent = type(request).FromString(request.SerializeToString())
        try:
            response = await network.call_client_port(host, url, lambda s: getattr(s, handler)(sent), timeout)
        except Unreachable:
            continue
        except CallLost:
            raise errors.EtcdError(DEADLINE_EXCEEDED, "context deadline exceeded") from None
        return response_type.FromString(response.SerializeToString())
    raise errors.ErrNoLeader


def _snake_case(method: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()
