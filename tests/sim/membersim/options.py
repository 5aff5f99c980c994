"""The knobs of a whole-member simulation run, and the switches that turn fault kinds off.

A switch exists so that a fault kind whose findings are already written down (FINDINGS.md)
can be excluded while the other seeds keep running: ``Faults().without("power_loss")``, or
``--without power_loss`` on the runner. ``Faults.default()`` leaves out OPEN_FINDINGS.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True)
class Faults:
    kills: bool = True            # SIGKILL a member (the leader half of the time), restart it later
    pauses: bool = True           # SIGSTOP a member past the election timeout, then SIGCONT
    partitions: bool = True       # asymmetric partitions, the leader cut off with a minority
    lossy_network: bool = True    # drops, duplicates, reordering, delays past the election timeout
    duplicate_proposals: bool = False  # lossy_network duplicates forwarded proposals too (FINDINGS.md F1)
    slow_snapshots: bool = True   # snapshot streams that take seconds (stale ones finish last)
    disk_crashes: bool = True     # the process dies before/after a chosen I/O step
    torn_writes: bool = True      # a write reaches the file only in part, then the process dies
    io_errors: bool = True        # EIO / ENOSPC at a chosen I/O step
    power_loss: bool = True       # the machine loses what was not synced
    lose_unsynced_dirs: bool = True  # ... directories whose entry was never synced too (F4)
    slow_disk: bool = True        # a member's disk calls take tens to hundreds of milliseconds
    membership: bool = True       # member add (learner or voter) / remove / promote
    two_voter_removal: bool = True  # ... a voter removed while there are only two (F7, F8)
    add_while_down: bool = True   # ... a member added while another one is down (F11)
    first_start_crashes: bool = True  # disk faults in a member's very first process (FINDINGS.md F2, F9)
    restart_joining: bool = True  # process and disk faults on an added member before it applied anything (F3)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def with_(self, *names: str) -> Faults:
        self._check(names)
        return replace(self, **{name: True for name in names})

    def without(self, *names: str) -> Faults:
        self._check(names)
        return replace(self, **{name: False for name in names})

    @classmethod
    def _check(cls, names) -> None:
        unknown = set(names) - set(cls.names())
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {cls.names()}")

    @classmethod
    def none(cls) -> Faults:
        return cls().without(*cls.names())

    @classmethod
    def default(cls) -> Faults:
        """Every fault kind but those with open findings (OPEN_FINDINGS): what the suite runs."""
        return cls().without(*OPEN_FINDINGS)


# Fault kinds left out by default because they keep finding what FINDINGS.md already reports;
# remove a name once its finding is fixed (``--with NAME`` runs it meanwhile).
OPEN_FINDINGS = (
    "two_voter_removal",     # F8 (reopened)
)


@dataclass(frozen=True)
class Options:
    duration: float = 8.0         # virtual seconds of workload and faults
    min_members: int = 1
    max_members: int = 5          # founders at most; the operator adds up to this many
    clients: int = 4
    lease_clients: int = 1        # clients granting, attaching, keeping alive and revoking leases
    watch_clients: int = 2        # each with one or two watch streams at a time
    # event responses a member queues per watch stream before its watchers fall back to catching up
    # from the store (etcd's and the member's 128, scaled to a run's few hundred revisions)
    watch_queue: int = 8
    think: float = 0.03           # mean pause between a client's calls, seconds
    fault_interval: float = 0.6   # mean time between two injected faults
    reconfig_interval: float = 2.0
    heartbeat_ms: int = 50
    election_ms: int = 500
    snapshot_count: int = 12
    snapshot_catchup_entries: int = 4
    converge_timeout: float = 60.0
    faults: Faults = field(default_factory=Faults.default)
    verbose: bool = False

    def member_flags(self) -> dict:
        return {"heartbeat-interval": self.heartbeat_ms, "election-timeout": self.election_ms,
                "snapshot-count": self.snapshot_count,
                "experimental-snapshot-catchup-entries": self.snapshot_catchup_entries}

    @property
    def request_timeout(self) -> float:
        """The member's own (etcd's: 5 s plus two election timeouts)."""
        return 5 + 2 * self.election_ms / 1000

    client_timeout: float = 3.0   # a client gives up on a call after this (its outcome is unknown then)
