"""One unary call to another member's client URLs (a follower forwarding to the leader)."""
from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message

from pyetcd import errors


async def call_unary(urls: list[str], service: str, method: str, request: Message, response_type: type[Message],
                     *, timeout: float, token: str = "") -> Any:
    last: Exception | None = None
    for url in urls:
        target = url.split("://", 1)[-1]
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(f"/etcdserverpb.{service}/{method}",
                                       request_serializer=type(request).SerializeToString,
                                       response_deserializer=response_type.FromString)
            try:
                return await call(request, timeout=timeout, metadata=(("token", token),) if token else None)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise errors.from_status(e.code().value[0], e.details() or "") from None
                last = e
    raise errors.ErrNoLeader from last
