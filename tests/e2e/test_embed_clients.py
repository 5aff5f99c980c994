"""Real clients against pyetcd.embed's client port: grpcio (sync and aio), etcdctl 3.5.1, urllib.

The server runs on its own event loop (uvloop, as in production) in a thread of the test
process, serving fake KV / Maintenance / Watch services; no other process outlives a test.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

from servers import REF_DIR

import grpc
import pytest

from pyetcd import errors
from pyetcd.embed import HttpRequest, HttpResponse, listen, serve, unary_methods
from pyetcd.errors import EtcdError
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.proto.mvccpb import kv_pb2

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

MAX_RECV = 2 << 20
HEADER = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
SERVICES = rpc_pb2.DESCRIPTOR.services_by_name
BIG = 3 << 20


def etcdctl_path() -> Path:
    ref = Path(REF_DIR)
    path = ref / "etcdctl"
    if not path.exists():
        pytest.skip(f"real etcdctl not found in {ref}")
    return path


class FakeKV:
    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def Range(self, request, ctx):
        key = request.key
        if key == b"gate":
            await self.gate.wait()
        if key == b"big":
            return rpc_pb2.RangeResponse(header=HEADER, count=1, kvs=[kv_pb2.KeyValue(key=key, value=b"v" * BIG)])
        if key == b"token":
            return rpc_pb2.RangeResponse(header=HEADER, kvs=[kv_pb2.KeyValue(key=key, value=ctx.metadata.get("token", "").encode())])
        return rpc_pb2.RangeResponse(header=HEADER, count=1, kvs=[
            kv_pb2.KeyValue(key=key, value=b"bar", create_revision=2, mod_revision=3, version=2)])

    async def Put(self, request, ctx):
        if request.key == b"release":
            self.gate.set()
        if request.key == b"bad":
            raise errors.ErrEmptyKey
        if request.key == b"utf8":
            raise EtcdError(errors.FAILED_PRECONDITION, "etcdserver: ключ 100% bad")
        if request.key == b"boom":
            raise RuntimeError("boom")
        return rpc_pb2.PutResponse(header=HEADER)


class FakeMaintenance:
    async def Snapshot(self, request, ctx):
        for i in range(3):
            yield rpc_pb2.SnapshotResponse(header=HEADER, remaining_bytes=2 - i, blob=bytes([65 + i]) * (1 << 20))


class FakeWatch:
    async def Watch(self, requests, ctx):
        created = 0
        async for request in requests:
            if request.HasField("create_request"):
                created += 1
                yield rpc_pb2.WatchResponse(header=HEADER, watch_id=created, created=True)
            elif request.HasField("cancel_request"):
                yield rpc_pb2.WatchResponse(header=HEADER, watch_id=request.cancel_request.watch_id, canceled=True)


async def http_handler(request: HttpRequest) -> HttpResponse:
    if request.path == "/health":
        return HttpResponse(200, [("Content-Type", "application/json")], b'{"health":"true","reason":""}')
    if request.path == "/echo":
        body = json.dumps({"method": request.method, "query": request.query, "body": request.body.decode()})
        return HttpResponse(200, [("Content-Type", "application/json")], body.encode())
    if request.path == "/stream":
        async def lines():
            for i in range(3):
                yield b'{"n":%d}\n' % i
        return HttpResponse(200, [("Content-Type", "application/json")], lines())
    return HttpResponse(404, [("Content-Type", "text/plain")], b"404 page not found\n")


class ServerThread:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.loop = uvloop.new_event_loop() if uvloop else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ssl_context = ssl_context
        self.server = self.call(self._start())
        self.port = self.server.port

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self):
        self.kv = FakeKV()
        methods = {}
        impls = {"KV": self.kv, "Maintenance": FakeMaintenance(), "Watch": FakeWatch()}
        for name in ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth"):
            methods.update(unary_methods(SERVICES[name], impls.get(name, object())))
        return await serve(listen("127.0.0.1", 0), grpc_methods=methods, http_handler=http_handler,
                           ssl_context=self.ssl_context, max_recv_msg_size=MAX_RECV)

    def stop(self) -> None:
        async def close():
            self.server.close()
            await self.server.wait_closed()
        try:
            self.call(close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module")
def server():
    s = ServerThread()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def tls():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    s = ServerThread(ctx)
    try:
        yield s, ca
    finally:
        s.stop()


@pytest.fixture
def kv(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield rpc_pb2_grpc.KVStub(channel), channel


# --- grpcio, sync ----------------------------------------------------------------------------

def test_unary_and_metadata(kv):
    stub, _ = kv
    reply = stub.Range(rpc_pb2.RangeRequest(key=b"foo"))
    assert (reply.kvs[0].key, reply.kvs[0].value, reply.header.revision) == (b"foo", b"bar", 3)
    reply = stub.Range(rpc_pb2.RangeRequest(key=b"token"), metadata=[("token", "secret")])
    assert reply.kvs[0].value == b"secret"
    assert stub.Put(rpc_pb2.PutRequest(key=b"a", value=b"b")).header.raft_term == 4


@pytest.mark.parametrize("key, code, message", [
    (b"bad", grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    (b"utf8", grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: ключ 100% bad"),
    (b"boom", grpc.StatusCode.UNKNOWN, "boom"),
])
def test_errors(kv, key, code, message):
    stub, _ = kv
    with pytest.raises(grpc.RpcError) as e:
        stub.Put(rpc_pb2.PutRequest(key=key))
    assert (e.value.code(), e.value.details()) == (code, message)


def test_unimplemented(server, kv):
    _, channel = kv
    with pytest.raises(grpc.RpcError) as e:
        rpc_pb2_grpc.MaintenanceStub(channel).Status(rpc_pb2.StatusRequest())
    assert (e.value.code(), e.value.details()) == (grpc.StatusCode.UNIMPLEMENTED, "method Status not implemented")
    for path, message in [("/etcdserverpb.Foo/Bar", "unknown service etcdserverpb.Foo"),
                          ("/etcdserverpb.KV/Bar", "unknown method Bar for service etcdserverpb.KV")]:
        with pytest.raises(grpc.RpcError) as e:
            channel.unary_unary(path)(b"")
        assert (e.value.code(), e.value.details()) == (grpc.StatusCode.UNIMPLEMENTED, message)


def test_big_response_flows_through_windows(kv):
    stub, _ = kv
    assert len(stub.Range(rpc_pb2.RangeRequest(key=b"big")).kvs[0].value) == BIG


def test_request_over_max_size(kv):
    stub, _ = kv
    request = rpc_pb2.PutRequest(key=b"k", value=b"v" * MAX_RECV)
    with pytest.raises(grpc.RpcError) as e:
        stub.Put(request)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.details() == f"grpc: received message larger than max ({request.ByteSize()} vs. {MAX_RECV})"
    assert stub.Put(rpc_pb2.PutRequest(key=b"k", value=b"v" * (MAX_RECV - 100))).header.revision == 3


def test_slow_call_blocks_nobody(kv):
    stub, _ = kv
    slow = stub.Range.future(rpc_pb2.RangeRequest(key=b"gate"))
    assert stub.Range(rpc_pb2.RangeRequest(key=b"foo")).kvs[0].value == b"bar"
    assert not slow.done()
    stub.Put(rpc_pb2.PutRequest(key=b"release"))
    assert slow.result(timeout=30).kvs[0].key == b"gate"


def test_server_stream(kv):
    _, channel = kv
    replies = list(rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(rpc_pb2.SnapshotRequest()))
    assert [r.remaining_bytes for r in replies] == [2, 1, 0]
    assert [r.blob[:1] * len(r.blob) == r.blob and len(r.blob) for r in replies] == [1 << 20] * 3


def test_bidi_stream(kv):
    _, channel = kv
    requests = [rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"a")),
                rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"b")),
                rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=1))]
    replies = list(rpc_pb2_grpc.WatchStub(channel).Watch(iter(requests)))
    assert [(r.watch_id, r.created, r.canceled) for r in replies] == [(1, True, False), (2, True, False), (1, False, True)]


# --- grpcio, asyncio -------------------------------------------------------------------------

async def test_aio_client(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        replies = await asyncio.gather(*(kv.Range(rpc_pb2.RangeRequest(key=b"k%d" % i)) for i in range(50)))
        assert [r.kvs[0].key for r in replies] == [b"k%d" % i for i in range(50)]
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await kv.Put(rpc_pb2.PutRequest(key=b"bad"))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        snapshot = [r.remaining_bytes async for r in rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(rpc_pb2.SnapshotRequest())]
        assert snapshot == [2, 1, 0]
        call = rpc_pb2_grpc.WatchStub(channel).Watch()
        await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"a")))
        assert (await call.read()).created
        await call.write(rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=1)))
        assert (await call.read()).canceled
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


# --- etcdctl 3.5.1 (grpc-go) -----------------------------------------------------------------

def etcdctl(endpoint: str, *args: str, cacert: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(etcdctl_path()), f"--endpoints={endpoint}", "--command-timeout=20s", *args]
    if cacert:
        cmd.append(f"--cacert={cacert}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_etcdctl(server, tmp_path):
    endpoint = f"http://127.0.0.1:{server.port}"
    r = etcdctl(endpoint, "get", "foo")
    assert (r.returncode, r.stdout) == (0, "foo\nbar\n"), r.stderr
    r = etcdctl(endpoint, "put", "a", "b")
    assert (r.returncode, r.stdout) == (0, "OK\n"), r.stderr
    r = etcdctl(endpoint, "put", "bad", "x")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == "Error: etcdserver: key is not provided"
    r = etcdctl(endpoint, "get", "big", "--print-value-only")
    assert (r.returncode, len(r.stdout)) == (0, BIG + 1), r.stderr
    r = etcdctl(endpoint, "get", "foo", "-w", "json")
    assert json.loads(r.stdout)["kvs"][0]["value"] == "YmFy"


# --- HTTP/1.1 and TLS ------------------------------------------------------------------------

def test_http1(server):
    base = f"http://127.0.0.1:{server.port}"
    with urllib.request.urlopen(f"{base}/health", timeout=30) as r:
        assert (r.status, json.loads(r.read())) == (200, {"health": "true", "reason": ""})
    req = urllib.request.Request(f"{base}/echo?x=1", data=b'{"key":"Zm9v"}', method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read()) == {"method": "POST", "query": "x=1", "body": '{"key":"Zm9v"}'}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)   # keep-alive, chunked reply
    for _ in range(2):
        conn.request("GET", "/stream")
        r = conn.getresponse()
        assert r.getheader("Transfer-Encoding") == "chunked"
        assert r.read() == b'{"n":0}\n{"n":1}\n{"n":2}\n'
    conn.request("POST", "/echo", body=iter([b"ab", b"cd"]), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    assert json.loads(conn.getresponse().read())["body"] == "abcd"
    conn.close()


def test_tls_alpn_grpc_http_and_etcdctl(tls, tmp_path):
    server, ca = tls
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    import socket
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.selected_alpn_protocol() == "h2"
    https_ctx = ssl.create_default_context()
    ca.configure_trust(https_ctx)
    with urllib.request.urlopen(f"https://127.0.0.1:{server.port}/health", context=https_ctx, timeout=30) as r:
        assert r.status == 200
    creds = grpc.ssl_channel_credentials(ca.cert_pem.bytes())
    with grpc.secure_channel(f"127.0.0.1:{server.port}", creds) as channel:
        assert rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=b"foo")).kvs[0].value == b"bar"
    cacert = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cacert))
    r = etcdctl(f"https://127.0.0.1:{server.port}", "get", "foo", cacert=str(cacert))
    assert (r.returncode, r.stdout) == (0, "foo\nbar\n"), r.stderr


def test_close_finishes_calls_in_flight_then_cuts_long_streams():
    s = ServerThread()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{s.port}") as channel:
            kv = rpc_pb2_grpc.KVStub(channel)
            assert kv.Range(rpc_pb2.RangeRequest(key=b"foo")).kvs[0].value == b"bar"
            slow = kv.Range.future(rpc_pb2.RangeRequest(key=b"gate"))
            watch_requests = [rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"a"))]
            gate = threading.Event()

            def requests():                       # a watch stream the client never half-closes
                yield from watch_requests
                gate.wait(60)
            watch = rpc_pb2_grpc.WatchStub(channel).Watch(requests())
            assert next(watch).created

            async def close_with_grace():
                s.server.close(grace=0.5)
                s.kv.gate.set()                   # the unary call in flight may finish after GOAWAY
                await s.server.wait_closed()
            s.call(close_with_grace())
            assert slow.result(timeout=30).kvs[0].key == b"gate"
            with pytest.raises(grpc.RpcError) as e:   # the watch was cut once the grace period ran out
                next(watch)
            assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
            gate.set()
    finally:
        s.stop()
