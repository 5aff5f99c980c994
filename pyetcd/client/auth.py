"""The Auth API (users, roles, permissions, auth enable/disable/status), one implementation for
the sync and asyncio clients.

Each method builds its request and returns ``self.call("auth", ...)``: the response on
``Client``, an awaitable of it on ``AsyncClient``. Errors are etcd's (``EtcdError`` with its code
and message, e.g. ``etcdserver: role name not found``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union, cast

from google.protobuf.message import Message

from pyetcd.client._common import Bytes, prefix_end, to_bytes
from pyetcd.proto.authpb import auth_pb2
from pyetcd.proto.etcdserverpb import rpc_pb2

PERM_TYPES = {"read": auth_pb2.Permission.READ, "write": auth_pb2.Permission.WRITE,
              "readwrite": auth_pb2.Permission.READWRITE}


def permission(perm_type: Union[str, int], key: Bytes, range_end: Bytes = b"", prefix: bool = False) -> auth_pb2.Permission:
    """A permission over ``key``, [key, range_end), or every key starting with ``key`` (``prefix``).
    ``perm_type``: "read", "write", "readwrite" (any case) or the enum value."""
    kind = PERM_TYPES[perm_type.lower()] if isinstance(perm_type, str) else cast("auth_pb2.Permission.Type", perm_type)
    k = to_bytes(key)
    return auth_pb2.Permission(permType=kind, key=k, range_end=prefix_end(k) if prefix else to_bytes(range_end))


class AuthAPI:
    """Mixed into Client and AsyncClient, which provide ``call(service, method, request, timeout)``."""

    call: Callable[..., Any]

    def _auth(self, method: str, request: Message, timeout: Optional[float]) -> Any:
        return self.call("auth", method, request, timeout)

    def auth_enable(self, timeout: Optional[float] = None) -> Any:
        """Turn authentication on (etcd refuses until user root exists with role root)."""
        return self._auth("AuthEnable", rpc_pb2.AuthEnableRequest(), timeout)

    def auth_disable(self, timeout: Optional[float] = None) -> Any:
        return self._auth("AuthDisable", rpc_pb2.AuthDisableRequest(), timeout)

    def auth_status(self, timeout: Optional[float] = None) -> Any:
        """AuthStatusResponse: ``enabled`` and ``authRevision``."""
        return self._auth("AuthStatus", rpc_pb2.AuthStatusRequest(), timeout)

    def authenticate(self, name: str, password: str, timeout: Optional[float] = None) -> Any:
        """AuthenticateResponse with a ``token`` (the client logs in by itself with user/password)."""
        return self._auth("Authenticate", rpc_pb2.AuthenticateRequest(name=name, password=password), timeout)

    def user_add(self, name: str, password: str = "", no_password: bool = False,
                 timeout: Optional[float] = None) -> Any:
        """Add a user; ``no_password`` makes one that only logs in by its TLS certificate's CN."""
        req = rpc_pb2.AuthUserAddRequest(name=name, password=password,
                                         options=auth_pb2.UserAddOptions(no_password=no_password))
        return self._auth("UserAdd", req, timeout)

    def user_get(self, name: str, timeout: Optional[float] = None) -> Any:
        """AuthUserGetResponse: the user's ``roles``."""
        return self._auth("UserGet", rpc_pb2.AuthUserGetRequest(name=name), timeout)

    def user_list(self, timeout: Optional[float] = None) -> Any:
        return self._auth("UserList", rpc_pb2.AuthUserListRequest(), timeout)

    def user_delete(self, name: str, timeout: Optional[float] = None) -> Any:
        return self._auth("UserDelete", rpc_pb2.AuthUserDeleteRequest(name=name), timeout)

    def user_change_password(self, name: str, password: str, timeout: Optional[float] = None) -> Any:
        req = rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password)
        return self._auth("UserChangePassword", req, timeout)

    def user_grant_role(self, user: str, role: str, timeout: Optional[float] = None) -> Any:
        return self._auth("UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role), timeout)

    def user_revoke_role(self, user: str, role: str, timeout: Optional[float] = None) -> Any:
        return self._auth("UserRevokeRole", rpc_pb2.AuthUserRevokeRoleRequest(name=user, role=role), timeout)

    def role_add(self, name: str, timeout: Optional[float] = None) -> Any:
        return self._auth("RoleAdd", rpc_pb2.AuthRoleAddRequest(name=name), timeout)

    def role_get(self, name: str, timeout: Optional[float] = None) -> Any:
        """AuthRoleGetResponse: the role's permissions (``perm``)."""
        return self._auth("RoleGet", rpc_pb2.AuthRoleGetRequest(role=name), timeout)

    def role_list(self, timeout: Optional[float] = None) -> Any:
        return self._auth("RoleList", rpc_pb2.AuthRoleListRequest(), timeout)

    def role_delete(self, name: str, timeout: Optional[float] = None) -> Any:
        return self._auth("RoleDelete", rpc_pb2.AuthRoleDeleteRequest(role=name), timeout)

    def role_grant_permission(self, name: str, perm_type: Union[str, int], key: Bytes, range_end: Bytes = b"",
                              prefix: bool = False, timeout: Optional[float] = None) -> Any:
        """Grant ``perm_type`` over ``key`` / [key, range_end) / the prefix ``key`` (see ``permission``)."""
        req = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=permission(perm_type, key, range_end, prefix))
        return self._auth("RoleGrantPermission", req, timeout)

    def role_revoke_permission(self, name: str, key: Bytes, range_end: Bytes = b"", prefix: bool = False,
                               timeout: Optional[float] = None) -> Any:
        k = to_bytes(key)
        req = rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=k,
                                                      range_end=prefix_end(k) if prefix else to_bytes(range_end))
        return self._auth("RoleRevokePermission", req, timeout)
