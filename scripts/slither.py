#!/usr/bin/env python3
"""Run slither over contracts/src (through forge) and fail on medium or high impact findings.

Findings that are understood and accepted carry a `// slither-disable-next-line <detector>`
comment with the reason at the line. Slither builds into its own folder (FOUNDRY_OUT), so it
never disturbs `contracts/out` that the Python tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    build = ROOT / ".cache" / "slither"
    env = dict(
        os.environ,
        FOUNDRY_OUT=str(build / "out"),
        FOUNDRY_CACHE_PATH=str(build / "cache"),
        PATH=f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "slither.json"
        cmd = [
            str(Path(sys.executable).parent / "slither"),
            ".",
            "--filter-paths", "(test/|script/|node_modules/)",
            "--exclude-informational",
            "--exclude-low",
            "--exclude-optimization",
            "--json", str(report),
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, cwd=ROOT / "contracts", env=env, capture_output=True, text=True, check=False
        )
        if not report.exists():
            sys.stderr.write(proc.stdout + proc.stderr)
            print("slither did not produce a report", file=sys.stderr)
            return 2
        data = json.loads(report.read_text())
    if not data.get("success", False):
        print(f"slither failed: {data.get('error')}", file=sys.stderr)
        return 2
    findings = (data.get("results") or {}).get("detectors", [])
    for finding in findings:
        print(f"[{finding['impact']}] {finding['check']}: {finding['description'].strip()}")
    print(f"slither: {len(findings)} medium/high finding(s) in contracts/src")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
