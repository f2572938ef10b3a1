"""The verifier agent and the auditor.

The agent (:class:`Agent`, ``tender verifier run``) watches the markets: it re-executes
optimistic deliveries and challenges wrong ones before their window closes, expires jobs
past their delivery deadline, finalizes jobs whose challenge window closed, and relays proofs
for providers. The auditor (:func:`audit`, ``tender audit``) rebuilds settled jobs from chain
data alone and checks their proofs, inputs and amounts.
"""

from tender.lazy import lazy_attribute
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


#: ``Agent``, ``Auditor`` and ``Catalogue`` load EZKL and onnxruntime: imported on first use, so
#: that ``tender --help`` and the config stay fast.
_LAZY = {"Agent": "verifier._agent", "Auditor": "verifier._audit", "Catalogue": "verifier._models"}


def __getattr__(name: str) -> object:
    return lazy_attribute(__name__, name, _LAZY)
