"""Snapshots travel on a connection of their own, so they never hold up a peer's messages.

The sender streams metadata and chunks (see wire.py) and waits for the receiver's verdict; the
receiver spools the chunks to a temporary file and, once all of it is there, awaits
``on_snapshot(sender, metadata, path)``. Returning means accepted; raising means refused.
The file is deleted after the callback returns, so a callback that keeps the snapshot moves it
(``os.replace``) before returning.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from typing import AsyncIterable

from pyetcd.transport.common import Context, Rejection
from pyetcd.transport.wire import (KIND_SNAPSHOT, HandshakeError, Hello, PeerURL, Status, encode_status,
                                   frame, read_frame, read_status)

SnapshotSource = str | os.PathLike | AsyncIterable[bytes]


async def receive_snapshot(ctx: Context, sender: int, reader: asyncio.StreamReader,
                           transport: asyncio.Transport) -> None:
    path = None
    fields = {"remote-peer-id": f"{sender:x}"}
    limit, idle = ctx.options.max_frame_bytes, ctx.options.snapshot_idle_timeout
    try:
        async with asyncio.timeout(idle):
            metadata = await read_frame(reader, limit)
        fd, path = tempfile.mkstemp(prefix=f"snapshot-{sender:x}-", suffix=".tmp", dir=ctx.options.snapshot_dir)
        size = 0
        with os.fdopen(fd, "wb") as f:
            while True:
                async with asyncio.timeout(idle):
                    chunk = await read_frame(reader, limit)
                if not chunk:
                    break
                await asyncio.to_thread(f.write, chunk)
                size += len(chunk)
        ctx.log(logging.INFO, "received snapshot", size=size, **fields)
        if ctx.on_snapshot is None:
            transport.write(encode_status(Status.FAILED, "this member does not accept snapshots"))
            return
        try:
            await ctx.on_snapshot(sender, metadata, path)
        except Exception as e:
            ctx.logger.exception("snapshot handler failed")
            transport.write(encode_status(Status.FAILED, f"snapshot refused: {e}"))
        else:
            transport.write(encode_status(Status.OK))
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, OSError, TimeoutError) as e:
        ctx.log(logging.WARNING, "failed to receive snapshot", error=str(e) or type(e).__name__, **fields)
    finally:
        transport.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


async def _chunks(source: SnapshotSource, chunk_bytes: int) -> AsyncIterable[bytes]:
    if isinstance(source, (str, os.PathLike)):
        f = await asyncio.to_thread(open, source, "rb")
        try:
            while chunk := await asyncio.to_thread(f.read, chunk_bytes):
                yield chunk
        finally:
            f.close()
    else:
        async for chunk in source:
            if chunk:
                yield chunk


async def send_snapshot(ctx: Context, peer_id: int, urls: list[PeerURL], metadata: bytes,
                        source: SnapshotSource) -> bool:
    """Stream one snapshot to the first of ``urls`` that answers; True once the peer accepted it."""
    fields = {"remote-peer-id": f"{peer_id:x}"}
    idle = ctx.options.snapshot_idle_timeout
    errors = []
    for url in urls:
        tls = ctx.ssl_client if url.tls else None
        try:
            async with asyncio.timeout(ctx.options.dial_timeout):
                reader, writer = await asyncio.open_connection(url.host, url.port, ssl=tls,
                                                               server_hostname=url.host if tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            errors.append(f"{url.host}:{url.port}: {e or type(e).__name__}")
            continue
        try:
            writer.write(Hello(KIND_SNAPSHOT, ctx.member_id, ctx.cluster_id, peer_id).encode())
            async with asyncio.timeout(ctx.options.dial_timeout):
                status, text = await read_status(reader)
            if status is not Status.OK:
                raise HandshakeError(status, text)
            writer.write(frame(metadata))
            size = 0
            async for chunk in _chunks(source, ctx.options.snapshot_chunk_bytes):
                writer.write(frame(chunk))
                size += len(chunk)
                async with asyncio.timeout(idle):
                    await writer.drain()
            writer.write(frame(b""))
            async with asyncio.timeout(idle):
                status, text = await read_status(reader)
            if status is not Status.OK:
                ctx.log(logging.WARNING, "peer refused snapshot", error=text, **fields)
                return False
            ctx.log(logging.INFO, "sent snapshot", size=size, **fields)
            return True
        except HandshakeError as e:
            ctx.log(logging.ERROR, "peer refused our snapshot connection", error=str(e), **fields)
            ctx.rejected(Rejection(peer_id, e.status, str(e), inbound=False))
            return False
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            ctx.log(logging.WARNING, "failed to send snapshot", error=str(e) or type(e).__name__, **fields)
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    ctx.log(logging.WARNING, "cannot reach peer to send snapshot", errors=errors, **fields)
    return False
