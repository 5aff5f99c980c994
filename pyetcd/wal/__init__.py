"""The write-ahead log (see pyetcd.wal.wal for the API and the format on disk)."""
from pyetcd.wal.record import SnapshotMarker
from pyetcd.wal.wal import SEGMENT_SIZE, WAL, WALCorruptError, WALError, WALLockedError

__all__ = ["SEGMENT_SIZE", "WAL", "SnapshotMarker", "WALCorruptError", "WALError", "WALLockedError"]
