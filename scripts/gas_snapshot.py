#!/usr/bin/env python3
"""Gas is reviewed like code: the committed snapshot (``contracts/.gas-snapshot``) must match.

``python scripts/gas_snapshot.py`` (``make lint``) runs ``forge snapshot`` into a temporary file
and compares it with the committed one: it prints every difference and fails (exit 1) when a
test's gas moved by more than ``--tolerance`` percent (default 2) or a test was added or removed
without the snapshot following. ``--write`` (``make snapshot``) rewrites the committed file, so a
gas change shows in review as a diff of that file.

Only unit tests are snapshotted. Fuzz (``testFuzz_*``) and invariant (``invariant_*``) tests
report a mean over random inputs: with the seed fixed in ``foundry.toml`` it repeats, but it moves
with any change to a bound or a handler rather than with the gas of the code under test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
SNAPSHOT = CONTRACTS / ".gas-snapshot"
#: the tests left out of the snapshot (forge's ``--no-match-test`` regex)
NOT_SNAPSHOTTED = "^(testFuzz|invariant)"
_LINE = re.compile(r"^(?P<test>\S+\(.*\)) \(gas: (?P<gas>\d+)\)$")


def parse(text: str) -> dict[str, int]:
    """``{"Contract:test()": gas}`` from a snapshot file's text (unit-test lines only)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match:
            out[match["test"]] = int(match["gas"])
    return out


def snapshot(path: Path) -> None:
    """Run ``forge snapshot`` over the unit tests into ``path``."""
    cmd = ["forge", "snapshot", "--no-match-test", NOT_SNAPSHOTTED, "--snap", str(path)]
    done = subprocess.run(cmd, cwd=CONTRACTS, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"forge snapshot failed (exit {done.returncode})")


def compare(
    committed: dict[str, int], fresh: dict[str, int], tolerance: float, *, verbose: bool = False
) -> tuple[list[str], bool]:
    """The differences, one line each, and whether any fails the check: a test added or removed,
    or gas moved beyond ``tolerance`` percent. Moves within it are summed up in one line (each
    listed with ``verbose``)."""
    lines: list[str] = []
    failed = False
    for test in sorted(fresh.keys() - committed.keys()):
        lines.append(f"new      {test} (gas: {fresh[test]}): not in the snapshot")
        failed = True
    for test in sorted(committed.keys() - fresh.keys()):
        lines.append(f"removed  {test}: in the snapshot, but no such test ran")
        failed = True
    within: list[float] = []
    for test in sorted(committed.keys() & fresh.keys()):
        before, after = committed[test], fresh[test]
        if before == after:
            continue
        pct = 100.0 * (after - before) / before if before else float("inf")
        if abs(pct) > tolerance:
            failed = True
            lines.append(f"CHANGED  {test}: {before} -> {after} ({pct:+.2f}%)")
        else:
            within.append(pct)
            if verbose:
                lines.append(f"changed  {test}: {before} -> {after} ({pct:+.2f}%)")
    if within:
        largest = max(within, key=abs)
        lines.append(
            f"{len(within)} tests moved within {tolerance}% (largest {largest:+.2f}%; --verbose lists them)"
        )
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite contracts/.gas-snapshot")
    parser.add_argument("--tolerance", type=float, default=2.0, help="percent a test's gas may move [2]")
    parser.add_argument("--verbose", action="store_true", help="also list the moves within the tolerance")
    args = parser.parse_args(argv)
    if args.write:
        snapshot(SNAPSHOT)
        print(f"wrote {SNAPSHOT.relative_to(ROOT)} ({len(parse(SNAPSHOT.read_text()))} tests)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh_path = Path(tmp) / "gas-snapshot"
        snapshot(fresh_path)
        fresh = parse(fresh_path.read_text())
    committed = parse(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    lines, failed = compare(committed, fresh, args.tolerance, verbose=args.verbose)
    for line in lines:
        print(line)
    if failed:
        print(
            f"gas snapshot: differences beyond {args.tolerance}% or tests added/removed; "
            "if intended, run `make snapshot` and commit contracts/.gas-snapshot",
            file=sys.stderr,
        )
        return 1
    print(f"gas snapshot: {len(fresh)} tests within {args.tolerance}% of contracts/.gas-snapshot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
