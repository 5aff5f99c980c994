"""Auth enforced by the server, beyond what the conformance scenarios show: every API's checks
(on real etcd 3.5.1 and pyetcd alike), and pyetcd's seams — a restart, a 3-member cluster, a
lease expiring with auth on, failed logins, secrets kept out of the log."""
from __future__ import annotations

import os
import time
from typing import Iterator

import grpc
import pytest

from auth_users import setup_users
from both_servers import SERVERS
from pyetcd import errors
from pyetcd.client import Client
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from pyetcd.server.auth.api import FAILED_LOGIN_BASE_DELAY
from servers import PYETCD, Server, cluster, require_ref, start_all, wait_for

DENIED_WATCH = "rpc error: code = PermissionDenied desc = etcdserver: permission denied"


def _token(url: str, user: str, password: str) -> str:
    with grpc.insecure_channel(url.split("://")[1]) as ch:
        return rpc_pb2_grpc.AuthStub(ch).Authenticate(rpc_pb2.AuthenticateRequest(name=user, password=password),
                                                       timeout=10).token


def _md(token: str) -> tuple:
    return (("token", token),)


@pytest.fixture(scope="module", params=list(SERVERS))
def authed(request, tmp_path_factory) -> Iterator[Server]:
    if request.param == "etcd-3.5.1":
        require_ref()
    server = Server(SERVERS[request.param](), str(tmp_path_factory.mktemp("authed") / "infra0.etcd"),
                    extra=["--auth-token-ttl", "2"]).start()
    try:
        setup_users(server.url)
        yield server
    finally:
        server.stop()


def _code(exc: pytest.ExceptionInfo) -> tuple[grpc.StatusCode, str]:
    return exc.value.code(), exc.value.details()


def test_every_api_checks_its_caller(authed):
    root, alice = _token(authed.url, "root", "rootpw"), _token(authed.url, "alice", "alicepw")
    with grpc.insecure_channel(authed.endpoint) as ch:
        kv, lease = rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.LeaseStub(ch)
        maint, members = rpc_pb2_grpc.MaintenanceStub(ch), rpc_pb2_grpc.ClusterStub(ch)
        kv.Put(rpc_pb2.PutRequest(key=b"foo/1", value=b"v"), metadata=_md(alice), timeout=10)
        with pytest.raises(grpc.RpcError) as exc:
            kv.Put(rpc_pb2.PutRequest(key=b"bar", value=b"v"), metadata=_md(alice), timeout=10)
        assert _code(exc) == (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
        with pytest.raises(grpc.RpcError) as exc:
            kv.Range(rpc_pb2.RangeRequest(key=b"foo/1"), timeout=10)
        assert _code(exc) == (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
        with pytest.raises(grpc.RpcError) as exc:
            kv.Range(rpc_pb2.RangeRequest(key=b"foo/1"), metadata=_md("nosuch.1"), timeout=10)
        assert _code(exc) == (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")

        # a txn is checked whole: every compare and both branches, whichever is taken
        ok = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"foo/2", value=b"t"))
        denied = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"bar", value=b"t"))
        for txn in (rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"bar", target=rpc_pb2.Compare.VERSION)],
                                       success=[ok]),
                    rpc_pb2.TxnRequest(success=[ok], failure=[denied])):
            with pytest.raises(grpc.RpcError) as exc:
                kv.Txn(txn, metadata=_md(alice), timeout=10)
            assert exc.value.details() == "etcdserver: permission denied"
        assert kv.Txn(rpc_pb2.TxnRequest(success=[ok]), metadata=_md(alice), timeout=10).succeeded

        # revoking a lease takes write permission on every key on it
        granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=_md(alice), timeout=10)
        kv.Put(rpc_pb2.PutRequest(key=b"bar", value=b"v", lease=granted.ID), metadata=_md(root), timeout=10)
        with pytest.raises(grpc.RpcError) as exc:
            lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=granted.ID), metadata=_md(alice), timeout=10)
        assert exc.value.details() == "etcdserver: permission denied"
        lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=granted.ID), metadata=_md(root), timeout=10)

        # a watch is checked when it is created; the denial cancels it
        def first_reply(key: bytes, token: str) -> rpc_pb2.WatchResponse:
            stream = rpc_pb2_grpc.WatchStub(ch).Watch(
                iter([rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key))]),
                metadata=_md(token), timeout=10)
            try:
                return next(stream)
            finally:
                stream.cancel()
        refused = first_reply(b"bar", alice)
        assert (refused.created, refused.canceled, refused.cancel_reason) == (True, True, DENIED_WATCH)
        accepted = first_reply(b"foo/1", alice)
        assert (accepted.created, accepted.canceled) == (True, False)

        # root only; Hash, HashKV and Snapshot answer with the auth package's own errors
        for call in (lambda md: maint.HashKV(rpc_pb2.HashKVRequest(), metadata=md, timeout=10),
                     lambda md: next(maint.Snapshot(rpc_pb2.SnapshotRequest(), metadata=md, timeout=10))):
            with pytest.raises(grpc.RpcError) as exc:
                call(_md(alice))
            assert _code(exc) == (grpc.StatusCode.UNKNOWN, "auth: permission denied")
            with pytest.raises(grpc.RpcError) as exc:
                call(None)
            assert _code(exc) == (grpc.StatusCode.UNKNOWN, "auth: user name is empty")
        maint.HashKV(rpc_pb2.HashKVRequest(), metadata=_md(root), timeout=10)
        with pytest.raises(grpc.RpcError) as exc:
            members.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=["http://127.0.0.1:1"]), metadata=_md(alice),
                              timeout=10)
        assert exc.value.details() == "etcdserver: permission denied"
        with pytest.raises(grpc.RpcError) as exc:
            rpc_pb2_grpc.AuthStub(ch).AuthStatus(rpc_pb2.AuthStatusRequest(), metadata=_md(alice), timeout=10)
        assert exc.value.details() == "etcdserver: permission denied"
        # ... and what anyone may do, as in etcd 3.5.1
        maint.Status(rpc_pb2.StatusRequest(), metadata=_md(alice), timeout=10)
        members.MemberList(rpc_pb2.MemberListRequest(), timeout=10)
        kv.Compact(rpc_pb2.CompactionRequest(revision=1), timeout=10)


def test_logins(authed):
    with grpc.insecure_channel(authed.endpoint) as ch:
        auth = rpc_pb2_grpc.AuthStub(ch)
        for name, password in (("alice", "wrong"), ("nosuch", "pw")):
            with pytest.raises(grpc.RpcError) as exc:
                auth.Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password), timeout=10)
            assert _code(exc) == (grpc.StatusCode.INVALID_ARGUMENT,
                                  "etcdserver: authentication failed, invalid user ID or password")
        with pytest.raises(grpc.RpcError) as exc:
            auth.Authenticate(rpc_pb2.AuthenticateRequest(name="nop", password="pw"), timeout=10)
        assert _code(exc) == (grpc.StatusCode.UNKNOWN,
                              "auth: authentication failed, password was given for no password user")
        token = _token(authed.url, "alice", "alicepw")
        prefix, index = token.split(".")
        assert len(prefix) == 16 and prefix.isalpha() and int(index) > 0


def test_a_token_unused_for_its_ttl_is_forgotten(authed):
    token = _token(authed.url, "alice", "alicepw")
    with grpc.insecure_channel(authed.endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        kv.Range(rpc_pb2.RangeRequest(key=b"foo/1"), metadata=_md(token), timeout=10)

        def forgotten() -> bool:
            time.sleep(3.5)  # longer than --auth-token-ttl 2 (and etcd's 1 s sweep), without using it
            try:
                kv.Range(rpc_pb2.RangeRequest(key=b"foo/1"), metadata=_md(token), timeout=10)
            except grpc.RpcError as e:
                assert e.details() == "etcdserver: invalid auth token"
                return True
            return False
        wait_for(forgotten, 30, "the token to expire")


def test_lease_expiry_revokes_with_auth_on(authed):
    """The leader's revoke of an expired lease is the member's own request: no user is needed."""
    with Client([authed.url], user="alice", password="alicepw") as alice:
        granted = alice.lease_grant(2)
        alice.put("foo/leased", "v", lease=granted.ID)
        wait_for(lambda: alice.get("foo/leased").count == 0, 30, "the leased key to go with its lease")


def test_auth_survives_a_restart_and_tokens_do_not(tmp_path):
    server = Server(PYETCD, str(tmp_path / "infra0.etcd")).start()
    try:
        setup_users(server.url)
        token = _token(server.url, "root", "rootpw")
        with Client([server.url], user="root", password="rootpw") as root:
            before = root.auth_status().authRevision
        assert server.stop() == 0
        server.start()
        with grpc.insecure_channel(server.endpoint) as ch:
            with pytest.raises(grpc.RpcError) as exc:
                rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"x"), metadata=_md(token), timeout=10)
            assert exc.value.details() == "etcdserver: invalid auth token"
        with Client([server.url], user="root", password="rootpw") as root:
            status = root.auth_status()
            assert status.enabled and status.authRevision == before
            assert list(root.user_list().users) == ["alice", "nop", "root"]
            assert list(root.user_get("alice").roles) == ["foo-rw"]
        with Client([server.url], user="alice", password="alicepw") as alice:
            with pytest.raises(errors.EtcdError) as err:
                alice.put("bar", "x")
            assert err.value == errors.ErrPermissionDenied
    finally:
        server.stop()


def test_a_login_on_one_member_works_on_every_member(tmp_path):
    members = cluster(PYETCD, str(tmp_path), 3)
    start_all(members)
    try:
        setup_users(members[0].url)
        token = _token(members[0].url, "alice", "alicepw")  # assigned when the login applied: everywhere
        for m in members:
            with grpc.insecure_channel(m.endpoint) as ch:
                kv = rpc_pb2_grpc.KVStub(ch)
                kv.Put(rpc_pb2.PutRequest(key=f"foo/{m.name}".encode(), value=b"v"), metadata=_md(token), timeout=10)
                with pytest.raises(grpc.RpcError) as exc:
                    kv.Put(rpc_pb2.PutRequest(key=b"bar", value=b"v"), metadata=_md(token), timeout=10)
                assert exc.value.details() == "etcdserver: permission denied"
                # lease calls a follower forwards to the leader carry the caller's token on
                lease = rpc_pb2_grpc.LeaseStub(ch)
                granted = lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), metadata=_md(token), timeout=10)
                ttl = lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=granted.ID), metadata=_md(token),
                                            timeout=10)
                assert ttl.TTL > 0
        with Client([members[2].url], user="root", password="rootpw") as root:
            root.user_revoke_role("alice", "foo-rw")  # applied on every member alike
        with grpc.insecure_channel(members[1].endpoint) as ch:
            with pytest.raises(grpc.RpcError) as exc:
                rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"foo/infra0", serializable=True),
                                              metadata=_md(token), timeout=10)
            assert exc.value.details() == "etcdserver: permission denied"
    finally:
        for m in members:
            m.stop()


def test_failed_logins_slow_down_and_no_secret_is_logged(tmp_path):
    server = Server(PYETCD, str(tmp_path / "infra0.etcd")).start()
    try:
        setup_users(server.url)
        with grpc.insecure_channel(server.endpoint) as ch:
            auth = rpc_pb2_grpc.AuthStub(ch)
            took = []
            for _ in range(3):
                start = time.monotonic()
                with pytest.raises(grpc.RpcError):
                    auth.Authenticate(rpc_pb2.AuthenticateRequest(name="alice", password="guess-it"), timeout=30)
                took.append(time.monotonic() - start)
            # each failure waits at least twice as long as the one before
            assert took[2] >= 4 * FAILED_LOGIN_BASE_DELAY and took[1] >= 2 * FAILED_LOGIN_BASE_DELAY
        token = _token(server.url, "alice", "alicepw")
        with Client([server.url], user="root", password="rootpw") as root:
            root.user_change_password("alice", "second-secret")
    finally:
        server.stop()
    with open(server.log_path, errors="replace") as f:
        log = f.read()
    assert "invalid authentication was requested" in log
    for secret in ("alicepw", "rootpw", "guess-it", "second-secret", token, token.split(".")[0]):
        assert secret not in log
    wal_dir = os.path.join(server.data_dir, "member", "wal")
    for name in os.listdir(wal_dir):
        with open(os.path.join(wal_dir, name), "rb") as f:
            wal = f.read()
        assert b"alicepw" not in wal and b"second-secret" not in wal  # Raft's log holds bcrypt hashes only


def _jwt_keys(tmp_path, kind: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp_path / f"{kind}.key", tmp_path / f"{kind}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(priv), str(pub)


@pytest.mark.parametrize("server_kind", list(SERVERS))
@pytest.mark.parametrize("kind,method", [("rsa", "RS256"), ("ec", "ES256"), ("rsa", "PS384")])
def test_jwt_tokens(server_kind, kind, method, tmp_path):
    import base64
    import json

    if server_kind == "etcd-3.5.1":
        require_ref()
    priv, pub = _jwt_keys(tmp_path, kind)
    server = Server(SERVERS[server_kind](), str(tmp_path / "infra0.etcd"),
                    extra=["--auth-token", f"jwt,pub-key={pub},priv-key={priv},sign-method={method},ttl=10m"]).start()
    try:
        setup_users(server.url)
        token = _token(server.url, "alice", "alicepw")
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                          for part in token.split(".")[:2])
        assert header == {"alg": method, "typ": "JWT"}
        assert sorted(claims) == ["exp", "revision", "username"] and claims["username"] == "alice"
        assert 590 <= claims["exp"] - time.time() <= 610
        with grpc.insecure_channel(server.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            kv.Put(rpc_pb2.PutRequest(key=b"foo/jwt", value=b"v"), metadata=_md(token), timeout=10)
            with Client([server.url], user="root", password="rootpw") as root:
                root.role_add("another")  # the auth revision moves on: older tokens are refused
            with pytest.raises(grpc.RpcError) as exc:
                kv.Put(rpc_pb2.PutRequest(key=b"foo/jwt", value=b"w"), metadata=_md(token), timeout=10)
            assert _code(exc) == (grpc.StatusCode.UNKNOWN, "auth: revision in header is old")
            with pytest.raises(grpc.RpcError) as exc:
                kv.Range(rpc_pb2.RangeRequest(key=b"foo/jwt"), metadata=_md(token[:-4] + "AAAA"), timeout=10)
            assert _code(exc) == (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")
        with Client([server.url], user="alice", password="alicepw") as alice:
            alice.put("foo/jwt", "x")
            with Client([server.url], user="root", password="rootpw") as root:
                root.role_add("yet-another")
            assert alice.get("foo/jwt").kvs[0].value == b"x"  # logged in again by itself
    finally:
        server.stop()


@pytest.mark.parametrize("server_kind", list(SERVERS))
@pytest.mark.parametrize("spec,error", [
    ("bogus", "auth: invalid auth options"), ("jwt,sign-method=RS256", "auth: missing key data"),
    ("jwt,pub-key=/nonexistent,sign-method=RS256", "auth: invalid auth options"),
    ("jwt,priv-key={priv},sign-method=EdDSA", "auth: invalid auth options")])
def test_bad_auth_token_options_stop_the_start(server_kind, spec, error, tmp_path):
    if server_kind == "etcd-3.5.1":
        require_ref()
    priv, _ = _jwt_keys(tmp_path, "rsa")
    server = Server(SERVERS[server_kind](), str(tmp_path / "infra0.etcd"),
                    extra=["--auth-token", spec.format(priv=priv)]).start(wait=False)
    try:
        assert server.proc.wait(timeout=30) != 0
    finally:
        server.stop()
    with open(server.log_path) as f:
        assert error in f.read()


def test_a_follower_gets_the_auth_state_with_a_snapshot(tmp_path):
    """A member that was down while auth was set up catches up by snapshot install: its auth store
    comes with the database, and it checks permissions (serializable reads: its own) alike."""
    members = cluster(PYETCD, str(tmp_path), 3, extra=["--snapshot-count", "20",
                                                       "--experimental-snapshot-catchup-entries", "5"])
    start_all(members)
    try:
        late = members[2]
        late.stop()
        setup_users(members[0].url)
        with Client([members[0].url], user="root", password="rootpw") as root:
            for i in range(60):
                root.put(f"foo/{i}", "v")
            root.put("bar", "b")
        late.start()
        with Client([late.url], user="root", password="rootpw") as root:
            wait_for(lambda: root.get("bar", serializable=True).count == 1, 30, "the late member to catch up")
        with open(late.log_path) as f:
            assert "installed database snapshot" in f.read()
        token = _token(late.url, "alice", "alicepw")
        with grpc.insecure_channel(late.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            got = kv.Range(rpc_pb2.RangeRequest(key=b"foo/59", serializable=True), metadata=_md(token), timeout=10)
            assert got.kvs[0].value == b"v"
            with pytest.raises(grpc.RpcError) as exc:
                kv.Range(rpc_pb2.RangeRequest(key=b"bar", serializable=True), metadata=_md(token), timeout=10)
            assert exc.value.details() == "etcdserver: permission denied"
    finally:
        for m in members:
            m.stop()
