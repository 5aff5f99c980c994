"""/v2/members (etcd's v2 members handler): list, the leader, add, remove and update, mapped
onto the member's Cluster methods, with etcd's statuses and JSON messages."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from pyetcd import errors
from pyetcd.embed.http1 import HttpRequest, HttpResponse
from pyetcd.etcdctl.printer import go_dumps
from pyetcd.proto.etcdserverpb import rpc_pb2
from pyetcd.server.etcdserver import EtcdServer

PREFIX = "/v2/members"
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


class MembersHandler:
    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    def _answer(self, status: int, body: dict | None = None, end: bytes = b"\n") -> HttpResponse:
        headers = [("X-Etcd-Cluster-Id", f"{self.server.cluster_id:x}")]
        if body is None:
            return HttpResponse(status, headers)
        return HttpResponse(status, [("Content-Type", "application/json"), *headers],
                            go_dumps(body).encode() + end)

    def _message(self, status: int, message: str) -> HttpResponse:
        return self._answer(status, {"message": message}, end=b"")  # (etcd's error bodies end bare)

    async def handle(self, req: HttpRequest) -> HttpResponse:
        if req.method not in ("GET", "POST", "DELETE", "PUT"):
            return HttpResponse(405, [("Allow", "GET,POST,DELETE,PUT"), *_TEXT], b"Method Not Allowed\n")
        name = req.path[len(PREFIX):].strip("/")
        if req.method == "GET":
            if not name:
                return self._answer(200, {"members": [member_json(m) for m in self._members()]})
            if name == "leader":
                leader = self.server.membership.members.get(self.server.raft.lead)
                return self._answer(200, member_json(leader)) if leader else \
                    self._message(503, "During election")
            return HttpResponse(404, _TEXT, b"404 page not found\n")
        try:
            if req.method == "POST":
                urls = self._peer_urls(req)
                resp = await self.server.member_add(rpc_pb2.MemberAddRequest(peerURLs=urls))
                return self._answer(201, member_json(resp.member))
            member_id = self._member_id(name)
            if req.method == "DELETE":
                await self.server.member_remove(rpc_pb2.MemberRemoveRequest(ID=member_id))
            else:
                urls = self._peer_urls(req)
                await self.server.member_update(rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=urls))
            return self._answer(204)
        except _Refused as refused:
            return self._message(refused.status, refused.message)
        except errors.EtcdError as err:
            if isinstance(err, errors.ErrPeerURLExist):
                return self._message(409, "membership: peerURL exists")
            if isinstance(err, errors.ErrMemberNotFound):
                return self._message(404, f"No such member: {name}")
            return self._message(500, "Internal Server Error")

    def _members(self) -> list[rpc_pb2.Member]:
        return [m for m in self.server.membership.sorted_members() if not m.isLearner]

    def _member_id(self, text: str) -> int:
        try:
            member_id = int(text, 16)
        except ValueError:
            raise _Refused(404, f"No such member: {text}") from None
        if member_id in self.server.membership.removed:
            raise _Refused(410, f"Member permanently removed: {text}")
        return member_id

    @staticmethod
    def _peer_urls(req: HttpRequest) -> list[str]:
        kind = req.headers.get("content-type", "")
        if kind != "application/json":
            raise _Refused(415, f"Bad Content-Type {kind}, accept application/json")
        try:
            urls = json.loads(req.body or b"null").get("peerURLs") or []
        except (ValueError, AttributeError) as err:
            raise _Refused(400, str(err)) from None
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https", "unix", "unixs"):
                raise _Refused(400, f"URL scheme must be http, https, unix, or unixs: {url}")
            if parts.port is None:
                raise _Refused(400, f'URL address does not have the form "host:port": {url}')
        if not urls:
            raise _Refused(400, "no valid URLs given")
        return sorted(urls)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def member_json(m: rpc_pb2.Member) -> dict:
    return {"id": f"{m.ID:x}", "name": m.name, "peerURLs": list(m.peerURLs), "clientURLs": list(m.clientURLs)}
