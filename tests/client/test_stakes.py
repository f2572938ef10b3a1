"""The quote path's stake check from memory (:class:`tender.client._stakes.StakeView`), on a
counted fake ``availableOf`` and a hand-moved clock: what is read, when, and what is counted."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tender.client._stakes import StakeView

A = "0x00000000000000000000000000000000000000Aa"


class Chain:
    """``availableOf`` of one provider, counting the reads (a read can be made to wait)."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def read(self, provider: str) -> int:
        assert provider.lower() == A.lower()
        self.gate.wait(5)
        self.reads += 1
        if self.fail:
            raise OSError("the RPC is down")
        return self.free


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _view(chain: Chain, clock: Clock, *, max_age: float = 10.0) -> StakeView:
    return StakeView(chain.read, max_age=max_age, refresh_after=1.0, clock=clock)


async def test_a_kept_read_answers_without_an_rpc_call_and_is_renewed_in_the_background() -> None:
    chain, clock = Chain(500), Clock()
    view = _view(chain, clock)
    assert await view.backing(A) == 500  # nothing kept: read
    assert chain.reads == 1
    chain.free = 400
    clock.now += 0.5
    assert await view.backing(A) == 500  # young: from memory, no read
    assert view.reads == 1
    clock.now += 1.0
    assert await view.backing(A) == 500  # older than refresh_after: answered, renewed behind
    assert view.reads == 2
    await asyncio.sleep(0.05)
    assert await view.backing(A) == 400
    clock.now += 20
    chain.free = 300
    assert await view.backing(A) == 300  # older than max_age: the check waits for a read


async def test_max_age_zero_reads_for_every_check_and_shares_a_read_on_its_way() -> None:
    chain, clock = Chain(500), Clock()
    view = _view(chain, clock, max_age=0)
    chain.gate.clear()
    view.warm(A)  # the provider quoted: the read runs while the round does
    both = asyncio.gather(view.backing(A), view.backing(A))
    await asyncio.sleep(0.01)
    chain.gate.set()
    assert list(await both) == [500, 500]
    assert view.reads == 1
    clock.now += 0.001
    assert await view.backing(A) == 500
    assert view.reads == 2


async def test_awards_in_flight_count_against_the_stake_until_read_back() -> None:
    """Two rounds of one process do not both count on the same stake: an award's hold is
    subtracted from when it is sent until a read sent after its receipt has come back."""
    chain, clock = Chain(500), Clock()
    view = _view(chain, clock)
    assert await view.backing(A) == 500
    view.hold(A, "0xJOB1", 200)
    view.hold(A, "0xjob2", 100)
    assert await view.backing(A) == 200
    view.award_done(A, "0xjob2", mined=False)  # reverted: nothing held
    assert await view.backing(A) == 300
    chain.gate.clear()
    clock.now += 0.1
    view.award_done(A, "0xjob1", mined=True)  # mined: a read is sent, the hold counts until it is back
    assert await view.backing(A) == 300
    chain.free = 300  # the chain now holds it
    chain.gate.set()
    await asyncio.sleep(0.05)
    assert await view.backing(A) == 300  # counted once: by the chain, no longer by the view
    assert view.reads == 2


async def test_a_failed_read_is_not_kept_and_fresh_reads_again() -> None:
    chain, clock = Chain(500), Clock()
    view = _view(chain, clock)
    chain.fail = True
    with pytest.raises(OSError, match="down"):
        await view.backing(A)
    chain.fail = False
    assert await view.backing(A) == 500
    chain.free = 0
    assert await view.backing(A) == 500
    assert await view.backing(A, fresh=True) == 0  # a refusal is checked against the chain
    assert chain.reads == 3
