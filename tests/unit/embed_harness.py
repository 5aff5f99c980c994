"""Drive pyetcd.embed protocols in-process: a fake transport, frame builders and a frame reader."""
from __future__ import annotations

import asyncio
import struct
from typing import Any, Callable

import hpack

from pyetcd.embed import h2

FRAME = struct.Struct(">IBI")


class FakeTransport(asyncio.Transport):
    def __init__(self, ssl: bool = False) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.protocol: Any = None
        self.reading = True
        self._ssl = ssl

    def write(self, data: Any) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000)}.get(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def take(self) -> bytes:
        out = bytes(self.written)
        self.written.clear()
        return out


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return FRAME.pack((len(payload) << 8) | ftype, flags, sid) + payload


def settings(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(h2.SETTINGS, h2.ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(sid: int, inc: int) -> bytes:
    return frame(h2.WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


def request_headers(path: str, **extra: str) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra.items()]


class Frames:
    """Parses what the server wrote into (type, flags, sid, payload) tuples, decoding header blocks."""

    def __init__(self) -> None:
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.pending: list[bytes] = []

    def feed(self, data: bytes) -> list[tuple[int, int, int, Any]]:
        self.buf += data
        out = []
        while len(self.buf) >= 9:
            lt, flags, sid = FRAME.unpack_from(self.buf)
            n = lt >> 8
            if len(self.buf) < 9 + n:
                break
            payload = self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            ftype = lt & 0xFF
            if ftype in (h2.HEADERS, h2.CONTINUATION):
                self.pending.append(payload)
                if not flags & h2.END_HEADERS:
                    continue
                payload = [tuple(x) for x in self.decoder.decode(b"".join(self.pending))]
                self.pending = []
                ftype = h2.HEADERS
            out.append((ftype, flags, sid, payload))
        return out


class Client:
    """A scripted HTTP/2 client talking to one H2Protocol over a FakeTransport."""

    def __init__(self, open_stream: Callable, settings_pairs: tuple[tuple[int, int], ...] = ()) -> None:
        self.transport = FakeTransport()
        self.proto = h2.H2Protocol(open_stream)
        self.proto.connection_made(self.transport)
        self.encoder = hpack.Encoder()
        self.frames = Frames()
        self.lost = False
        self.send(h2.PREFACE + settings(*settings_pairs))

    def send(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            self.proto.data_received(data)
        else:
            for i in range(0, len(data), chunk):
                self.proto.data_received(data[i:i + chunk])

    def headers_frame(self, sid: int, headers: list[tuple[str, str]], end_stream: bool = False) -> bytes:
        flags = h2.END_HEADERS | (h2.END_STREAM if end_stream else 0)
        return frame(h2.HEADERS, flags, sid, self.encoder.encode(headers))

    def unary(self, sid: int, path: str, payload: bytes, **extra: str) -> bytes:
        return (self.headers_frame(sid, request_headers(path, **extra))
                + frame(h2.DATA, h2.END_STREAM, sid, grpc_message(payload)))

    def read(self) -> list[tuple[int, int, int, Any]]:
        self.proto._flush()
        return self.frames.feed(self.transport.take())

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.proto.connection_lost(None)


async def until(predicate: Callable[[], Any], what: str = "condition", turns: int = 1000) -> Any:
    """Let the loop run until predicate() is truthy (a bounded number of turns, no clock)."""
    for _ in range(turns):
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0)
    raise AssertionError(f"timed out waiting for {what}")
