"""The peer protocol's pieces that need no sockets: URLs, handshake, framing, back-off."""
from __future__ import annotations

import random

import pytest

from pyetcd.transport import PeerTransport, TransportOptions
from pyetcd.transport.wire import (KIND_STREAM, HandshakeError, Hello, PeerURL, Status, decode_hello,
                                   encode_status, frames, parse_url)


def test_parse_url():
    assert parse_url("http://127.0.0.1:2380") == PeerURL("127.0.0.1", 2380, False)
    assert parse_url("https://[::1]:12380") == PeerURL("::1", 12380, True)
    assert parse_url("http://example.com") == PeerURL("example.com", 2380, False)
    for bad in ("unix://x", "127.0.0.1:2380", "http://"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_hello_roundtrip_and_garbage():
    hello = Hello(KIND_STREAM, 2**64 - 1, 0xC1, 7)
    assert len(hello.encode()) == 32
    assert decode_hello(hello.encode()) == hello
    with pytest.raises(HandshakeError) as e:
        decode_hello(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n....")
    assert e.value.status is Status.BAD_HANDSHAKE
    with pytest.raises(HandshakeError):
        decode_hello(b"PYEP\x09" + bytes(27))


def test_framing():
    assert frames([b"ab", b"", b"c"]) == b"\0\0\0\2ab\0\0\0\0\0\0\0\1c"
    assert encode_status(Status.OK) == b"\0\0\0"
    assert encode_status(Status.FAILED, "no") == b"\5\0\2no"


def backoffs(seed: int) -> list[float]:
    t = PeerTransport(1, 2, on_message=lambda f, d: None, rng=random.Random(seed),
                      options=TransportOptions(backoff_initial=0.1, backoff_max=2.0))
    return [t._ctx.backoff(i) for i in range(12)]


def test_backoff_is_exponential_capped_jittered_and_seeded():
    delays = backoffs(7)
    for i, d in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2 ** i)
        assert ceiling / 2 <= d <= ceiling
    assert delays == backoffs(7) != backoffs(8)
