"""The solver's exceptions, all under :class:`tender.errors.TenderError`::

TenderError
└── SolverError              anything the solver raises on purpose
    ├── QuoteError           a provider's answer is malformed, unsigned, foreign or expired
    ├── ProviderUnavailable  a provider's circuit breaker is open (it is skipped for a while)
    ├── StoreError           the solver's SQLite store is unusable
    └── JobError             handing an awarded job to its provider failed

The chain feed's :class:`tender.errors.FeedError` (a reorg deeper than the store remembers)
ends the solver: it is not caught.
"""

from __future__ import annotations

from tender.errors import TenderError


class SolverError(TenderError):
    """Root of the solver's errors."""


class QuoteError(SolverError):
    """A provider answered with something that is not a valid quote for this job."""


class ProviderUnavailable(SolverError):
    """The provider failed recently and its circuit breaker is open."""


class StoreError(SolverError):
    """The solver's store cannot be opened or is inconsistent."""


class JobError(SolverError):
    """Sending an awarded job's input to its provider, or following it, failed."""
