"""The member's Prometheus metrics, by etcd's names (what /metrics serves).

Counters and histograms are kept here and fed by the parts that see the events (the Raft loop's
WAL fsyncs, the backend's commits, leader changes, failed proposals, the gRPC interceptor);
gauges are read off the member when /metrics is asked. Histogram buckets are etcd's.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pyetcd import ETCD_VERSION

if TYPE_CHECKING:
    from pyetcd.server.etcdserver import EtcdServer

CLUSTER_VERSION = "3.5"


def exponential_buckets(start: float, factor: float, count: int) -> list[float]:
    return [start * factor ** i for i in range(count)]


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, by: float = 1) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + by

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.label_names:
            return out + [f"{self.name} {_num(self._values.get((), 0))}"]
        for labels, value in sorted(self._values.items()):
            out.append(f"{self.name}{_labels(self.label_names, labels)} {_num(value)}")
        return out


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: list[float]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self._counts = [0] * len(buckets)
        self._sum, self._count = 0.0, 0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    self._counts[i] += 1
            self._sum += seconds
            self._count += 1

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for bound, count in zip(self.buckets, self._counts):
            out.append(f'{self.name}_bucket{{le="{_num(bound)}"}} {count}')
        out += [f'{self.name}_bucket{{le="+Inf"}} {self._count}', f"{self.name}_sum {_num(self._sum)}",
                f"{self.name}_count {self._count}"]
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, values)) + "}"


def _gauge(name: str, help_text: str, value: float, labels: str = "") -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{labels} {_num(value)}"]


class Metrics:
    def __init__(self) -> None:
        self.leader_changes = Counter("etcd_server_leader_changes_seen_total",
                                      "The number of leader changes seen.")
        self.proposals_failed = Counter("etcd_server_proposals_failed_total",
                                        "The total number of failed proposals seen.")
        self.wal_fsync = Histogram("etcd_disk_wal_fsync_duration_seconds",
                                   "The latency distributions of fsync called by WAL.",
                                   exponential_buckets(0.001, 2, 14))
        self.backend_commit = Histogram("etcd_disk_backend_commit_duration_seconds",
                                        "The latency distributions of commit called by backend.",
                                        exponential_buckets(0.001, 2, 14))
        self.grpc_started = Counter("grpc_server_started_total", "Total number of RPCs started on the server.",
                                    ("grpc_method", "grpc_service", "grpc_type"))
        self.grpc_handled = Counter("grpc_server_handled_total",
                                    "Total number of RPCs completed on the server, regardless of success or failure.",
                                    ("grpc_code", "grpc_method", "grpc_service", "grpc_type"))

    def text(self, server: EtcdServer) -> str:
        raft = server.raft
        lines = [
            *_gauge("etcd_cluster_version", "Which version is running. 1 for 'cluster_version' label with current "
                    "cluster version", 1, f'{{cluster_version="{CLUSTER_VERSION}"}}'),
            *_gauge("etcd_server_version", "Which version is running. 1 for 'server_version' label with current version.",
                    1, f'{{server_version="{ETCD_VERSION}"}}'),
            *_gauge("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with "
                    "current ID.", 1, f'{{server_id="{server.member_id:x}"}}'),
            *_gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
                    int(bool(raft.lead))),
            *_gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                    int(server.is_leader)),
            *_gauge("etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise.",
                    int(server.is_learner)),
            *self.leader_changes.lines(),
            *_gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.",
                    raft.commit_index),
            *_gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
                    server.applied_index),
            *_gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.",
                    server.pending_proposals()),
            *self.proposals_failed.lines(),
            *_gauge("etcd_debugging_mvcc_current_revision", "The current revision of store.", server.store.rev),
            *_gauge("etcd_debugging_auth_revision", "The current revision of auth store.", server.auth.revision),
            *_gauge("etcd_mvcc_db_total_size_in_bytes",
                    "Total size of the underlying database physically allocated in bytes.", server.backend.size()),
            *_gauge("etcd_mvcc_db_total_size_in_use_in_bytes",
                    "Total size of the underlying database logically in use in bytes.", server.backend.size_in_use()),
            *_gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                    server.quota.limit or 0),
            *self.wal_fsync.lines(),
            *self.backend_commit.lines(),
            *self.grpc_started.lines(),
            *self.grpc_handled.lines(),
        ]
        return "\n".join(lines) + "\n"
