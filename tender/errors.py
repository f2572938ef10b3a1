"""The one exception tree of Tender.

Every error Tender raises on purpose derives from :class:`TenderError`, so callers can catch
the whole family at once and tell its branches apart::

    TenderError
    ├── ConfigError              configuration missing or invalid (names the field)
    ├── DevChainError            the local Anvil chain could not start or answer
    ├── ChainError               talking to the chain failed
    │   ├── ArtifactError        contract build artefacts missing (run `make contracts`)
    │   ├── ContractRevert       a call reverted; carries the decoded custom error
    │   ├── TransactionFailed    a transaction was mined but failed, or never mined
    │   └── DeploymentError      no deployment recorded for this chain, or it is unreadable
    ├── IntentError              an intent is malformed or its signature is wrong
    ├── BodyRefused              an HTTP request body out of bounds (see tender.bounds)
    ├── ModelError               model bundles, circuits and proofs (see tender.models)
    ├── RequestError             a request bought through the SDK did not settle
    └── MissingExtra             a part of Tender that needs an extra not installed (names it)
"""

from __future__ import annotations

from typing import Any


class TenderError(Exception):
    """Root of every error Tender raises on purpose."""


class ConfigError(TenderError):
    """Configuration is missing or invalid; the message names the field."""


class DevChainError(TenderError):
    """The local development chain (Anvil) could not be started or did not answer."""


class ChainError(TenderError):
    """Talking to the chain failed."""


class FeedError(ChainError):
    """An event feed cannot follow the chain (a reorg deeper than it remembers)."""


class ArtifactError(ChainError):
    """A contract's build artefact (ABI, bytecode) is missing or unreadable."""


class DeploymentError(ChainError):
    """No deployment is recorded for this chain, or the record does not match the chain."""


class ContractRevert(ChainError):
    """A contract call reverted.

    Attributes:
        name: the custom error's name, decoded from the contract ABI (``"BidNotBetter"``),
            or ``"Error"``/``"Panic"`` for the built-in ones, or ``"unknown"``.
        args: the decoded error arguments, by name.
        data: the raw revert data.
    """

    def __init__(self, name: str, args: dict[str, Any] | None = None, data: bytes = b"") -> None:
        self.name = name
        self.args_by_name = dict(args or {})
        self.data = data
        shown = ", ".join(f"{k}={v}" for k, v in self.args_by_name.items())
        super().__init__(f"{name}({shown})")


class TransactionFailed(ChainError):
    """A transaction was mined with status 0, or was not mined in time.

    Attributes:
        tx_hash: the transaction hash, when one was broadcast.
        revert: the decoded revert when the failure could be replayed, else ``None``.
    """

    def __init__(
        self, message: str, *, tx_hash: bytes | None = None, revert: ContractRevert | None = None
    ) -> None:
        self.tx_hash = tx_hash
        self.revert = revert
        super().__init__(message)


class IntentError(TenderError):
    """An intent is malformed, expired, or its signature does not match."""


class BodyRefused(TenderError):
    """An HTTP request body out of bounds: too large, nested too deep, a number too long.

    Attributes:
        status: the HTTP status to answer (400, 413 or 415).
        code: the machine code of the :class:`tender.wire.ErrorBody`.
        message: what is wrong, with the limit.
        field: what it is about (``"body"``).
    """

    def __init__(self, status: int, code: str, message: str, field: str = "body") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        super().__init__(message)


class ModelError(TenderError):
    """A model bundle, circuit or proof failed (subclasses live in tender.models)."""


class RequestError(TenderError):
    """A request made through the SDK did not settle (subclasses live in tender.client)."""


class MissingExtra(TenderError):
    """A command or module needs an optional part of Tender that is not installed.

    ``pip install tender`` is the light requester SDK; the roles, the devnet and the zk tools
    are extras (``tender.extras``). The message names the extra and the command installing it.
    """

    def __init__(self, what: str, extra: str, *, module: str | None = None) -> None:
        self.what = what
        self.extra = extra
        self.module = module
        absent = f" ({module} is not installed)" if module else ""
        super().__init__(f"{what} needs the {extra} extra{absent}: pip install 'tender[{extra}]'")
