"""The verifier package's errors, all under :class:`tender.errors.TenderError`::

    TenderError
    └── VerifierError              the verifier agent or the auditor failed
        ├── StoreError             the agent's SQLite state is unreadable or from another chain
        ├── InputUnavailable       a job's input cannot be fetched from its inputLocation
        ├── CommitmentMismatch     the fetched input does not hash to the intent's commitment
        ├── ReconstructionError    a job cannot be rebuilt from chain data (missing event, calldata)
        └── RelayError             a proof handed to the relay endpoint was refused

A failed audit is not an exception: the auditor returns findings and the CLI turns them into
a non-zero exit code.
"""

from __future__ import annotations

from tender.errors import TenderError


class VerifierError(TenderError):
    """Root of the verifier package's errors."""


class StoreError(VerifierError):
    """The agent's persistent state cannot be opened, or belongs to another chain/deployment."""


class InputUnavailable(VerifierError):
    """A job's input cannot be fetched (unsupported URI scheme, network error, bad JSON)."""


class CommitmentMismatch(VerifierError):
    """The fetched input does not hash to the intent's ``inputCommitment``."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"input commitment mismatch: intent says {expected:#x}, input hashes to {actual:#x}")


class ReconstructionError(VerifierError):
    """A job cannot be rebuilt from chain data alone (an event or its calldata is missing)."""


class RelayError(VerifierError):
    """A proof submitted to the relay endpoint was refused (unknown job, proof does not verify)."""
