"""Test and benchmark harnesses (never shipped): devnets with real or stand-in roles.

They live here, not in the packages, so a role never imports another role: ``solver`` (the
harness) starts real ``provider`` nodes; ``verifier`` drives a job history through every ending.
Benchmarks import them too (run from the repository root, which is on ``sys.path``).
"""
