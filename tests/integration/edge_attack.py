"""Raw-socket attacks on a member's client port and the checks that it survived them.

Used by test_edge_fuzz.py: byte builders for HTTP/2 frames, HPACK blocks and gRPC messages, a
client that sends bytes and waits (with a deadline) for the server to answer or close, the
liveness check (a fresh client's Put/Range) and a bystander thread that keeps calling the member
during the attack.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

import grpc
import hpack

from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
DEADLINE = 10.0          # seconds a malformed connection may stay open after we stop sending


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"", length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return struct.pack(">IBI", (n << 8) | ftype, flags, sid) + payload


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def request_block(path: str, content_type: str = "application/grpc", **extra: str) -> bytes:
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
              ("content-type", content_type), ("te", "trailers"), *extra.items()]
    return hpack.Encoder().encode(fields)


def grpc_prefix(flag: int, length: int) -> bytes:
    return struct.pack(">BI", flag, length)


def unary(sid: int, path: str, message: bytes) -> bytes:
    return (frame(HEADERS, END_HEADERS, sid, request_block(path))
            + frame(DATA, END_STREAM, sid, grpc_prefix(0, len(message)) + message))


class Conn:
    """One raw TCP connection to the client port."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.received = bytearray()
        self.eof = False

    def send(self, data: bytes) -> bool:
        """False when the server already closed the connection (an answer, not a failure)."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def finish(self) -> bytes:
        """Half-close, then read until the server closes; fails if it does not within DEADLINE."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        deadline = time.monotonic() + DEADLINE
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"connection still open {DEADLINE}s after the client stopped sending"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:      # reset by the server: closed too
                chunk = b""
            if not chunk:
                self.eof = True
            self.received += chunk
        self.sock.close()
        return bytes(self.received)

    def read_until(self, done, timeout: float = DEADLINE) -> bytes:
        """Read until done(received) or EOF; fails when neither happens within timeout."""
        deadline = time.monotonic() + timeout
        while not done(bytes(self.received)) and not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"no answer within {timeout}s"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            self.eof = not chunk
            self.received += chunk
        return bytes(self.received)

    def close(self) -> None:
        self.sock.close()


def attack(port: int, data: bytes) -> bytes:
    """Send data, stop sending, and return what the server wrote before it closed."""
    conn = Conn(port)
    conn.send(data)
    return conn.finish()


def parse_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """The complete frames in what an HTTP/2 server wrote (header blocks left encoded)."""
    out = []
    pos = 0
    while len(data) - pos >= 9:
        lt, flags, sid = struct.unpack_from(">IBI", data, pos)
        n = lt >> 8
        if len(data) - pos - 9 < n:
            break
        out.append((lt & 0xFF, flags, sid & 0x7FFFFFFF, data[pos + 9:pos + 9 + n]))
        pos += 9 + n
    return out


def goaway_code(data: bytes) -> int | None:
    for ftype, _, _, payload in parse_frames(data):
        if ftype == GOAWAY:
            return struct.unpack_from(">II", payload)[1]
    return None


def stream_answer(data: bytes, sid: int) -> list[tuple[str, str]] | None:
    """The decoded header fields sent on sid once the server ended it (None while still open)."""
    decoder = hpack.Decoder()
    fields: list[tuple[str, str]] = []
    block = b""
    for ftype, flags, fsid, payload in parse_frames(data):
        if ftype in (HEADERS, CONTINUATION):
            block += payload
            if flags & END_HEADERS:
                decoded = decoder.decode(block)
                block = b""
                if fsid == sid:
                    fields += decoded
                    if flags & END_STREAM:
                        return fields
        elif fsid == sid and (ftype == RST_STREAM or (ftype == DATA and flags & END_STREAM)):
            return fields
    return None


def alive(endpoint: str, key: bytes, timeout: float = DEADLINE) -> None:
    """A fresh client's Put and Range succeed within timeout."""
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        kv.Put(rpc_pb2.PutRequest(key=key, value=b"v"), timeout=timeout)
        got = kv.Range(rpc_pb2.RangeRequest(key=key), timeout=timeout)
        assert [kv.key for kv in got.kvs] == [key]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Bystander(threading.Thread):
    """Another client calling Put and Range on one long-lived channel for the whole attack."""

    def __init__(self, endpoint: str, timeout: float = DEADLINE) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.timeout = timeout
        self.stopping = threading.Event()
        self.calls = 0
        self.failures: list[str] = []
        self.slowest = 0.0

    def run(self) -> None:
        with grpc.insecure_channel(self.endpoint) as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            while not self.stopping.is_set():
                start = time.monotonic()
                try:
                    kv.Put(rpc_pb2.PutRequest(key=b"bystander", value=b"%d" % self.calls), timeout=self.timeout)
                    kv.Range(rpc_pb2.RangeRequest(key=b"bystander"), timeout=self.timeout)
                except grpc.RpcError as e:
                    self.failures.append(f"{e.code()}: {e.details()}")
                self.slowest = max(self.slowest, time.monotonic() - start)
                self.calls += 1
                self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.timeout * 3)
