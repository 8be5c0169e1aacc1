"""Job slots and the waiting line; finished outputs and their expiry."""

import asyncio

import pytest

from lipstream.server.jobs import Busy, OutputStore, SlotQueue, new_job_id


def test_job_ids_are_long_and_unique():
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) >= 22 for i in ids)


def test_the_line_is_first_come_first_served_with_places_reported():
    async def scenario():
        queue = SlotQueue(slots=1, max_waiting=2)
        places = {"b": [], "c": []}
        await queue.acquire(lambda p: None)  # a runs
        b = asyncio.create_task(queue.acquire(places["b"].append))
        c = asyncio.create_task(queue.acquire(places["c"].append))
        await asyncio.sleep(0)
        with pytest.raises(Busy):
            await queue.acquire(lambda p: None)
        assert (queue.running, queue.waiting) == (1, 2)
        queue.release()  # a ends: b runs, c moves up
        await b
        assert not c.done() and places == {"b": [1], "c": [2, 1]}
        queue.release()
        await c
        queue.release()
        assert (queue.running, queue.waiting) == (0, 0)

    asyncio.run(scenario())


def test_leaving_the_line_moves_the_others_up_and_never_leaks_a_slot():
    async def scenario():
        queue = SlotQueue(slots=1, max_waiting=5)
        await queue.acquire(lambda p: None)
        places = []
        b = asyncio.create_task(queue.acquire(lambda p: None))
        c = asyncio.create_task(queue.acquire(places.append))
        await asyncio.sleep(0)
        b.cancel()
        await asyncio.gather(b, return_exceptions=True)
        assert places == [2, 1] and queue.waiting == 1
        # c is handed the slot and cancelled in the same breath: the slot must come back
        queue.release()
        c.cancel()
        await asyncio.gather(c, return_exceptions=True)
        assert (queue.running, queue.waiting) == (0, 0)
        await asyncio.wait_for(queue.acquire(lambda p: None), 1)
        assert queue.running == 1

    asyncio.run(scenario())


def test_outputs_expire_and_the_oldest_go_first(tmp_path):
    now = [0.0]
    store = OutputStore(tmp_path / "kept", keep_seconds=10, max_kept=2, clock=lambda: now[0])
    paths = {}
    for name in "abc":
        produced = tmp_path / f"{name}.mp4"
        produced.write_bytes(name.encode())
        paths[name] = store.add(name, produced)
        assert not produced.exists()
        now[0] += 1
    assert store.get("a") is None and not paths["a"].exists()  # over max_kept
    assert store.get("b").read_bytes() == b"b" and store.expires_in("b") == pytest.approx(8)
    now[0] = 11.5
    assert store.get("b") is None and not paths["b"].exists()
    assert store.get("c") is not None
    store.clear()
    assert list((tmp_path / "kept").iterdir()) == []
