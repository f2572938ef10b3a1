"""The verifier agent and the auditor.

The agent (:class:`Agent`, ``tender verifier run``) watches the markets: it re-executes
optimistic deliveries and challenges wrong ones before their window closes, expires jobs
past their delivery deadline, finalizes jobs whose challenge window closed, and relays proofs
for providers. The auditor (:func:`audit`, ``tender audit``) rebuilds settled jobs from chain
data alone and checks their proofs, inputs and amounts.
"""

from verifier._config import VerifierConfig, VerifierSection, load_config
from verifier._errors import (
    CommitmentMismatch,
    InputUnavailable,
    ReconstructionError,
    RelayError,
    StoreError,
    VerifierError,
)
from verifier._report import AuditReport, Check, JobAudit, Status
from verifier._store import Store

__all__ = [
    "Agent",
    "AuditReport",
    "Auditor",
    "Catalogue",
    "Check",
    "CommitmentMismatch",
    "InputUnavailable",
    "JobAudit",
    "ReconstructionError",
    "RelayError",
    "Status",
    "Store",
    "StoreError",
    "VerifierConfig",
    "VerifierError",
    "VerifierSection",
    "load_config",
]


def __getattr__(name: str) -> object:
    """``Agent``, ``Auditor`` and ``Catalogue`` load EZKL and onnxruntime: import them on first use,
    so that ``tender --help`` and the config stay fast."""
    if name == "Agent":
        from verifier._agent import Agent

        return Agent
    if name == "Auditor":
        from verifier._audit import Auditor

        return Auditor
    if name == "Catalogue":
        from verifier._models import Catalogue

        return Catalogue
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")
