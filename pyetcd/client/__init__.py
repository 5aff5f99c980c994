"""Python client library for etcd v3 (and pyetcd): ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Keys and values accept ``str`` or ``bytes``. Errors are ``pyetcd.errors.EtcdError`` with etcd's gRPC
code and message; ``EtcdConnectionFailed`` / ``EtcdDeadlineExceeded`` when no endpoint answered in time.
"""
from pyetcd.client._common import TLS, prefix_end, range_request, put_request, delete_request, request_op, txn_request
from pyetcd.client.aio import AsyncClient
from pyetcd.client.sync import Client

__all__ = ["Client", "AsyncClient", "TLS", "prefix_end", "range_request", "put_request", "delete_request",
           "request_op", "txn_request"]
