"""The client history: every call a simulated client made, when, to whom, and what came back.

An outcome is one of: ``ok`` (a response), ``failed`` (definitely not applied: the call never
left, or the member refused it before proposing) or ``unknown`` (it may or may not have applied:
a timeout, a lost answer, "no leader"), the three outcomes a real etcd client can see.
"""
from __future__ import annotations

import enum
from typing import Callable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from pyetcd import errors

from membersim.network import CallLost, Unreachable

# gRPC codes after which a write may still apply (etcd's "unknown outcome" family).
_INDEFINITE_CODES = {errors.UNAVAILABLE, 4}  # 4: DEADLINE_EXCEEDED


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


WRITES = ("put", "delete", "txn")
READS = ("range",)


@dataclass
class Op:
    id: int
    client: str
    member: str
    kind: str             # put, delete, txn, range, compact, member_add, member_remove, member_promote
    request: Message
    invoked: float
    returned: float | None = None
    outcome: Outcome | None = None
    response: Message | None = None
    error: BaseException | None = None
    note: dict = field(default_factory=dict)  # kind-specific facts (e.g. the added member's ID)

    def __str__(self) -> str:
        what = self.outcome.value if self.outcome else "pending"
        if self.error is not None:
            what += f" {self.error!r}"
        elif self.response is not None and hasattr(self.response, "header"):
            what += f" rev={self.response.header.revision}"
        return f"op{self.id} {self.client}->{self.member} {self.kind} [{self.invoked:.4f}, " \
               f"{self.returned if self.returned is None else round(self.returned, 4)}] {what}"


def classify(exc: BaseException) -> Outcome:
    if isinstance(exc, Unreachable):
        return Outcome.FAILED
    if isinstance(exc, CallLost):
        return Outcome.UNKNOWN
    if isinstance(exc, errors.EtcdError):
        return Outcome.UNKNOWN if exc.code in _INDEFINITE_CODES else Outcome.FAILED
    return Outcome.UNKNOWN


class History:
    def __init__(self) -> None:
        self.ops: list[Op] = []

    def begin(self, client: str, member: str, kind: str, request: Message | Callable[[int], Message],
              now: float) -> Op:
        """A new operation; ``request`` may be a function of its ID."""
        op_id = len(self.ops) + 1
        op = Op(op_id, client, member, kind, request(op_id) if callable(request) else request, now)
        self.ops.append(op)
        return op

    def of_kind(self, *kinds: str) -> list[Op]:
        return [op for op in self.ops if op.kind in kinds]
