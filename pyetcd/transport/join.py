"""A joining member asks the cluster who is in it (etcd: GET /members on a peer URL).

The member was added with `member add` and started with ``--initial-cluster-state existing``;
it knows some peer URLs but neither the cluster's ID nor its own member ID, so it asks on a
connection of its own kind (wire.KIND_CLUSTER) that any member answers without checking IDs.
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Awaitable, Callable

from google.protobuf.message import DecodeError

from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.transport.wire import KIND_CLUSTER, HandshakeError, Hello, PeerURL, Status, parse_url, read_frame, \
    read_status

ATTEMPT_TIMEOUT = 1.0   # one connection: connect, ask, read the answer
RETRY_DELAY = 0.2       # between rounds over every URL; doubles up to RETRY_DELAY_MAX
RETRY_DELAY_MAX = 1.0
MAX_ANSWER_BYTES = 64 << 20


class ClusterUnreachable(ConnectionError):
    """No peer URL answered with the cluster's member list."""


Wanted = Callable[[list[rpc_pb2.Member]], bool]
Answer = tuple[int, list[rpc_pb2.Member]]
# ask(url, seconds left) -> (cluster ID, members); raises one of the failures it is given
Ask = Callable[[str, float], Awaitable[Answer]]


async def fetch_cluster(urls: list[str], *, ssl_context: ssl.SSLContext | None = None,
                        timeout: float = 5.0, wanted: Wanted | None = None) -> Answer:
    """The cluster's ID and member list, from the first of ``urls`` that answers.

    Tries every URL in turn, round after round with a growing pause, until ``timeout`` seconds
    have passed; then raises ClusterUnreachable naming the URLs and what each last said.
    With ``wanted``, an answer it rejects (a member that has not applied a change yet) is kept
    and the asking goes on: the last such answer is returned if no wanted one comes in time.
    ValueError for a malformed URL, or an https URL without ``ssl_context``.
    """
    if not urls:
        raise ValueError("no peer URLs to ask for the cluster's members")
    peers = {url: parse_url(url) for url in urls}
    if ssl_context is None and any(peer.tls for peer in peers.values()):
        raise ValueError("an https peer URL needs a client TLS context")

    async def ask(url: str, left: float) -> Answer:
        peer = peers[url]
        async with asyncio.timeout(min(ATTEMPT_TIMEOUT, left)):
            return await _ask(peer, ssl_context if peer.tls else None)
    return await ask_in_turn(urls, ask, timeout=timeout, wanted=wanted, failures=(
        OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, HandshakeError, DecodeError, ValueError))


async def ask_in_turn(urls: list[str], ask: Ask, *, timeout: float, wanted: Wanted | None,
                      failures: tuple[type[BaseException], ...]) -> Answer:
    """fetch_cluster's rounds over ``urls``, for any way of asking one (the simulation has its
    own): see fetch_cluster."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    errors: dict[str, str] = {}
    unwanted: Answer | None = None
    delay = RETRY_DELAY
    while True:
        for url in urls:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                answer = await ask(url, left)
            except failures as e:
                errors[url] = str(e) or type(e).__name__
                continue
            if wanted is None or wanted(answer[1]):
                return answer
            unwanted = answer
        left = deadline - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(delay, left))
        delay = min(RETRY_DELAY_MAX, delay * 2)
    if unwanted is not None:
        return unwanted
    detail = "; ".join(f"{url}: {errors.get(url, 'not tried')}" for url in urls)
    raise ClusterUnreachable(f"could not get the cluster's members from any of {', '.join(urls)} "
                             f"within {timeout:g}s ({detail})")


async def _ask(peer: PeerURL, tls: ssl.SSLContext | None) -> Answer:
    reader, writer = await asyncio.open_connection(peer.host, peer.port, ssl=tls,
                                                   server_hostname=peer.host if tls else None)
    try:
        writer.write(Hello(KIND_CLUSTER, 0, 0, 0).encode())
        status, text = await read_status(reader)
        if status is not Status.OK:
            raise HandshakeError(status, text)
        answer = rpc_pb2.MemberListResponse.FromString(await read_frame(reader, MAX_ANSWER_BYTES))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    if not answer.header.cluster_id:
        raise ValueError("the answer names no cluster ID")
    return answer.header.cluster_id, list(answer.members)
