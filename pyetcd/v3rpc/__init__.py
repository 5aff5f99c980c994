"""The v3 gRPC services: thin — each method calls one server method with the decoded request.

``services(server)`` maps every etcd v3 service to its implementation; the methods an
implementation lacks answer UNIMPLEMENTED (the transport does that), so every service is
registered from the first day. ``grpc_methods(server)`` is what the client port serves: every
method by its path, behind the interceptors (``interceptor.py``).
"""
from __future__ import annotations

import logging
from typing import Any

from pyetcd.embed.grpc import GrpcMethod
from pyetcd.embed.serve import unary_methods
from pyetcd.logutil import log
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.auth.api import PROPOSED_AS
from pyetcd.server.etcdserver import EtcdServer
from pyetcd.v3rpc.interceptor import intercept
from pyetcd.v3rpc.snapshot import snapshot_stream
from pyetcd.v3rpc.watch import WatchServer

logger = logging.getLogger("pyetcd.v3rpc")


class _Service:
    def __init__(self, server: EtcdServer) -> None:
        self.server = server


class KV(_Service):
    async def Range(self, req, ctx):
        return await self.server.range(req)

    async def Put(self, req, ctx):
        return await self.server.put(req)

    async def DeleteRange(self, req, ctx):
        return await self.server.delete_range(req)

    async def Txn(self, req, ctx):
        return await self.server.txn(req)

    async def Compact(self, req, ctx):
        return await self.server.compact(req)


class Maintenance(_Service):
    async def Alarm(self, req, ctx):
        return await self.server.alarm(req)

    async def Status(self, req, ctx):
        return await self.server.status(req)

    async def MoveLeader(self, req, ctx):
        return await self.server.move_leader(req)

    async def HashKV(self, req, ctx):
        return await self.server.hash_kv(req)

    async def Defragment(self, req, ctx):
        log(logger, logging.INFO, "starting defragment")
        resp = await self.server.defragment(req)
        log(logger, logging.INFO, "finished defragment")
        return resp

    def Snapshot(self, req, ctx):
        return snapshot_stream(self.server)


class Auth(_Service):
    async def Authenticate(self, req, ctx):
        return await self.server.authenticate(req)

    async def UserAdd(self, req, ctx):
        return await self.server.user_add(req)

    async def UserChangePassword(self, req, ctx):
        return await self.server.user_change_password(req)


def _proposed_as(field: str):
    async def call(self, req, ctx):
        return await self.server.auth_request(field, req)
    return call


for _method, _field in PROPOSED_AS.items():
    setattr(Auth, _method, _proposed_as(_field))


class Cluster(_Service):
    async def MemberList(self, req, ctx):
        return await self.server.member_list(req)

    async def MemberAdd(self, req, ctx):
        return await self.server.member_add(req)

    async def MemberRemove(self, req, ctx):
        return await self.server.member_remove(req)

    async def MemberUpdate(self, req, ctx):
        return await self.server.member_update(req)

    async def MemberPromote(self, req, ctx):
        return await self.server.member_promote(req)


class Lease(_Service):
    async def LeaseGrant(self, req, ctx):
        return await self.server.lease_grant(req)

    async def LeaseRevoke(self, req, ctx):
        return await self.server.lease_revoke(req)

    async def LeaseKeepAlive(self, requests, ctx):
        async for req in requests:
            yield await self.server.lease_keep_alive(req)

    async def LeaseTimeToLive(self, req, ctx):
        return await self.server.lease_time_to_live(req)

    async def LeaseLeases(self, req, ctx):
        return await self.server.lease_leases(req)


class _Unimplemented(_Service):
    """A service none of whose methods is built yet."""


_IMPLS = {"KV": KV, "Watch": WatchServer, "Maintenance": Maintenance, "Cluster": Cluster, "Auth": Auth,
          "Lease": Lease}


def services(server: EtcdServer) -> dict[str, Any]:
    """Service descriptor -> implementation, for every service of etcd's v3 API."""
    return {svc: _IMPLS.get(name, _Unimplemented)(server)
            for name, svc in rpc_pb2.DESCRIPTOR.services_by_name.items()}


def grpc_methods(server: EtcdServer) -> dict[str, GrpcMethod]:
    """Path -> method for every RPC of the v3 API, as the client port serves them."""
    methods: dict[str, GrpcMethod] = {}
    for descriptor, impl in services(server).items():
        methods.update(unary_methods(descriptor, impl))
    return intercept(server, methods)
