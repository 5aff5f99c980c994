"""A minimal blocking gRPC client for one bidirectional stream per HTTP/2 connection.

The benchmark's client must not be its bottleneck: through grpcio each streamed message costs
tens of microseconds of Python, here a few (messages are read in large socket chunks and handed
over as raw bytes). Only what a bench stream needs: one request stream per connection, flow
control both ways, PING and SETTINGS answered, the status read from the trailers.
"""
from __future__ import annotations

import socket
import struct

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
MAX_WINDOW = 0x7FFFFFFF
SID = 1  # the one stream of a connection
_FRAME = struct.Struct(">IBI")


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return _FRAME.pack(len(payload) << 8 | ftype, flags, sid) + payload


def grpc_message(payload: bytes) -> bytes:
    return b"\0" + len(payload).to_bytes(4, "big") + payload


class StreamError(Exception):
    """The stream ended other than by our close: a gRPC status, a reset, a GOAWAY, EOF."""


class Stream:
    """One gRPC call, e.g. ``Stream("127.0.0.1:2379", "/etcdserverpb.Watch/Watch")``."""

    def __init__(self, endpoint: str, path: str) -> None:
        host, port = endpoint.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = hpack.Decoder()
        self.buf = b""  # unparsed frame bytes
        self.body = bytearray()  # DATA payloads not yet cut into messages
        self.inbox: list[bytes] = []  # whole messages received, not yet taken
        self.header_block = b""
        self.end_stream = False  # of the header block being received
        self.ended: StreamError | None = None
        self.send_window = self.stream_send_window = 65535
        self.peer_initial_window = 65535
        self.max_frame = 16384
        self.received = 0  # DATA bytes since our last WINDOW_UPDATE
        block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                        (":authority", endpoint), ("content-type", "application/grpc"),
                                        ("te", "trailers")])
        settings = struct.pack(">HI", 0x4, MAX_WINDOW)  # INITIAL_WINDOW_SIZE: never hold the server up
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings)
                          + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535))
                          + frame(HEADERS, END_HEADERS, SID, block))

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, messages: list[bytes]) -> None:
        """Sends the protobuf payloads as gRPC messages, waiting for flow-control credit as needed."""
        data = memoryview(b"".join(grpc_message(m) for m in messages))
        while data:
            n = min(len(data), self.send_window, self.stream_send_window, self.max_frame)
            if n <= 0:
                self._read()  # WINDOW_UPDATEs (and anything else) come in meanwhile
                continue
            self.sock.sendall(frame(DATA, 0, SID, bytes(data[:n])))
            self.send_window -= n
            self.stream_send_window -= n
            data = data[n:]

    def receive(self) -> list[bytes]:
        """Blocks for the next chunk from the socket; returns (and clears) the messages received."""
        if not self.inbox:
            self._read()
        out, self.inbox = self.inbox, []
        if not out and self.ended:
            raise self.ended
        return out

    def _read(self) -> None:
        if self.ended:
            raise self.ended
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.ended = self.ended or StreamError("connection closed by the server")
        else:
            self._frames(self.buf + chunk if self.buf else chunk)

    def close(self) -> None:
        self.sock.close()

    def _frames(self, buf: bytes) -> None:
        i, n, out = 0, len(buf), []
        while n - i >= 9:
            head, flags, sid = _FRAME.unpack_from(buf, i)
            length, ftype = head >> 8, head & 0xFF
            if n - i - 9 < length:
                break
            payload = buf[i + 9:i + 9 + length]
            i += 9 + length
            if ftype == DATA:
                self._data(flags, payload)
            elif ftype in (HEADERS, CONTINUATION):
                self._headers(ftype, flags, payload)
            elif ftype == SETTINGS and not flags & ACK:
                self._settings(payload)
                out.append(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                out.append(frame(PING, ACK, 0, payload))
            elif ftype == WINDOW_UPDATE:
                inc = struct.unpack(">I", payload)[0] & MAX_WINDOW
                if sid == 0:
                    self.send_window += inc
                else:
                    self.stream_send_window += inc
            elif ftype == RST_STREAM:
                self.ended = self.ended or StreamError(f"stream reset by the server (code {struct.unpack('>I', payload)[0]})")
            elif ftype == GOAWAY:
                self.ended = self.ended or StreamError(f"GOAWAY from the server: {payload[8:].decode(errors='replace')}")
        self.buf = buf[i:]
        if self.received > 1 << 30:  # give the credit back long before the 2 GiB windows run out
            inc = struct.pack(">I", self.received)
            out += [frame(WINDOW_UPDATE, 0, 0, inc), frame(WINDOW_UPDATE, 0, SID, inc)]
            self.received = 0
        if out:
            self.sock.sendall(b"".join(out))

    def _settings(self, payload: bytes) -> None:
        for j in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, j)
            if key == 0x4:
                self.stream_send_window += value - self.peer_initial_window
                self.peer_initial_window = value
            elif key == 0x5:
                self.max_frame = value

    def _data(self, flags: int, payload: bytes) -> None:
        self.received += len(payload)
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        body = self.body
        body += payload
        i, n = 0, len(body)
        while n - i >= 5:
            length = int.from_bytes(body[i + 1:i + 5], "big")
            if n - i - 5 < length:
                break
            self.inbox.append(bytes(body[i + 5:i + 5 + length]))
            i += 5 + length
        del body[:i]

    def _headers(self, ftype: int, flags: int, payload: bytes) -> None:
        if ftype == HEADERS:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIORITY:
                payload = payload[5:]
            self.end_stream = bool(flags & END_STREAM)
        self.header_block += payload
        if not flags & END_HEADERS:
            return
        fields = dict(self.decoder.decode(self.header_block))
        self.header_block = b""
        if self.end_stream:  # trailers (or a trailers-only answer)
            status = fields.get("grpc-status", "?")
            self.ended = StreamError(f"gRPC status {status}: {fields.get('grpc-message', '')}")
