"""The auth store (etcd's auth store): users, roles, their permissions and whether auth is on.

Kept in buckets ``authUsers`` (name -> authpb.User), ``authRoles`` (name -> authpb.Role) and
``auth`` (enabled flag, revision), and changed only by applying requests from the log, so every
member holds the same state and a restart or a snapshot install brings it back with the backend.

The auth revision counts changes as etcd 3.5.1 does: it starts at 1, every successful change
bumps it (granting a permission the role already has too, granting a role the user already has
not), enabling auth does not and disabling does. Permission checks follow etcd's apply-time
rules: with auth on, a request with no user fails ``user name is empty``, one whose identity was
read at an older revision ``revision of auth store is old`` (the client logs in again), one of a
user without the permission ``permission denied``; the role ``root`` may do everything.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyetcd import errors
from pyetcd.logutil import log
from pyetcd.proto.authpb import auth_pb2
from pyetcd.proto.etcdserverpb import raft_internal_pb2, rpc_pb2
from pyetcd.server.auth.rangeperm import Coverage, interval
from pyetcd.server.auth.tokens import JWTTokens, SimpleTokens
from pyetcd.storage.backend import Backend

logger = logging.getLogger("pyetcd.auth")

ROOT = "root"
READ, WRITE, READWRITE = auth_pb2.Permission.READ, auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE
_ENABLED = b"authEnabled"
_REVISION = b"authRevision"

# InternalRaftRequest fields only a root user may send while auth is on
ADMIN_FIELDS = ("auth_enable", "auth_disable", "auth_status", "auth_user_add", "auth_user_delete",
                "auth_user_get", "auth_user_change_password", "auth_user_grant_role",
                "auth_user_revoke_role", "auth_user_list", "auth_role_list", "auth_role_add",
                "auth_role_delete", "auth_role_get", "auth_role_grant_permission",
                "auth_role_revoke_permission")


@dataclass(frozen=True)
class AuthInfo:
    """Who a request comes from: a user name ("" for none) and the auth revision it was read at."""
    username: str
    revision: int


class AuthStore:
    def __init__(self, tokens: SimpleTokens | JWTTokens, lease_keys: Callable[[int], Iterable[bytes]]) -> None:
        self.tokens = tokens
        self._lease_keys = lease_keys
        self.enabled = False
        self.revision = 1
        self.users: dict[str, auth_pb2.User] = {}
        self.roles: dict[str, auth_pb2.Role] = {}
        self._perms: dict[str, tuple[Coverage, Coverage]] = {}  # user -> (read, write), per revision
        self._db = self._users_db = self._roles_db = None
        self._applier = None

    def use_backend(self, backend: Backend) -> None:
        self._db, self._users_db, self._roles_db = backend.db("auth"), backend.db("authUsers"), backend.db("authRoles")
        with backend.begin_read() as txn:
            self.enabled = txn.get(_ENABLED, db=self._db) == b"\x01"
            raw = txn.get(_REVISION, db=self._db)
            self.revision = int.from_bytes(raw, "big") if raw else 1
            self.users = {k.decode(): auth_pb2.User.FromString(v) for k, v in txn.cursor(db=self._users_db)}
            self.roles = {k.decode(): auth_pb2.Role.FromString(v) for k, v in txn.cursor(db=self._roles_db)}
        self._perms = {}
        if not self.enabled:
            self.tokens.clear()

    # ---- who is asking ------------------------------------------------------------------------

    def info(self, token: str | None, cert_user: str = "") -> AuthInfo | None:
        """The identity a client's token (or, without one, its certificate's CN) stands for;
        None while auth is off. An unknown or expired token: ``invalid auth token``."""
        if not self.enabled:
            return None
        if token:
            found = self.tokens.info(token)
            if found is None:
                raise errors.ErrInvalidAuthToken
            user, revision = found  # (a JWT carries the revision it was made at)
            return AuthInfo(user, self.revision if revision is None else revision)
        return AuthInfo(cert_user, self.revision if cert_user else 0)

    def header(self, info: AuthInfo | None) -> raft_internal_pb2.RequestHeader:
        if info is None:
            return raft_internal_pb2.RequestHeader()
        return raft_internal_pb2.RequestHeader(username=info.username, auth_revision=info.revision)

    # ---- checks ------------------------------------------------------------------------------

    def check_admin(self, info: AuthInfo | None) -> None:
        if not self.enabled:
            return
        if info is None or not info.username:
            raise errors.ErrUserEmpty
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrUserNotFound
        if ROOT not in user.roles:
            raise errors.ErrPermissionDenied

    def check_range(self, info: AuthInfo | None, key: bytes, range_end: bytes) -> None:
        self._check(info, key, range_end, write=False)

    def check_write(self, info: AuthInfo | None, key: bytes, range_end: bytes = b"") -> None:
        self._check(info, key, range_end, write=True)

    def _check(self, info: AuthInfo | None, key: bytes, range_end: bytes, write: bool) -> None:
        if not self.enabled:
            return
        if info is None or not info.revision:
            raise errors.ErrUserEmpty
        if info.revision < self.revision:
            raise errors.ErrAuthOldRevision
        user = self.users.get(info.username)
        if user is None:
            raise errors.ErrPermissionDenied
        if ROOT in user.roles:
            return
        if not self._coverage(user)[write].covers(key, range_end):
            raise errors.ErrPermissionDenied

    def _coverage(self, user: auth_pb2.User) -> tuple[Coverage, Coverage]:
        name = user.name.decode()
        cached = self._perms.get(name)
        if cached is None:
            perms = [p for role in user.roles if role in self.roles for p in self.roles[role].keyPermission]
            cached = (Coverage(interval(p.key, p.range_end) for p in perms if p.permType in (READ, READWRITE)),
                      Coverage(interval(p.key, p.range_end) for p in perms if p.permType in (WRITE, READWRITE)))
            self._perms[name] = cached
        return cached

    def register(self, applier) -> None:
        """Apply auth requests through ``applier`` and check every request's permissions there."""
        self._applier = applier
        handlers = {
            "auth_enable": self._enable, "auth_disable": self._disable, "auth_status": self._status,
            "authenticate": self._authenticate, "auth_user_add": self._user_add,
            "auth_user_delete": self._user_delete, "auth_user_get": self._user_get,
            "auth_user_change_password": self._user_change_password,
            "auth_user_grant_role": self._user_grant_role, "auth_user_revoke_role": self._user_revoke_role,
            "auth_user_list": self._user_list, "auth_role_list": self._role_list,
            "auth_role_add": self._role_add, "auth_role_delete": self._role_delete,
            "auth_role_get": self._role_get, "auth_role_grant_permission": self._role_grant_permission,
            "auth_role_revoke_permission": self._role_revoke_permission,
        }
        for field, handler in handlers.items():
            applier.register(field, _with_revision(handler))
        for field in ADMIN_FIELDS:
            applier.guard(field, self._check_admin_at_apply)
        for field in ("put", "delete_range", "txn", "lease_revoke"):
            applier.guard(field, self._check_at_apply)

    def _caller(self) -> AuthInfo | None:
        """The identity in the header of the request being applied; None for a member's own."""
        request = self._applier.request
        if not request.HasField("header"):
            return None
        return AuthInfo(request.header.username, request.header.auth_revision)

    def _check_admin_at_apply(self, field: str, req) -> None:
        info = self._caller()
        if field == "auth_user_get" and info is not None and info.username == req.name:
            return  # a user may look itself up
        if info is not None:
            self.check_admin(info)

    def _check_at_apply(self, field: str, req) -> None:
        info = self._caller()
        if info is None or not self.enabled:
            return
        if field == "put":
            self._check_put(info, req)
        elif field == "delete_range":
            self._check_delete(info, req)
        elif field == "txn":
            self._check_txn(info, req)
        else:  # lease_revoke: the caller must be allowed to write every key on the lease
            for key in self._lease_keys(req.ID):
                self.check_write(info, key)

    def _check_put(self, info: AuthInfo, req: rpc_pb2.PutRequest) -> None:
        self.check_write(info, req.key)
        if req.prev_kv:
            self.check_range(info, req.key, b"")

    def _check_delete(self, info: AuthInfo, req: rpc_pb2.DeleteRangeRequest) -> None:
        self.check_write(info, req.key, req.range_end)
        if req.prev_kv:
            self.check_range(info, req.key, req.range_end)

    def _check_txn(self, info: AuthInfo, req: rpc_pb2.TxnRequest) -> None:
        """Every compare and every operation of both branches, nested txns included."""
        for compare in req.compare:
            self.check_range(info, compare.key, compare.range_end)
        for op in (*req.success, *req.failure):
            kind = op.WhichOneof("request")
            if kind == "request_range":
                self.check_range(info, op.request_range.key, op.request_range.range_end)
            elif kind == "request_put":
                self._check_put(info, op.request_put)
            elif kind == "request_delete_range":
                self._check_delete(info, op.request_delete_range)
            elif kind == "request_txn":
                self._check_txn(info, op.request_txn)

    # ---- apply: auth on and off, login ------------------------------------------------------------

    def _commit_revision(self, w) -> None:
        self.revision += 1
        self._perms = {}
        w.txn.put(_REVISION, self.revision.to_bytes(8, "big"), db=self._db)

    def _enable(self, w, req) -> rpc_pb2.AuthEnableResponse:
        if self.enabled:
            log(logger, logging.INFO, "authentication is already enabled; ignored auth enable request")
            return rpc_pb2.AuthEnableResponse()
        root = self.users.get(ROOT)
        if root is None:
            raise errors.ErrRootUserNotExist
        if ROOT not in root.roles:
            raise errors.ErrRootRoleNotExist
        w.txn.put(_ENABLED, b"\x01", db=self._db)
        self.enabled = True
        self._perms = {}
        log(logger, logging.INFO, "enabled authentication")
        return rpc_pb2.AuthEnableResponse()

    def _disable(self, w, req) -> rpc_pb2.AuthDisableResponse:
        if not self.enabled:
            return rpc_pb2.AuthDisableResponse()
        w.txn.put(_ENABLED, b"\x00", db=self._db)
        self.enabled = False
        self._commit_revision(w)
        self.tokens.clear()
        log(logger, logging.INFO, "disabled authentication")
        return rpc_pb2.AuthDisableResponse()

    def _status(self, w, req) -> rpc_pb2.AuthStatusResponse:
        return rpc_pb2.AuthStatusResponse(enabled=self.enabled, authRevision=self.revision)

    def _authenticate(self, w, req: raft_internal_pb2.InternalAuthenticateRequest) -> rpc_pb2.AuthenticateResponse:
        if not self.enabled:
            raise errors.ErrAuthNotEnabled
        if req.name not in self.users:  # deleted since its password was checked
            raise errors.ErrAuthFailed
        token = self.tokens.assign(req.simple_token, req.name, self._applier.index, self.revision)
        return rpc_pb2.AuthenticateResponse(token=token)

    # ---- apply: users ------------------------------------------------------------------------------

    def _put_user(self, w, user: auth_pb2.User) -> None:
        name = user.name.decode()
        w.txn.put(user.name, user.SerializeToString(), db=self._users_db)
        self.users[name] = user
        self._commit_revision(w)

    def _user(self, name: str) -> auth_pb2.User:
        user = self.users.get(name)
        if user is None:
            raise errors.ErrUserNotFound
        return user

    def _user_add(self, w, req: rpc_pb2.AuthUserAddRequest) -> rpc_pb2.AuthUserAddResponse:
        if not req.name:
            raise errors.ErrUserEmpty
        if req.name in self.users:
            raise errors.ErrUserAlreadyExist
        user = auth_pb2.User(name=req.name.encode(), password=req.hashedPassword.encode(),
                             options=auth_pb2.UserAddOptions(no_password=req.options.no_password))
        self._put_user(w, user)
        log(logger, logging.INFO, "added a user", **{"user-name": req.name})
        return rpc_pb2.AuthUserAddResponse()

    def _user_delete(self, w, req: rpc_pb2.AuthUserDeleteRequest) -> rpc_pb2.AuthUserDeleteResponse:
        if self.enabled and req.name == ROOT:
            raise errors.ErrInvalidAuthMgmt
        self._user(req.name)
        w.txn.delete(req.name.encode(), db=self._users_db)
        del self.users[req.name]
        self._commit_revision(w)
        self.tokens.invalidate_user(req.name)
        log(logger, logging.INFO, "deleted a user", **{"user-name": req.name})
        return rpc_pb2.AuthUserDeleteResponse()

    def _user_get(self, w, req: rpc_pb2.AuthUserGetRequest) -> rpc_pb2.AuthUserGetResponse:
        return rpc_pb2.AuthUserGetResponse(roles=list(self._user(req.name).roles))

    def _user_list(self, w, req) -> rpc_pb2.AuthUserListResponse:
        return rpc_pb2.AuthUserListResponse(users=sorted(self.users))

    def _user_change_password(self, w, req: rpc_pb2.AuthUserChangePasswordRequest
                              ) -> rpc_pb2.AuthUserChangePasswordResponse:
        user = auth_pb2.User()
        user.CopyFrom(self._user(req.name))
        user.password = req.hashedPassword.encode()
        self._put_user(w, user)
        self.tokens.invalidate_user(req.name)
        log(logger, logging.INFO, "changed a password of a user", **{"user-name": req.name})
        return rpc_pb2.AuthUserChangePasswordResponse()

    def _user_grant_role(self, w, req: rpc_pb2.AuthUserGrantRoleRequest) -> rpc_pb2.AuthUserGrantRoleResponse:
        current = self._user(req.user)
        if req.role != ROOT and req.role not in self.roles:
            raise errors.ErrRoleNotFound
        if req.role in current.roles:
            log(logger, logging.WARNING, "ignored grant role request to a user",
                **{"user-name": req.user, "duplicate-role-name": req.role})
            return rpc_pb2.AuthUserGrantRoleResponse()
        user = auth_pb2.User()
        user.CopyFrom(current)
        roles = sorted([*user.roles, req.role])
        del user.roles[:]
        user.roles.extend(roles)
        self._put_user(w, user)
        log(logger, logging.INFO, "granted a role to a user", **{"user-name": req.user, "added-role-name": req.role})
        return rpc_pb2.AuthUserGrantRoleResponse()

    def _user_revoke_role(self, w, req: rpc_pb2.AuthUserRevokeRoleRequest) -> rpc_pb2.AuthUserRevokeRoleResponse:
        if self.enabled and req.name == ROOT and req.role == ROOT:
            raise errors.ErrInvalidAuthMgmt
        current = self._user(req.name)
        if req.role not in current.roles:
            raise errors.ErrRoleNotGranted
        user = auth_pb2.User()
        user.CopyFrom(current)
        user.roles.remove(req.role)
        self._put_user(w, user)
        log(logger, logging.INFO, "revoked a role from a user", **{"user-name": req.name, "revoked-role-name": req.role})
        return rpc_pb2.AuthUserRevokeRoleResponse()

    # ---- apply: roles ------------------------------------------------------------------------------

    def _put_role(self, w, role: auth_pb2.Role) -> None:
        w.txn.put(role.name, role.SerializeToString(), db=self._roles_db)
        self.roles[role.name.decode()] = role
        self._commit_revision(w)

    def _role(self, name: str) -> auth_pb2.Role:
        role = self.roles.get(name)
        if role is None:
            raise errors.ErrRoleNotFound
        return role

    def _role_add(self, w, req: rpc_pb2.AuthRoleAddRequest) -> rpc_pb2.AuthRoleAddResponse:
        if not req.name:
            raise errors.ErrRoleEmpty
        if req.name in self.roles:
            raise errors.ErrRoleAlreadyExist
        self._put_role(w, auth_pb2.Role(name=req.name.encode()))
        log(logger, logging.INFO, "created a role", **{"role-name": req.name})
        return rpc_pb2.AuthRoleAddResponse()

    def _role_delete(self, w, req: rpc_pb2.AuthRoleDeleteRequest) -> rpc_pb2.AuthRoleDeleteResponse:
        if self.enabled and req.role == ROOT:
            raise errors.ErrInvalidAuthMgmt
        self._role(req.role)
        w.txn.delete(req.role.encode(), db=self._roles_db)
        del self.roles[req.role]
        for name, current in list(self.users.items()):
            if req.role in current.roles:
                user = auth_pb2.User()
                user.CopyFrom(current)
                user.roles.remove(req.role)
                w.txn.put(user.name, user.SerializeToString(), db=self._users_db)
                self.users[name] = user
        self._commit_revision(w)
        log(logger, logging.INFO, "deleted a role", **{"role-name": req.role})
        return rpc_pb2.AuthRoleDeleteResponse()

    def _role_get(self, w, req: rpc_pb2.AuthRoleGetRequest) -> rpc_pb2.AuthRoleGetResponse:
        return rpc_pb2.AuthRoleGetResponse(perm=list(self._role(req.role).keyPermission))

    def _role_list(self, w, req) -> rpc_pb2.AuthRoleListResponse:
        return rpc_pb2.AuthRoleListResponse(roles=sorted(self.roles))

    def _role_grant_permission(self, w, req: rpc_pb2.AuthRoleGrantPermissionRequest
                               ) -> rpc_pb2.AuthRoleGrantPermissionResponse:
        role = auth_pb2.Role()
        role.CopyFrom(self._role(req.name))
        perm = req.perm
        for have in role.keyPermission:
            if have.key == perm.key and have.range_end == perm.range_end:
                have.permType = perm.permType
                break
        else:  # kept in key order; among equal keys, in the order granted
            perms = sorted([*role.keyPermission, perm], key=lambda p: p.key)
            del role.keyPermission[:]
            role.keyPermission.extend(perms)
        self._put_role(w, role)
        log(logger, logging.INFO, "granted/updated a permission to a user", **{
            "user-name": req.name, "permission-name": auth_pb2.Permission.Type.Name(perm.permType)})
        return rpc_pb2.AuthRoleGrantPermissionResponse()

    def _role_revoke_permission(self, w, req: rpc_pb2.AuthRoleRevokePermissionRequest
                                ) -> rpc_pb2.AuthRoleRevokePermissionResponse:
        role = auth_pb2.Role()
        role.CopyFrom(self._role(req.role))
        kept = [p for p in role.keyPermission if (p.key, p.range_end) != (req.key, req.range_end)]
        if len(kept) == len(role.keyPermission):
            raise errors.ErrPermissionNotGranted
        del role.keyPermission[:]
        role.keyPermission.extend(kept)
        self._put_role(w, role)
        log(logger, logging.INFO, "revoked a permission on range", **{
            "role-name": req.role, "key": req.key.decode(errors="replace"),
            "range-end": req.range_end.decode(errors="replace")})
        return rpc_pb2.AuthRoleRevokePermissionResponse()


def _with_revision(handler: Callable) -> Callable:
    """Auth responses carry the KV store's revision in their header, as etcd's do."""
    def apply(w, req):
        resp = handler(w, req)
        resp.header.revision = w.visible_rev()
        return resp
    return apply
