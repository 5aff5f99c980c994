"""The peer protocol on the wire (ours, not etcd's: every member of a cluster is pyetcd).

A connection carries one direction of one kind of traffic and starts with a handshake:

    client -> server   32 bytes: b"PYEP" | version u8 | kind u8 | 0 u16 | from u64 | cluster u64 | to u64
    server -> client   status u8 | length u16 | UTF-8 message (empty when status is OK)

On any status but OK the server closes the connection.  After OK the client sends frames,
each a big-endian u32 length and that many bytes:

    KIND_STREAM    one frame per message, for as long as the connection lives
    KIND_SNAPSHOT  one frame of metadata, then the file's chunks as frames, then an empty frame;
                   the server answers with a status like the handshake's once the snapshot has
                   been handed over (OK) or refused (FAILED and why)
    KIND_CLUSTER   a question from a member that is joining and knows neither the cluster's ID
                   nor its own: from, cluster and to are 0 and not checked. After OK the server
                   sends one frame (a serialized MemberListResponse: the cluster's ID in its
                   header, the member list) and closes; FAILED when it does not answer
"""
from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

MAGIC = b"PYEP"
VERSION = 1
KIND_STREAM = 1
KIND_SNAPSHOT = 2
KIND_CLUSTER = 3
KINDS = (KIND_STREAM, KIND_SNAPSHOT, KIND_CLUSTER)

HELLO = struct.Struct(">4sBBHQQQ")
STATUS = struct.Struct(">BH")
LENGTH = struct.Struct(">I")


class Status(enum.IntEnum):
    OK = 0
    CLUSTER_MISMATCH = 1
    WRONG_MEMBER = 2
    MEMBER_REMOVED = 3
    BAD_HANDSHAKE = 4
    FAILED = 5


@dataclass(frozen=True)
class Hello:
    kind: int
    sender: int
    cluster: int
    receiver: int

    def encode(self) -> bytes:
        return HELLO.pack(MAGIC, VERSION, self.kind, 0, self.sender, self.cluster, self.receiver)


class HandshakeError(Exception):
    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_hello(data: bytes) -> Hello:
    if data[:len(MAGIC)] != MAGIC or len(data) < HELLO.size:
        raise HandshakeError(Status.BAD_HANDSHAKE, "not a pyetcd peer connection")
    magic, version, kind, _, sender, cluster, receiver = HELLO.unpack_from(data)
    if version != VERSION:
        raise HandshakeError(Status.BAD_HANDSHAKE, f"unsupported peer protocol version {version}")
    if kind not in KINDS:
        raise HandshakeError(Status.BAD_HANDSHAKE, f"unknown peer connection kind {kind}")
    return Hello(kind, sender, cluster, receiver)


def encode_status(status: Status, message: str = "") -> bytes:
    text = message.encode()[:0xFFFF]
    return STATUS.pack(status, len(text)) + text


def frame(data: bytes) -> bytes:
    return LENGTH.pack(len(data)) + data


async def read_status(reader: asyncio.StreamReader) -> tuple[Status, str]:
    """A handshake answer or a verdict; an unknown status code reads as FAILED."""
    code, length = STATUS.unpack(await reader.readexactly(STATUS.size))
    text = (await reader.readexactly(length)).decode(errors="replace")
    try:
        return Status(code), text
    except ValueError:
        return Status.FAILED, text


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    (size,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
    if size > limit:
        raise ValueError(f"frame of {size} bytes exceeds the limit of {limit}")
    return await reader.readexactly(size)


def frames(items: list[bytes]) -> bytes:
    pack = LENGTH.pack
    return b"".join([part for data in items for part in (pack(len(data)), data)])


@dataclass(frozen=True)
class PeerURL:
    host: str
    port: int
    tls: bool


def parse_url(url: str, default_port: int = 2380) -> PeerURL:
    """``http://host:port`` or ``https://host:port`` (IPv6 hosts in brackets)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"peer URL {url!r}: scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"peer URL {url!r}: missing host")
    port = parts.port if parts.port is not None else default_port
    return PeerURL(parts.hostname, port, parts.scheme == "https")
