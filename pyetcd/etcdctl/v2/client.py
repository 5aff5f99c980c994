"""The v2 HTTP client: tries each endpoint in turn, decodes etcd's JSON answers and errors."""
from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass

DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001"


class EtcdError(Exception):
    """An error body from etcd's v2 API (errorCode/message/cause/index)."""

    def __init__(self, body: dict):
        self.body = body
        super().__init__(f"{body['errorCode']}: {body['message']} ({body.get('cause', '')}) [{body.get('index', 0)}]")


class APIError(Exception):
    """A members API error: {"message": ...}."""


class ClusterError(Exception):
    """No endpoint answered."""


@dataclass
class Answer:
    status: int
    body: dict
    index: int  # X-Etcd-Index


class Client:
    def __init__(self, endpoints: list[str], timeout: float):
        self.endpoints = endpoints
        self.timeout = timeout

    def request(self, method: str, path: str, query: dict[str, str] | None = None,
                form: dict[str, str] | None = None, wait: bool = False, document: dict | None = None) -> Answer:
        """One request to the first endpoint that answers; a watch (wait) has no timeout.

        form is the keys API's urlencoded body, document the members API's JSON body."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        body, headers = None, {}
        if form is not None:
            body, headers = urllib.parse.urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"}
        elif document is not None:
            body, headers = json.dumps(document), {"Content-Type": "application/json"}
        failures = []
        for n, endpoint in enumerate(self.endpoints):
            url = urllib.parse.urlsplit(endpoint)
            conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
            conn = conn_cls(url.hostname, url.port, timeout=None if wait else self.timeout)
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except OSError as exc:
                failures.append(f"error #{n}: dial tcp {url.netloc}: {_reason(exc)}")
                continue
            finally:
                conn.close()
            decoded = json.loads(data) if data.strip() else {}
            if resp.status >= 400 and "errorCode" in decoded:
                raise EtcdError(decoded)
            if resp.status >= 400:
                raise APIError(decoded.get("message", f"unexpected status {resp.status}"))
            return Answer(resp.status, decoded, int(resp.getheader("X-Etcd-Index") or 0))
        raise ClusterError("client: etcd cluster is unavailable or misconfigured; " + "; ".join(failures))

    def sync(self) -> None:
        """Use the members' client URLs from now on, as the Go client's Sync does."""
        members = self.request("GET", "/v2/members").body.get("members", [])
        urls = [u for m in members for u in m.get("clientURLs", [])]
        if urls:
            self.endpoints = urls


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    return str(exc.strerror or exc)


def key_path(key: str) -> str:
    return "/v2/keys" + urllib.parse.quote("/" + key.lstrip("/"), safe="/")
