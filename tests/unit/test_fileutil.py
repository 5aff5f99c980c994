"""The disk seam's helpers: what they make durable."""
from __future__ import annotations

import os

from pyetcd.fileutil import OSFileSystem, makedirs_durably, write_file_durably


class Recording(OSFileSystem):
    def __init__(self) -> None:
        self.synced_dirs: list[str] = []

    def fsync_dir(self, path: str) -> None:
        self.synced_dirs.append(os.path.abspath(path))
        super().fsync_dir(path)


def test_every_directory_made_has_its_entry_made_durable(tmp_path):
    """Found by the whole-member simulation (F4): a power loss could take the member dir away,
    its entry in the data dir never synced; the member then founded its cluster a second time."""
    fs = Recording()
    makedirs_durably(fs, str(tmp_path / "data" / "member" / "snap"))
    assert fs.synced_dirs == [str(tmp_path), str(tmp_path / "data"), str(tmp_path / "data" / "member")]


def test_a_file_written_durably_has_its_directory_synced(tmp_path):
    fs = Recording()
    write_file_durably(fs, str(tmp_path / "f"), b"x")
    assert (tmp_path / "f").read_bytes() == b"x" and fs.synced_dirs == [str(tmp_path)]


def test_levels_that_exist_already_are_synced_too_from_the_given_top(tmp_path):
    """sim F10: a first start that died right after creating member/ left its entry unsynced;
    the next start must not take its existence for durability."""
    (tmp_path / "data" / "member").mkdir(parents=True)
    fs = Recording()
    makedirs_durably(fs, str(tmp_path / "data" / "member" / "snap"), up_to=str(tmp_path / "data"))
    assert fs.synced_dirs == [str(tmp_path), str(tmp_path / "data"), str(tmp_path / "data" / "member")]
