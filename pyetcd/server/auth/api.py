"""The member's Auth API and who the caller is (etcd's auth methods of EtcdServer).

The v3 API layer sets ``caller`` for each call: the token a client sent in its gRPC metadata
(``token``) and the CN of its TLS client certificate. Every proposal made while serving the call
carries the identity they stand for in its header, checked when the request applies
(store.py); a proposal made outside any call (a lease expiry's revoke) carries none and acts
for the member itself, as etcd's requests "with root" do.

Passwords are hashed and checked with bcrypt in the executor, never on the event loop, and
never enter the log: the proposing member hashes (``--bcrypt-cost``) and proposes the hash, and
checks a login's password before proposing the login. Failed logins of a user are answered
ever later (doubling up to FAILED_LOGIN_MAX_DELAY) and one at a time, so guessing passwords
online is slow; a success resets it. Neither a token nor a password is ever logged.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import bcrypt

from pyetcd import errors
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.server.auth.store import AuthInfo, AuthStore
from pyetcd.server.auth.tokens import random_letters, token_provider

# Auth RPCs that go through the log unchanged -> their InternalRaftRequest field (etcd routes
# even the reads there, so they are linearizable and checked at apply like the rest).
PROPOSED_AS = {
    "AuthEnable": "auth_enable", "AuthDisable": "auth_disable", "AuthStatus": "auth_status",
    "UserGet": "auth_user_get", "UserList": "auth_user_list", "UserDelete": "auth_user_delete",
    "UserGrantRole": "auth_user_grant_role", "UserRevokeRole": "auth_user_revoke_role",
    "RoleAdd": "auth_role_add", "RoleGet": "auth_role_get", "RoleList": "auth_role_list",
    "RoleDelete": "auth_role_delete", "RoleGrantPermission": "auth_role_grant_permission",
    "RoleRevokePermission": "auth_role_revoke_permission",
}

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

logger = logging.getLogger("pyetcd.server")

FAILED_LOGIN_BASE_DELAY = 0.1
FAILED_LOGIN_MAX_DELAY = 3.0
_FAILED_LOGINS_KEPT = 10_000

# The maintenance calls that only root may make answer with etcd's auth errors untranslated.
_UNTRANSLATED = {errors.ErrUserEmpty: "auth: user name is empty", errors.ErrUserNotFound: "auth: user not found",
                 errors.ErrPermissionDenied: "auth: permission denied",
                 errors.ErrInvalidAuthToken: "auth: invalid auth token"}


@dataclass(frozen=True)
class Caller:
    token: str = ""
    cert_user: str = ""


caller: ContextVar[Caller | None] = ContextVar("caller", default=None)


def new_auth_store(server: EtcdServer) -> AuthStore:
    clock = lambda: asyncio.get_running_loop().time()  # noqa: E731 - the member's clock

    def lease_keys(lease_id: int) -> set[bytes]:
        lease = server.lessor.leases.get(lease_id)
        return lease.keys if lease is not None else set()
    return AuthStore(token_provider(server.cfg["auth-token"], server.cfg["auth-token-ttl"], clock), lease_keys)


class AuthMethods:
    """Mixed into EtcdServer: the Auth service and the checks other services make."""

    auth: AuthStore

    def _init_auth(self: EtcdServer) -> None:
        self.auth = new_auth_store(self)
        self.bcrypt_cost: int = self.cfg["bcrypt-cost"]
        self._failed_logins: OrderedDict[str, int] = OrderedDict()
        # one login check per name at a time; a lock goes once no login of its name holds it
        self._login_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._unknown_user_hash = b""  # checked against when the user does not exist: as slow

    def caller_info(self: EtcdServer) -> AuthInfo | None:
        """The identity of the client being served (None while auth is off, or outside a call)."""
        who = caller.get()
        if who is None:
            return None
        return self.auth.info(who.token, who.cert_user)

    def auth_header(self: EtcdServer) -> dict:
        """What a proposal carries of its caller: InternalRaftRequest fields."""
        who = caller.get()
        if who is None:
            return {}
        return {"header": self.auth.header(self.auth.info(who.token, who.cert_user))}

    def check_range_permitted(self: EtcdServer, key: bytes, range_end: bytes) -> None:
        self.auth.check_range(self.caller_info(), key, range_end)

    def check_admin(self: EtcdServer) -> None:
        """Only root may go on (member changes, moving the leader)."""
        if caller.get() is not None:
            self.auth.check_admin(self.caller_info())

    def check_maintenance_admin(self: EtcdServer) -> None:
        """As check_admin, for Hash, HashKV, Defragment and Snapshot: etcd 3.5.1 answers those
        with its auth package's errors untranslated (code Unknown, ``auth: ...``)."""
        try:
            self.check_admin()
        except errors.EtcdError as e:
            raw = _UNTRANSLATED.get(type(e))
            if raw is None:
                raise
            raise errors.EtcdError(errors.UNKNOWN, raw) from None

    # ---- the Auth service --------------------------------------------------------------------

    async def authenticate(self: EtcdServer, req: rpc_pb2.AuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        if not self.auth.enabled:
            raise errors.ErrAuthNotEnabled
        lock = self._login_locks.setdefault(req.name, asyncio.Lock())
        async with lock:
            await self._check_password(req.name, req.password)
        outside = caller.set(None)  # a login needs no identity (a stale token must not fail it)
        try:
            login = raft_internal_pb2.InternalAuthenticateRequest(name=req.name, simple_token=self.auth.tokens.prefix())
            return await self._propose(authenticate=login)
        finally:
            caller.reset(outside)

    async def _check_password(self: EtcdServer, name: str, password: str) -> None:
        user = self.auth.users.get(name)
        if user is not None and user.options.no_password:
            error: type[errors.EtcdError] | None = errors.ErrNoPasswordUser
        else:
            if user is not None:
                hashed = user.password
            else:
                if not self._unknown_user_hash:
                    self._unknown_user_hash = (await self._hash_password(random_letters())).encode()
                hashed = self._unknown_user_hash
            ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
            error = None if ok and user is not None else errors.ErrAuthFailed
        if error is None:
            self._failed_logins.pop(name, None)
            return
        failures = self._failed_logins.pop(name, 0) + 1
        self._failed_logins[name] = failures
        while len(self._failed_logins) > _FAILED_LOGINS_KEPT:
            self._failed_logins.popitem(last=False)
        log(logger, logging.WARNING, "invalid authentication was requested", user=name,
            error=error.message.replace("etcdserver: ", "auth: "))
        await asyncio.sleep(min(FAILED_LOGIN_BASE_DELAY * 2 ** (failures - 1), FAILED_LOGIN_MAX_DELAY))
        raise error

    async def _hash_password(self: EtcdServer, password: str) -> str:
        salt = bcrypt.gensalt(rounds=self.bcrypt_cost)
        return (await asyncio.to_thread(bcrypt.hashpw, password.encode(), salt)).decode()

    async def user_add(self: EtcdServer, req: rpc_pb2.AuthUserAddRequest) -> rpc_pb2.AuthUserAddResponse:
        hashed = req.hashedPassword
        if not req.options.no_password and not hashed:
            hashed = await self._hash_password(req.password)
        req = rpc_pb2.AuthUserAddRequest(name=req.name, options=req.options, hashedPassword=hashed)
        return await self._propose(auth_user_add=req)

    async def user_change_password(self: EtcdServer, req: rpc_pb2.AuthUserChangePasswordRequest
                                   ) -> rpc_pb2.AuthUserChangePasswordResponse:
        hashed = req.hashedPassword or await self._hash_password(req.password)
        req = rpc_pb2.AuthUserChangePasswordRequest(name=req.name, hashedPassword=hashed)
        return await self._propose(auth_user_change_password=req)

    async def auth_request(self: EtcdServer, field: str, req):
        """An Auth request that goes through the log as it is (InternalRaftRequest ``field``)."""
        return await self._propose(**{field: req})
