"""FrameBatcher: one inference per batch, each session gets its own outputs, in order, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from farm.kernel.errors import BatcherClosed, BatchSizeMismatch
from farm.render.batching import FrameBatcher

pytestmark = pytest.mark.unit

DEADLINE_S = 10.0
Pair = tuple[int, int]


class RecordingInfer:
    """Echo inference that records each batch (as (session, frame) pairs) and can be told to misbehave."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []
        self.drop_one = False
        self.gate: threading.Event | None = None

    def __call__(self, items: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if self.gate is not None:
            assert self.gate.wait(DEADLINE_S)
        self.batches.append(list(items))
        return list(items[:-1]) if self.drop_one else list(items)


@pytest.fixture
def infer() -> RecordingInfer:
    return RecordingInfer()


@pytest.fixture
def batcher(infer: RecordingInfer) -> Iterator[FrameBatcher[Pair, Pair]]:
    b: FrameBatcher[Pair, Pair] = FrameBatcher(infer, max_batch_size=8, max_wait_s=0.02)
    b.start()
    yield b
    b.close()


def test_every_session_gets_its_own_frames_in_order_while_sessions_join_and_leave(
    batcher: FrameBatcher[Pair, Pair], infer: RecordingInfer
) -> None:
    received: dict[int, list[tuple[int, int]]] = {}
    errors: list[BaseException] = []

    def session(sid: int, frames: int, start: threading.Event) -> None:
        assert start.wait(DEADLINE_S)
        client = batcher.join()
        try:
            for i in range(frames):
                received.setdefault(sid, []).append(client.submit((sid, i)).result(DEADLINE_S))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            client.leave()

    start = threading.Event()
    # Sessions of different lengths: short ones leave while long ones continue; late ones join mid-run.
    plan = {1: 60, 2: 15, 3: 40, 4: 5, 5: 60, 6: 25, 7: 33, 8: 1, 9: 50, 10: 12}
    threads = [threading.Thread(target=session, args=(sid, n, start)) for sid, n in plan.items()]
    for t in threads[:5]:
        t.start()
    start.set()
    for t in threads[5:]:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
        assert not t.is_alive()

    assert errors == []
    for sid, n in plan.items():
        assert received[sid] == [(sid, i) for i in range(n)]
    batched = [item for batch in infer.batches for item in batch]
    assert sorted(batched) == sorted((sid, i) for sid, n in plan.items() for i in range(n))
    assert max(len(b) for b in infer.batches) > 1  # concurrent sessions were actually batched together
    assert batcher.stats.items == sum(plan.values())


def test_batch_fires_as_soon_as_every_joined_session_has_a_request(infer: RecordingInfer) -> None:
    # A one-hour max wait: only the "everyone present has asked" rule can release this batch.
    b: FrameBatcher[Pair, Pair] = FrameBatcher(infer, max_batch_size=16, max_wait_s=3600)
    b.start()
    try:
        clients = [b.join() for _ in range(3)]
        futures = [c.submit((c.client_id, 0)) for c in clients]
        results = [f.result(DEADLINE_S) for f in futures]
        assert results == [(c.client_id, 0) for c in clients]
        assert [len(batch) for batch in infer.batches] == [3]
        clients[2].leave()  # the batch size adapts to the two sessions left
        futures = [c.submit((c.client_id, 1)) for c in clients[:2]]
        assert [f.result(DEADLINE_S) for f in futures] == [(c.client_id, 1) for c in clients[:2]]
        assert [len(batch) for batch in infer.batches] == [3, 2]
    finally:
        b.close()


def test_a_lone_request_runs_after_max_wait_even_if_peers_never_ask(
    batcher: FrameBatcher[Pair, Pair], infer: RecordingInfer
) -> None:
    active, _idle = batcher.join(), batcher.join()
    assert active.submit((1, 0)).result(DEADLINE_S) == (1, 0)
    assert infer.batches == [[(1, 0)]]


def test_batches_never_exceed_max_batch_size(infer: RecordingInfer) -> None:
    b: FrameBatcher[Pair, Pair] = FrameBatcher(infer, max_batch_size=4, max_wait_s=3600)
    infer.gate = threading.Event()
    b.start()
    try:
        client = b.join()
        futures = [client.submit((0, i)) for i in range(10)]
        infer.gate.set()
        assert [f.result(DEADLINE_S) for f in futures] == [(0, i) for i in range(10)]
        assert all(len(batch) <= 4 for batch in infer.batches)
    finally:
        b.close()


def test_a_count_mismatch_fails_the_whole_batch_loudly_with_both_counts(
    batcher: FrameBatcher[Pair, Pair], infer: RecordingInfer
) -> None:
    infer.drop_one = True
    clients = [batcher.join() for _ in range(3)]
    futures = [c.submit((c.client_id, 0)) for c in clients]
    for future in futures:
        with pytest.raises(BatchSizeMismatch) as info:
            future.result(DEADLINE_S)
        assert info.value.details == {"inputs": 3, "outputs": 2}
        assert "2 outputs for 3 inputs" in str(info.value)
    assert batcher.stats.failed_batches == 1
    infer.drop_one = False  # the batcher carries on after a failed batch
    assert clients[0].submit((clients[0].client_id, 1)).result(DEADLINE_S) == (clients[0].client_id, 1)


def test_an_inference_error_reaches_every_session_of_that_batch_only(infer: RecordingInfer) -> None:
    calls = {"n": 0}

    def flaky(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("device lost")
        return items

    b: FrameBatcher[int, int] = FrameBatcher(flaky, max_batch_size=4, max_wait_s=0.01)
    b.start()
    try:
        client = b.join()
        with pytest.raises(RuntimeError, match="device lost"):
            client.submit(1).result(DEADLINE_S)
        assert client.submit(2).result(DEADLINE_S) == 2
    finally:
        b.close()


def test_a_slow_consumer_does_not_stall_the_others(
    batcher: FrameBatcher[Pair, Pair],
) -> None:
    slow, fast = batcher.join(), batcher.join()
    uncollected: list[Future[Pair]] = [slow.submit((1, i)) for i in range(5)]  # never read yet
    for i in range(20):
        assert fast.submit((2, i)).result(DEADLINE_S) == (2, i)
    assert [f.result(DEADLINE_S) for f in uncollected] == [(1, i) for i in range(5)]


def test_leaving_cancels_requests_not_yet_batched(infer: RecordingInfer) -> None:
    b: FrameBatcher[Pair, Pair] = FrameBatcher(infer, max_batch_size=8, max_wait_s=3600)
    b.start()
    try:
        leaver, stayer = b.join(), b.join()
        pending = leaver.submit((1, 0))
        leaver.leave()
        assert pending.cancelled()
        with pytest.raises(BatcherClosed):
            leaver.submit((1, 1))
        assert stayer.submit((2, 0)).result(DEADLINE_S) == (2, 0)  # alone now: fires at once
        assert all((1, 0) not in batch for batch in infer.batches)
    finally:
        b.close()


def test_close_fails_waiting_requests_and_refuses_new_ones(infer: RecordingInfer) -> None:
    b: FrameBatcher[Pair, Pair] = FrameBatcher(infer, max_batch_size=8, max_wait_s=3600)
    b.start()
    a, _other = b.join(), b.join()
    waiting = a.submit((1, 0))
    b.close()
    with pytest.raises(BatcherClosed):
        waiting.result(DEADLINE_S)
    with pytest.raises(BatcherClosed):
        b.join()


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        FrameBatcher(lambda items: items, max_batch_size=0)
