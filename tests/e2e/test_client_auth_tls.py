"""pyetcd.client's Auth API, its login (token in metadata, a new login when the token expires)
and its TLS channels, against real etcd 3.5.1; pyetcd's etcdctl over TLS beside the real one."""
from __future__ import annotations

import ssl
import sys
import urllib.request
from typing import Iterator

import grpc
import pytest
import trustme

from pyetcd import errors
from pyetcd.client import TLS, AsyncClient, Client
from pyetcd.proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from auth_users import add_root_and_alice
from both_servers import SERVERS
from servers import Server, etcdctl, ref_bin, require_ref, wait_for

PYETCDCTL = [sys.executable, "-m", "pyetcd.etcdctl"]


@pytest.fixture(params=list(SERVERS))
def auth_etcd(request, tmp_path_factory) -> Iterator[Server]:
    """A server of its own (real etcd 3.5.1, then pyetcd): the test turns auth on."""
    if request.param == "etcd-3.5.1":
        require_ref()
    server = Server(SERVERS[request.param](), str(tmp_path_factory.mktemp("auth") / "infra0.etcd")).start()
    try:
        yield server
    finally:
        server.stop()


def test_auth_api_login_and_token_renewal(auth_etcd):
    url = auth_etcd.url
    with Client([url]) as c:
        add_root_and_alice(c, "reader", "read")
        c.put("foo/1", "one")
        c.put("bar", "x")
        assert list(c.user_list().users) == ["alice", "root"]
        assert list(c.role_list().roles) == ["reader", "root"]
        perm = c.role_get("reader").perm[0]
        assert (perm.permType, perm.key, perm.range_end) == (0, b"foo/", b"foo0")
        assert list(c.user_get("alice").roles) == ["reader"]
        c.auth_enable()
        with pytest.raises(errors.EtcdError) as exc:
            c.get("foo/1")
        assert exc.value == errors.EtcdError(grpc.StatusCode.INVALID_ARGUMENT.value[0], "etcdserver: user name is empty")
    with Client([url], user="alice", password="wrong") as c:
        with pytest.raises(errors.EtcdError) as exc:
            c.get("foo/1")
        assert exc.value == errors.ErrAuthFailed
    with Client([url], user="alice", password="alicepw") as alice:
        assert alice.get("foo/1").kvs[0].value == b"one"
        with pytest.raises(errors.EtcdError) as exc:
            alice.get("bar")
        assert exc.value == errors.ErrPermissionDenied
        with pytest.raises(errors.EtcdError) as exc:
            alice.user_list()
        assert exc.value == errors.ErrPermissionDenied
        old = alice._token
        with Client([url], user="root", password="rootpw") as root:  # turning auth off drops every token
            root.auth_disable()
            root.auth_enable()
        stub = rpc_pb2_grpc.KVStub(alice._channel(url))
        with pytest.raises(grpc.RpcError) as rpc_exc:
            stub.Range(rpc_pb2.RangeRequest(key=b"foo/1"), metadata=(("token", old),), timeout=5)
        assert rpc_exc.value.details() == "etcdserver: invalid auth token"
        assert alice.get("foo/1").kvs[0].value == b"one"  # logged in again, once
        assert alice._token not in (None, old)
    with Client([url], user="root", password="rootpw") as root:
        status = root.auth_status()
        assert status.enabled and status.authRevision > 0
        root.user_change_password("alice", "newpw")
        root.role_revoke_permission("reader", "foo/", prefix=True)
        root.user_revoke_role("alice", "reader")
        root.role_delete("reader")
        root.auth_disable()
        root.user_delete("alice")
    with Client([url]) as c:
        assert not c.auth_status().enabled
        assert list(c.user_list().users) == ["root"]


async def test_async_auth_api(etcd_server):
    async with AsyncClient([etcd_server.url]) as c:
        await c.user_add("carol", "pw")
        await c.role_add("carol-role")
        await c.role_grant_permission("carol-role", "READWRITE", "c1", "c5")
        await c.user_grant_role("carol", "carol-role")
        assert list((await c.user_get("carol")).roles) == ["carol-role"]
        perm = (await c.role_get("carol-role")).perm[0]
        assert (perm.permType, perm.key, perm.range_end) == (2, b"c1", b"c5")
        with pytest.raises(errors.EtcdError) as exc:
            await c.user_grant_role("carol", "nosuch")
        assert exc.value.message == "etcdserver: role name not found"
        assert not (await c.auth_status()).enabled
        with pytest.raises(errors.EtcdError) as exc:
            await c.authenticate("carol", "pw")
        assert exc.value.message == "etcdserver: authentication is not enabled"
        await c.user_delete("carol")
        await c.role_delete("carol-role")


# -- TLS ---------------------------------------------------------------------------------------

class TLSServer(Server):
    """Real etcd serving clients over https only, client certificates required."""

    pki: dict = {}

    @property
    def url(self) -> str:
        return f"https://{self.endpoint}"

    def wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=self.pki["ca"])
        ctx.load_cert_chain(self.pki["cert"], self.pki["key"])

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1, context=ctx) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, "etcd over TLS")


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory) -> Iterator[TLSServer]:
    require_ref()
    d = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "etcd.example")
    client_cert = ca.issue_cert("root")
    foreign = other.issue_cert("root")
    pki = {}
    for name, blob in [("ca", ca.cert_pem), ("server", server_cert.cert_chain_pems[0]),
                       ("server-key", server_cert.private_key_pem), ("cert", client_cert.cert_chain_pems[0]),
                       ("key", client_cert.private_key_pem), ("foreign", foreign.cert_chain_pems[0]),
                       ("foreign-key", foreign.private_key_pem)]:
        path = str(d / f"{name}.pem")
        blob.write_to_path(path)
        pki[name] = path
    server = TLSServer([ref_bin("etcd")], str(d / "infra0.etcd"),
                       extra=["--cert-file", pki["server"], "--key-file", pki["server-key"],
                              "--trusted-ca-file", pki["ca"], "--client-cert-auth"])
    server.pki = pki
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _tls(pki: dict, cert: str = "cert", key: str = "key", **kw) -> TLS:
    return TLS(_read(pki["ca"]), _read(pki[cert]), _read(pki[key]), **kw)


def test_tls_channels(tls_etcd):
    pki = tls_etcd.pki
    with Client([tls_etcd.url], tls=_tls(pki)) as c:
        c.put("t", "1")
    with Client([tls_etcd.endpoint], tls=_tls(pki)) as c:  # a bare host:port uses TLS when given
        assert c.get("t").kvs[0].value == b"1"
    with Client([tls_etcd.url], tls=_tls(pki, server_name="etcd.example")) as c:
        assert c.get("t").count == 1
    refused = [
        ("wrong server name", [tls_etcd.url], _tls(pki, server_name="other.example")),
        ("no client certificate", [tls_etcd.url], TLS(_read(pki["ca"]))),
        ("certificate of another CA", [tls_etcd.url], _tls(pki, "foreign", "foreign-key")),
        ("http:// is plaintext", [f"http://{tls_etcd.endpoint}"], _tls(pki)),
        ("no TLS given", [tls_etcd.endpoint], None),
    ]
    for what, eps, tls in refused:
        with Client(eps, tls=tls, timeout=1.5, dial_timeout=0.5) as c:
            with pytest.raises(errors.EtcdError) as exc:
                c.get("t")
            assert isinstance(exc.value, (errors.EtcdDeadlineExceeded, errors.EtcdConnectionFailed)), what


async def test_async_tls_channel(tls_etcd):
    async with AsyncClient([tls_etcd.url], tls=_tls(tls_etcd.pki)) as c:
        assert (await c.put("ta", "1")).header.revision > 0


@pytest.mark.parametrize("args", [
    ["--cacert={ca}", "--cert={cert}", "--key={key}", "put", "k", "v"],
    ["--cacert={ca}", "--cert={cert}", "--key={key}", "get", "k"],
    ["--cacert={ca}", "--cert={cert}", "get", "k"],
    ["--cacert={ca}", "--key={key}", "get", "k"],
    ["--cacert=/nonexistent.pem", "get", "k"],
])
def test_etcdctl_tls_like_etcdctl(tls_etcd, args):
    args = [a.format(**tls_etcd.pki) for a in args]
    real = etcdctl([ref_bin("etcdctl")], tls_etcd.url, *args)
    ours = etcdctl(PYETCDCTL, tls_etcd.url, *args)
    assert (ours.returncode, ours.stdout, ours.stderr) == (real.returncode, real.stdout, real.stderr)


def test_etcdctl_tls_bare_endpoint_and_refusals(tls_etcd):
    pki = tls_etcd.pki
    certs = [f"--cacert={pki['ca']}", f"--cert={pki['cert']}", f"--key={pki['key']}"]
    for binary in ([ref_bin("etcdctl")], PYETCDCTL):
        ok = etcdctl(binary, tls_etcd.endpoint, *certs, "get", "k", "--print-value-only")
        assert (ok.returncode, ok.stdout) == (0, "v\n"), binary
        # plaintext to a TLS port, and a foreign client certificate: refused once the deadline passes
        plain = etcdctl(binary, f"http://{tls_etcd.endpoint}", *certs, "--command-timeout=1s", "get", "k")
        assert plain.returncode == 1 and plain.stderr.endswith("Error: context deadline exceeded\n"), binary
        foreign = [f"--cacert={pki['ca']}", f"--cert={pki['foreign']}", f"--key={pki['foreign-key']}"]
        bad = etcdctl(binary, tls_etcd.url, *foreign, "--command-timeout=1s", "get", "k")
        assert bad.returncode == 1 and bad.stderr.endswith("Error: context deadline exceeded\n"), binary
