"""Linearizable reads: contexts unique across restarts, answers only for the round in flight,
the request sent again until answered, a deadline for the whole round."""
from __future__ import annotations

import asyncio

import pytest

from pyetcd import errors
from pyetcd.fileutil import OS
from pyetcd.raft import ReadState
from pyetcd.server import read_index
from pyetcd.server.idutil import RequestIDs
from pyetcd.server.read_index import ReadIndex


def test_request_ids_differ_across_restarts_and_members(tmp_path):
    first = RequestIDs(0xA1, OS, str(tmp_path))
    ids = {first.next() for _ in range(100)}
    after_restart = RequestIDs(0xA1, OS, str(tmp_path))  # the counter starts over, the incarnation not
    again = {after_restart.next() for _ in range(100)}
    (tmp_path / "other").mkdir()
    other = RequestIDs(0xB2, OS, str(tmp_path / "other"))
    assert not ids & again and not (ids | again) & {other.next() for _ in range(100)}


def test_request_ids_take_a_new_incarnation_when_the_counter_wraps(tmp_path):
    ids = RequestIDs(1, OS, str(tmp_path))
    ids._next = (1 << 32) - 1
    last_of_run, first_of_next = ids.next(), ids.next()
    assert first_of_next != last_of_run and RequestIDs(1, OS, str(tmp_path))._incarnation == 3


class FakeRaft:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def read_index(self, ctx: bytes) -> None:
        self.sent.append(ctx)


async def rounds(ids: RequestIDs, applied: int = 10, timeout: float = 5.0) -> tuple[ReadIndex, FakeRaft, asyncio.Task]:
    raft = FakeRaft()

    async def wait_applied(index: int) -> None:
        while applied < index:
            await asyncio.sleep(3600)

    reads = ReadIndex(raft.read_index, ids.next, wait_applied, lambda: True, timeout)
    return reads, raft, asyncio.get_running_loop().create_task(reads.run())


async def test_an_answer_to_a_round_of_an_earlier_run_is_ignored(tmp_path):
    """An answer queued in a peer's connection across a restart must not resolve a new round,
    though the new run's first round is its first again."""
    earlier, earlier_raft, task = await rounds(RequestIDs(1, OS, str(tmp_path)))
    asyncio.ensure_future(earlier.barrier())
    while not earlier_raft.sent:
        await asyncio.sleep(0)
    task.cancel()  # the member stops before the answer comes
    reads, raft, task = await rounds(RequestIDs(1, OS, str(tmp_path)))
    try:
        barrier = asyncio.ensure_future(reads.barrier())
        while not raft.sent:
            await asyncio.sleep(0)
        reads.on_read_states([ReadState(99, earlier_raft.sent[0])])
        await asyncio.sleep(0)
        assert not barrier.done()
        reads.on_read_states([ReadState(5, raft.sent[0])])
        await asyncio.wait_for(barrier, 1)
    finally:
        task.cancel()


async def test_an_unanswered_read_index_is_sent_again(tmp_path, monkeypatch):
    monkeypatch.setattr(read_index, "RETRY_SECONDS", 0.01)
    reads, raft, task = await rounds(RequestIDs(1, OS, str(tmp_path)))
    try:
        barrier = asyncio.ensure_future(reads.barrier())
        while len(raft.sent) < 3:
            await asyncio.sleep(0.005)
        assert len(set(raft.sent)) == 1  # the same round, asked again
        reads.on_read_states([ReadState(1, raft.sent[0])])
        await asyncio.wait_for(barrier, 1)
    finally:
        task.cancel()


async def test_the_wait_for_the_local_apply_has_a_deadline(tmp_path):
    reads, raft, task = await rounds(RequestIDs(1, OS, str(tmp_path)), applied=3, timeout=0.2)
    try:
        barrier = asyncio.ensure_future(reads.barrier())
        while not raft.sent:
            await asyncio.sleep(0)
        reads.on_read_states([ReadState(7, raft.sent[0])])  # this member never gets to index 7
        with pytest.raises(errors.EtcdError) as failure:
            await asyncio.wait_for(barrier, 5)
        assert isinstance(failure.value, errors.ErrTimeout)
    finally:
        task.cancel()
