"""The gas snapshot gate (`scripts/gas_snapshot.py`, run by `make lint`): a gas move beyond the
tolerance, or a test added or removed without the snapshot following, fails the check."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tender.paths import ROOT


def _gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gas_snapshot_gate", ROOT / "scripts" / "gas_snapshot.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SNAPSHOT = """\
StakingTest:test_redeem_afterDelay() (gas: 55408)
StakingTest:test_unstake_resetsClock() (gas: 51140)
StakingTest:testFuzz_stake(uint96) (runs: 1000, μ: 53000, ~: 53100)
MarketInvariantsTest:invariant_solvent() (runs: 64, calls: 4096, reverts: 12)
"""


def test_parse_reads_unit_tests_only() -> None:
    assert _gate().parse(SNAPSHOT) == {
        "StakingTest:test_redeem_afterDelay()": 55408,
        "StakingTest:test_unstake_resetsClock()": 51140,
    }


def test_identical_and_small_moves_pass() -> None:
    gate = _gate()
    committed = gate.parse(SNAPSHOT)
    assert gate.compare(committed, dict(committed), 2.0) == ([], False)
    moved = {**committed, "StakingTest:test_redeem_afterDelay()": 55408 + 500}  # +0.9%
    lines, failed = gate.compare(committed, moved, 2.0)
    assert not failed
    assert lines == ["1 tests moved within 2.0% (largest +0.90%; --verbose lists them)"]


def test_a_move_beyond_the_tolerance_fails_and_names_the_test() -> None:
    gate = _gate()
    committed = gate.parse(SNAPSHOT)
    moved = {**committed, "StakingTest:test_unstake_resetsClock()": 51140 * 103 // 100}
    lines, failed = gate.compare(committed, moved, 2.0)
    assert failed
    assert lines == ["CHANGED  StakingTest:test_unstake_resetsClock(): 51140 -> 52674 (+3.00%)"]


def test_an_added_or_removed_test_fails() -> None:
    gate = _gate()
    committed = gate.parse(SNAPSHOT)
    renamed = {
        ("StakingTest:test_withdraw_afterDelay()" if k.endswith("redeem_afterDelay()") else k): v
        for k, v in committed.items()
    }
    lines, failed = gate.compare(committed, renamed, 2.0)
    assert failed
    assert lines == [
        "new      StakingTest:test_withdraw_afterDelay() (gas: 55408): not in the snapshot",
        "removed  StakingTest:test_redeem_afterDelay(): in the snapshot, but no such test ran",
    ]
