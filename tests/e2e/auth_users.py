"""The users the auth tests log in as (test_auth_server.py, test_pypi_auth.py, test_client_auth_tls.py)."""
from __future__ import annotations

from pyetcd.client import Client


def add_root_and_alice(c, role: str, perm: str) -> None:
    """root (role root); alice with ``role``, which has ``perm`` on foo/*. Either client."""
    c.user_add("root", "rootpw")
    c.role_add("root")
    c.user_grant_role("root", "root")
    c.user_add("alice", "alicepw")
    c.role_add(role)
    c.role_grant_permission(role, perm, "foo/", prefix=True)
    c.user_grant_role("alice", role)


def setup_users(url: str) -> None:
    """root, alice reading and writing foo/*, nop (no password); auth on."""
    with Client([url]) as c:
        add_root_and_alice(c, "foo-rw", "readwrite")
        c.user_add("nop", no_password=True)
        c.auth_enable()
