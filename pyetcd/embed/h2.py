"""HTTP/2 server connections (RFC 9113) on an asyncio Protocol: framing, stream state, flow control.

Lean on purpose: the gRPC request rate of the whole server is bounded by the Python work done
per frame here. Frames are parsed with one ``struct.unpack_from`` each, frames produced while
handling one ``data_received`` call (or by handlers finishing in the same loop iteration) go out
in one ``transport.write``, and header blocks that leave the HPACK dynamic table unchanged are decoded
once per connection and then served from a cache.

The application side is a ``StreamOpener``: called once per new request stream with the decoded
pseudo-headers and regular fields, it returns a ``StreamHandler`` that receives the stream's
DATA payloads, its end, or its reset. Handlers answer through ``H2Protocol.send_*``.

Our own header blocks use only the static table and literals without indexing, so the encoder
keeps no state and the peer's SETTINGS_HEADER_TABLE_SIZE never matters to us.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import struct
from typing import Callable, Protocol

import hpack

log = logging.getLogger("pyetcd.embed")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

_FRAME = struct.Struct(">IBI")          # (length << 8 | type), flags, stream id
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")
_GOAWAY = struct.Struct(">II")

MAX_WINDOW = 0x7FFFFFFF
DEFAULT_WINDOW = 65535
MAX_FRAME_SIZE = 16384              # what we accept (the protocol default; we never raise it)
STREAM_WINDOW = 4 << 20             # what we grant each stream: a max-size request needs no round trip
CONN_WINDOW = 16 << 20              # what we grant the connection
MAX_HEADER_BLOCK = 1 << 20          # HEADERS + CONTINUATION bytes we are willing to buffer
MAX_HEADER_LIST = 16 << 20          # decoded size, as grpc-go's default
SEND_LOW_WATER = 256 << 10          # a stream writer waits while more than this is queued
_HCACHE_LIMIT = 256
_DECODE_PIECE = 4096
_HCACHE_MAX_BLOCK = 4096            # bigger blocks are not cached: 256 of 1 MiB each would hold 512 MiB
_UNCACHED = object()

_SERVER_SETTINGS = b"".join(_SETTING.pack(k, v) for k, v in ((0x4, STREAM_WINDOW),))

# Fields that belong to HTTP/1.1 connections and are malformed in HTTP/2 (RFC 9113 §8.2.2).
CONNECTION_SPECIFIC = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
_REQUEST_PSEUDO = frozenset({":method", ":scheme", ":path", ":authority"})


class ConnectionError_(Exception):
    """A connection error: answered with GOAWAY and the connection closed."""

    def __init__(self, code: int, debug: str = "") -> None:
        super().__init__(debug)
        self.code = code
        self.debug = debug


class StreamError(Exception):
    """A stream error: answered with RST_STREAM, the connection lives on."""

    def __init__(self, sid: int, code: int) -> None:
        super().__init__(sid, code)
        self.sid = sid
        self.code = code


class StreamHandler(Protocol):
    def on_data(self, data: bytes) -> None: ...
    def on_end(self) -> None: ...          # the peer half-closed the stream
    def on_reset(self) -> None: ...        # RST_STREAM from the peer, or the connection is gone


StreamOpener = Callable[["H2Protocol", "Stream", dict, dict], StreamHandler]


class Stream:
    __slots__ = ("id", "send_win", "outq", "out_bytes", "end_pending", "trailers", "remote_closed",
                 "closed", "recv_unacked", "handler", "waiter")

    def __init__(self, sid: int, send_win: int) -> None:
        self.id = sid
        self.send_win = send_win
        self.outq: collections.deque[memoryview] = collections.deque()
        self.out_bytes = 0
        self.end_pending = False          # END_STREAM goes on the last queued DATA frame
        self.trailers: bytes | None = None  # header block to send once outq drains
        self.remote_closed = False
        self.closed = False
        self.recv_unacked = 0
        self.handler: StreamHandler | None = None
        self.waiter: asyncio.Future | None = None


# --- HPACK encoding (stateless: static table and literals without indexing) -------------------

def encode_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
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


def encode_headers(fields: list[tuple[str, str]]) -> bytes:
    """A header block of literal-without-indexing fields with literal names, no Huffman."""
    out = bytearray()
    for name, value in fields:
        n = name.encode("latin-1")
        v = value.encode("latin-1") if value.isascii() else value.encode("utf-8")
        out += b"\x00" + encode_int(len(n), 7) + n + encode_int(len(v), 7) + v
    return bytes(out)


def _read_int(block: bytes, i: int, prefix_bits: int) -> tuple[int, int]:
    limit = (1 << prefix_bits) - 1
    value = block[i] & limit
    i += 1
    if value == limit:
        shift = 0
        while True:
            b = block[i]
            i += 1
            value += (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
    return value, i


def _skip_field(block: bytes, i: int) -> tuple[int, bool]:
    """Where the field representation at i ends, and whether it changes the dynamic table
    (IndexError when the block ends first)."""
    b = block[i]
    if b & 0x80:                       # indexed field
        return _read_int(block, i, 7)[1], False
    if b & 0xE0 == 0x20:               # dynamic table size update
        return _read_int(block, i, 5)[1], True
    indexing = b & 0xC0 == 0x40        # literal with incremental indexing (else without / never indexed)
    name_index, i = _read_int(block, i, 6 if indexing else 4)
    if name_index == 0:
        length, i = _read_int(block, i, 7)
        i += length
    length, i = _read_int(block, i, 7)
    return i + length, indexing


def _table_neutral(block: bytes) -> bool:
    """True when decoding the (well-formed) block leaves the dynamic table as it was.

    Such a block always decodes to the same fields until some other block changes the
    table, so it can be cached until then.
    """
    i, n = 0, len(block)
    while i < n:
        i, changes = _skip_field(block, i)
        if changes:
            return False
    return True


def _pieces(block: bytes) -> list[bytes]:
    """The block cut at field boundaries into pieces of about _DECODE_PIECE bytes.

    hpack copies the rest of the block for every literal field it decodes, so one call on a
    1 MiB block of tiny fields takes seconds (quadratic); decoding piece by piece with the same
    decoder gives the same fields in linear time. A malformed tail stays one piece, for hpack
    to refuse.
    """
    if len(block) <= _DECODE_PIECE:
        return [block]
    pieces = []
    start = i = 0
    try:
        while i < len(block):
            if i - start >= _DECODE_PIECE:
                pieces.append(block[start:i])
                start = i
            i = _skip_field(block, i)[0]
    except IndexError:
        pass
    pieces.append(block[start:])
    return pieces


def split_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]] | None:
    """Split a request's field list into pseudo-headers and regular fields; None if malformed."""
    pseudo: dict[str, str] = {}
    fields: dict[str, str] = {}
    for name, value in headers:
        if name[:1] == ":":
            if fields or name not in _REQUEST_PSEUDO or name in pseudo:
                return None
            pseudo[name] = value
            continue
        if name.lower() != name or name in CONNECTION_SPECIFIC or (name == "te" and value != "trailers"):
            return None
        old = fields.get(name)
        fields[name] = value if old is None else f"{old}{'; ' if name == 'cookie' else ', '}{value}"
    if ":method" not in pseudo or (pseudo[":method"] != "CONNECT" and (":path" not in pseudo or ":scheme" not in pseudo)):
        return None
    return pseudo, fields


class H2Protocol(asyncio.Protocol):
    """One server-side HTTP/2 connection. Expects the client preface as its first bytes."""

    def __init__(self, open_stream: StreamOpener, on_lost: Callable[[asyncio.BaseProtocol], None] | None = None) -> None:
        self._open_stream = open_stream
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.peer: tuple | None = None
        self.peer_cert: dict | None = None
        self._inbuf = b""
        self._preface_ok = False
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self._hcache: dict[bytes, tuple[dict, dict]] = {}
        self._streams: dict[int, Stream] = {}
        self._last_sid = 0
        self._cont: tuple[int, int, bytearray] | None = None   # (sid, flags, block) awaiting CONTINUATION
        self._conn_win = DEFAULT_WINDOW      # how much DATA the peer lets us send on the connection
        self._init_win = DEFAULT_WINDOW      # the peer's SETTINGS_INITIAL_WINDOW_SIZE
        self._max_frame = 16384              # the peer's SETTINGS_MAX_FRAME_SIZE
        self._recv_unacked = 0               # DATA bytes received and not yet credited back
        self._blocked: dict[int, Stream] = {}  # streams waiting for connection window
        self._out = bytearray()
        self._flush_pending = False
        self._paused = False
        self._goaway_sent = False
        self._closed = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if transport.get_extra_info("sslcontext") is not None:
            self.peer_cert = transport.get_extra_info("peercert") or None
        out = self._out
        out += _FRAME.pack((len(_SERVER_SETTINGS) << 8) | SETTINGS, 0, 0) + _SERVER_SETTINGS
        out += _FRAME.pack((4 << 8) | WINDOW_UPDATE, 0, 0) + _U32.pack(CONN_WINDOW - DEFAULT_WINDOW)
        self._schedule_flush()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        buf = self._inbuf + data if self._inbuf else data
        try:
            pos = self._process(buf)
        except ConnectionError_ as e:
            self._fatal(e.code, e.debug)
            return
        except Exception:
            log.exception("HTTP/2 connection from %s failed", self.peer)
            self._fatal(INTERNAL_ERROR, "internal error")
            return
        self._inbuf = buf[pos:]
        self._flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        streams = list(self._streams.values())
        self._streams.clear()
        self._blocked.clear()
        for st in streams:
            st.closed = True
            self._wake(st)
            st.handler.on_reset()
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        # Stop reading too: a peer that sends PINGs or SETTINGS and never reads the ACKs would
        # otherwise queue them in our write buffer without bound (grpc-go stops reading then too).
        self._paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if not self._closed:
            self.transport.resume_reading()
        for st in list(self._streams.values()):
            if st.waiter is not None and st.out_bytes <= SEND_LOW_WATER:
                self._wake(st)

    # --- shutdown -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful close: GOAWAY now, close once the streams in progress have finished."""
        if self._closed or self._goaway_sent:
            return
        self._goaway_sent = True
        self._out += _FRAME.pack((8 << 8) | GOAWAY, 0, 0) + _GOAWAY.pack(self._last_sid, NO_ERROR)
        self._flush()
        if not self._streams:
            self.transport.close()

    def abort(self) -> None:
        """Close now: handlers in progress are cancelled."""
        if not self._closed:
            self.transport.abort()

    def _fatal(self, code: int, debug: str = "") -> None:
        if self._closed:
            return
        payload = _GOAWAY.pack(self._last_sid, code) + debug.encode()
        self._out += _FRAME.pack((len(payload) << 8) | GOAWAY, 0, 0) + payload
        self._goaway_sent = True
        self._flush()
        self.transport.close()

    # --- receiving ----------------------------------------------------------------------------

    def _process(self, buf: bytes) -> int:
        pos = 0
        n = len(buf)
        if not self._preface_ok:
            if n < 24:
                if not PREFACE.startswith(buf):
                    raise ConnectionError_(PROTOCOL_ERROR, "bad client preface")
                return 0
            if buf[:24] != PREFACE:
                raise ConnectionError_(PROTOCOL_ERROR, "bad client preface")
            self._preface_ok = True
            pos = 24
        unpack = _FRAME.unpack_from
        while n - pos >= 9:
            lt, flags, sid = unpack(buf, pos)
            length = lt >> 8
            if length > MAX_FRAME_SIZE:
                raise ConnectionError_(FRAME_SIZE_ERROR, "frame too large")
            end = pos + 9 + length
            if end > n:
                break
            ftype = lt & 0xFF
            sid &= 0x7FFFFFFF
            payload = buf[pos + 9:end]
            pos = end
            if self._cont is not None and ftype != CONTINUATION:
                raise ConnectionError_(PROTOCOL_ERROR, "expected CONTINUATION")
            try:
                if ftype == DATA:
                    self._on_data(flags, sid, payload)
                elif ftype == HEADERS:
                    self._on_headers(flags, sid, payload)
                elif ftype == WINDOW_UPDATE:
                    self._on_window_update(sid, payload)
                elif ftype == SETTINGS:
                    self._on_settings(flags, sid, payload)
                elif ftype == PING:
                    self._on_ping(flags, sid, payload)
                elif ftype == RST_STREAM:
                    self._on_rst_stream(sid, payload)
                elif ftype == CONTINUATION:
                    self._on_continuation(flags, sid, payload)
                elif ftype == PRIORITY:
                    if sid == 0:
                        raise ConnectionError_(PROTOCOL_ERROR, "PRIORITY on stream 0")
                    if length != 5:
                        raise StreamError(sid, FRAME_SIZE_ERROR)
                elif ftype == GOAWAY:
                    if sid != 0:
                        raise ConnectionError_(PROTOCOL_ERROR, "GOAWAY on a stream")
                elif ftype == PUSH_PROMISE:
                    raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
                # unknown frame types are ignored (RFC 9113 §5.5)
            except StreamError as e:
                self._reset(e.sid, e.code)
            if self._closed:
                break
        return pos

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        # Credit the connection window on receipt: a stream whose handler is slow never
        # starves the others. Batched so a stream of small requests sends few updates.
        self._recv_unacked += length
        if self._recv_unacked >= CONN_WINDOW // 4:
            self._out += _FRAME.pack((4 << 8) | WINDOW_UPDATE, 0, 0) + _U32.pack(self._recv_unacked)
            self._recv_unacked = 0
        if flags & PADDED:
            if not length or payload[0] >= length:
                raise ConnectionError_(PROTOCOL_ERROR, "bad padding")
            payload = payload[1:length - payload[0]]
        st = self._streams.get(sid)
        if st is None:
            if sid > self._last_sid:
                raise ConnectionError_(PROTOCOL_ERROR, "DATA on an idle stream")
            return      # a stream we already closed: ignore what was in flight
        if st.remote_closed:
            raise StreamError(sid, STREAM_CLOSED)
        end = flags & END_STREAM
        if not end:
            st.recv_unacked += length
            if st.recv_unacked >= STREAM_WINDOW // 4:
                self._out += _FRAME.pack((4 << 8) | WINDOW_UPDATE, 0, sid) + _U32.pack(st.recv_unacked)
                st.recv_unacked = 0
        if payload:
            st.handler.on_data(payload)
        if end and not st.closed:
            st.remote_closed = True
            st.handler.on_end()

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if sid == 0 or not sid & 1:
            raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on a bad stream id")
        if flags & (PADDED | PRIORITY_FLAG):
            start, stop = 0, len(payload)
            if flags & PADDED:
                if not stop:
                    raise ConnectionError_(PROTOCOL_ERROR, "bad padding")
                stop -= payload[0]
                start = 1
            if flags & PRIORITY_FLAG:
                if start + 5 <= stop and _U32.unpack_from(payload, start)[0] & 0x7FFFFFFF == sid:
                    raise StreamError(sid, PROTOCOL_ERROR)   # depends on itself
                start += 5
            if start > stop:
                raise ConnectionError_(PROTOCOL_ERROR, "bad padding")
            payload = payload[start:stop]
        if not flags & END_HEADERS:
            self._cont = (sid, flags, bytearray(payload))
            return
        self._headers_complete(sid, flags & END_STREAM, payload)

    def _on_continuation(self, flags: int, sid: int, payload: bytes) -> None:
        cont = self._cont
        if cont is None or cont[0] != sid:
            raise ConnectionError_(PROTOCOL_ERROR, "unexpected CONTINUATION")
        block = cont[2]
        block += payload
        if len(block) > MAX_HEADER_BLOCK:
            raise ConnectionError_(PROTOCOL_ERROR, "header block too large")
        if flags & END_HEADERS:
            self._cont = None
            self._headers_complete(sid, cont[1] & END_STREAM, bytes(block))

    def _decode(self, sid: int, block: bytes) -> tuple[dict, dict]:
        parsed = self._hcache.get(block, _UNCACHED)
        if parsed is _UNCACHED:
            try:
                headers = self._decode_block(block)
            except hpack.HPACKError as e:
                raise ConnectionError_(COMPRESSION_ERROR, str(e)) from None
            parsed = split_headers(headers)
            neutral = _table_neutral(block)
            if not neutral or len(self._hcache) >= _HCACHE_LIMIT:
                self._hcache.clear()    # the dynamic table may have changed: cached blocks mean other things now
            if neutral and len(block) <= _HCACHE_MAX_BLOCK:
                self._hcache[block] = parsed
        if parsed is None:
            raise StreamError(sid, PROTOCOL_ERROR)
        return parsed

    def _decode_block(self, block: bytes) -> list[tuple[str, str]]:
        decoder = self._decoder
        headers: list[tuple[str, str]] = []
        budget = MAX_HEADER_LIST           # for the whole block, as one decode call would count it
        try:
            for piece in _pieces(block):
                decoder.max_header_list_size = budget
                fields = decoder.decode(piece)
                budget -= sum(32 + len(name) + len(value) for name, value in fields)
                headers += fields
        finally:
            decoder.max_header_list_size = MAX_HEADER_LIST
        return headers

    def _headers_complete(self, sid: int, end_stream: int, block: bytes) -> None:
        st = self._streams.get(sid)
        if st is not None or sid <= self._last_sid:
            self._decode_any(block)       # keep the HPACK state in step even if we drop the block
            if st is None:
                return                    # trailers on a stream we already closed
            if st.remote_closed:
                raise StreamError(sid, STREAM_CLOSED)
            if not end_stream:
                raise StreamError(sid, PROTOCOL_ERROR)
            st.remote_closed = True       # request trailers: gRPC has none worth reading
            st.handler.on_end()
            return
        self._last_sid = sid
        if self._goaway_sent:
            self._decode_any(block)
            self._out += _FRAME.pack((4 << 8) | RST_STREAM, 0, sid) + _U32.pack(REFUSED_STREAM)
            return
        pseudo, fields = self._decode(sid, block)
        st = Stream(sid, self._init_win)
        st.remote_closed = bool(end_stream)
        self._streams[sid] = st
        st.handler = NO_HANDLER
        st.handler = self._open_stream(self, st, pseudo, fields)
        if end_stream and not st.closed:
            st.handler.on_end()

    def _decode_any(self, block: bytes) -> None:
        try:
            self._decode(0, block)
        except StreamError:
            pass

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad SETTINGS length")
        grown = False
        for i in range(0, len(payload), 6):
            ident, value = _SETTING.unpack_from(payload, i)
            if ident == 0x4:
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._init_win
                self._init_win = value
                for st in self._streams.values():
                    st.send_win += delta
                    if st.send_win > MAX_WINDOW:
                        raise ConnectionError_(FLOW_CONTROL_ERROR, "window overflow")
                grown = grown or delta > 0
            elif ident == 0x5:
                if not 16384 <= value <= 16777215:
                    raise ConnectionError_(PROTOCOL_ERROR, "bad max frame size")
                self._max_frame = value
            elif ident == 0x2:
                if value > 1:
                    raise ConnectionError_(PROTOCOL_ERROR, "bad enable push")
        self._out += _FRAME.pack(SETTINGS, ACK, 0)
        if grown:
            for st in list(self._streams.values()):
                if st.outq or st.trailers is not None:
                    self._pump(st)

    def _on_ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid != 0:
            raise ConnectionError_(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad PING length")
        if not flags & ACK:
            self._out += _FRAME.pack((8 << 8) | PING, ACK, 0) + payload

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad WINDOW_UPDATE length")
        inc = _U32.unpack(payload)[0] & 0x7FFFFFFF
        if sid == 0:
            if inc == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "zero window increment")
            self._conn_win += inc
            if self._conn_win > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "window overflow")
            if self._blocked:
                blocked = list(self._blocked.values())
                self._blocked.clear()
                for st in blocked:
                    self._pump(st)
            return
        st = self._streams.get(sid)
        if st is None:
            if sid > self._last_sid:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return
        if inc == 0:
            raise StreamError(sid, PROTOCOL_ERROR)
        st.send_win += inc
        if st.send_win > MAX_WINDOW:
            raise StreamError(sid, FLOW_CONTROL_ERROR)
        if st.outq or st.trailers is not None:
            self._pump(st)

    def _on_rst_stream(self, sid: int, payload: bytes) -> None:
        if sid == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "bad RST_STREAM length")
        st = self._streams.get(sid)
        if st is None:
            if sid > self._last_sid:
                raise ConnectionError_(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            return
        self._remove(st)
        st.handler.on_reset()

    # --- sending (the API for stream handlers) -------------------------------------------------

    def send_headers(self, st: Stream, block: bytes, end_stream: bool = False) -> None:
        """Response headers, or (end_stream) trailers: sent after the DATA still queued."""
        if st.closed:
            return
        if end_stream and st.outq:
            st.trailers = block
            return
        self._emit_headers(st.id, block, end_stream)
        if end_stream:
            self._local_end(st)
        self._schedule_flush()

    def send_data(self, st: Stream, data: bytes, end_stream: bool = False) -> None:
        """DATA within the peer's windows now; the rest queued until WINDOW_UPDATEs arrive."""
        if st.closed:
            return
        n = len(data)
        if not st.outq and n <= self._conn_win and n <= st.send_win and n <= self._max_frame:
            self._conn_win -= n
            st.send_win -= n
            out = self._out
            out += _FRAME.pack((n << 8) | DATA, END_STREAM if end_stream else 0, st.id)
            out += data
            if end_stream:
                self._local_end(st)
        else:
            st.outq.append(memoryview(data))
            st.out_bytes += n
            st.end_pending = end_stream
            self._pump(st)
        self._schedule_flush()

    def send_response(self, st: Stream, head: bytes, data: bytes, trailers: bytes | None = None) -> None:
        """A whole response: headers, one body, and trailers (or END_STREAM on the body)."""
        if st.closed:
            return
        n = len(data)
        mf = self._max_frame
        if (n <= self._conn_win and n <= st.send_win and n <= mf and len(head) <= mf
                and (trailers is None or len(trailers) <= mf)):
            self._conn_win -= n
            st.send_win -= n
            sid = st.id
            out = self._out
            out += _FRAME.pack((len(head) << 8) | HEADERS, END_HEADERS, sid)
            out += head
            out += _FRAME.pack((n << 8) | DATA, 0 if trailers is not None else END_STREAM, sid)
            out += data
            if trailers is not None:
                out += _FRAME.pack((len(trailers) << 8) | HEADERS, END_HEADERS | END_STREAM, sid)
                out += trailers
            self._local_end(st)
            self._schedule_flush()
            return
        self.send_headers(st, head)
        self.send_data(st, data, end_stream=trailers is None)
        if trailers is not None:
            self.send_headers(st, trailers, end_stream=True)

    def reset_stream(self, st: Stream, code: int = CANCEL) -> None:
        if st.closed:
            return
        self._reset(st.id, code)
        self._schedule_flush()

    def writable(self, st: Stream) -> bool:
        return st.out_bytes <= SEND_LOW_WATER and not self._paused

    async def wait_writable(self, st: Stream) -> None:
        """Wait until the stream's queue has drained enough (or the stream is gone)."""
        while not st.closed and (st.out_bytes > SEND_LOW_WATER or self._paused):
            st.waiter = self.loop.create_future()
            try:
                await st.waiter
            finally:
                st.waiter = None

    # --- sending internals -------------------------------------------------------------------

    def _emit_headers(self, sid: int, block: bytes, end_stream: bool) -> None:
        out = self._out
        mf = self._max_frame
        flags = END_STREAM if end_stream else 0
        if len(block) <= mf:
            out += _FRAME.pack((len(block) << 8) | HEADERS, flags | END_HEADERS, sid)
            out += block
            return
        chunks = [block[i:i + mf] for i in range(0, len(block), mf)]
        for i, chunk in enumerate(chunks):
            last = END_HEADERS if i == len(chunks) - 1 else 0
            ftype, f = (HEADERS, flags | last) if i == 0 else (CONTINUATION, last)
            out += _FRAME.pack((len(chunk) << 8) | ftype, f, sid)
            out += chunk

    def _pump(self, st: Stream) -> None:
        out = self._out
        q = st.outq
        sid = st.id
        while q:
            chunk = q[0]
            n = len(chunk)
            allowed = max(min(self._conn_win, st.send_win, self._max_frame), 0)
            if n > allowed:
                if not allowed:
                    if self._conn_win <= 0:
                        self._blocked[sid] = st
                    break
                q[0] = chunk[allowed:]
                chunk = chunk[:allowed]
                n = allowed
                flags = 0
            else:
                q.popleft()
                flags = END_STREAM if not q and st.end_pending else 0
            out += _FRAME.pack((n << 8) | DATA, flags, sid)
            out += chunk
            self._conn_win -= n
            st.send_win -= n
            st.out_bytes -= n
        if not q:
            if st.trailers is not None:
                block, st.trailers = st.trailers, None
                self._emit_headers(sid, block, True)
                self._local_end(st)
            elif st.end_pending:
                self._local_end(st)
        if st.waiter is not None and st.out_bytes <= SEND_LOW_WATER and not self._paused:
            self._wake(st)
        self._schedule_flush()

    def _local_end(self, st: Stream) -> None:
        if not st.remote_closed:
            # We answered before the request ended: tell the peer to stop sending (RFC 9113 §8.1).
            self._out += _FRAME.pack((4 << 8) | RST_STREAM, 0, st.id) + _U32.pack(NO_ERROR)
        self._remove(st)

    def _reset(self, sid: int, code: int) -> None:
        self._out += _FRAME.pack((4 << 8) | RST_STREAM, 0, sid) + _U32.pack(code)
        st = self._streams.get(sid)
        if st is not None:
            self._remove(st)
            st.handler.on_reset()

    def _remove(self, st: Stream) -> None:
        if st.closed:
            return
        st.closed = True
        self._streams.pop(st.id, None)
        self._blocked.pop(st.id, None)
        st.outq.clear()
        self._wake(st)
        if self._goaway_sent and not self._streams and not self._closed:
            self._flush()
            self.transport.close()

    @staticmethod
    def _wake(st: Stream) -> None:
        w = st.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._out and not self._closed:
            out = self._out
            self._out = bytearray()
            self.transport.write(out)


class _NoHandler:
    """Stands in while a stream is being opened, and for streams answered at once."""

    def on_data(self, data: bytes) -> None:
        pass

    def on_end(self) -> None:
        pass

    def on_reset(self) -> None:
        pass


NO_HANDLER: StreamHandler = _NoHandler()
