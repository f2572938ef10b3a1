#!/usr/bin/env python3
"""Run every benchmark (``make bench``); each writes its JSON under benchmarks/results/.

``--quick`` passes the quick mode on to the benchmarks that have one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("gas.py", "models.py", "provider.py", "tokens.py", "solver.py", "audit.py", "faults.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="quick mode (each under a minute)")
    args = parser.parse_args()
    failed: list[str] = []
    for name in ORDER:
        script = HERE / name
        if not script.exists():
            continue
        cmd = [sys.executable, str(script)]
        if args.quick and name in {"provider.py", "tokens.py", "solver.py", "audit.py", "faults.py"}:
            cmd.append("--quick")
        print(f"==> {name}", flush=True)
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
