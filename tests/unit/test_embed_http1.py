"""HTTP/1.1 request parsing and response writing of pyetcd.embed, without sockets."""
from __future__ import annotations

import asyncio

import pytest

from embed_harness import FakeTransport, until
from pyetcd.embed.http1 import BadRequest, Http1Protocol, HttpRequest, HttpResponse, parse_chunked, parse_head, split_target


def test_parse_head_and_target():
    method, target, version, headers = parse_head(
        b"POST /v3/kv/range?x=1 HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nContent-Length:  3 ")
    assert (method, target, version) == ("POST", "/v3/kv/range?x=1", "HTTP/1.1")
    assert headers == {"host": "a", "x-a": "1, 2", "content-length": "3"}
    assert split_target("/v2/keys/a?recursive=true") == ("/v2/keys/a", "recursive=true")
    assert split_target("http://h:2379/health") == ("/health", "")
    with pytest.raises(BadRequest):
        parse_head(b"GARBAGE")


def test_parse_chunked():
    body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    assert parse_chunked(body) == (b"Wikipedia", len(body) - 4)
    for cut in range(len(body) - 4):
        assert parse_chunked(body[:cut]) is None
    with pytest.raises(BadRequest):
        parse_chunked(b"zz\r\n")


class Server:
    def __init__(self, handler=None) -> None:
        self.requests: list[HttpRequest] = []
        self.transport = FakeTransport()
        self.proto = Http1Protocol(handler or self.echo)
        self.proto.connection_made(self.transport)

    async def echo(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(200, [("Content-Type", "text/plain")], b"got:" + request.body)

    async def response(self, count: int = 1) -> bytes:
        await until(lambda: self.transport.written.count(b"HTTP/1.1 2") + self.transport.written.count(b"HTTP/1.1 4")
                    + self.transport.written.count(b"HTTP/1.1 5") >= count and self.proto._task is None, "response")
        return self.transport.take()


async def test_keep_alive_requests_in_sequence():
    s = Server()
    s.proto.data_received(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    out = await s.response()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 4\r\n" in out and out.endswith(b"\r\n\r\ngot:")
    assert b"Date: " in out and not s.transport.closed
    s.proto.data_received(b"POST /v3/kv/put HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    s.proto.data_received(b"cde")
    assert (await s.response()).endswith(b"got:abcde")
    assert [(r.method, r.path, r.body) for r in s.requests] == [("GET", "/health", b""), ("POST", "/v3/kv/put", b"abcde")]


async def test_chunked_request_body_byte_by_byte():
    s = Server()
    raw = b"POST /v2/keys/a?x=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    for i in range(len(raw)):
        s.proto.data_received(raw[i:i + 1])
    assert (await s.response()).endswith(b"got:abcde")
    assert (s.requests[0].path, s.requests[0].query) == ("/v2/keys/a", "x=1")


async def test_expect_100_continue():
    s = Server()
    s.proto.data_received(b"PUT /v2/keys/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert s.transport.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.proto.data_received(b"hi")
    assert (await s.response()).endswith(b"got:hi")


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
])
async def test_connection_close(request_bytes):
    s = Server()
    s.proto.data_received(request_bytes)
    out = await s.response()
    assert b"Connection: close\r\n" in out
    assert s.transport.closed


async def test_bad_request_closes():
    s = Server()
    s.proto.data_received(b"NOT HTTP\r\n\r\n")
    assert s.transport.take().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert s.transport.closed


async def test_handler_exception_is_500():
    async def broken(request):
        raise ValueError("nope")
    s = Server(broken)
    s.proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    assert (await s.response()).startswith(b"HTTP/1.1 500 Internal Server Error")


async def test_streaming_body_is_chunked_and_closed_on_disconnect():
    release = asyncio.Event()
    closed = asyncio.Event()

    async def chunks():
        try:
            yield b"first\n"
            await release.wait()
            yield b"second\n"
            await asyncio.Event().wait()
        finally:
            closed.set()

    async def watch(request):
        return HttpResponse(200, [("Content-Type", "application/json")], chunks())
    s = Server(watch)
    s.proto.data_received(b"POST /v3/watch HTTP/1.1\r\n\r\n")
    await until(lambda: b"first" in s.transport.written, "first chunk")
    release.set()
    await until(lambda: b"second" in s.transport.written, "second chunk")
    out = s.transport.take()
    assert b"Transfer-Encoding: chunked\r\n" in out
    assert out.endswith(b"\r\n\r\n6\r\nfirst\n\r\n7\r\nsecond\n\r\n")
    s.proto.connection_lost(None)
    await until(closed.is_set, "generator closed")


async def test_shutdown_waits_for_response_in_progress():
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return HttpResponse(204, [], b"")
    s = Server(slow)
    s.proto.data_received(b"GET / HTTP/1.1\r\n\r\n")
    await until(lambda: s.proto._task is not None, "task")
    s.proto.shutdown()
    assert not s.transport.closed
    gate.set()
    await until(lambda: s.transport.closed, "closed")
    out = s.transport.take()
    assert out.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in out
