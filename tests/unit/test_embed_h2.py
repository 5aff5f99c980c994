"""HTTP/2 framing, flow control and gRPC status handling of pyetcd.embed, without sockets."""
from __future__ import annotations

import asyncio
import struct

import pytest

from embed_harness import FRAME, Client, frame, grpc_message, request_headers, settings, until, window_update
from pyetcd import errors
from pyetcd.embed import h2
from pyetcd.embed.grpc import GrpcDispatcher, GrpcMethod, percent_encode
from pyetcd.embed.serve import ClientServer
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.proto.mvccpb import kv_pb2

KV_RANGE = "/etcdserverpb.KV/Range"
KV_PUT = "/etcdserverpb.KV/Put"


class FakeKV:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.calls: list[tuple[str, bytes]] = []

    async def range(self, request: rpc_pb2.RangeRequest, ctx) -> rpc_pb2.RangeResponse:
        self.calls.append(("Range", request.key))
        if request.key == b"wait":
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if request.key.startswith(b"big"):
            return rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"big", value=b"x" * int(request.key[3:]))])
        if request.key == b"token":
            return rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"token", value=ctx.metadata.get("token", "").encode())])
        return rpc_pb2.RangeResponse(count=1, kvs=[kv_pb2.KeyValue(key=request.key, value=b"bar")])

    async def put(self, request: rpc_pb2.PutRequest, ctx) -> rpc_pb2.PutResponse:
        self.calls.append(("Put", request.key))
        if request.key == b"bad":
            raise EtcdError(errors.INVALID_ARGUMENT, "etcdserver: ключ 100% bad\n")
        if request.key == b"boom":
            raise RuntimeError("boom")
        return rpc_pb2.PutResponse(header=rpc_pb2.ResponseHeader(revision=7))


def make_client(kv: FakeKV, max_size: int = 4 << 20, settings_pairs=()) -> Client:
    methods = {
        KV_RANGE: GrpcMethod(rpc_pb2.RangeRequest, kv.range, "unary"),
        KV_PUT: GrpcMethod(rpc_pb2.PutRequest, kv.put, "unary"),
    }
    server = ClientServer(GrpcDispatcher(methods, max_size), http_handler=None)  # type: ignore[arg-type]
    return Client(server._open_stream, settings_pairs)


def range_req(key: bytes) -> bytes:
    return rpc_pb2.RangeRequest(key=key).SerializeToString()


def status_of(headers) -> tuple[str | None, str | None]:
    d = dict(headers)
    return d.get("grpc-status"), d.get("grpc-message")


def body_of(frames, sid: int) -> bytes:
    return b"".join(p for t, f, s, p in frames if t == h2.DATA and s == sid)


async def response(client: Client, *sids: int):
    """All frames up to and including the END_STREAM of each of the streams."""
    got = []

    def done():
        got.extend(client.read())
        ended = {s for t, f, s, p in got if t in (h2.DATA, h2.HEADERS) and f & h2.END_STREAM}
        return ended.issuperset(sids)
    await until(done, f"end of streams {sids}")
    return got


def unary_reply(frames, sid: int) -> rpc_pb2.RangeResponse:
    body = body_of(frames, sid)
    flag, n = struct.unpack(">BI", body[:5])
    assert flag == 0 and n == len(body) - 5
    return rpc_pb2.RangeResponse.FromString(body[5:])


async def test_server_preface_and_settings_ack():
    c = make_client(FakeKV())
    frames = c.read()
    kinds = [(t, f, s) for t, f, s, p in frames]
    assert kinds[0] == (h2.SETTINGS, 0, 0)
    assert (h2.WINDOW_UPDATE, 0, 0) in kinds
    assert (h2.SETTINGS, h2.ACK, 0) in kinds


@pytest.mark.parametrize("chunk", [1, 7, None])
async def test_unary_split_across_reads(chunk):
    kv = FakeKV()
    c = make_client(kv)
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"foo")), chunk=chunk)
    frames = await response(c, 1)
    heads = [p for t, f, s, p in frames if t == h2.HEADERS and s == 1]
    assert heads[0][:2] == [(":status", "200"), ("content-type", "application/grpc")]
    assert status_of(heads[-1]) == ("0", None)
    assert unary_reply(frames, 1).kvs[0].value == b"bar"


async def test_many_requests_in_one_read_answered_in_one_write():
    c = make_client(FakeKV())
    c.read()
    c.send(b"".join(c.unary(sid, KV_RANGE, range_req(b"k%d" % sid)) for sid in range(1, 40, 2)))
    writes_before = len(c.transport.written)
    await until(lambda: len(c.transport.written) > writes_before, "replies")
    frames = c.read()
    for sid in range(1, 40, 2):
        assert unary_reply(frames, sid).kvs[0].key == b"k%d" % sid


async def test_continuation_padding_and_priority():
    c = make_client(FakeKV())
    c.read()
    block = c.encoder.encode(request_headers(KV_RANGE, token="abc"))
    pad = 5
    first = bytes([pad]) + struct.pack(">IB", 0, 16) + block[:4] + b"\0" * pad
    c.send(frame(h2.HEADERS, h2.PADDED | h2.PRIORITY_FLAG, 1, first)
           + frame(h2.CONTINUATION, 0, 1, block[4:9])
           + frame(h2.CONTINUATION, h2.END_HEADERS, 1, block[9:])
           + frame(h2.DATA, h2.PADDED | h2.END_STREAM, 1, bytes([3]) + grpc_message(range_req(b"token")) + b"\0\0\0"))
    frames = await response(c, 1)
    assert unary_reply(frames, 1).kvs[0].value == b"abc"


async def test_frame_between_headers_and_continuation_is_protocol_error():
    c = make_client(FakeKV())
    c.read()
    block = c.encoder.encode(request_headers(KV_RANGE))
    c.send(frame(h2.HEADERS, 0, 1, block[:3]) + frame(h2.PING, 0, 0, b"12345678"))
    goaway = [p for t, f, s, p in c.read() if t == h2.GOAWAY]
    assert struct.unpack(">II", goaway[0][:8])[1] == h2.PROTOCOL_ERROR
    assert c.transport.closed


async def test_ping_is_acked_with_same_payload():
    c = make_client(FakeKV())
    c.read()
    c.send(frame(h2.PING, 0, 0, b"bdp-ping"))
    assert (h2.PING, h2.ACK, 0, b"bdp-ping") in c.read()



async def test_reading_pauses_while_writes_are_blocked():
    """A PING (or SETTINGS) flood whose ACKs the peer never reads must not queue without bound."""
    c = make_client(FakeKV())
    c.proto.pause_writing()
    assert not c.transport.reading
    c.proto.resume_writing()
    assert c.transport.reading


@pytest.mark.parametrize("data, code", [
    (settings((4, 1 << 31)), h2.FLOW_CONTROL_ERROR),
    (settings((5, 100)), h2.PROTOCOL_ERROR),
    (frame(h2.SETTINGS, 0, 0, b"\0\0\0"), h2.FRAME_SIZE_ERROR),
    (frame(h2.SETTINGS, h2.ACK, 0, b"\0" * 6), h2.FRAME_SIZE_ERROR),
    (frame(h2.DATA, 0, 0, b"x"), h2.PROTOCOL_ERROR),
    (frame(h2.DATA, 0, 9, b"x"), h2.PROTOCOL_ERROR),                 # idle stream
    (frame(h2.PING, 0, 0, b"1234"), h2.FRAME_SIZE_ERROR),
    (window_update(0, 0x7FFFFFFF), h2.FLOW_CONTROL_ERROR),
    (window_update(0, 0), h2.PROTOCOL_ERROR),
    (frame(h2.HEADERS, h2.END_HEADERS, 2, b"\x82"), h2.PROTOCOL_ERROR),  # even stream id
    (frame(h2.HEADERS, h2.END_HEADERS, 1, b"\xff\xff\xff\xff"), h2.COMPRESSION_ERROR),
    (frame(h2.CONTINUATION, h2.END_HEADERS, 1, b"\x82"), h2.PROTOCOL_ERROR),
    (frame(h2.PUSH_PROMISE, h2.END_HEADERS, 1, b"\0\0\0\2\x82"), h2.PROTOCOL_ERROR),
    (frame(h2.RST_STREAM, 0, 0, b"\0\0\0\0"), h2.PROTOCOL_ERROR),
    (FRAME.pack((20000 << 8) | h2.DATA, 0, 1), h2.FRAME_SIZE_ERROR),
])
async def test_connection_errors_answer_goaway(data, code):
    c = make_client(FakeKV())
    c.read()
    c.send(data)
    goaway = [p for t, f, s, p in c.read() if t == h2.GOAWAY]
    assert goaway and struct.unpack(">II", goaway[0][:8])[1] == code
    assert c.transport.closed


async def test_bad_preface_answers_goaway():
    c = make_client(FakeKV())
    c.read()
    fresh = h2.H2Protocol(c.proto._open_stream)
    fresh.connection_made(c.transport)
    fresh.data_received(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert c.transport.closed


async def test_unknown_frame_type_is_ignored():
    c = make_client(FakeKV())
    c.read()
    c.send(frame(0x42, 0xFF, 0, b"whatever") + c.unary(1, KV_RANGE, range_req(b"a")))
    frames = await response(c, 1)
    assert unary_reply(frames, 1).kvs[0].key == b"a"


async def test_flow_control_respects_peer_windows_and_frame_size():
    size = 100_000
    c = make_client(FakeKV(), settings_pairs=((4, 10),))    # the peer's initial stream window: 10 bytes
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"big%d" % size)))
    await until(lambda: c.proto._streams.get(1) and c.proto._streams[1].outq, "reply queued")
    frames = c.read()
    assert len(body_of(frames, 1)) == 10
    assert not any(t == h2.HEADERS and f & h2.END_STREAM for t, f, s, p in frames)
    c.send(window_update(1, 1 << 20))                        # stream open; connection window still 65535 - 10
    frames = c.read()
    sent = body_of(frames, 1)
    assert len(sent) == 65535 - 10
    assert all(len(p) <= 16384 for t, f, s, p in frames if t == h2.DATA)
    c.send(window_update(0, 1 << 20))
    frames += c.read()
    body = body_of(frames, 1)
    trailers = [p for t, f, s, p in frames if t == h2.HEADERS and f & h2.END_STREAM]
    assert status_of(trailers[0]) == ("0", None)
    total = 10 + len(body)
    assert total > size
    assert 1 not in c.proto._streams


async def test_window_grows_with_settings_change():
    c = make_client(FakeKV(), settings_pairs=((4, 0),))
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"big100")))
    await until(lambda: c.proto._streams.get(1) and c.proto._streams[1].outq, "reply queued")
    assert body_of(c.read(), 1) == b""
    c.send(settings((4, 65535)))
    frames = c.read()
    assert len(body_of(frames, 1)) > 100
    assert any(t == h2.HEADERS and f & h2.END_STREAM for t, f, s, p in frames)


async def test_received_data_is_credited_back():
    c = make_client(FakeKV(), max_size=16 << 20)
    c.read()
    c.send(c.headers_frame(1, request_headers(KV_PUT)))
    msg = grpc_message(rpc_pb2.PutRequest(key=b"k", value=b"v" * (5 << 20)).SerializeToString())
    for i in range(0, len(msg), 16384):
        c.send(frame(h2.DATA, 0, 1, msg[i:i + 16384]))
    updates = [(s, struct.unpack(">I", p)[0]) for t, f, s, p in c.read() if t == h2.WINDOW_UPDATE]
    assert sum(n for s, n in updates if s == 1) >= (4 << 20) - (1 << 20)
    assert sum(n for s, n in updates if s == 0 and n < (16 << 20) - 65535) >= 4 << 20
    c.send(frame(h2.DATA, h2.END_STREAM, 1, b""))
    frames = await response(c, 1)
    assert status_of([p for t, f, s, p in frames if t == h2.HEADERS][-1]) == ("0", None)


async def test_unknown_service_and_method_are_trailers_only():
    c = make_client(FakeKV())
    c.read()
    c.send(c.unary(1, "/etcdserverpb.Foo/Bar", b"") + c.unary(3, "/etcdserverpb.KV/Nope", b""))
    frames = c.read()
    one = [(f, p) for t, f, s, p in frames if s == 1 and t in (h2.HEADERS, h2.DATA)]
    assert len(one) == 1 and one[0][0] & h2.END_STREAM
    assert dict(one[0][1])[":status"] == "200"
    assert status_of(one[0][1]) == ("12", "unknown service etcdserverpb.Foo")
    three = [p for t, f, s, p in frames if s == 3 and t == h2.HEADERS]
    assert status_of(three[0]) == ("12", "unknown method Nope for service etcdserverpb.KV")


async def test_etcd_error_and_exception_statuses():
    c = make_client(FakeKV())
    c.read()
    put = lambda key: rpc_pb2.PutRequest(key=key).SerializeToString()  # noqa: E731
    c.send(c.unary(1, KV_PUT, put(b"bad")) + c.unary(3, KV_PUT, put(b"boom")))
    frames = await response(c, 1, 3)
    heads = {s: p for t, f, s, p in frames if t == h2.HEADERS}
    assert status_of(heads[1]) == ("3", "etcdserver: %D0%BA%D0%BB%D1%8E%D1%87 100%25 bad%0A")
    assert dict(heads[1])["content-type"] == "application/grpc"     # trailers-only
    assert status_of(heads[3]) == ("2", "boom")
    assert not body_of(frames, 1) and not body_of(frames, 3)


def test_table_neutral_blocks():
    assert h2._table_neutral(bytes.fromhex("049060a924882d9dcb6571af9b8b1b4754c586c183c0bfbe0f0d023130"))  # h2load's
    assert h2._table_neutral(b"\x82\xff\x80\x01" + b"\x00\x01a\x01b" + b"\x10\x01a\x01b")
    assert not h2._table_neutral(b"\x82\x41\x01a")          # incremental indexing
    assert not h2._table_neutral(b"\x3f\xe1\x1f")            # dynamic table size update


def test_percent_encode():
    assert percent_encode("etcdserver: mvcc: required revision has been compacted") == \
        "etcdserver: mvcc: required revision has been compacted"
    assert percent_encode("50% é\t") == "50%25 %C3%A9%09"


async def test_message_over_max_size_is_resource_exhausted_at_once():
    kv = FakeKV()
    c = make_client(kv, max_size=1000)
    c.read()
    big = grpc_message(rpc_pb2.PutRequest(key=b"k", value=b"v" * 2000).SerializeToString())
    c.send(c.headers_frame(1, request_headers(KV_PUT)) + frame(h2.DATA, 0, 1, big[:100]))
    frames = c.read()
    heads = [p for t, f, s, p in frames if t == h2.HEADERS]
    assert status_of(heads[0]) == ("8", f"grpc: received message larger than max ({len(big) - 5} vs. 1000)")
    assert (h2.RST_STREAM, 0, 1, b"\0\0\0\0") in frames          # we stop the upload: NO_ERROR
    c.send(frame(h2.DATA, h2.END_STREAM, 1, big[100:]))           # in flight: ignored
    c.send(c.unary(3, KV_RANGE, range_req(b"next")))
    assert unary_reply(await response(c, 3), 3).kvs[0].key == b"next"
    assert kv.calls == [("Range", b"next")]


async def test_rst_stream_cancels_the_handler():
    kv = FakeKV()
    c = make_client(kv)
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"wait")))
    await until(lambda: kv.calls, "handler started")
    c.send(c.unary(3, KV_RANGE, range_req(b"other")))               # a slow call blocks nobody
    assert unary_reply(await response(c, 3), 3).kvs[0].key == b"other"
    c.send(frame(h2.RST_STREAM, 0, 1, struct.pack(">I", h2.CANCEL)))
    await until(kv.cancelled.is_set, "cancellation")
    assert not [f for f in c.read() if f[2] == 1]


async def test_connection_lost_cancels_handlers():
    kv = FakeKV()
    c = make_client(kv)
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"wait")))
    await until(lambda: kv.calls, "handler started")
    c.lose()
    await until(kv.cancelled.is_set, "cancellation")


async def test_hpack_cache_follows_table_changes():
    """A block of only indexed fields means something else once the dynamic table changed."""
    kv = FakeKV()
    c = make_client(kv)
    c.read()

    def lit(name: str, value: str) -> bytes:     # literal with incremental indexing, new name
        return b"\x40" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
    ct = b"\x0f\x10\x10application/grpc"      # content-type: literal without indexing, static name
    indexed = b"\x83\x86\xbe" + ct             # POST, http, dynamic entry 62 (the newest :path)
    first = b"\x83\x86" + lit(":path", KV_RANGE) + ct
    second = b"\x83\x86" + lit(":path", KV_PUT) + ct
    body = lambda sid, req: frame(h2.DATA, h2.END_STREAM, sid, grpc_message(req))  # noqa: E731
    put = rpc_pb2.PutRequest(key=b"p").SerializeToString()
    c.send(frame(h2.HEADERS, h2.END_HEADERS, 1, first) + body(1, range_req(b"r1")))
    c.send(frame(h2.HEADERS, h2.END_HEADERS, 3, indexed) + body(3, range_req(b"r2")))
    c.send(frame(h2.HEADERS, h2.END_HEADERS, 5, second) + body(5, put))
    c.send(frame(h2.HEADERS, h2.END_HEADERS, 7, indexed) + body(7, put))
    await response(c, 7)
    assert kv.calls == [("Range", b"r1"), ("Range", b"r2"), ("Put", b"p"), ("Put", b"p")]


async def test_malformed_request_headers_reset_the_stream():
    c = make_client(FakeKV())
    c.read()
    bad = [(":method", "POST"), (":path", KV_RANGE), (":scheme", "http"), ("Connection", "x")]
    c.send(c.headers_frame(1, bad, end_stream=True))
    assert (h2.RST_STREAM, 0, 1, struct.pack(">I", h2.PROTOCOL_ERROR)) in c.read()
    c.send(c.unary(3, KV_RANGE, range_req(b"ok")))
    assert unary_reply(await response(c, 3), 3).kvs[0].key == b"ok"


async def test_shutdown_sends_goaway_and_closes_when_streams_finish():
    kv = FakeKV()
    c = make_client(kv)
    c.read()
    c.send(c.unary(1, KV_RANGE, range_req(b"wait")))
    await until(lambda: kv.calls, "handler started")
    c.proto.shutdown()
    goaway = [p for t, f, s, p in c.read() if t == h2.GOAWAY]
    assert struct.unpack(">II", goaway[0]) == (1, h2.NO_ERROR)
    c.send(c.unary(3, KV_RANGE, range_req(b"late")))                # after GOAWAY: refused
    assert (h2.RST_STREAM, 0, 3, struct.pack(">I", h2.REFUSED_STREAM)) in c.read()
    assert not c.transport.closed
    kv.gate.set()
    await response(c, 1)
    assert c.transport.closed


async def test_plain_http_over_h2_goes_to_the_http_handler():
    from pyetcd.embed import HttpResponse

    seen = []

    async def handler(request):
        seen.append(request)
        if request.path == "/stream":
            async def chunks():
                yield b"a"
                yield b"b"
            return HttpResponse(200, [("Content-Type", "application/json"), ("Connection", "x")], chunks())
        return HttpResponse(200, [("Content-Type", "application/json")], b'{"health":"true"}')
    server = ClientServer(GrpcDispatcher({}), handler)
    c = Client(server._open_stream)
    c.read()
    get = [(":method", "GET"), (":scheme", "https"), (":path", "/health?x=1"), (":authority", "h:2379")]
    c.send(c.headers_frame(1, get, end_stream=True))
    frames = await response(c, 1)
    head = dict(next(p for t, f, s, p in frames if t == h2.HEADERS))
    assert (head[":status"], head["content-type"], head["content-length"]) == ("200", "application/json", "17")
    assert body_of(frames, 1) == b'{"health":"true"}'
    assert (seen[0].method, seen[0].path, seen[0].query, seen[0].headers["host"]) == ("GET", "/health", "x=1", "h:2379")
    post = [(":method", "POST"), (":scheme", "http"), (":path", "/stream"), (":authority", "h")]
    c.send(c.headers_frame(3, post) + frame(h2.DATA, 0, 3, b"12") + frame(h2.DATA, h2.END_STREAM, 3, b"34"))
    frames = await response(c, 3)
    head = dict(next(p for t, f, s, p in frames if t == h2.HEADERS))
    assert "connection" not in head
    assert body_of(frames, 3) == b"ab" and seen[1].body == b"1234"


@pytest.mark.parametrize("first_bytes, kind", [
    (h2.PREFACE, "H2Protocol"),
    (b"GET /health HTTP/1.1\r\n", "Http1Protocol"),
    (b"GET /health HTTP/1.0\n", "Http1Protocol"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)), None),   # a TLS ClientHello
    (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", None),                              # a bad preface
    (b"GET / HTTP/2.0\r\n", None),
    (b"GARBAGE\r\n", None),
    (b"x" * 4096, None),                                                      # no line within cmux's limit
])
async def test_sniffer_closes_what_is_neither_http2_nor_http1_as_cmux_does(first_bytes, kind):
    from embed_harness import FakeTransport
    from pyetcd.embed.serve import _Sniffer

    server = ClientServer(GrpcDispatcher({}), http_handler=None)  # type: ignore[arg-type]
    transport = FakeTransport()
    sniffer = _Sniffer(server)
    sniffer.connection_made(transport)
    sniffer.data_received(first_bytes[:5])      # not enough to tell yet
    assert not transport.closed and transport.protocol is None
    for i in range(5, len(first_bytes)):
        sniffer.data_received(first_bytes[i:i + 1])
    if kind is None:
        assert transport.closed and transport.take() == b""
    else:
        assert type(transport.protocol).__name__ == kind and not transport.closed


async def test_method_names_are_split_at_the_last_slash_as_grpc_go_does():
    c = make_client(FakeKV())
    c.read()
    c.send(c.unary(1, "nope", b"") + c.unary(3, "/a/b/c", b""))
    frames = await response(c, 1, 3)
    statuses = {s: status_of(p) for t, f, s, p in frames if t == h2.HEADERS}
    assert statuses == {1: ("8", 'malformed method name: "nope"'), 3: ("12", "unknown service a/b")}


@pytest.mark.parametrize("message, status", [
    (struct.pack(">BI", 2, 3) + b"\x0a\x01a", ("13", "grpc: received unexpected payload format 2")),
    (struct.pack(">BI", 1, 3) + b"\x0a\x01a", ("13", "grpc: compressed flag set with identity or empty encoding")),
    (struct.pack(">BI", 1, 10) + b"\x0a\x01a", ("2", "unexpected EOF")),      # the length lies: the end comes first
    (b"\0\0", ("2", "unexpected EOF")),
    (grpc_message(range_req(b"a")) + grpc_message(b"\xff\xff"), ("0", None)),  # a second message is ignored
])
async def test_grpc_message_framing_errors_are_etcds(message, status):
    """grpc-status and grpc-message as etcd 3.5.1 answers them (probed on the real binary)."""
    c = make_client(FakeKV())
    c.read()
    c.send(c.headers_frame(1, request_headers(KV_RANGE)) + frame(h2.DATA, h2.END_STREAM, 1, message))
    frames = await response(c, 1)
    assert status_of([p for t, f, s, p in frames if t == h2.HEADERS][-1]) == status


@pytest.mark.parametrize("ctype, grpc", [("application/grpc", True), ("application/grpc+proto", True),
                                          ("application/grpc;x", True), ("application/grpcx", False)])
def test_grpc_content_types_are_grpc_gos(ctype, grpc):
    seen = []
    server = ClientServer(GrpcDispatcher({}), http_handler=None)  # type: ignore[arg-type]
    server._grpc.open_call = lambda *args: seen.append("grpc") or h2.NO_HANDLER
    handler = server._open_stream(None, None, {}, {"content-type": ctype})  # type: ignore[arg-type]
    assert bool(seen) == grpc and (grpc or type(handler).__name__ == "H2HttpExchange")


async def test_big_header_blocks_are_not_cached():
    """The per-connection HPACK cache holds small blocks only: 256 distinct 1 MiB blocks would
    otherwise stay in memory for the connection's life."""
    c = make_client(FakeKV())
    c.read()
    base = request_headers(KV_RANGE)
    small = h2.encode_headers(base)
    big = h2.encode_headers([*base, ("x-pad", "a" * 100_000)])
    c.send(frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, small))
    for i in range(8):
        block = big[:-7] + b"%07d" % i
        c.send(frame(h2.HEADERS, 0, 3 + 2 * i, block[:16000])
               + b"".join(frame(h2.CONTINUATION, h2.END_HEADERS if j + 16000 >= len(block) else 0, 3 + 2 * i,
                                block[j:j + 16000]) for j in range(16000, len(block), 16000)))
    assert list(c.proto._hcache) == [small]


async def test_big_header_blocks_are_decoded_piece_by_piece_with_the_same_fields():
    """hpack copies the block's rest for every literal: one call on a big block of tiny fields is
    quadratic (a 700 KiB block held the member for over 10 s). Pieces cut at field boundaries
    decode to exactly the fields of one call, and each piece is small."""
    import hpack

    encoder = hpack.Encoder()
    fields = [(":method", "POST"), (":path", "/x")] + [(f"k{i % 300}", f"v{i}" * (i % 7)) for i in range(6000)]
    block = b"\x3f\xe1\x1f" + encoder.encode(fields) + b"\x00\x01a\x01b" * 3000 + b"\xbe" * 2000
    assert len(block) > 10 * h2._DECODE_PIECE
    pieces = h2._pieces(block)
    assert b"".join(pieces) == block and max(map(len, pieces)) < h2._DECODE_PIECE + 200
    c = make_client(FakeKV())
    assert c.proto._decode_block(block) == hpack.Decoder(max_header_list_size=h2.MAX_HEADER_LIST).decode(block)


async def test_header_list_limit_counts_the_whole_block():
    c = make_client(FakeKV())
    c.read()
    big = ("x-big", "a" * 3000)
    block = hpack_add(big) + b"\xbe" * 6000     # 6000 x 3 KiB: over MAX_HEADER_LIST, every piece under it
    c.send(frame(h2.HEADERS, h2.END_HEADERS, 1, block[:16000])
           + b"".join(frame(h2.CONTINUATION, h2.END_HEADERS if j + 16000 >= len(block) else 0, 1, block[j:j + 16000])
                      for j in range(16000, len(block), 16000)))
    goaway = [p for t, f, s, p in c.read() if t == h2.GOAWAY]
    assert goaway and struct.unpack_from(">II", goaway[0])[1] == h2.COMPRESSION_ERROR


def hpack_add(field: tuple[str, str]) -> bytes:
    """A literal with incremental indexing and a literal name (the field becomes dynamic entry 62)."""
    name, value = (x.encode() for x in field)
    return b"\x40" + h2.encode_int(len(name), 7) + name + h2.encode_int(len(value), 7) + value
