"""etcdctl's output of the member, move-leader and endpoint commands in every -w format.

Simple and table formats share one row builder per result kind (etcdctl joins table rows with
", " for simple). Formats a command does not support end it with exit code 4.
"""
from __future__ import annotations

from dataclasses import dataclass
from pyetcd.etcdctl import gofmt, table
from pyetcd.etcdctl.printer import go_dumps, go_json, write
from pyetcd.etcdctl.runtime import EXIT_BAD_FEATURE, Exit


@dataclass
class Health:
    endpoint: str
    health: bool
    took: str
    error: str = ""


@dataclass
class EndpointResult:
    """The Status or HashKV response of one endpoint."""
    endpoint: str
    resp: object


def _quote(s: str) -> str:
    return f'"{gofmt.go_quote_str(s)}"'


def _text(text: str) -> None:
    write(text.encode("utf-8", "surrogateescape"))


def _header_fields(h) -> list[str]:
    return [f'"ClusterID" : {h.cluster_id}', f'"MemberID" : {h.member_id}', f'"Revision" : {h.revision}',
            f'"RaftTerm" : {h.raft_term}']


def _go_bool(b: bool) -> str:
    return "true" if b else "false"


def _go_strings(items) -> str:
    return "[" + " ".join(items) + "]"


MEMBER_HEADER = ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"]
STATUS_HEADER = ["ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER", "RAFT TERM", "RAFT INDEX",
                 "RAFT APPLIED INDEX", "ERRORS"]
HASHKV_HEADER = ["ENDPOINT", "HASH"]
HEALTH_HEADER = ["ENDPOINT", "HEALTH", "TOOK", "ERROR"]


def member_rows(resp) -> list[list[str]]:
    return [[f"{m.ID:x}", "started" if m.name else "unstarted", m.name, ",".join(m.peerURLs),
             ",".join(m.clientURLs), _go_bool(m.isLearner)] for m in resp.members]


def status_rows(results: list[EndpointResult]) -> list[list[str]]:
    rows = []
    for r in results:
        s = r.resp
        rows.append([r.endpoint, f"{s.header.member_id:x}", s.version, gofmt.humanize_bytes(s.dbSize),
                     _go_bool(s.leader == s.header.member_id), _go_bool(s.isLearner), str(s.raftTerm),
                     str(s.raftIndex), str(s.raftAppliedIndex), ", ".join(s.errors)])
    return rows


def hashkv_rows(results: list[EndpointResult]) -> list[list[str]]:
    return [[r.endpoint, str(r.resp.hash)] for r in results]


def health_rows(results: list[Health]) -> list[list[str]]:
    return [[h.endpoint, _go_bool(h.health), h.took, h.error] for h in results]


def _member_list_hex_json(resp) -> str:
    """etcdctl's hand-built JSON for `member list --hex`: ids as hex strings, the clientURLS key."""
    h = resp.header
    parts = [f'{{"header":{{"cluster_id":"{h.cluster_id:x}","member_id":"{h.member_id:x}","raft_term":{h.raft_term}}}']
    members = [f'{{"ID":"{m.ID:x}","name":"{m.name}","peerURLs":{go_dumps(list(m.peerURLs) or None)},'
               f'"clientURLS":{go_dumps(list(m.clientURLs) or None)}}}' for m in resp.members]
    if members:
        parts.append(',"members":[' + ",".join(members) + "]")
    return "".join(parts) + "}"


class ClusterDisplay:
    def __init__(self, fmt: str, is_hex: bool) -> None:
        self.fmt = fmt
        self.hex = is_hex

    def _unsupported(self) -> Exit:
        return Exit(EXIT_BAD_FEATURE, f"{self.fmt} not supported as output format")

    def _json_or_protobuf(self, resp) -> None:
        if self.fmt == "json":
            _text(go_dumps(go_json(resp)) + "\n")
        elif self.fmt == "protobuf":
            write(resp.SerializeToString())
        else:
            raise self._unsupported()

    # -- members ------------------------------------------------------------------------------
    def member_list(self, resp) -> None:
        if self.fmt == "simple":
            _text("".join(", ".join(row) + "\n" for row in member_rows(resp)))
        elif self.fmt == "table":
            _text(table.render(MEMBER_HEADER, member_rows(resp)))
        elif self.fmt == "fields":
            lines = _header_fields(resp.header)
            for m in resp.members:
                lines += [f'"ID" : {m.ID}', f'"Name" : {_quote(m.name)}']
                lines += [f'"PeerURL" : {_quote(u)}' for u in m.peerURLs]
                lines += [f'"ClientURL" : {_quote(u)}' for u in m.clientURLs]
                lines += [f'"IsLearner" : {_go_bool(m.isLearner)}', ""]
            _text("".join(line + "\n" for line in lines))
        elif self.fmt == "json" and self.hex:
            _text(_member_list_hex_json(resp) + "\n")
        else:
            self._json_or_protobuf(resp)

    def member_changed(self, resp, member_id: int, verb: str) -> None:
        """member add / remove / update / promote: 'Member <id> <verb> cluster <cluster id>'."""
        if self.fmt == "simple":
            _text(f"Member {member_id:16x} {verb} cluster {resp.header.cluster_id:16x}\n")
        else:
            self._json_or_protobuf(resp)

    def move_leader(self, leader: int, target: int, resp) -> None:
        if self.fmt == "simple":
            _text(f"Leadership transferred from {leader:x} to {target:x}\n")
        else:
            self._json_or_protobuf(resp)

    # -- endpoints ----------------------------------------------------------------------------
    def endpoint_health(self, results: list[Health]) -> None:
        if self.fmt == "simple":
            from pyetcd.etcdctl.cobra import err

            for h in results:
                if h.health:
                    _text(f"{h.endpoint} is healthy: successfully committed proposal: took = {h.took}\n")
                else:
                    err(f"{h.endpoint} is unhealthy: failed to commit proposal: {h.error}\n")
        elif self.fmt == "table":
            _text(table.render(HEALTH_HEADER, health_rows(results)))
        elif self.fmt == "fields":
            _text("".join(f'"Endpoint" : {_quote(h.endpoint)}\n"Health" : {_go_bool(h.health)}\n'
                          f'"Took" : {h.took}\n"Error" : {h.error}\n\n' for h in results))
        elif self.fmt == "json":
            items = []
            for h in results:
                item = {"endpoint": h.endpoint, "health": h.health, "took": h.took}
                if h.error:
                    item["error"] = h.error
                items.append(item)
            _text(go_dumps(items) + "\n")
        else:
            raise self._unsupported()

    def endpoint_status(self, results: list[EndpointResult]) -> None:
        if self.fmt == "fields":
            lines = []
            for r in results:
                s = r.resp
                lines += _header_fields(s.header) + [
                    f'"Version" : {_quote(s.version)}', f'"DBSize" : {s.dbSize}', f'"Leader" : {s.leader}',
                    f'"IsLearner" : {_go_bool(s.isLearner)}', f'"RaftIndex" : {s.raftIndex}',
                    f'"RaftTerm" : {s.raftTerm}', f'"RaftAppliedIndex" : {s.raftAppliedIndex}',
                    f'"Errors" : {_go_strings(s.errors)}', f'"Endpoint" : {_quote(r.endpoint)}', ""]
            _text("".join(line + "\n" for line in lines))
        else:
            self._endpoint_results(results, "Status", STATUS_HEADER, status_rows)

    def endpoint_hashkv(self, results: list[EndpointResult]) -> None:
        if self.fmt == "fields":
            lines = []
            for r in results:
                lines += _header_fields(r.resp.header) + [f'"Endpoint" : {_quote(r.endpoint)}',
                                                          f'"Hash" : {r.resp.hash}', ""]
            _text("".join(line + "\n" for line in lines))
        else:
            self._endpoint_results(results, "HashKV", HASHKV_HEADER, hashkv_rows)

    def _endpoint_results(self, results: list[EndpointResult], key: str, header: list[str], rows) -> None:
        if self.fmt == "simple":
            _text("".join(", ".join(row) + "\n" for row in rows(results)))
        elif self.fmt == "table":
            _text(table.render(header, rows(results)))
        elif self.fmt == "json":
            _text(go_dumps([{"Endpoint": r.endpoint, key: go_json(r.resp)} for r in results]) + "\n")
        else:
            raise self._unsupported()

