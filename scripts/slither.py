#!/usr/bin/env python3
"""Run slither over contracts/src (through forge) and fail on medium or high impact findings.

Findings that are understood and accepted carry a `// slither-disable-next-line <detector>`
comment with the reason at the line. Slither builds into a temporary folder (FOUNDRY_OUT), so it
never disturbs `contracts/out` that the Python tests read, nor another checkout's build.

A clean report only means something if slither analysed the whole build, so the gate also fails
(exit 2) when:
- slither logs an error (an unresolved name, a missing base contract, a crash), except the one
  known slither limitation listed in KNOWN_SLITHER_ERRORS;
- the compiler saw one file under two source unit names (the same library compiled twice, which
  is what leaves slither unable to resolve names);
- slither analysed a different number of contracts than the compiler produced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"

# Errors slither logs for code it cannot lower to its IR through no fault of the build. Each
# entry: a pattern over the error's log line, and why it is harmless.
KNOWN_SLITHER_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"Impossible to generate IR for \w+\.(?:"
            r"(?:_nonReentrantBefore|_nonReentrantAfter|_reentrancyGuardEntered) "
            r"\(node_modules/@openzeppelin/contracts/utils/ReentrancyGuardTransient\.sol#"
            r"|(?:constructor|_EIP712Name|_EIP712Version) "
            r"\(node_modules/@openzeppelin/contracts/utils/cryptography/EIP712\.sol#)"
        ),
        "slither cannot lower OpenZeppelin's `using TransientSlot for *` / `using ShortStrings for *` calls"
        " (functions of user-defined value types) in ReentrancyGuardTransient and EIP712; audited library code",
    ),
)

_ANALYSED = re.compile(r"analyzed \((\d+) contracts with \d+ detectors\)")
# With --json slither logs without level prefixes, so an error is told by its words: whole words only
# ("Failed to resolve name", "Impossible to generate IR", "Traceback", "KeyError"), never a word inside an
# identifier (`_failover`, `_recordError`).
_ERROR = re.compile(
    r"(?i:\b(?:error|critical|fail|failed|failure|missing|impossible|traceback|exception|cannot)\b"
    r"|\bnot found\b)"
    r"|\b[A-Z]\w*(?:Error|Exception)\b"
)
# The lines slither prints for its findings: their text names the code (a function called `_failover`, a
# detector's wiki anchor such as `#missing-zero-address-validation`), not a failure of the analysis.
_FINDING_LINE = re.compile(r"^\s*(?:Reference: https?://|INFO:Detectors:)")


def _finding_lines(report: dict[str, Any]) -> set[str]:
    """Every line of the findings' descriptions in slither's JSON report, stripped."""
    detectors: list[dict[str, Any]] = (report.get("results") or {}).get("detectors") or []
    return {
        line.strip()
        for finding in detectors
        for line in str(finding.get("description", "")).splitlines()
        if line.strip()
    }


def _log_errors(log: str, finding_lines: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Split slither's error lines into (unexpected, known) ones; the findings' own lines
    (`finding_lines`, their wiki references) are never errors."""
    findings = set(finding_lines)
    unexpected: list[str] = []
    known: list[str] = []
    for line in log.splitlines():
        if line.strip() in findings or _FINDING_LINE.match(line) or not _ERROR.search(line):
            continue
        if any(pattern.search(line) for pattern, _ in KNOWN_SLITHER_ERRORS):
            known.append(line)
        else:
            unexpected.append(line)
    return unexpected, known


def _build_problems(build_info_dir: Path, log: str) -> list[str]:
    """What in the compiler's output shows that slither did not see the whole build."""
    problems: list[str] = []
    infos = sorted(build_info_dir.glob("*.json"))
    if not infos:
        return [f"no forge build-info under {build_info_dir}"]
    produced = 0
    for info in infos:
        data = json.loads(info.read_text())
        names: dict[Path, list[str]] = {}
        for name in data["input"]["sources"]:
            names.setdefault(Path(os.path.realpath(CONTRACTS / name)), []).append(name)
        problems += [
            f"{file} compiled under {len(units)} names: {', '.join(sorted(units))}"
            for file, units in sorted(names.items())
            if len(units) > 1
        ]
        produced += sum(len(contracts) for contracts in data["output"].get("contracts", {}).values())
    match = _ANALYSED.search(log)
    if match is None:
        problems.append("slither did not say how many contracts it analysed")
    elif int(match.group(1)) != produced:
        problems.append(f"slither analysed {match.group(1)} contracts, the compiler produced {produced}")
    return problems


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tender-slither-") as tmp:
        build = Path(tmp)
        env = dict(
            os.environ,
            FOUNDRY_OUT=str(build / "out"),
            FOUNDRY_CACHE_PATH=str(build / "cache"),
            PATH=f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        report = build / "slither.json"
        cmd = [
            str(Path(sys.executable).parent / "slither"),
            ".",
            "--filter-paths",
            "(test/|script/|node_modules/)",
            "--exclude-informational",
            "--exclude-low",
            "--exclude-optimization",
            "--json",
            str(report),
        ]
        proc = subprocess.run(cmd, cwd=CONTRACTS, env=env, capture_output=True, text=True, check=False)
        log = proc.stdout + proc.stderr
        if not report.exists():
            sys.stderr.write(log)
            print("slither did not produce a report", file=sys.stderr)
            return 2
        data = json.loads(report.read_text())
        unexpected, known = _log_errors(log, _finding_lines(data))
        problems = _build_problems(build / "out" / "build-info", log)
    if not data.get("success", False):
        print(f"slither failed: {data.get('error')}", file=sys.stderr)
        return 2
    if unexpected or problems:
        for line in unexpected[:20]:
            print(line, file=sys.stderr)
        if len(unexpected) > 20:
            print(f"... and {len(unexpected) - 20} more slither errors", file=sys.stderr)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(
            f"slither did not analyse the whole build ({len(unexpected)} error(s), "
            f"{len(problems)} build problem(s)): its findings cannot be trusted",
            file=sys.stderr,
        )
        return 2
    if known:
        reasons = "; ".join(reason for _, reason in KNOWN_SLITHER_ERRORS)
        print(f"slither: {len(known)} known, harmless error(s) ({reasons})")
    findings = (data.get("results") or {}).get("detectors", [])
    for finding in findings:
        print(f"[{finding['impact']}] {finding['check']}: {finding['description'].strip()}")
    print(f"slither: {len(findings)} medium/high finding(s) in contracts/src")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
