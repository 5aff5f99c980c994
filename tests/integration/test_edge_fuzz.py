"""Malformed input at the client port never hurts the member (issue 8).

One pyetcd member serves the whole module. Hypothesis (derandomized: the same examples every run)
sends it truncated and corrupt HTTP/2 frames, HPACK blocks, gRPC messages with lying prefixes,
protobuf garbage for every method, TLS and HTTP/1.1 garbage. After every example the member
process is alive, the malformed connection was answered or closed within a deadline, and a fresh
client's Put/Range works; a bystander client calls the member throughout and must never fail.

PYETCD_FUZZ_EXAMPLES sets the examples per test (default 25, well under two minutes for the
module); `make fuzz` runs 500.
"""
from __future__ import annotations

import os
import ssl
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_attack import (ACK, CONTINUATION, DATA, DEADLINE, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED,
                         PING, PREFACE, PRIORITY, PRIORITY_FLAG, RST_STREAM, SETTINGS, WINDOW_UPDATE, Bystander, Conn,
                         alive, attack, frame, goaway_code, grpc_prefix, hpack_int, request_block, rss_bytes,
                         settings as settings_frame, stream_answer, unary)
from servers import PYETCD, Server

from pyetcd.proto.etcdserverpb import rpc_pb2

EXAMPLES = int(os.environ.get("PYETCD_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))

# Every RPC, except the few whose random-but-valid requests would change what the member is
# (add or remove members, raise an alarm, enable auth, downgrade, hand leadership away): the
# liveness check after each example could then fail for reasons that are etcd's behaviour too.
_CHANGES_MEMBER = {"MemberAdd", "MemberRemove", "MemberPromote", "Alarm", "AuthEnable", "Downgrade", "MoveLeader"}
METHODS = sorted(f"/{s.full_name}/{m.name}" for s in rpc_pb2.DESCRIPTOR.services_by_name.values()
                 for m in s.methods if m.name not in _CHANGES_MEMBER)
# calls that may stay open: streams of requests (etcd keeps them open too)
OPEN_CALLS = {"/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive"}


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    server = Server(PYETCD, str(tmp_path_factory.mktemp("fuzz") / "pyetcd.etcd"))
    try:
        server.start()
        bystander = Bystander(server.endpoint)
        bystander.start()
        server.bystander = bystander
        yield server
        bystander.stop()
        assert not bystander.failures, bystander.failures[:5]
        assert bystander.slowest < DEADLINE
    finally:
        server.stop()


_checks = iter(range(1 << 30))


def survived(member: Server) -> None:
    assert member.proc.poll() is None, f"member exited:\n{member.log_tail()}"
    alive(member.endpoint, b"alive-%d" % next(_checks))


# --- strategies -----------------------------------------------------------------------------------

stream_ids = st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF, 0xFFFFFFFF]) | st.integers(0, 0xFFFFFFFF)
any_frame = st.builds(
    frame,
    ftype=st.integers(0, 12),
    flags=st.sampled_from([0, END_STREAM, END_HEADERS, END_HEADERS | END_STREAM, PADDED, PRIORITY_FLAG, 0xFF])
    | st.integers(0, 255),
    sid=stream_ids,
    payload=st.binary(max_size=48),
    length=st.none() | st.sampled_from([0, 1, 16384, 16385, 0xFFFFFF]) | st.integers(0, 0xFFFFFF))


def _valid_request(sid: int) -> bytes:
    return frame(HEADERS, END_HEADERS, sid, request_block("/etcdserverpb.KV/Range"))


_setting = st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 8, 0xFFFF]) | st.integers(0, 0xFFFF),
                     st.sampled_from([0, 1, 16383, 16384, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]) | st.integers(0, 0xFFFFFFFF))

abuse = st.one_of(
    # WINDOW_UPDATE overflow, on the connection and on an open stream; zero increments
    st.builds(lambda sid, inc, n: _valid_request(1) + frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc)) * n,
              st.sampled_from([0, 1]), st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF]), st.integers(1, 3)),
    # a zero window: the peer allows us nothing, then asks
    st.builds(lambda pairs: settings_frame(*pairs) + unary(1, "/etcdserverpb.KV/Range", b"\x0a\x01a"),
              st.lists(_setting, max_size=4)),
    # floods: SETTINGS, PING, RST_STREAM after HEADERS (rapid reset), PRIORITY
    st.builds(lambda pairs, n: settings_frame(*pairs) * n, st.lists(_setting, max_size=3), st.integers(1, 2000)),
    st.builds(lambda n, ack: frame(PING, ACK if ack else 0, 0, b"12345678") * n, st.integers(1, 5000), st.booleans()),
    st.builds(lambda n: b"".join(_valid_request(2 * i + 1) + frame(RST_STREAM, 0, 2 * i + 1, b"\0\0\0\x08")
                                 for i in range(n)), st.integers(1, 500)),
    st.builds(lambda n: frame(PRIORITY, 0, 1, b"\0\0\0\0\x10") * n, st.integers(1, 2000)),
    # CONTINUATION without end (and with END_HEADERS after a very long block)
    st.builds(lambda n, end: frame(HEADERS, 0, 1, request_block("/etcdserverpb.KV/Range"))
              + frame(CONTINUATION, 0, 1, b"\x40\x01a\x01b" * 2000) * n
              + (frame(CONTINUATION, END_HEADERS, 1) if end else b""), st.integers(1, 120), st.booleans()),
)


def _hpack_op(kind: int, a: int, b: int, raw: bytes) -> bytes:
    if kind == 0:
        return hpack_int(a, 7, 0x80)                              # indexed field (0 and > table: errors)
    if kind == 1:
        return hpack_int(a, 6, 0x40) + hpack_int(len(raw), 7) + raw   # literal, incremental indexing
    if kind == 2:
        return hpack_int(a, 5, 0x20)                              # dynamic table size update
    if kind == 3:
        return b"\x00" + hpack_int(b, 7) + raw + hpack_int(a, 7) + raw  # lengths that lie
    if kind == 4:
        return b"\x10" + hpack_int(len(raw), 7, 0x80) + raw + b"\x00"   # never indexed, huffman garbage
    return raw


hpack_op = st.builds(_hpack_op, st.integers(0, 5),
                     st.sampled_from([0, 1, 61, 62, 63, 4096, 1 << 20, 1 << 31, 1 << 62]) | st.integers(0, 1 << 20),
                     st.sampled_from([0, 1, 1 << 14, 1 << 24, 1 << 40]) | st.integers(0, 100),
                     st.binary(max_size=24))
hpack_block = st.builds(lambda prefix, ops: (request_block("/etcdserverpb.KV/Range") if prefix else b"") + b"".join(ops),
                        st.booleans(), st.lists(hpack_op, min_size=1, max_size=6))


# --- HTTP/2 -----------------------------------------------------------------------------------------

@FUZZ
@given(frames=st.lists(any_frame, max_size=8), valid_first=st.booleans(), cut=st.none() | st.integers(0, 600))
def test_corrupt_and_truncated_frames(member, frames, valid_first, cut):
    data = PREFACE + settings_frame() + (_valid_request(1) if valid_first else b"") + b"".join(frames)
    attack(member.client_port, data[:cut] if cut is not None else data)
    survived(member)


@FUZZ
@given(data=abuse)
def test_flow_control_and_flood_abuse(member, data):
    attack(member.client_port, PREFACE + settings_frame() + data)
    survived(member)


@FUZZ
@given(block=hpack_block, end_stream=st.booleans(), split=st.integers(0, 64))
def test_corrupt_hpack_blocks(member, block, end_stream, split):
    flags = END_STREAM if end_stream else 0
    if split and split < len(block):
        data = frame(HEADERS, flags, 1, block[:split]) + frame(CONTINUATION, END_HEADERS, 1, block[split:])
    else:
        data = frame(HEADERS, flags | END_HEADERS, 1, block)
    attack(member.client_port, PREFACE + settings_frame() + data + unary(3, "/etcdserverpb.KV/Range", b""))
    survived(member)


# --- gRPC -------------------------------------------------------------------------------------------

def _answered(conn: Conn, sid: int) -> list[tuple[str, str]] | None:
    """Waits for sid's answer (or GOAWAY / close); the answer's fields, None if the connection ended."""
    data = conn.read_until(lambda d: stream_answer(d, sid) is not None or goaway_code(d) is not None)
    return stream_answer(data, sid)


# A client that lets the member send as much as it likes: a Snapshot streams the whole database.
OPEN_WINDOWS = PREFACE + settings_frame((4, 0x7FFFFFFF)) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535))


def _call_is_answered(conn: Conn, path: str) -> None:
    """A call in OPEN_CALLS may stay open (etcd keeps it open too); any other call gets its
    grpc-status."""
    if path not in OPEN_CALLS:
        fields = _answered(conn, 1)
        assert fields is not None and "grpc-status" in dict(fields), fields


@FUZZ
@given(path=st.sampled_from(METHODS), flag=st.sampled_from([0, 1, 2, 0x80, 0xFF]),
       lie=st.sampled_from([0, 1, -1, 1 << 20, (2 << 20) + 1, 3 << 20, 0xFFFFFFFF]) | st.integers(-4, 64),
       body=st.binary(max_size=64), chunks=st.integers(1, 4))
def test_grpc_length_prefixes_that_lie(member, path, flag, lie, body, chunks):
    length = max(0, min(len(body) + lie, 0xFFFFFFFF)) if lie != 0xFFFFFFFF else lie
    message = grpc_prefix(flag, length) + body
    step = max(1, len(message) // chunks)
    data = frame(HEADERS, END_HEADERS, 1, request_block(path))
    for i in range(0, len(message), step):
        data += frame(DATA, 0, 1, message[i:i + step])
    data += frame(DATA, END_STREAM, 1)
    conn = Conn(member.client_port)
    conn.send(OPEN_WINDOWS + data)
    _call_is_answered(conn, path)
    conn.finish()
    survived(member)


@pytest.mark.parametrize("path", METHODS)
@FUZZ
@given(body=st.binary(max_size=96))
def test_protobuf_garbage_for_every_method(member, path, body):
    conn = Conn(member.client_port)
    conn.send(OPEN_WINDOWS + unary(1, path, body))
    _call_is_answered(conn, path)
    conn.finish()
    survived(member)


# --- TLS and HTTP/1.1 -------------------------------------------------------------------------------

def _client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@FUZZ
@given(data=st.sampled_from([_client_hello()]) | st.binary(min_size=1, max_size=512),
       cut=st.none() | st.integers(1, 300))
def test_tls_and_random_bytes_to_the_plain_port(member, data, cut):
    attack(member.client_port, data[:cut] if cut else data)
    survived(member)


_methods = st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PRI", "G\x00T", ""]) | st.text(max_size=8)
_targets = st.sampled_from(["/health", "/version", "/metrics", "/v3/kv/put", "/v3/kv/range", "/v3/watch",
                            "/v2/keys/a", "*", "http://x/health", "/%zz", ""]) | st.text(max_size=20)
_versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.x", "", "HTTP/1.1 extra"])
_json = st.sampled_from([b'{"key":"YQ==","value":"Yg=="}', b"{", b"[]", b"null", b'{"key":1e999}', b"\xff\xfe",
                         b'{"key":"' + b"a" * 70000 + b'"}', b'{"a":' * 5000]) | st.binary(max_size=200)


def _http_request(method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes,
                  framing: str) -> bytes:
    head = [f"{method} {target} {version}"]
    if framing == "length":
        headers = [*headers, ("Content-Length", str(len(body)))]
    elif framing == "lying-length":
        headers = [*headers, ("Content-Length", str(len(body) + 10))]
    elif framing.startswith("chunked"):
        headers = [*headers, ("Transfer-Encoding", "chunked")]
        if framing == "chunked":
            body = b"".join(b"%x\r\n%b\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        else:   # bad chunked encoding
            body = b"zz\r\n" + body + b"\r\n5\r\nab\r\n"
    head += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


_header = st.tuples(st.sampled_from(["Host", "Content-Type", "Expect", "Connection", "X", "Bad Name", "", " Lead"])
                    | st.text(max_size=10),
                    st.sampled_from(["localhost", "application/json", "100-continue", "close", "keep-alive",
                                     "x" * 70000]) | st.text(max_size=20))


@FUZZ
@given(method=_methods, target=_targets, version=_versions, headers=st.lists(_header, max_size=4), body=_json,
       framing=st.sampled_from(["none", "length", "lying-length", "chunked", "chunked-bad"]), repeat=st.integers(1, 3))
def test_http1_garbage(member, method, target, version, headers, body, framing, repeat):
    request = _http_request(method, target, version, headers, body, framing)
    conn = Conn(member.client_port)
    conn.send(request * repeat)
    conn.finish()
    survived(member)


# --- specific answers (compared with etcd 3.5.1) and unbounded growth ------------------------------

def test_oversized_header_block_is_a_connection_error(member):
    data = PREFACE + settings_frame() + frame(HEADERS, 0, 1, request_block("/etcdserverpb.KV/Range"))
    data += frame(CONTINUATION, 0, 1, b"\x00\x01x\x7f\x81\x7f" + b"a" * 16000) * 80
    answer = attack(member.client_port, data)
    assert goaway_code(answer) is not None
    survived(member)


@pytest.mark.parametrize("length", [(2 << 20) + 1, 3 << 20, 0xFFFFFFFF])
def test_message_over_max_request_bytes_is_resource_exhausted_as_etcd(member, length):
    """etcd 3.5.1 (default --max-request-bytes, plus grpc's 512 KiB overhead) answers at the prefix."""
    conn = Conn(member.client_port)
    conn.send(PREFACE + settings_frame() + frame(HEADERS, END_HEADERS, 1, request_block("/etcdserverpb.KV/Put"))
              + frame(DATA, 0, 1, grpc_prefix(0, length) + b"\x0a"))
    fields = dict(_answered(conn, 1))
    conn.close()
    assert (fields["grpc-status"], fields["grpc-message"]) == (
        "8", f"grpc: received message larger than max ({length} vs. 2097152)")
    survived(member)


def test_huge_http1_header_is_431(member):
    conn = Conn(member.client_port)
    conn.send(b"GET /health HTTP/1.1\r\nX: " + b"a" * (2 << 20))
    answer = conn.finish()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    survived(member)


def _flood(port: int, head: bytes, unit: bytes, total: int) -> tuple[Conn, int]:
    """Send head, then unit repeated up to total bytes without ever reading; stops early when the
    member stops reading us (a send blocked for 2 s). The connection is left open."""
    conn = Conn(port)
    conn.sock.settimeout(2.0)
    conn.send(head)
    chunk = unit * max(1, (256 << 10) // len(unit))
    sent = 0
    while sent < total and conn.send(chunk):
        sent += len(chunk)
    return conn, sent


@pytest.mark.parametrize("head, unit", [
    (PREFACE + settings_frame(), frame(PING, 0, 0, b"12345678")),
    (PREFACE + settings_frame(), settings_frame((4, 65535))),
    (b"", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
], ids=["ping-flood", "settings-flood", "http1-pipelining"])
def test_floods_that_never_read_do_not_grow_memory(member, head, unit):
    """A client floods requests whose answers it never reads (64 MiB worth). The member must stop
    reading it instead of queueing the answers: its RSS, measured while the flooding connection is
    still open, stays within 16 MiB of what it was before (the socket buffers and one read's worth
    of answers; a queue without bound would hold about 64 MiB)."""
    before = rss_bytes(member.proc.pid)
    conn, sent = _flood(member.client_port, head, unit, 64 << 20)
    try:
        survived(member)
        grown = rss_bytes(member.proc.pid) - before
        assert grown < 16 << 20, f"RSS grew {grown >> 20} MiB after {sent >> 20} MiB sent"
    finally:
        conn.close()
    survived(member)


def test_chunked_body_of_tiny_chunks_keeps_the_member_responsive(member):
    """6 MiB of 1-byte chunks: decoding is linear, so other clients are served meanwhile and the
    request is answered promptly (quadratic re-parsing took the member away for over 10 s)."""
    conn = Conn(member.client_port)
    conn.send(b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn.send(b"1\r\nx\r\n" * (1 << 20) + b"0\r\n\r\n")
    answer = conn.read_until(lambda d: b"\r\n\r\n" in d, timeout=5.0)
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    conn.close()
    survived(member)


def test_tls_client_hello_to_the_plain_port_is_closed_at_once(member):
    """etcd's cmux closes what is neither HTTP/2 nor HTTP/1.x without answering; so do we (the
    connection is not held open until the client gives up)."""
    conn = Conn(member.client_port)
    conn.send(_client_hello() + b"\n")      # a line that is no request line
    assert conn.read_until(lambda d: False, timeout=5.0) == b"" and conn.eof
    survived(member)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
@pytest.mark.parametrize("path", ["/health", "/version"])
def test_http_endpoints_refuse_other_methods_as_etcd(member, method, path):
    conn = Conn(member.client_port)
    conn.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode())
    answer = conn.read_until(lambda d: b"\r\n\r\n" in d)
    conn.close()
    assert answer.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"\r\nAllow: GET\r\n" in answer
