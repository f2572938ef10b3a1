"""``tender devnet``: a whole Tender market on a local Anvil chain, driven by a workload.

The pieces are importable on their own: :class:`Supervisor` (child processes in their own
process groups, always stopped), the config writers, :func:`plan_workload`, the summary
(:func:`summarize`, :func:`check_invariants`, JSON and PNG) and the live view.
"""

from __future__ import annotations

from tender.devnet._chain import ChainSetup
from tender.devnet._cli import cli_group
from tender.devnet._configs import write_config
from tender.devnet._summary import RequestRecord, Summary, check_invariants, summarize
from tender.devnet._supervisor import Child, ChildFailed, Supervisor
from tender.devnet._workload import Planned, plan_workload

__all__ = [
    "ChainSetup",
    "Child",
    "ChildFailed",
    "Planned",
    "RequestRecord",
    "Summary",
    "Supervisor",
    "check_invariants",
    "cli_group",
    "plan_workload",
    "summarize",
    "write_config",
]
