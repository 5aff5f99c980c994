"""What a run can end with: findings (an invariant that did not hold) and the failure they make."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    invariant: str
    detail: str
    time: float | None = None  # virtual time, when it is known

    def __str__(self) -> str:
        when = "" if self.time is None else f" at t={self.time:.4f}"
        return f"{self.invariant}{when}: {self.detail}"


class SimFailure(Exception):
    """A seed broke invariants; the message names the seed, the invariants and how to replay."""

    def __init__(self, seed: int, findings: list[Finding], trace_tail: str, digest: str) -> None:
        self.seed, self.findings, self.trace_tail, self.digest = seed, findings, trace_tail, digest
        lines = "\n  ".join(str(f) for f in findings[:8])
        more = f"\n  ... and {len(findings) - 8} more" if len(findings) > 8 else ""
        super().__init__(f"seed={seed} invariant={findings[0].invariant}\n  {lines}{more}")

    @property
    def invariant(self) -> str:
        return self.findings[0].invariant
