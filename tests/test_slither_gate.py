"""The slither gate (`scripts/slither.py`, run by `make lint`) refuses a report from a broken build."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from tender.paths import ROOT


def _gate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slither_gate", ROOT / "scripts" / "slither.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_info(folder: Path, sources: list[str], contracts: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True)
    data = {
        "input": {"sources": {name: {} for name in sources}},
        "output": {"contracts": {path: {name: {} for name in names} for path, names in contracts.items()}},
    }
    (folder / "abc.json").write_text(json.dumps(data))
    return folder


def test_unresolved_names_fail_and_the_known_library_limit_does_not() -> None:
    gate = _gate()
    log = "\n".join(
        [
            "'forge build --build-info --deny never --skip ./test/** ./script/** --force' running",
            "Failed to resolved name for reference id 147 in /x/node_modules/@openzeppelin/contracts/access/Ownable2Step.sol.",
            "Impossible to generate IR for BaseMarket._nonReentrantBefore "
            "(node_modules/@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol#40-48):",
            " 'NoneType' object has no attribute 'parameters'",
            "Impossible to generate IR for BaseMarket._settle (src/MarketCore.sol#94-112):",
            ". analyzed (45 contracts with 59 detectors), 0 result(s) found",
        ]
    )
    unexpected, known = gate._log_errors(log)
    assert [line.split(" ")[0] for line in unexpected] == ["Failed", "Impossible"]
    assert "MarketCore" in unexpected[1]
    assert len(known) == 1


def test_a_library_compiled_under_two_names_or_a_short_count_fails(tmp_path: Path) -> None:
    gate = _gate()
    contracts = gate.CONTRACTS
    twice = [
        "../node_modules/@openzeppelin/contracts/access/Ownable.sol",
        str((contracts / "../node_modules/@openzeppelin/contracts/access/Ownable.sol").resolve()),
        "src/Staking.sol",
    ]
    info = _build_info(
        tmp_path / "a", twice, {twice[0]: ["Ownable"], twice[1]: ["Ownable"], twice[2]: ["Staking"]}
    )
    problems = gate._build_problems(info, ". analyzed (2 contracts with 59 detectors)")
    assert len(problems) == 2
    assert "compiled under 2 names" in problems[0]
    assert "analysed 2 contracts, the compiler produced 3" in problems[1]
    once = ["node_modules/@openzeppelin/contracts/access/Ownable.sol", "src/Staking.sol"]
    info = _build_info(tmp_path / "b", once, {once[0]: ["Ownable"], once[1]: ["Staking"]})
    assert gate._build_problems(info, ". analyzed (2 contracts with 59 detectors)") == []
    assert gate._build_problems(info, "no count") == ["slither did not say how many contracts it analysed"]


def test_finding_text_is_not_an_error_of_the_analysis() -> None:
    """A finding that names `_failover` (or a detector wiki anchor `#missing-...`) is a finding,
    reported as such, not an analysis error that voids the report."""
    gate = _gate()
    description = (
        "Reentrancy in ReverseAuctionMarket.bid(bytes32,Bid) (src/ReverseAuctionMarket.sol#56-120):\n"
        "\tExternal calls:\n"
        "\t- ReverseAuctionMarket._failover(bytes32,JobRecord,address) (src/ReverseAuctionMarket.sol#183-195)\n"
    )
    report = {"results": {"detectors": [{"description": description}]}}
    log = "\n".join(
        [
            "INFO:Detectors:",
            *description.splitlines(),
            "Reference: https://github.com/crytic/slither/wiki/Detector-Documentation#missing-zero-address-validation",
            "\t- Staking._recordError(address) (src/Staking.sol#1-2)",
            ". analyzed (45 contracts with 59 detectors), 1 result(s) found",
        ]
    )
    assert gate._log_errors(log, gate._finding_lines(report)) == ([], [])
    # without the report's text, whole words still keep `_failover` and `_recordError` out
    assert gate._log_errors(log) == ([], [])
    # real errors are still caught, whatever else the log holds
    broken = log + "\nTraceback (most recent call last):\nKeyError: 'src'\nFailed to resolve name x"
    unexpected, _ = gate._log_errors(broken, gate._finding_lines(report))
    assert [line.split(" ")[0] for line in unexpected] == ["Traceback", "KeyError:", "Failed"]
