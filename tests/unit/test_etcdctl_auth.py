"""etcdctl's auth, user and role commands: argument parsing, permission ranges and output texts
(expected texts observed from etcdctl 3.5.1), and the client's TLS channel choice."""
from __future__ import annotations

import pytest

from pyetcd.client import TLS
from pyetcd.client._common import channel_security
from pyetcd.client.auth import permission
from pyetcd.etcdctl import auth_common
from pyetcd.etcdctl.app import build_root
from pyetcd.etcdctl.cobra import find
from pyetcd.etcdctl.role import perm_range
from pyetcd.etcdctl.runtime import EXIT_BAD_ARGS, Exit
from pyetcd.proto.authpb import auth_pb2
from pyetcd.proto.etcdserverpb import rpc_pb2

HDR = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=5, raft_term=3)


def _cmd(*words: str):
    cmd, rest = find(build_root(), list(words))
    positional = cmd.flagset().parse(rest)
    return cmd, positional


@pytest.mark.parametrize("words, expected", [
    (["a"], (b"a", b"")),
    (["a", "b"], (b"a", b"b")),
    (["foo", "--prefix"], (b"foo", b"fop")),
    (["a\xff".encode("latin-1").decode("utf-8", "surrogateescape"), "--prefix"], (b"a\xff", b"b")),
    (["z", "--from-key"], (b"z", b"\x00")),
    ([""], (b"\x00", b"")),
    (["", "--prefix"], (b"\x00", b"\x00")),
    (["", "--from-key"], (b"\x00", b"\x00")),
])
def test_permission_ranges(words, expected):
    cmd, args = _cmd("role", "grant-permission", *words)
    assert perm_range(cmd, args) == expected


@pytest.mark.parametrize("words, message", [
    (["a", "b", "--prefix"], "unexpected endkey argument with --prefix flag"),
    (["a", "b", "--from-key"], "unexpected endkey argument with --from-key flag"),
    (["a", "b", "--prefix", "--from-key"], "unexpected endkey argument with --prefix flag"),
    (["a", "--prefix", "--from-key"], "--from-key and --prefix flags are mutually exclusive"),
])
def test_permission_range_errors(words, message):
    cmd, args = _cmd("role", "revoke-permission", *words)
    with pytest.raises(Exit) as exc:
        perm_range(cmd, args)
    assert (exc.value.code, exc.value.message) == (EXIT_BAD_ARGS, message)


def _perm(kind: int, key: bytes, end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=end)


def test_role_get_simple_and_fields():
    resp = rpc_pb2.AuthRoleGetResponse(header=HDR, perm=[
        _perm(2, b"foo/rw"), _perm(1, b"w1", b"w5"), _perm(0, b"z", b"\x00"), _perm(0, b"foo", b"fop")])
    assert auth_common.role_simple("writer", resp) == (
        b"Role writer\nKV Read:\n\tfoo/rw\n\t[z, <open ended>\n\t[foo, fop) (prefix foo)\n"
        b"KV Write:\n\tfoo/rw\n\t[w1, w5)\n")
    assert auth_common.role_fields(rpc_pb2.AuthRoleGetResponse(perm=[_perm(2, b"a", b"b"), _perm(0, b"\x00")])) == [
        '"PermType" :  READWRITE', '"Key" : "a"', '"RangeEnd" : "b"',
        '"PermType" :  READ', '"Key" : "\\x00"', '"RangeEnd" : ""']


def test_empty_role_and_revoke_texts():
    assert auth_common.role_simple("root", rpc_pb2.AuthRoleGetResponse()) == b"Role root\nKV Read:\nKV Write:\n"
    assert auth_common.range_text(b"k4", b"\x00") == b"[k4, <open ended>"
    assert auth_common.range_text(b"k2", b"k3") == b"[k2, k3)"


def test_client_permission_builder():
    assert permission("READWRITE", "c1", "c5") == _perm(2, b"c1", b"c5")
    assert permission("read", b"foo/", prefix=True) == _perm(0, b"foo/", b"foo0")
    assert permission(auth_pb2.Permission.WRITE, "k") == _perm(1, b"k")


@pytest.mark.parametrize("endpoint, tls, target, secure", [
    ("http://127.0.0.1:2379", None, "127.0.0.1:2379", False),
    ("http://127.0.0.1:2379", TLS(b"ca"), "127.0.0.1:2379", False),  # http:// drops TLS (Go client)
    ("127.0.0.1:2379", None, "127.0.0.1:2379", False),
    ("127.0.0.1:2379", TLS(), "127.0.0.1:2379", True),
    ("https://h:1", None, "h:1", True),
])
def test_channel_security(endpoint, tls, target, secure):
    got_target, creds, options = channel_security(endpoint, tls, 2.0)
    assert (got_target, creds is not None) == (target, secure)
    assert not any(name == "grpc.ssl_target_name_override" for name, _ in options)


def test_server_name_override():
    _, _, options = channel_security("https://127.0.0.1:1", TLS(server_name="etcd.example"), 2.0)
    assert ("grpc.ssl_target_name_override", "etcd.example") in options
