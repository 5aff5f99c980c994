"""pyetcd.raft — a sans-I/O Raft (see DESIGN.md §2 and the contract below)."""
from pyetcd.raft.raft import CAMPAIGN_TRANSFER, Config, ProposalDropped, ReadState, StateType
from pyetcd.raft.rawnode import RawNode, Ready, SoftState, Status
from pyetcd.raft.storage import (CompactedError, MemoryStorage, SnapshotOutOfDateError,
                                 StorageError, UnavailableError)
from pyetcd.raft.tracker import Progress, ProgressState

__all__ = [
    "CAMPAIGN_TRANSFER", "CompactedError", "Config", "MemoryStorage", "Progress", "ProgressState",
    "ProposalDropped", "RawNode", "ReadState", "Ready", "SnapshotOutOfDateError", "SoftState",
    "StateType", "Status", "StorageError", "UnavailableError",
]
