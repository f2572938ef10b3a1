"""The agent's SQLite state: at most one action per (job, kind), bound to one deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tender.chain import JobState
from verifier import Store, StoreError


def test_record_signed_refuses_a_second_action_of_the_same_kind(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")
    assert store.record_signed("0x01", "challenge", tx_hash="0xaa", raw_tx="0x00", nonce=3)
    assert not store.record_signed("0x01", "challenge", tx_hash="0xbb", raw_tx="0x01", nonce=4)
    assert store.record_signed("0x01", "finalize", tx_hash="0xcc", raw_tx="0x02", nonce=4)
    action = store.action("0x01", "challenge")
    assert action is not None
    assert action.tx_hash == "0xaa"
    assert [a.kind for a in store.pending_actions()] == ["challenge", "finalize"]


def test_state_survives_reopening(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")
    store.record_signed("0x01", "challenge", tx_hash="0xaa", raw_tx="0x00", nonce=0)
    store.upsert_job("0x01", "reverse", state=JobState.DELIVERED, detail={"output": [1, 2]})
    store.upsert_job("0x01", "reverse", verdict="wrong", detail={"reason": "argmax"})
    store.cursor = 41
    store.close()
    again = Store(tmp_path / "v.db")
    assert again.cursor == 41
    job = again.job("0x01")
    assert job is not None
    assert (job.state, job.verdict) == (JobState.DELIVERED, "wrong")
    assert job.detail == {"output": [1, 2], "reason": "argmax"}
    assert [a.job_id for a in again.pending_actions()] == ["0x01"]
    again.finish_action("0x01", "challenge", "mined")
    assert again.pending_actions() == []


def test_bind_refuses_another_deployment(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")
    store.bind(chain_id=31337, markets={"reverse": "0xAbC"})
    store.bind(chain_id=31337, markets={"reverse": "0xabc"})
    with pytest.raises(StoreError, match="another deployment"):
        store.bind(chain_id=1, markets={"reverse": "0xabc"})


def test_rewards_add_up_by_kind_once_per_log(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")
    store.add_reward(tx_hash="0x1", log_index=0, job_id="0x01", kind="challenge", amount=5, block=1)
    store.add_reward(tx_hash="0x1", log_index=0, job_id="0x01", kind="challenge", amount=5, block=1)
    store.add_reward(tx_hash="0x2", log_index=3, job_id="0x02", kind="challenge", amount=7, block=2)
    assert store.rewards() == {"challenge": 12}


def test_store_is_a_feed_cursor_that_forgets_reorged_blocks(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")
    assert store.cursor is None
    with store.transaction():
        store.upsert_job("0x01", "dutch", state=JobState.OPEN)
        store.touch("0x01", 10)
        store.advance(10, {9: "0x09", 10: "0x0a"}, keep=3)
    with store.transaction():
        store.upsert_job("0x02", "dutch", state=JobState.DELIVERED)
        store.touch("0x02", 12)
        store.touch("0x01", 12)
        store.add_reward(tx_hash="0x1", log_index=0, job_id="0x02", kind="challenge", amount=5, block=12)
        store.add_reward(
            tx_hash="0x2", log_index=-1, job_id="0x02", kind="gas_spent_wei", amount=-1, block=12
        )
        store.advance(12, {11: "0x0b", 12: "0x0c"}, keep=3)
    assert store.recent_blocks() == [(12, "0x0c"), (11, "0x0b"), (10, "0x0a")]  # block 9 is final
    assert store.block_hash(12) == "0x0c"
    assert sorted(store.rollback(10)) == ["0x01", "0x02"]
    assert store.cursor == 10
    assert store.recent_blocks() == [(10, "0x0a")]
    assert store.rewards() == {"gas_spent_wei": -1}  # what the dropped events booked is gone, gas is spent
    assert store.rollback(10) == []


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "v.db")

    def fail_half_way() -> None:
        with store.transaction():
            store.upsert_job("0x01", "dutch", state=JobState.OPEN)
            store.advance(5, {5: "0x05"}, keep=3)
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.job("0x01") is None
    assert store.cursor is None
    assert store.recent_blocks() == []
